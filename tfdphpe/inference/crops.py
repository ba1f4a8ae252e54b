"""Person crops of a video frame, all at once, with the export graphs' geometry.

``tfdphpe.export.preprocessing`` defines the crop (box x padding, fixed to the model's aspect
ratio, bilinear, zero outside the frame); here it is compiled once per crop size, so a frame
with N people costs one call instead of N eager crops.

Tests: tests/inference/test_pipeline.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.export.preprocessing import crop_image_regions


class RegionCropper:
    """``cropper(frame, regions)``: uint8 frame ``[h, w, 3]``, regions ``[N, 4]`` (cx, cy, w, h)
    -> uint8 crops ``[N, H, W, 3]``, rounded as the TFLite predictor rounds them."""

    def __init__(self, input_size: Sequence[int]):
        self.input_size = (int(input_size[0]), int(input_size[1]))

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                      tf.TensorSpec([None, 4], tf.float32)])
        def crop(frame, regions):
            crops = crop_image_regions(frame, regions, self.input_size)
            return tf.cast(tf.clip_by_value(tf.round(crops), 0.0, 255.0), tf.uint8)

        self._crop = crop

    def __call__(self, frame: np.ndarray, regions: np.ndarray) -> np.ndarray:
        regions = np.asarray(regions, np.float32).reshape(-1, 4)
        if not len(regions):
            return np.zeros((0, *self.input_size, 3), np.uint8)
        return self._crop(np.asarray(frame, np.uint8), regions).numpy()
