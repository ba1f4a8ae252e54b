"""SimCC loss: KL divergence between the target distributions and softmax(logits), per example.

Returned per example (shape [B]) because DP-SGD clips each example's gradient.
"""

from __future__ import annotations

import tensorflow as tf


def _axis_kl(target: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """KL(target || softmax(logits)) over the last axis; 0 * log 0 taken as 0."""
    log_q = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    target = tf.cast(target, tf.float32)
    safe = tf.where(target > 0, target, tf.ones([], tf.float32))   # no folded full-size 1s
    return tf.reduce_sum(target * (tf.math.log(safe) - log_q), axis=-1)


def simcc_kl_loss(outputs: dict, batch: dict) -> tf.Tensor:
    """Per-example SimCC loss.

    Args:
      outputs: model outputs {"x": [B, K, Wk], "y": [B, K, Hk]} (logits).
      batch: dict with "target_x" [B, K, Wk], "target_y" [B, K, Hk], "target_weight" [B, K].

    Returns:
      [B] float32: mean over joints of target_weight * (KL_x + KL_y).
    """
    kl = _axis_kl(batch["target_x"], outputs["x"]) + _axis_kl(batch["target_y"], outputs["y"])
    weight = tf.cast(batch["target_weight"], tf.float32)
    return tf.reduce_mean(kl * weight, axis=-1)
