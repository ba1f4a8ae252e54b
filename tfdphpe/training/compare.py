"""Side-by-side pictures of several models on the same validation people (ties models, data
and drawing): the sweep's overlay figure and the demo's public / DP / non-private comparison."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from tfdphpe.evaluation.visualize import draw_poses, grid
from tfdphpe.training.datasets import load_split
from tfdphpe.training.evaluate import predict_run


def _person_crop(record, image: Image.Image, padding: float = 1.25):
    """(crop, offset): the person box with padding, at the model input's 3:4 aspect."""
    w, h = record.box_size * padding
    h = max(h, w * 4 / 3)
    x0, y0 = record.center - np.array([h * 3 / 8, h / 2])
    box = tuple(int(round(v)) for v in (x0, y0, x0 + h * 3 / 4, y0 + h))
    return image.crop(box), np.array(box[:2], np.float32)


def overlay_figure(models: Sequence[tuple[str, str]], dataset: str, data_dir: str,
                   out_path: str, num_images: int = 4, crop: bool = True) -> str:
    """One row per model (label, run directory or .keras file) under a ground-truth row: the
    first ``num_images`` validation people with the predicted skeletons; ``crop`` shows each
    person's box instead of the whole image."""
    val = load_split(dataset, data_dir, "val")
    records = list(val.records)[:num_images]
    skeleton, names = val.joint_set.skeleton, val.joint_set.names

    def picture(record, keypoints, scores, threshold):
        image = Image.open(record.image_path).convert("RGB")
        offset = np.zeros(2, np.float32)
        if crop:
            image, offset = _person_crop(record, image)
        return draw_poses(image, (keypoints - offset)[None], scores[None], skeleton, names,
                          score_threshold=threshold)

    rows = [[picture(r, r.keypoints, r.visible, 0.5) for r in records]]
    for _, checkpoint in models:
        preds = predict_run(checkpoint, records, val.joint_set)
        rows.append([picture(r, kp, sc, 0.0)
                     for r, kp, sc in zip(records, preds.keypoints, preds.scores)])
    labels = ["ground truth"] + [label for label, _ in models]
    grid(rows, labels).save(out_path)
    return out_path


def comparison_table(entries: Sequence[tuple[str, dict, str]]) -> str:
    """Markdown: one row per (label, PCKh metrics, what privacy it has) with the groups and the
    mean at 0.5, and the mean at 0.1."""
    from tfdphpe.evaluation.pckh import GROUPS

    names = list(GROUPS) + ["Mean"]
    lines = ["| model | " + " | ".join(names) + " | Mean@0.1 | privacy |",
             "|---|" + "---:|" * (len(names) + 1) + "---|"]
    for label, metrics, privacy in entries:
        cells = [f"{metrics[f'PCKh@0.5/{n}']:.2f}" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {metrics['PCKh@0.1/Mean']:.2f} | {privacy} |")
    return "\n".join(lines)
