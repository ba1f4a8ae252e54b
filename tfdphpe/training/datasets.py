"""Which reader, which files: turns a data set name and root directory into records.

Expected layouts (docs/data.md has the details):

* ``synthetic`` (``scripts/make_synthetic.py``): ``images/``, ``mpii/{train,valid}.json``,
  ``mpii/gt_valid.mat``, ``coco/person_keypoints_{train,val}.json``.
* ``mpii`` (HRNet layout): ``images/``, ``annot/{train,valid}.json``, ``annot/gt_valid.mat``.
* ``coco``: ``{train2017,val2017}/``, ``annotations/person_keypoints_{train,val}2017.json``.
* ``custom``: ``images/``, ``annotations/{train,val}.json`` (COCO-style keypoints JSON).
* ``posetrack``: ``annotations/{train,val}.json`` or ``annotations/{train,val}/*.json`` (one file
  per video, COCO layout with ``vid_id``, ``frame_id``, ``track_id``), image paths relative to
  the root (PoseTrack's ``images/...``).

Tests: tests/training/test_trainer.py, tests/data/test_units.py.
"""

from __future__ import annotations

import os

from tfdphpe.data.coco import read_coco
from tfdphpe.data.custom import read_custom
from tfdphpe.data.mpii import read_mpii_json
from tfdphpe.data.posetrack import merged_annotations, read_posetrack
from tfdphpe.data.records import ReadResult


def _need(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path} (see docs/data.md for the layout)")
    return path


def load_split(dataset: str, data_dir: str, split: str, fmt: str = "mpii") -> ReadResult:
    """Records of ``split`` ("train" or "val") of a data set.

    Args:
      dataset: "synthetic", "mpii", "coco" or "custom".
      data_dir: the data set's root directory.
      split: "train" or "val".
      fmt: for "synthetic" only: read it in "mpii" (16 joints, head boxes) or "coco" format.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    if dataset == "synthetic":
        images = os.path.join(data_dir, "images")
        if fmt == "mpii":
            name = "train.json" if split == "train" else "valid.json"
            heads = os.path.join(data_dir, "mpii", "gt_valid.mat") if split == "val" else None
            return read_mpii_json(_need(os.path.join(data_dir, "mpii", name), "annotations"),
                                  images, head_boxes_file=heads)
        name = f"person_keypoints_{split}.json"
        return read_coco(_need(os.path.join(data_dir, "coco", name), "annotations"), images)
    if dataset == "mpii":
        name = "train.json" if split == "train" else "valid.json"
        heads = os.path.join(data_dir, "annot", "gt_valid.mat") if split == "val" else None
        return read_mpii_json(_need(os.path.join(data_dir, "annot", name), "annotations"),
                              os.path.join(data_dir, "images"), head_boxes_file=heads)
    if dataset == "coco":
        ann = os.path.join(data_dir, "annotations", f"person_keypoints_{split}2017.json")
        return read_coco(_need(ann, "annotations"), os.path.join(data_dir, f"{split}2017"))
    if dataset == "custom":
        ann = os.path.join(data_dir, "annotations", f"{split}.json")
        return read_custom(_need(ann, "annotations"), os.path.join(data_dir, "images"))
    if dataset == "posetrack":
        return read_posetrack(_posetrack_annotations(data_dir, split), data_dir)
    raise ValueError(f"unknown dataset {dataset!r}")


def _posetrack_annotations(data_dir: str, split: str) -> str:
    folder = os.path.join(data_dir, "annotations", split)
    return folder if os.path.isdir(folder) else _need(folder + ".json", "annotations")


def coco_annotation_file(dataset: str, data_dir: str, split: str = "val") -> str | None:
    """The COCO-format annotation file used for AP, when the data set has one."""
    if dataset == "coco":
        return os.path.join(data_dir, "annotations", f"person_keypoints_{split}2017.json")
    if dataset == "synthetic":
        return os.path.join(data_dir, "coco", f"person_keypoints_{split}.json")
    if dataset == "posetrack":
        return merged_annotations(_posetrack_annotations(data_dir, split))
    return None
