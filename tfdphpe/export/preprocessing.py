"""Crop geometry and input normalisation shared by the SavedModel, TFLite and predict paths.

Conventions (the same as ``tfdphpe.codecs``): keypoints are ``(x, y)`` with pixel centres at
integer coordinates, in the crop (``0 <= x <= W - 1``) or in the original image. Person boxes are
``(x1, y1, x2, y2)`` in image pixels.

Top-down cropping as in mmpose: the box is scaled by ``padding`` (1.25) around its centre and then
widened or heightened to the model's aspect ratio W/H, so the person is never squashed. Crop
pixel ``i`` samples the image at ``cx + (i - (W - 1) / 2) * s`` with ``s`` = region width / W
(bilinear, zero outside the image); ``crop_to_image`` is the exact inverse of that map.

All functions are pure TensorFlow and run eagerly or inside a graph (SavedModel signatures).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfdphpe.data import transforms as _T

#: ImageNet statistics on [0, 1] RGB: the normalisation the TinyViT backbone expects, derived
#: from the data pipeline's [0, 255] values so training and serving cannot drift apart.
IMAGENET_MEAN = tuple(m / 255.0 for m in _T.IMAGENET_MEAN)
IMAGENET_STD = tuple(s / 255.0 for s in _T.IMAGENET_STD)
#: Box enlargement around the person before cropping (mmpose's top-down default).
BOX_PADDING = 1.25


def normalize_pixels(images: tf.Tensor) -> tf.Tensor:
    """RGB pixels in [0, 255] (uint8 or float) -> float32 ``(x / 255 - mean) / std``."""
    x = tf.cast(images, tf.float32)
    mean = tf.constant([255.0 * m for m in IMAGENET_MEAN], tf.float32)
    inv_std = tf.constant([1.0 / (255.0 * s) for s in IMAGENET_STD], tf.float32)
    return (x - mean) * inv_std


def crop_regions(boxes: tf.Tensor, input_size: Sequence[int],
                 padding: float = BOX_PADDING) -> tf.Tensor:
    """Boxes ``[..., 4]`` (x1, y1, x2, y2) -> crop regions ``[..., 4]`` (cx, cy, w, h).

    The region is the box scaled by ``padding`` and then extended along one axis to the model's
    aspect ratio ``W / H``.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    h_in, w_in = float(input_size[0]), float(input_size[1])
    aspect = w_in / h_in
    x1, y1, x2, y2 = tf.unstack(boxes, 4, axis=-1)
    cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    w, h = (x2 - x1) * padding, (y2 - y1) * padding
    w, h = tf.maximum(w, h * aspect), tf.maximum(h, w / aspect)
    return tf.stack([cx, cy, w, h], axis=-1)


def region_scale(regions: tf.Tensor, input_size: Sequence[int]) -> tf.Tensor:
    """Image pixels per crop pixel, ``[...]`` (the same on both axes after the aspect fix)."""
    return regions[..., 2] / float(input_size[1])


def crop_to_image(keypoints: tf.Tensor, regions: tf.Tensor,
                  input_size: Sequence[int]) -> tf.Tensor:
    """Crop-pixel keypoints ``[N, K, 2]`` -> image pixels, for regions ``[N, 4]``."""
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    h_in, w_in = float(input_size[0]), float(input_size[1])
    centre_crop = tf.constant([(w_in - 1.0) / 2.0, (h_in - 1.0) / 2.0], tf.float32)
    scale = region_scale(regions, input_size)[..., None, None]
    return regions[..., None, 0:2] + (keypoints - centre_crop) * scale


def image_to_crop(keypoints: tf.Tensor, regions: tf.Tensor,
                  input_size: Sequence[int]) -> tf.Tensor:
    """Inverse of ``crop_to_image``: image-pixel keypoints ``[N, K, 2]`` -> crop pixels."""
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    h_in, w_in = float(input_size[0]), float(input_size[1])
    centre_crop = tf.constant([(w_in - 1.0) / 2.0, (h_in - 1.0) / 2.0], tf.float32)
    scale = region_scale(regions, input_size)[..., None, None]
    return (keypoints - regions[..., None, 0:2]) / scale + centre_crop


