"""int8 calibration crops from PUBLIC images.

DESIGN 4: "int8 calibration for TFLite uses public data only". The calibration ranges computed
from these crops are stored in the model file, so private images must never be used here. The
functions take an explicit list of image files (e.g. COCO train/val images, or any licensed
public set) and, optionally, COCO-format person boxes for them; nothing here reads a training
configuration, so the private data set cannot slip in by default.

Tests: tests/export/test_tflite.py.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.export.preprocessing import (BOX_PADDING, crop_image, crop_regions,
                                          whole_image_box)


def coco_person_boxes(annotation_file: str, min_size: float = 32.0) -> dict[str, list[list[float]]]:
    """File name -> person boxes (x1, y1, x2, y2) from a COCO-format annotation file.

    Crowd annotations and boxes smaller than ``min_size`` pixels on either side are skipped.
    """
    with tf.io.gfile.GFile(annotation_file, "r") as f:
        coco = json.load(f)
    names = {img["id"]: img["file_name"] for img in coco.get("images", [])}
    boxes: dict[str, list[list[float]]] = {}
    for ann in coco.get("annotations", []):
        if ann.get("iscrowd", 0) or ann.get("category_id", 1) != 1 or ann["image_id"] not in names:
            continue
        x, y, w, h = ann["bbox"]
        if w < min_size or h < min_size:
            continue
        boxes.setdefault(names[ann["image_id"]], []).append([x, y, x + w, y + h])
    return boxes


def public_calibration_crops(image_files: Sequence[str], input_size: Sequence[int],
                             boxes: Mapping[str, Sequence[Sequence[float]]] | None = None,
                             limit: int | None = 200,
                             padding: float = BOX_PADDING) -> Iterator[np.ndarray]:
    """uint8 person crops ``[H, W, 3]`` from public images, cropped as the serving graph does.

    Args:
      image_files: public image files.
      input_size: model input (H, W).
      boxes: optional file base name -> person boxes (x1, y1, x2, y2); images without boxes are
        used whole.
      limit: stop after this many crops (None: all).
      padding: box enlargement, as in serving.
    """
    if not image_files:
        raise ValueError("no public calibration images given")
    count = 0
    for path in image_files:
        with tf.io.gfile.GFile(path, "rb") as f:
            image = tf.io.decode_image(f.read(), channels=3, expand_animations=False)
        image_boxes = (boxes or {}).get(os.path.basename(path)) or [
            whole_image_box(tf.shape(image), padding).numpy()]
        for box in image_boxes:
            region = crop_regions(tf.constant(box, tf.float32), input_size, padding)
            crop = crop_image(image, region, input_size)
            yield np.clip(np.round(crop.numpy()), 0, 255).astype(np.uint8)
            count += 1
            if limit is not None and count >= limit:
                return


def synthetic_crops(count: int, input_size: Sequence[int], seed: int = 0) -> Iterator[np.ndarray]:
    """Random uint8 crops (smooth noise): public by construction, for tests and latency runs."""
    rng = np.random.default_rng(seed)
    h, w = int(input_size[0]), int(input_size[1])
    for _ in range(count):
        coarse = rng.uniform(0, 255, (max(h // 8, 1), max(w // 8, 1), 3)).astype(np.float32)
        smooth = tf.image.resize(coarse[None], (h, w), method="bilinear")[0].numpy()
        noise = rng.normal(0, 12, (h, w, 3))
        yield np.clip(smooth + noise, 0, 255).astype(np.uint8)
