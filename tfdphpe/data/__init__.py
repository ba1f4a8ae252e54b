"""tfdphpe.data: joint sets, readers (COCO, MPII, custom COCO-style), the synthetic data set,
transforms, the tf.data pipeline, S_pub splits and DP sampling. See docs/data.md.

Names are imported on first use, so ``tfdphpe.data.synthetic`` (numpy and PIL only) does not
load TensorFlow. `tfdphpe.data.tfds_builders` (tensorflow-datasets builders) is imported on
its own.
"""

import importlib

_EXPORTS = {
    "tfdphpe.data.coco": ("read_coco",),
    "tfdphpe.data.custom": ("joint_set_from_names", "read_custom"),
    "tfdphpe.data.joints": ("COCO", "COCO_SIGMAS", "MPII", "MPII_TO_COCO", "JointSet",
                            "get_joint_set"),
    "tfdphpe.data.mpii": ("read_mpii_json", "read_mpii_mat"),
    "tfdphpe.data.pipeline": ("AugmentConfig", "PipelineConfig", "PoseDataset", "build_dataset",
                              "element_ops"),
    "tfdphpe.data.records": ("AnnotationError", "PoseRecord", "ReadResult", "ReadSummary"),
    "tfdphpe.data.sampling": ("BatchConfig", "SamplingInfo", "poisson_max_batch_size",
                              "steps_for_epochs"),
    "tfdphpe.data.splits": ("Split", "apply_manifest", "read_manifest", "split_public",
                            "write_manifest"),
    "tfdphpe.data.synthetic": ("SyntheticConfig", "write_synthetic_dataset"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfdphpe.data' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
