"""Skeleton overlays: predicted poses drawn on images, and side-by-side method comparisons.

Used by ``scripts/predict.py`` (through ``tfdphpe.export``) and by the sweep's overlay figure.

Tests: tests/export/test_predict.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

# Left joints warm, right joints cool, centre joints green: readable on most photos.
_LEFT, _RIGHT, _CENTRE, _BOX = (255, 128, 0), (0, 160, 255), (0, 220, 0), (255, 255, 0)


def _joint_colour(name: str):
    lower = name.lower()
    if lower.startswith(("l_", "left")):
        return _LEFT
    if lower.startswith(("r_", "right")):
        return _RIGHT
    return _CENTRE


def draw_poses(image: Image.Image | np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
               skeleton: Sequence[Sequence[int]], joint_names: Sequence[str] | None = None,
               boxes: np.ndarray | None = None, score_threshold: float = 0.2) -> Image.Image:
    """Returns an RGB copy of ``image`` with each person's skeleton drawn.

    Args:
      image: PIL image or uint8 array [h, w, 3].
      keypoints: [M, K, 2] in image pixels.
      scores: [M, K]; joints below ``score_threshold`` (and edges touching them) are skipped.
      skeleton: joint index pairs to join.
      joint_names: for colours (left / right / centre).
      boxes: optional [M, 4] person boxes (x1, y1, x2, y2) to outline.
    """
    canvas = (Image.fromarray(np.asarray(image, np.uint8)) if isinstance(image, np.ndarray)
              else image).convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, np.shape(keypoints)[-2], 2)
    scores = np.asarray(scores, np.float32).reshape(keypoints.shape[:2])
    num_joints = keypoints.shape[1]
    names = list(joint_names) if joint_names is not None else [""] * num_joints
    radius = max(2, round(min(canvas.size) / 150))
    for m in range(keypoints.shape[0]):
        if boxes is not None:
            draw.rectangle([float(v) for v in boxes[m]], outline=_BOX, width=1)
        ok = scores[m] >= score_threshold
        for a, b in skeleton:
            if a < num_joints and b < num_joints and ok[a] and ok[b]:
                colour = _joint_colour(names[b]) if names[b] else _CENTRE
                draw.line([tuple(keypoints[m, a]), tuple(keypoints[m, b])], fill=colour,
                          width=max(1, radius - 1))
        for k in range(num_joints):
            if ok[k]:
                x, y = keypoints[m, k]
                draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                             fill=_joint_colour(names[k]) if names[k] else _CENTRE)
    return canvas


def grid(rows: Sequence[Sequence[Image.Image]], row_labels: Sequence[str] = (),
         cell: tuple[int, int] = (192, 256)) -> Image.Image:
    """Tiles images (rows x columns) into one picture, each row labelled on its left."""
    label_w = 110 if row_labels else 0
    w, h = cell
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (label_w + ncols * w, len(rows) * h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(rows):
        if row_labels:
            draw.text((6, i * h + h // 2), str(row_labels[i]), fill=(0, 0, 0))
        for j, img in enumerate(row):
            fitted = img.copy()
            fitted.thumbnail((w, h))
            canvas.paste(fitted, (label_w + j * w + (w - fitted.width) // 2,
                                  i * h + (h - fitted.height) // 2))
    return canvas
