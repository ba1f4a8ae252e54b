r"""Evaluates a trained model, or scores a predictions file from any tool.

    # a run directory (or model.keras) on its data set's validation split
    python scripts/evaluate.py --checkpoint=runs/quickstart --dataset=synthetic \
        --data_dir=data/synthetic/private
    # an exported TFLite model on the same crops (MPII format, no flip test)
    python scripts/evaluate.py --tflite=savedmodels/quickstart/1/tflite/pose_int8.tflite \
        --dataset=synthetic --data_dir=data/synthetic/private
    # a predictions file, no model: MPII (pred.mat / .npy / .json) or COCO (results JSON)
    python scripts/evaluate.py --predictions=pred.mat --one_based --dataset=mpii \
        --annotations=data/mpii/annot/valid.json --head_boxes=data/mpii/annot/gt_valid.mat
    python scripts/evaluate.py --predictions=results.json --dataset=coco \
        --annotations=data/coco/annotations/person_keypoints_val2017.json

Scores on private data are not covered by the training run's DP guarantee.
"""

import json
import os

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from absl import app, flags  # noqa: E402

from tfdphpe.data.mpii import read_mpii_json
from tfdphpe.evaluation.files import score_coco_file, score_mpii_file
from tfdphpe.evaluation.pckh import table_from_metrics

F = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Run directory (with model.keras) or a .keras file.")
flags.DEFINE_string("tflite", None, "An exported .tflite model (scripts/export.py) to score on "
                    "the same validation crops as a Keras model (MPII-format PCKh, no flip test).")
flags.DEFINE_string("predictions", None, "Predictions file to score instead of a model.")
flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "mpii", "coco", "custom"], "Data set.")
flags.DEFINE_string("data_dir", "data/synthetic/private", "Data set root (model mode).")
flags.DEFINE_string("annotations", None, "Annotation file (predictions mode).")
flags.DEFINE_string("head_boxes", None, "gt_valid.mat with head boxes (MPII predictions mode).")
flags.DEFINE_string("image_dir", "", "Image folder (only checked if given).")
flags.DEFINE_bool("one_based", False, "MPII predictions use 1-based (MATLAB) coordinates.")
flags.DEFINE_bool("flip_test", True, "Flip test (model mode).")
flags.DEFINE_integer("max_examples", 0, "Cap on evaluated people (0 = all; PCKh only).")
flags.DEFINE_string("output", None, "Write the metrics as JSON here.")


def main(argv):
    del argv
    if sum(bool(v) for v in (F.checkpoint, F.predictions, F.tflite)) != 1:
        raise app.UsageError("give exactly one of --checkpoint, --tflite and --predictions")
    if F.predictions:
        if not F.annotations:
            raise app.UsageError("--predictions needs --annotations")
        if F.dataset == "coco":
            metrics = {f"COCO/{k}": v for k, v in
                       score_coco_file(F.predictions, F.annotations).items()}
        else:
            records = read_mpii_json(F.annotations, F.image_dir, head_boxes_file=F.head_boxes,
                                     check_images="none")
            metrics = score_mpii_file(F.predictions, records.records, F.one_based).as_dict()
    elif F.tflite:
        from tfdphpe.data.transforms import IMAGENET_MEAN, IMAGENET_STD
        from tfdphpe.export.runtime import normalized_crop_predict_fn
        from tfdphpe.training.evaluate import evaluate_predict_fn
        predict, size = normalized_crop_predict_fn(F.tflite, IMAGENET_MEAN, IMAGENET_STD)
        metrics = evaluate_predict_fn(predict, size, F.dataset, F.data_dir, F.max_examples)
    else:
        from tfdphpe.training.evaluate import evaluate_checkpoint
        metrics = evaluate_checkpoint(F.checkpoint, F.dataset, F.data_dir, F.flip_test,
                                      F.max_examples)
    print(table_from_metrics(metrics) if "PCKh@0.5/Mean" in metrics else
          "\n".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
    if F.output:
        os.makedirs(os.path.dirname(os.path.abspath(F.output)), exist_ok=True)
        with open(F.output, "w") as f:
            json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    _app.run(main)
