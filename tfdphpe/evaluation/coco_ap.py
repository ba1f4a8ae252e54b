"""COCO keypoint AP through pycocotools' COCOeval (OKS), the reference implementation."""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


def to_coco_results(image_ids, keypoints, scores, category_id: int = 1,
                    box_scores=None) -> list[dict]:
    """Builds COCO results entries from [N, 17, 2] keypoints (image pixels) and [N, 17] scores.

    The instance score is the mean joint score (times the box score when given), as in
    top-down practice.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    results = []
    for i, image_id in enumerate(image_ids):
        kps = np.concatenate([keypoints[i], scores[i][:, None]], axis=1).reshape(-1)
        s = float(np.mean(scores[i]))
        if box_scores is not None:
            s *= float(box_scores[i])
        results.append({"image_id": int(image_id), "category_id": category_id,
                        "keypoints": [round(float(v), 3) for v in kps], "score": s})
    return results


def write_results(results: list[dict], path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f)
    return path


def coco_keypoint_ap(annotations: str | COCO, results: str | list[dict],
                     verbose: bool = False) -> dict[str, float]:
    """OKS-based AP/AR of keypoint ``results`` against a COCO annotation file.

    Args:
      annotations: path to a COCO keypoints JSON or a loaded ``COCO`` object.
      results: path to a COCO results JSON or the list of result dicts.
      verbose: print pycocotools' summary table.
    """
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = annotations if isinstance(annotations, COCO) else COCO(annotations)
        if isinstance(results, str):
            with open(results) as f:
                results = json.load(f)
        if not results:
            raise ValueError("no keypoint results to score")
        unknown = {r["image_id"] for r in results} - set(gt.getImgIds())
        if unknown:
            raise ValueError(f"results name {len(unknown)} image ids that are not in the "
                             f"annotations, e.g. {sorted(unknown)[:3]}")
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.imgIds = sorted({r["image_id"] for r in results})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
