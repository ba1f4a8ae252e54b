"""MPII PCKh, the official protocol (as ported to Python in HRNet's ``lib/dataset/mpii.py``).

* head size = 0.6 x the diagonal of the ground-truth head box;
* a joint is correct when ||pred - gt|| <= threshold x head size (thresholds 0.5 and 0.1);
* only joints visible in the ground truth count;
* groups: Head (head top), Shoulder, Elbow, Wrist, Hip, Knee, Ankle, each the plain mean of its
  left and right joint; Mean over all joints except pelvis and thorax, weighted by each joint's
  visible count.

Predictions and ground truth must be in the same frame (original image pixels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfdphpe.data.joints import MPII

HEAD_SIZE_FACTOR = 0.6
_EXCLUDED = (MPII.index("pelvis"), MPII.index("thorax"))
GROUPS = {
    "Head": ("head_top",),
    "Shoulder": ("l_shoulder", "r_shoulder"),
    "Elbow": ("l_elbow", "r_elbow"),
    "Wrist": ("l_wrist", "r_wrist"),
    "Hip": ("l_hip", "r_hip"),
    "Knee": ("l_knee", "r_knee"),
    "Ankle": ("l_ankle", "r_ankle"),
}


@dataclasses.dataclass
class PCKhResult:
    """PCKh in percent: per joint, per group and the weighted mean, at each threshold."""

    per_joint: dict[float, np.ndarray]
    groups: dict[float, dict[str, float]]
    mean: dict[float, float]
    joint_counts: np.ndarray

    def table(self) -> str:
        names = list(GROUPS) + ["Mean"]
        lines = ["| threshold | " + " | ".join(names) + " |",
                 "|---|" + "---|" * len(names)]
        for t in sorted(self.mean, reverse=True):
            values = [self.groups[t][g] for g in GROUPS] + [self.mean[t]]
            lines.append(f"| PCKh@{t:g} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        out = {}
        for t in self.mean:
            out.update({f"PCKh@{t:g}/{g}": v for g, v in self.groups[t].items()})
            out[f"PCKh@{t:g}/Mean"] = self.mean[t]
        return out


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """[N, 4] boxes (x1, y1, x2, y2) -> [N] head sizes (0.6 x diagonal)."""
    head_boxes = np.asarray(head_boxes, dtype=np.float64)
    diag = np.linalg.norm(head_boxes[:, 2:4] - head_boxes[:, 0:2], axis=1)
    return HEAD_SIZE_FACTOR * diag


def pckh(predictions, ground_truth, visible, head_boxes,
         thresholds=(0.5, 0.1)) -> PCKhResult:
    """Scores MPII-16 predictions.

    Args:
      predictions: [N, 16, 2] predicted (x, y) in image pixels.
      ground_truth: [N, 16, 2] annotated (x, y).
      visible: [N, 16] 1 where the joint is annotated (the official ``jnt_visible``).
      head_boxes: [N, 4] ground-truth head boxes (x1, y1, x2, y2).
      thresholds: fractions of the head size.
    """
    pred = np.asarray(predictions, dtype=np.float64)
    gt = np.asarray(ground_truth, dtype=np.float64)
    vis = (np.asarray(visible) > 0).astype(np.float64)
    n = gt.shape[0]
    if pred.shape != gt.shape or gt.shape[1:] != (MPII.num_joints, 2):
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} must both be "
                         f"[N, {MPII.num_joints}, 2]")
    if vis.shape != (n, MPII.num_joints) or np.shape(head_boxes) != (n, 4):
        raise ValueError(f"visible must be [N, 16] and head_boxes [N, 4] for N={n}")
    size = head_sizes(head_boxes)
    if np.any((size <= 0) & (vis.sum(1) > 0)):
        bad = int(np.argmax((size <= 0) & (vis.sum(1) > 0)))
        raise ValueError(f"record {bad}: head box {np.asarray(head_boxes)[bad]} has zero size")
    err = np.linalg.norm(pred - gt, axis=2) / np.where(size > 0, size, 1.0)[:, None]
    counts = vis.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = counts.copy()
        weights[list(_EXCLUDED)] = 0
        weights = weights / weights.sum() if weights.sum() > 0 else weights
        per_joint, groups, mean = {}, {}, {}
        for t in thresholds:
            hits = ((err <= t) & (vis > 0)).sum(axis=0)
            score = 100.0 * hits / counts
            per_joint[t] = score
            groups[t] = {g: float(np.mean([score[MPII.index(j)] for j in joints]))
                         for g, joints in GROUPS.items()}
            mean[t] = float(np.nansum(score * weights))
    return PCKhResult(per_joint=per_joint, groups=groups, mean=mean, joint_counts=counts)


def table_from_metrics(metrics: dict, thresholds=(0.5, 0.1)) -> str:
    """The papers' table layout (Head ... Ankle, Mean) from ``PCKhResult.as_dict()`` keys."""
    names = list(GROUPS) + ["Mean"]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for t in thresholds:
        keys = [f"PCKh@{t:g}/{n}" for n in names]
        if all(k in metrics for k in keys):
            lines.append(f"| PCKh@{t:g} | " + " | ".join(f"{metrics[k]:.2f}" for k in keys) + " |")
    return "\n".join(lines)
