"""Small dict -> dict TensorFlow ops for top-down pose data, graph-mode safe.

Each public function returns an op ``fn(example) -> example`` (big_vision style) that works
eagerly and inside ``tf.data``. Random ops are stateless: they read the example's ``seed``
(int64 ``[2]``) and fold in their own constant, so results depend only on that seed.

Conventions (shared with `tfdphpe.codecs`):

* Points are (x, y) pixels with pixel centres at integer coordinates, in the original image
  and in the crop alike; a horizontal flip of the crop maps x -> W - 1 - x.
* ``center`` / ``scale`` describe the crop region in the original image: ``scale`` = its (w, h)
  in pixels (mmpose 1.x ``bbox_scale``; HRNet's ``scale * 200``), *after* padding and the
  aspect-ratio fix, and after scale augmentation.
* ``rotation`` in degrees; positive turns the image content counter-clockwise in the crop
  (HRNet's direction).
* ``affine`` ``[2, 3]`` maps original pixels to crop pixels; ``inverse_affine`` maps crop pixels
  (e.g. decoded predictions) back to original pixels. The crop's centre pixel
  ((W - 1) / 2, (H - 1) / 2) is ``center``, and W crop pixels span ``scale[0]`` original pixels
  (the unbiased convention; mmpose's non-UDP warp puts ``center`` at (W / 2, H / 2), half a pixel
  away).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import tensorflow as tf

from tfdphpe.codecs.simcc import SimCCCodec
from tfdphpe.data.joints import JointSet

Example = dict
Op = Callable[[Example], Example]

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

# Constants folded into the example seed, one per random op.
_SEED_HALF_BODY, _SEED_SCALE_ROT, _SEED_FLIP, _SEED_COLOR = 11, 12, 13, 14


def _op_seed(example: Example, tag: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(tf.cast(example["seed"], tf.int64), tag)


def _uniform(seed, shape=()):
    return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)


# --------------------------------------------------------------------------- geometry helpers
def fix_aspect_ratio(size: tf.Tensor, aspect_ratio: float) -> tf.Tensor:
    """Enlarges (w, h) ``[..., 2]`` to width / height = ``aspect_ratio`` (HRNet/mmpose)."""
    size = tf.convert_to_tensor(size, tf.float32)
    w, h = size[..., 0], size[..., 1]
    wider = w > aspect_ratio * h
    return tf.stack([tf.where(wider, w, h * aspect_ratio),
                     tf.where(wider, w / aspect_ratio, h)], axis=-1)


def affine_matrix(center, scale, rotation, input_size: Sequence[int],
                  flip: tf.Tensor | bool = False) -> tf.Tensor:
    """The ``[2, 3]`` map from original pixels to crop pixels (see the module conventions).

    ``flip`` mirrors the crop afterwards (x -> W - 1 - x).
    """
    height, width = float(input_size[0]), float(input_size[1])
    center = tf.convert_to_tensor(center, tf.float32)
    scale = tf.convert_to_tensor(scale, tf.float32)
    theta = tf.convert_to_tensor(rotation, tf.float32) * (math.pi / 180.0)
    c, s = tf.cos(theta), tf.sin(theta)
    sx, sy = width / scale[0], height / scale[1]
    a = tf.stack([tf.stack([sx * c, sx * s]), tf.stack([-sy * s, sy * c])])
    dst_center = tf.constant([(width - 1.0) / 2.0, (height - 1.0) / 2.0])
    t = dst_center - tf.linalg.matvec(a, center)
    m = tf.concat([a, t[:, None]], axis=1)
    mirror = tf.constant([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])
    flipped = tf.concat([mirror[:, :2] @ m[:, :2], (mirror[:, :2] @ m[:, 2:]) + mirror[:, 2:]], 1)
    return tf.where(tf.cast(flip, tf.bool), flipped, m)


def invert_affine(m: tf.Tensor) -> tf.Tensor:
    """Inverse of a ``[2, 3]`` affine map."""
    a, b, tx = m[0, 0], m[0, 1], m[0, 2]
    c, d, ty = m[1, 0], m[1, 1], m[1, 2]
    det = a * d - b * c
    inv = tf.stack([tf.stack([d, -b]), tf.stack([-c, a])]) / det
    t = -tf.linalg.matvec(inv, tf.stack([tx, ty]))
    return tf.concat([inv, t[:, None]], axis=1)


def apply_affine(m: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """Applies ``[2, 3]`` ``m`` to points ``[..., 2]``."""
    points = tf.convert_to_tensor(points, tf.float32)
    return tf.linalg.matvec(m[:, :2], points) + m[:, 2]


def warp_image(image: tf.Tensor, inverse: tf.Tensor, output_size: Sequence[int]) -> tf.Tensor:
    """Samples ``image`` [h, w, C] at ``inverse`` (crop -> original) into ``output_size``;
    bilinear, zeros outside (cv2.warpAffine's default border, as in HRNet/mmpose)."""
    transform = tf.concat([tf.reshape(inverse, [6]), tf.zeros([2])], 0)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform,
        output_shape=tf.constant(list(output_size), tf.int32), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
    return out[0]


def gaussian_blur(image: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of ``[H, W, C]`` (or ``[B, H, W, C]``) float images; radius
    3 * sigma, reflected borders."""
    if sigma <= 0:
        return image
    image = tf.convert_to_tensor(image, tf.float32)
    batched = image.shape.rank == 4
    x = image if batched else image[None]
    channels = x.shape[-1]
    radius = max(1, int(math.ceil(3.0 * sigma)))
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None:
        radius = min(radius, h - 1, w - 1)
    r = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(r / sigma))
    k = k / tf.reduce_sum(k)
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, channels, 1])
    kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return x if batched else x[0]


# --------------------------------------------------------------------------- ops
def decode_image() -> Op:
    """``image_path`` (or ``image_bytes``) -> ``image`` uint8 [h, w, 3], ``image_size`` [2]."""
    def op(ex):
        ex = dict(ex)
        data = ex.pop("image_bytes") if "image_bytes" in ex else tf.io.read_file(ex["image_path"])
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        ex["image"] = image
        ex["image_size"] = tf.shape(image)[:2]
        return ex
    return op


def invisible_outside_image() -> Op:
    """Annotated joints outside the decoded image become invisible (the readers do this when
    they know the image size; this catches the rest)."""
    def op(ex):
        ex = dict(ex)
        size = tf.cast(ex["image_size"], tf.float32)
        kp = ex["original_keypoints"]
        inside = ((kp[..., 0] >= -0.5) & (kp[..., 1] >= -0.5)
                  & (kp[..., 0] <= size[1] - 0.5) & (kp[..., 1] <= size[0] - 0.5))
        ex["original_visible"] = ex["original_visible"] * tf.cast(inside, tf.float32)
        return ex
    return op


def box_to_center_scale(input_size: Sequence[int], padding: float = 1.25) -> Op:
    """``box_center``, ``box_size`` -> ``center``, ``scale`` (aspect fixed to the input, padded);
    ``rotation`` 0 and ``flipped`` False."""
    aspect = float(input_size[1]) / float(input_size[0])

    def op(ex):
        ex = dict(ex)
        ex["center"] = tf.cast(ex["box_center"], tf.float32)
        ex["scale"] = fix_aspect_ratio(ex["box_size"], aspect) * padding
        ex["rotation"] = tf.constant(0.0)
        ex["flipped"] = tf.constant(False)
        return ex
    return op


def random_half_body(joint_set: JointSet, input_size: Sequence[int], prob: float = 0.3,
                     min_joints: int = 8, padding: float = 1.5) -> Op:
    """HRNet's half-body augmentation: with probability ``prob``, when more than ``min_joints``
    joints are visible, crop to the upper body (chosen with probability P(N(0,1) < 0.5) = 0.69
    if it has more than 2 visible joints) or the lower body, box padded by ``padding``."""
    aspect = float(input_size[1]) / float(input_size[0])
    upper = tf.constant([i in joint_set.upper_body for i in range(joint_set.num_joints)])

    def op(ex):
        ex = dict(ex)
        seed = _op_seed(ex, _SEED_HALF_BODY)
        u = _uniform(seed, [2])
        vis = ex["original_visible"] > 0
        n_up = tf.reduce_sum(tf.cast(vis & upper, tf.int32))
        n_low = tf.reduce_sum(tf.cast(vis & ~upper, tf.int32))
        take_upper = ((u[1] < 0.6915) & (n_up > 2)) | (n_low <= 2)
        sel = vis & tf.where(take_upper, upper, ~upper)
        n_sel = tf.reduce_sum(tf.cast(sel, tf.float32))
        apply = ((tf.reduce_sum(tf.cast(vis, tf.int32)) > min_joints) & (u[0] < prob)
                 & (n_sel >= 2))
        kp = ex["original_keypoints"]
        big = tf.constant(1e9)
        lo = tf.reduce_min(tf.where(sel[:, None], kp, big), axis=0)
        hi = tf.reduce_max(tf.where(sel[:, None], kp, -big), axis=0)
        mean = tf.reduce_sum(tf.where(sel[:, None], kp, 0.0), axis=0) / tf.maximum(n_sel, 1.0)
        size = fix_aspect_ratio(tf.maximum(hi - lo, 1.0), aspect) * padding
        ex["center"] = tf.where(apply, mean, ex["center"])
        ex["scale"] = tf.where(apply, size, ex["scale"])
        return ex
    return op


def random_scale_rotation(scale_factor: float = 0.35, rotation_factor: float = 40.0,
                          rotation_prob: float = 0.6) -> Op:
    """HRNet's box jitter: scale x clip(1 + N(0,1) * sf, 1 - sf, 1 + sf); with probability
    ``rotation_prob`` a rotation clip(N(0,1) * rf, -2 rf, 2 rf) degrees."""
    def op(ex):
        ex = dict(ex)
        seed = _op_seed(ex, _SEED_SCALE_ROT)
        n = tf.random.stateless_normal([2], seed=seed)
        u = _uniform(tf.random.experimental.stateless_fold_in(seed, 1))
        s = tf.clip_by_value(1.0 + n[0] * scale_factor, 1.0 - scale_factor, 1.0 + scale_factor)
        r = tf.clip_by_value(n[1] * rotation_factor, -2.0 * rotation_factor, 2.0 * rotation_factor)
        ex["scale"] = ex["scale"] * s
        ex["rotation"] = tf.where(u <= rotation_prob, r, 0.0)
        return ex
    return op


def random_flip(prob: float = 0.5) -> Op:
    """Decides a horizontal flip (applied by `affine_crop`, which swaps left/right joints)."""
    def op(ex):
        ex = dict(ex)
        ex["flipped"] = _uniform(_op_seed(ex, _SEED_FLIP)) < prob
        return ex
    return op


def affine_crop(input_size: Sequence[int], joint_set: JointSet) -> Op:
    """Warps the image to ``input_size`` (H, W) by (center, scale, rotation, flipped).

    Sets ``image`` float32 [H, W, 3] in [0, 255], ``keypoints`` [K, 2] in crop pixels (left/right
    swapped when flipped), ``visible`` [K] (annotated and inside the crop), ``affine`` and
    ``inverse_affine``.
    """
    height, width = int(input_size[0]), int(input_size[1])
    perm = tf.constant(joint_set.flip_permutation())

    def op(ex):
        ex = dict(ex)
        flip = tf.cast(ex.get("flipped", False), tf.bool)
        m = affine_matrix(ex["center"], ex["scale"], ex.get("rotation", 0.0), input_size, flip)
        inv = invert_affine(m)
        crop = warp_image(ex["image"], inv, (height, width))
        crop = tf.cast(crop, tf.float32)
        crop.set_shape([height, width, 3])
        kp = apply_affine(m, ex["original_keypoints"])
        vis = ex["original_visible"]
        kp = tf.where(flip, tf.gather(kp, perm), kp)
        vis = tf.where(flip, tf.gather(vis, perm), vis)
        inside = ((kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height))
        ex["image"] = crop
        ex["keypoints"] = kp
        ex["visible"] = vis * tf.cast(inside, tf.float32)
        ex["affine"] = m
        ex["inverse_affine"] = inv
        return ex
    return op


def random_color(brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> Op:
    """Stateless colour jitter of ``image`` (float, [0, 255]); factors as in tf.image
    (brightness delta in [0, 1] units; contrast/saturation as +- range around 1)."""
    def op(ex):
        ex = dict(ex)
        seeds = tf.random.experimental.stateless_split(_op_seed(ex, _SEED_COLOR), 4)
        x = ex["image"] / 255.0
        if brightness > 0:
            x = tf.image.stateless_random_brightness(x, brightness, seeds[0])
        if contrast > 0:
            x = tf.image.stateless_random_contrast(x, 1 - contrast, 1 + contrast, seeds[1])
        if saturation > 0:
            x = tf.image.stateless_random_saturation(x, 1 - saturation, 1 + saturation, seeds[2])
        if hue > 0:
            x = tf.image.stateless_random_hue(x, hue, seeds[3])
        ex["image"] = tf.clip_by_value(x, 0.0, 1.0) * 255.0
        return ex
    return op


def public_view(blur_sigma: float) -> Op:
    """The public view psi(x) for Feature DP: ``public_image`` = Gaussian blur of the crop."""
    def op(ex):
        ex = dict(ex)
        ex["public_image"] = gaussian_blur(ex["image"], blur_sigma)
        return ex
    return op


def normalize(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Op:
    """(x - mean) / std on ``image`` (and ``public_image``), per RGB channel, x in [0, 255]."""
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def op(ex):
        ex = dict(ex)
        for key in ("image", "public_image"):
            if key in ex:
                ex[key] = (ex[key] - mean_t) / std_t
        return ex
    return op


def encode_targets(codec: SimCCCodec) -> Op:
    """SimCC targets from ``keypoints`` / ``visible``: ``target_x``, ``target_y``,
    ``target_weight``."""
    def op(ex):
        ex = dict(ex)
        ex.update(codec.encode(ex["keypoints"], ex["visible"]))
        return ex
    return op


def select(keys: Sequence[str]) -> Op:
    """Keeps ``keys`` (those present)."""
    def op(ex):
        return {k: ex[k] for k in keys if k in ex}
    return op


def compose(ops: Sequence[Op]) -> Op:
    def op(ex):
        for f in ops:
            ex = f(ex)
        return ex
    return op
