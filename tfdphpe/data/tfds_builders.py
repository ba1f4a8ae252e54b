"""tensorflow-datasets builders for MPII and COCO keypoints, and the pipeline that reads them.

Preparing a large data set once (TFRecord shards of the original image bytes, one example per
image with its persons) keeps a GPU fed: reading shards is sequential and parallel, with no
per-file open. Importing this module registers the builders ``mpii`` and ``coco_keypoints``::

    from tfdphpe.data import tfds_builders
    builder = tfds_builders.Mpii(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/mpii"))
    pose_ds = tfds_builders.build_dataset_from_tfds(builder, "train", config, batching)

Manual directory layouts (the synthetic data set's ``out_dir`` works for both):

* ``mpii``: ``images/`` plus either the official ``mpii_human_pose_v1_u12_1.mat`` and the
  validation split (Tompson's ``detections.mat`` or ``valid_split.json``) or the HRNet JSON
  ``train.json`` / ``valid.json`` (+ ``gt_valid.mat``), directly in the manual dir or under
  ``annot/`` or ``mpii/``. Splits: ``train``, ``validation``.
* ``coco_keypoints``: ``annotations/person_keypoints_{train,val}2017.json`` with ``train2017/``
  and ``val2017/``, or ``coco/person_keypoints_{train,val}.json`` with ``images/``. Splits:
  ``train``, ``validation`` (whichever annotation files exist).

The shards hold ground-truth persons only; evaluation with detector boxes reads the JSON files
(`tfdphpe.data.read_coco`). Shards are read in order (with a shuffle buffer for training), so
they serve non-private training (public pretraining) and evaluation: Poisson sampling for DP
needs random access by index and uses `tfdphpe.data.build_dataset` on the files instead.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from tfdphpe.data import sampling as sampling_lib
from tfdphpe.data import transforms as T
from tfdphpe.data.coco import read_coco
from tfdphpe.data.joints import COCO, MPII, JointSet
from tfdphpe.data.mpii import read_mpii_json, read_mpii_mat
from tfdphpe.data.pipeline import BATCH_SCALARS, PipelineConfig, PoseDataset, element_ops
from tfdphpe.data.records import PoseRecord, ReadResult

_CITATION_MPII = """@inproceedings{andriluka14cvpr, title={2D Human Pose Estimation: New
Benchmark and State of the Art Analysis}, author={Andriluka, Mykhaylo and Pishchulin, Leonid
and Gehler, Peter and Schiele, Bernt}, booktitle={CVPR}, year={2014}}"""
_CITATION_COCO = """@inproceedings{lin2014microsoft, title={Microsoft COCO: Common Objects in
Context}, author={Lin, Tsung-Yi and others}, booktitle={ECCV}, year={2014}}"""


def _features(num_joints: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "image_id": tf.int64,
        "image_filename": tfds.features.Text(),
        "persons": tfds.features.Sequence({
            "keypoints": tfds.features.Tensor(shape=(num_joints, 2), dtype=tf.float32),
            "visible": tfds.features.Tensor(shape=(num_joints,), dtype=tf.float32),
            "center": tfds.features.Tensor(shape=(2,), dtype=tf.float32),
            "box_size": tfds.features.Tensor(shape=(2,), dtype=tf.float32),
            "head_box": tfds.features.Tensor(shape=(4,), dtype=tf.float32),
            "annotation_id": tf.int64,
        }),
    })


def _examples_by_image(records: Iterable[PoseRecord]):
    """Groups person records into one example per image (key: the image path)."""
    groups: dict[str, list[PoseRecord]] = {}
    for r in records:
        groups.setdefault(r.image_path, []).append(r)
    for path, persons in groups.items():
        yield path, {
            "image": path,
            "image_id": persons[0].image_id,
            "image_filename": os.path.basename(path),
            "persons": {
                "keypoints": np.stack([p.keypoints for p in persons]),
                "visible": np.stack([p.visible for p in persons]),
                "center": np.stack([p.center for p in persons]),
                "box_size": np.stack([p.box_size for p in persons]),
                "head_box": np.stack([p.head_box for p in persons]),
                "annotation_id": np.array([p.annotation_id for p in persons], np.int64),
            },
        }


class _LocalPaths:
    """Points tfds at this file: its default lookup goes through importlib.resources, which
    fails for packages installed as editable namespaces."""

    pkg_dir_path = epath.Path(os.path.dirname(os.path.abspath(__file__)))

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(os.path.abspath(__file__))


def _first(paths: Iterable[str]) -> str | None:
    return next((p for p in paths if os.path.exists(p)), None)


class Mpii(_LocalPaths, tfds.core.GeneratorBasedBuilder):
    """MPII Human Pose (16 joints), from a manual download, as TFRecord shards."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Persons grouped by image; head boxes for PCKh."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """Download the images and annotations from
    http://human-pose.mpi-inf.mpg.de/ into the manual dir: images/ plus either
    mpii_human_pose_v1_u12_1.mat and Tompson's detections.mat (mpii_valid_pred.zip), or the
    HRNet JSON train.json / valid.json with gt_valid.mat."""

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo directly: dataset_info_from_configs looks for package data files.
        return tfds.core.DatasetInfo(
            builder=self, features=_features(MPII.num_joints),
            homepage="http://human-pose.mpi-inf.mpg.de/", citation=_CITATION_MPII)

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        dirs = [root, os.path.join(root, "annot"), os.path.join(root, "mpii")]
        images = os.path.join(root, "images")
        release = _first(os.path.join(d, "mpii_human_pose_v1_u12_1.mat") for d in dirs)
        if release:
            split_file = _first(os.path.join(d, n) for d in dirs
                                for n in ("detections.mat", "valid_split.json"))
            return {name: self._generate_examples(read_mpii_mat(
                        release, images, split=split, valid_split_file=split_file))
                    for name, split in (("train", "train"), ("validation", "val"))}
        out = {}
        for name, file in (("train", "train.json"), ("validation", "valid.json")):
            path = _first(os.path.join(d, file) for d in dirs)
            if path:
                heads = _first([os.path.join(os.path.dirname(path), "gt_valid.mat")]
                               if name == "validation" else [])
                out[name] = self._generate_examples(read_mpii_json(path, images,
                                                                   head_boxes_file=heads))
        if not out:
            raise FileNotFoundError(f"no MPII annotations in {root}; "
                                    f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return out

    def _generate_examples(self, result: ReadResult):
        yield from _examples_by_image(result.records)


class CocoKeypoints(_LocalPaths, tfds.core.GeneratorBasedBuilder):
    """COCO person keypoints (17 joints, ground-truth boxes), as TFRecord shards."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Persons grouped by image; crowd/zero-keypoint persons skipped."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """Download train2017/, val2017/ and
    annotations/person_keypoints_{train,val}2017.json from https://cocodataset.org into the
    manual dir."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, features=_features(COCO.num_joints), homepage="https://cocodataset.org",
            citation=_CITATION_COCO)

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        out = {}
        for name, tag in (("train", "train"), ("validation", "val")):
            layouts = [(os.path.join(root, "annotations", f"person_keypoints_{tag}2017.json"),
                        os.path.join(root, f"{tag}2017")),
                       (os.path.join(root, "coco", f"person_keypoints_{tag}.json"),
                        os.path.join(root, "images"))]
            for ann, images in layouts:
                if os.path.exists(ann):
                    out[name] = self._generate_examples(read_coco(ann, images))
                    break
        if not out:
            raise FileNotFoundError(f"no COCO keypoint annotations in {root}; "
                                    f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return out

    def _generate_examples(self, result: ReadResult):
        yield from _examples_by_image(result.records)


# --------------------------------------------------------------------------- reading shards
def person_dataset(builder: tfds.core.DatasetBuilder, split: str, *, shuffle_files: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """Shards -> one element per person, in the record layout `build_dataset` uses
    (``image_bytes`` instead of ``image_path``)."""
    read_config = tfds.ReadConfig(shuffle_seed=seed) if shuffle_files else None
    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config,
                            decoders={"image": tfds.decode.SkipDecoding()})

    def persons(ex):
        p = ex["persons"]
        n = tf.shape(p["annotation_id"])[0]
        return tf.data.Dataset.from_tensor_slices({
            "image_bytes": tf.fill([n], ex["image"]),
            "image_id": tf.fill([n], ex["image_id"]),
            "record_index": tf.fill([n], tf.constant(-1, tf.int64)),
            "annotation_id": p["annotation_id"],
            "original_keypoints": p["keypoints"], "original_visible": p["visible"],
            "box_center": p["center"], "box_size": p["box_size"], "head_box": p["head_box"],
            "box_score": tf.ones([n], tf.float32)})

    return ds.flat_map(persons)


def build_dataset_from_tfds(builder: tfds.core.DatasetBuilder | str, split: str,
                            config: PipelineConfig,
                            batching: sampling_lib.BatchConfig | None = None, *,
                            data_dir: str | None = None, shuffle_buffer: int = 2048,
                            joint_set: JointSet | None = None) -> PoseDataset:
    """The training/evaluation pipeline over prepared shards.

    Args:
      builder: a builder (or its registered name, "mpii" / "coco_keypoints", or a directory of
        prepared shards).
      batching: "shuffle" (shard order and a shuffle buffer of ``shuffle_buffer`` persons: not
        a uniform permutation; fixed-size batches, repeated ``num_epochs`` times or forever),
        "sequential" (in order; the last batch padded when ``pad_final_batch``) or None
        (single elements). Poisson sampling is refused: it needs random access.
    """
    if isinstance(builder, str):
        builder = (tfds.builder_from_directory(builder) if os.path.isdir(builder)
                   else tfds.builder(builder, data_dir=data_dir))
    if joint_set is None:
        joint_set = MPII if builder.info.features["persons"]["visible"].shape[0] == 16 else COCO
    batching = batching or sampling_lib.BatchConfig(sampling_lib.UNBATCHED, 1, num_epochs=1)
    if batching.method in (sampling_lib.POISSON, sampling_lib.POISSON_VARIABLE):
        raise ValueError("Poisson sampling needs random access to examples; TFRecord shards are "
                         "read in order. For DP training use tfdphpe.data.build_dataset on the "
                         "annotation files and images.")
    training = batching.method == sampling_lib.SHUFFLED
    ds = person_dataset(builder, split, shuffle_files=training, seed=batching.seed)
    num_images = builder.info.splits[split].num_examples
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=batching.seed, reshuffle_each_iteration=True)
    ds = ds.repeat(batching.num_epochs if training else (batching.num_epochs or 1))
    transform = T.compose(element_ops(config, joint_set))
    seed0 = tf.constant(batching.seed + 0x5DEECE66D, tf.int64)

    def load(position, ex):
        ex = dict(ex)
        ex["seed"] = tf.stack([seed0, position])
        return transform(ex)

    ds = ds.enumerate().map(load, num_parallel_calls=config.num_parallel_calls,
                            deterministic=config.deterministic)
    width = batching.batch_size
    if batching.method != sampling_lib.UNBATCHED:
        drop = training or batching.pad_final_batch
        if batching.method == sampling_lib.SEQUENTIAL and batching.pad_final_batch:
            ds = ds.map(lambda e: e | {"mask": tf.constant(1.0)})
            ds = ds.padded_batch(width, drop_remainder=False).map(_pad_to(width))
        else:
            ds = ds.map(lambda e: e | {"mask": tf.constant(1.0)}).batch(width,
                                                                         drop_remainder=drop)
        ds = ds.enumerate().map(lambda t, b: b | {
            "step": t, "chunk": tf.constant(0, tf.int64), "num_chunks": tf.constant(1, tf.int64)})
        if batching.num_steps is not None:
            ds = ds.take(batching.num_steps)
    if config.prefetch:
        ds = ds.prefetch(config.prefetch)
    info = sampling_lib.SamplingInfo(method=batching.method, num_examples=-1,
                                     batch_size=width, sampling_rate=float("nan"),
                                     num_steps=batching.num_steps, max_batch_size=width,
                                     overflow_probability=0.0)
    del num_images  # persons per image vary; the person count is only known after a pass
    return PoseDataset(dataset=ds, sampling=info, joint_set=joint_set, codec=config.codec(),
                       num_examples=-1)


def _pad_to(width: int):
    def pad(batch):
        n = tf.shape(batch["mask"])[0]
        out = {}
        for k, v in batch.items():
            if k in BATCH_SCALARS:
                out[k] = v
                continue
            paddings = [[0, width - n]] + [[0, 0]] * (v.shape.rank - 1)
            out[k] = tf.pad(v, paddings)
            out[k].set_shape([width] + v.shape[1:].as_list())
        return out
    return pad