def check_box(box: tf.Tensor, image_shape: tf.Tensor, index=None) -> tf.Operation:
    """An assertion that ``box`` (x1, y1, x2, y2) is finite, non-empty and overlaps the image.

    A box partly outside the image is fine (the crop is zero-padded); a box wholly outside it
    has no person to look at and is rejected with an InvalidArgumentError naming the box.
    """
    box = tf.convert_to_tensor(box, tf.float32)
    height = tf.cast(image_shape[0], tf.float32)
    width = tf.cast(image_shape[1], tf.float32)
    x1, y1, x2, y2 = tf.unstack(box, 4)
    valid = tf.reduce_all(tf.math.is_finite(box)) & (x2 > x1) & (y2 > y1)
    overlaps = (x1 < width - 0.5) & (x2 > -0.5) & (y1 < height - 0.5) & (y2 > -0.5)
    label = [] if index is None else ["(box index", index, ")"]
    return tf.debugging.Assert(
        valid & overlaps,
        ["box (x1, y1, x2, y2) =", box, *label,
         "must be finite with x2 > x1 and y2 > y1, and overlap the image of (height, width) =",
         image_shape[:2]], summarize=8)


def crop_image(image: tf.Tensor, region: tf.Tensor, input_size: Sequence[int]) -> tf.Tensor:
    """One image ``[h, w, C]`` and one region (cx, cy, w, h) -> float32 crop ``[H, W, C]``.

    Values keep the image's range (0..255 for uint8 images); outside the image they are 0.
    """
    region = tf.convert_to_tensor(region, tf.float32)
    return crop_image_regions(image, region[None], input_size)[0]


def crop_image_regions(image: tf.Tensor, regions: tf.Tensor,
                       input_size: Sequence[int]) -> tf.Tensor:
    """One image ``[h, w, C]`` and regions ``[N, 4]`` (cx, cy, w, h) -> float32 ``[N, H, W, C]``.

    Every person of a video frame in one call; the same sampling as ``crop_image``.
    """
    image = tf.convert_to_tensor(image)
    regions = tf.convert_to_tensor(regions, tf.float32)
    h_in, w_in = int(input_size[0]), int(input_size[1])
    shape = tf.shape(image)
    img_h = tf.cast(shape[0], tf.float32)
    img_w = tf.cast(shape[1], tf.float32)
    s = regions[:, 2] / float(w_in)
    half = tf.stack([(h_in - 1) / 2.0 * s, (w_in - 1) / 2.0 * s], axis=-1)  # (y, x)
    centre = tf.stack([regions[:, 1], regions[:, 0]], axis=-1)
    lo, hi = centre - half, centre + half
    # crop_and_resize samples y = y1 * (img_h - 1) + i * (y2 - y1) * (img_h - 1) / (H - 1).
    denom = tf.maximum(tf.stack([img_h, img_w]) - 1.0, 1.0)
    boxes = tf.concat([lo / denom, hi / denom], axis=-1)  # y1, x1, y2, x2 (normalised)
    return tf.image.crop_and_resize(tf.cast(image, tf.float32)[None], boxes,
                                    tf.zeros([tf.shape(regions)[0]], tf.int32), (h_in, w_in),
                                    method="bilinear", extrapolation_value=0.0)


def whole_image_box(image_shape, padding: float = BOX_PADDING) -> tf.Tensor:
    """The box whose crop region (after ``padding``) spans the whole image ``[h, w, ...]``.

    Used when no person box is given: the image itself is the crop (plus the aspect fix).
    """
    h = tf.cast(image_shape[0], tf.float32)
    w = tf.cast(image_shape[1], tf.float32)
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    half_w, half_h = w / (2.0 * padding), h / (2.0 * padding)
    return tf.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
