"""Skeleton overlays: predicted poses drawn on images, and side-by-side method comparisons."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tfdphpe.data.joints import JointSet

# Colours for the left side, the right side and the centre line of the body.
LEFT, RIGHT, CENTRE = (255, 140, 0), (30, 144, 255), (50, 205, 50)


def _side(name: str):
    if name.startswith(("l_", "left")):
        return LEFT
    if name.startswith(("r_", "right")):
        return RIGHT
    return CENTRE


def draw_pose(image: Image.Image, keypoints: np.ndarray, joint_set: JointSet,
              scores: np.ndarray | None = None, threshold: float = 0.0,
              radius: int | None = None) -> Image.Image:
    """Returns a copy of ``image`` with the skeleton drawn; joints scoring below ``threshold``
    (and their bones) are left out."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = np.isfinite(kp).all(axis=1)
    if scores is not None:
        ok &= np.asarray(scores) >= threshold
    r = radius or max(2, int(round(min(out.size) / 100)))
    for a, b in joint_set.skeleton:
        if ok[a] and ok[b]:
            draw.line([tuple(kp[a]), tuple(kp[b])], fill=_side(joint_set.names[b]), width=r)
    for j, (x, y) in enumerate(kp):
        if ok[j]:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_side(joint_set.names[j]),
                         outline=(0, 0, 0))
    return out


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
