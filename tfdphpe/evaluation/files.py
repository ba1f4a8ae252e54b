"""Scores predictions that come as files (from us or any other tool), without a model.

* COCO: a results JSON (``[{image_id, category_id, keypoints [51], score}, ...]``) against a
  keypoints annotation file, through pycocotools.
* MPII: predictions ``[N, 16, 2]`` in the order of the annotation records, as HRNet's
  ``pred.mat`` (key ``preds``), a ``.npy`` array, or a JSON ``{"preds": [...]}`` / bare list.
  ``one_based=True`` for MATLAB-style coordinates (HRNet's ``pred.mat`` adds 1 before saving).
"""

from __future__ import annotations

import json
import os

import numpy as np

from tfdphpe.data.records import records_to_arrays
from tfdphpe.evaluation.coco_ap import coco_keypoint_ap
from tfdphpe.evaluation.pckh import PCKhResult, pckh


def read_mpii_predictions(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"predictions file not found: {path}")
    if path.endswith(".mat"):
        from scipy.io import loadmat
        data = loadmat(path)
        if "preds" not in data:
            raise ValueError(f"{path}: no 'preds' array (HRNet's pred.mat layout)")
        preds = data["preds"]
    elif path.endswith(".npy"):
        preds = np.load(path)
    else:
        with open(path) as f:
            data = json.load(f)
        preds = data["preds"] if isinstance(data, dict) else data
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[1:] != (16, 2):
        raise ValueError(f"{path}: predictions must be [N, 16, 2], got {preds.shape}")
    return preds


def score_mpii_file(predictions_path: str, records, one_based: bool = False) -> PCKhResult:
    """PCKh of a predictions file against MPII records (with head boxes)."""
    preds = read_mpii_predictions(predictions_path)
    arrays = records_to_arrays(list(records))
    # Prediction files have one row per annotation entry (HRNet's pred.mat follows valid.json),
    # so rows are matched by the entry index, which stays right when a reader skipped records.
    index = arrays["annotation_id"]
    if np.all(index >= 0):
        if index.max() >= len(preds):
            raise ValueError(f"{predictions_path}: {len(preds)} predictions, but the annotations "
                             f"have entry {int(index.max())}")
        preds = preds[index]
    elif len(preds) != len(index):
        raise ValueError(f"{predictions_path}: {len(preds)} predictions for "
                         f"{len(index)} annotated people")
    if not np.any(arrays["head_box"]):
        raise ValueError("the annotations carry no head boxes: give the gt_valid.mat file")
    if one_based:
        preds = preds - 1.0
    return pckh(preds, arrays["original_keypoints"], arrays["original_visible"],
                arrays["head_box"])


def score_coco_file(results_path: str, annotation_file: str) -> dict[str, float]:
    return coco_keypoint_ap(annotation_file, results_path)
