"""One interface over both export formats: encoded image + person boxes -> keypoints in pixels.

``load_predictor(path)`` takes a SavedModel directory (runs its ``predict_images`` signature) or
a ``.tflite`` file (crops with the same geometry in TensorFlow, runs the interpreter, maps back).

Tests: tests/export/test_predict.py.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.export.metadata import read_metadata
from tfdphpe.export.preprocessing import (BOX_PADDING, crop_image, crop_regions, crop_to_image,
                                          whole_image_box)
from tfdphpe.export.saved_model import PREDICT_IMAGES, SERVING_DEFAULT
from tfdphpe.export.runtime import TFLitePoseEstimator


class PosePredictor:
    """``predict(image_bytes, boxes)`` -> (boxes [M, 4], keypoints [M, K, 2], scores [M, K]).

    Keypoints are in image pixels; ``boxes=None`` uses the whole image. ``predict_crops`` runs
    the model on uint8 crops ``[N, H, W, 3]`` already cut (the video pipeline's path).
    """

    metadata: dict[str, Any]
    num_joints: int
    input_size: tuple[int, int]

    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 crops ``[N, H, W, 3]`` -> (keypoints ``[N, K, 2]`` crop pixels, scores)."""
        raise NotImplementedError

    def predict(self, image_bytes: bytes, boxes: Sequence[Sequence[float]] | None = None):
        image_shape = tf.shape(tf.io.decode_image(image_bytes, channels=3,
                                                  expand_animations=False))
        if boxes is None:
            padding = float(self.metadata.get("box_padding", BOX_PADDING))
            boxes = whole_image_box(image_shape, padding).numpy()[None]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):     # nobody detected: the model is not run on an empty batch
            k = self.num_joints
            return boxes, np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        keypoints, scores = self._predict(image_bytes, boxes)
        return boxes, np.asarray(keypoints), np.asarray(scores)

    def _predict(self, image_bytes: bytes, boxes: np.ndarray):
        raise NotImplementedError


class SavedModelPredictor(PosePredictor):
    def __init__(self, export_dir: str):
        self.metadata = read_metadata(export_dir)
        self._loaded = tf.saved_model.load(export_dir)
        self._signature = self._loaded.signatures[PREDICT_IMAGES]
        self._crops_signature = self._loaded.signatures[SERVING_DEFAULT]
        self.num_joints = int(self._signature.structured_outputs["scores"].shape[-1])
        self.input_size = tuple(int(v) for v in self.metadata["input_size"])

    def predict_crops(self, crops):
        out = self._crops_signature(images=tf.constant(crops, tf.uint8))
        return out["keypoints"].numpy(), out["scores"].numpy()

    def _predict(self, image_bytes, boxes):
        out = self._signature(image_bytes=tf.constant([image_bytes] * len(boxes), tf.string),
                              boxes=tf.constant(boxes, tf.float32))
        return out["keypoints"].numpy(), out["scores"].numpy()


class TFLitePredictor(PosePredictor):
    def __init__(self, model_file: str, num_threads: int = 1):
        self.estimator = TFLitePoseEstimator(model_file, num_threads)
        self.metadata = self.estimator.metadata or {}
        self.num_joints = self.estimator.num_joints
        self.input_size = self.estimator.input_size

    def predict_crops(self, crops):
        return self.estimator.predict(crops)

    def _predict(self, image_bytes, boxes):
        from tfdphpe.export.preprocessing import check_box

        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        size = self.estimator.input_size
        regions = crop_regions(boxes, size, float(self.metadata.get("box_padding", BOX_PADDING)))
        crops = np.zeros((len(boxes), size[0], size[1], 3), np.uint8)
        for i in range(len(boxes)):
            check_box(boxes[i], tf.shape(image), i)  # eager: raises on a box off the image
            crop = crop_image(image, regions[i], size).numpy()
            crops[i] = np.clip(np.round(crop), 0, 255).astype(np.uint8)
        keypoints, scores = self.estimator.predict(crops)
        return crop_to_image(keypoints, regions, size).numpy(), scores


def load_predictor(path: str, num_threads: int = 1) -> PosePredictor:
    """A predictor for a SavedModel directory or a ``.tflite`` file."""
    path = os.fspath(path)
    if path.endswith(".tflite"):
        return TFLitePredictor(path, num_threads)
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return SavedModelPredictor(path)
    raise ValueError(f"{path} is neither a SavedModel directory nor a .tflite file")
