"""SimCC coordinate-classification codec (Li et al., ECCV 2022), in pure TensorFlow.

One codec object is shared by the data pipeline (targets), training (loss), evaluation and
export (decoding), so all of them agree on the bin layout.

Conventions
-----------
* ``input_size`` is ``(height, width)`` of the model input, e.g. ``(256, 192)``.
* Keypoints are ``(x, y)`` in crop pixels with pixel centres at integer coordinates, i.e. a
  point inside the crop has ``0 <= x <= W - 1``.
* With split ratio ``k`` the x axis has ``round(W * k)`` bins and bin ``b`` stands for
  ``x = b / k``; likewise for y.

Every function works on any number of leading batch dimensions, eagerly, inside ``tf.function``
and inside ``tf.data``.
"""

from __future__ import annotations


from typing import Sequence

import tensorflow as tf


class SimCCCodec:
    """Encodes keypoints to 1-D Gaussian bin targets and decodes logits back to keypoints.

    Args:
      input_size: model input ``(height, width)`` in pixels.
      split_ratio: bins per pixel (``k``); 2.0 gives 384 x-bins and 512 y-bins at 256x192.
      sigma: standard deviation of the Gaussian target, in bins (mmpose's convention; 6.0 at
        256x192 with k=2).
    """

    def __init__(self, input_size: Sequence[int] = (256, 192), split_ratio: float = 2.0,
                 sigma: float = 6.0):
        if len(input_size) != 2 or min(input_size) <= 0:
            raise ValueError(f"input_size must be (height, width) > 0, got {input_size!r}")
        if split_ratio <= 0:
            raise ValueError(f"split_ratio must be > 0, got {split_ratio}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.split_ratio = float(split_ratio)
        self.sigma = float(sigma)

    @property
    def num_bins_x(self) -> int:
        return int(round(self.input_size[1] * self.split_ratio))

    @property
    def num_bins_y(self) -> int:
        return int(round(self.input_size[0] * self.split_ratio))

    def get_config(self) -> dict:
        return {"input_size": list(self.input_size), "split_ratio": self.split_ratio,
                "sigma": self.sigma}

    # ------------------------------------------------------------------ encode
    def _axis_target(self, centre_bins: tf.Tensor, num_bins: int) -> tf.Tensor:
        bins = tf.range(num_bins, dtype=tf.float32)
        d = bins - centre_bins[..., None]
        g = tf.exp(-0.5 * tf.square(d / self.sigma))
        # A normalised distribution, so the KL loss is a true divergence between distributions.
        return g / tf.maximum(tf.reduce_sum(g, axis=-1, keepdims=True), 1e-12)

    def encode(self, keypoints: tf.Tensor, visible: tf.Tensor):
        """Keypoints ``[..., K, 2]`` and visibility ``[..., K]`` -> targets.

        Returns a dict with ``target_x`` ``[..., K, Wk]``, ``target_y`` ``[..., K, Hk]`` (each row a
        normalised Gaussian) and ``target_weight`` ``[..., K]``: 0 for invisible joints and for
        joints whose centre falls outside the bin range.
        """
        keypoints = tf.convert_to_tensor(keypoints, tf.float32)
        visible = tf.cast(tf.convert_to_tensor(visible) > 0, tf.float32)
        mu = keypoints * self.split_ratio
        mu_x, mu_y = mu[..., 0], mu[..., 1]
        inside = ((mu_x >= 0.0) & (mu_x < float(self.num_bins_x))
                  & (mu_y >= 0.0) & (mu_y < float(self.num_bins_y)))
        finite = tf.math.is_finite(mu_x) & tf.math.is_finite(mu_y)
        weight = visible * tf.cast(inside & finite, tf.float32)
        safe_x = tf.where(finite, mu_x, tf.zeros_like(mu_x))
        safe_y = tf.where(finite, mu_y, tf.zeros_like(mu_y))
        return {
            "target_x": self._axis_target(safe_x, self.num_bins_x),
            "target_y": self._axis_target(safe_y, self.num_bins_y),
            "target_weight": weight,
        }

    # ------------------------------------------------------------------ decode
    def decode(self, logits_x: tf.Tensor, logits_y: tf.Tensor):
        """Logits ``[..., K, Wk]`` and ``[..., K, Hk]`` -> ``(keypoints [..., K, 2], scores [..., K])``.

        Keypoint = argmax bin / k per axis; score = min(max softmax prob x, max softmax prob y).
        """
        logits_x = tf.convert_to_tensor(logits_x)
        logits_y = tf.convert_to_tensor(logits_y)
        x = tf.cast(tf.argmax(logits_x, axis=-1), tf.float32) / self.split_ratio
        y = tf.cast(tf.argmax(logits_y, axis=-1), tf.float32) / self.split_ratio
        px = tf.reduce_max(tf.nn.softmax(tf.cast(logits_x, tf.float32), axis=-1), axis=-1)
        py = tf.reduce_max(tf.nn.softmax(tf.cast(logits_y, tf.float32), axis=-1), axis=-1)
        return tf.stack([x, y], axis=-1), tf.minimum(px, py)

    # ------------------------------------------------------------------ flip test
    def unflip_logits(self, logits_x: tf.Tensor, logits_y: tf.Tensor,
                      flip_pairs: Sequence[Sequence[int]]):
        """Maps logits predicted on a horizontally mirrored image back to the original frame.

        Mirroring sends pixel x to ``W - 1 - x``. Reversing the bin axis sends bin ``b`` to
        ``Wk - 1 - b`` which is ``x = W - 1/k - b/k``: off by ``(k - 1)/k`` pixels from the true
        mirror, so the reversed bins are shifted by ``k - 1`` bins (edge-padded). Left/right joints
        are swapped by ``flip_pairs``; y logits only need the swap.
        """
        logits_x = tf.convert_to_tensor(logits_x)
        logits_y = tf.convert_to_tensor(logits_y)
        num_joints = logits_x.shape[-2]
        perm = _flip_permutation(num_joints, flip_pairs)
        rev = tf.reverse(logits_x, axis=[-1])
        shift = int(round(self.split_ratio - 1.0))
        if shift > 0:
            edge = tf.repeat(rev[..., -1:], shift, axis=-1)
            rev = tf.concat([rev[..., shift:], edge], axis=-1)
        return tf.gather(rev, perm, axis=-2), tf.gather(logits_y, perm, axis=-2)

    def flip_average(self, logits_x, logits_y, flipped_logits_x, flipped_logits_y,
                     flip_pairs: Sequence[Sequence[int]]):
        """Averages the logits of an image with those of its mirror (flip test)."""
        ux, uy = self.unflip_logits(flipped_logits_x, flipped_logits_y, flip_pairs)
        return 0.5 * (logits_x + ux), 0.5 * (logits_y + uy)


def _flip_permutation(num_joints, flip_pairs) -> list[int]:
    if num_joints is None:
        raise ValueError("the joint axis of the logits must have a static size for flip test")
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"flip pair ({a}, {b}) out of range for {num_joints} joints")
        perm[a], perm[b] = b, a
    return perm


def flip_keypoints(keypoints: tf.Tensor, visible: tf.Tensor, image_width: float,
                   flip_pairs: Sequence[Sequence[int]]):
    """Mirrors keypoints ``[..., K, 2]`` horizontally (x -> W - 1 - x) and swaps left/right joints."""
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    perm = _flip_permutation(keypoints.shape[-2], flip_pairs)
    x = (float(image_width) - 1.0) - keypoints[..., 0]
    flipped = tf.stack([x, keypoints[..., 1]], axis=-1)
    return tf.gather(flipped, perm, axis=-2), tf.gather(visible, perm, axis=-1)


