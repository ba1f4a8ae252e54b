"""Normalisation layers: gamma_i = sum xhat_i * G_i, beta_i = sum G_i over the non-parameter axes.

xhat is recomputed from the recorded input: per example for LayerNormalization (any axes) and
GroupNormalization; with the moving statistics for a BatchNormalization whose statistics are
frozen (then xhat_i depends on A_i alone). A BatchNormalization in batch-statistics mode mixes
examples and must never learn from private data: it is refused, not formed by the fallback.

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.privacy.ghost.registry import (RowsRule, UnsupportedLayerError, float32,
                                            register_rule)

K = tf.keras.layers


def axes(layer, rank: int) -> list[int]:
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    return sorted(a % rank for a in axes)


def _affine_rows(layer, xhat, g, param_axes: list[int]) -> list[tf.Tensor]:
    """Per-row gamma and beta gradients, reduced over every axis but the batch and the
    parameter axes."""
    sum_axes = [a for a in range(1, g.shape.rank) if a not in param_axes]
    out = []
    if layer.scale:
        out.append(tf.reduce_sum(xhat * g, axis=sum_axes))
    if layer.center:
        out.append(tf.reduce_sum(g, axis=sum_axes))
    return out


class LayerNormRule(RowsRule):
    """Any normalisation axes (not the batch axis); the parameters span those axes."""

    def rows(self, layer, call, g):
        a = float32(call.inputs)
        norm = axes(layer, a.shape.rank)
        if 0 in norm:
            raise UnsupportedLayerError(f"ghost clipping: LayerNormalization {layer.name!r} "
                                        "normalises over the batch axis, which mixes examples")
        mean, var = tf.nn.moments(a, axes=norm, keepdims=True)
        return _affine_rows(layer, (a - mean) * tf.math.rsqrt(var + layer.epsilon), g, norm)


def frozen(layer, call) -> bool:
    """A BatchNorm call that normalises with its moving statistics."""
    return bool(getattr(layer, "frozen_stats", False) or call.training is False
                or not layer.trainable)


class BatchNormRule(RowsRule):
    """Frozen statistics, one normalised axis; both checked per call."""

    track_ops = True     # the conv + BatchNorm fusion checks the graph (engine.conv_norm_pairs)

    def check_call(self, layer, call):
        if not frozen(layer, call):
            raise UnsupportedLayerError(
                f"ghost clipping: BatchNorm {layer.name!r} normalises with batch statistics, which "
                "mix examples (and must never be learnt from private data): freeze its statistics "
                "(tfdphpe.models.freeze_batchnorm, or trainable=False) before private training")

    def rows(self, layer, call, g):
        # gamma_i = sum_t G * (A - mean) * r = r * (sum_t G * A - mean * sum_t G): no xhat map.
        a = float32(call.inputs)
        norm = axes(layer, a.shape.rank)
        if len(norm) != 1:
            raise UnsupportedLayerError(f"ghost clipping: BatchNorm {layer.name!r} normalises "
                                        f"several axes {layer.axis}")
        sum_axes = [x for x in range(1, g.shape.rank) if x != norm[0]]
        g_sum = tf.reduce_sum(g, axis=sum_axes)
        out = []
        if layer.scale:
            r = tf.math.rsqrt(tf.cast(layer.moving_variance, tf.float32) + layer.epsilon)
            mean = tf.cast(layer.moving_mean, tf.float32)
            out.append(r * (tf.reduce_sum(g * a, axis=sum_axes) - mean * g_sum))
        if layer.center:
            out.append(g_sum)
        return out


class GroupNormRule(RowsRule):
    """Channels last; statistics per example and group."""

    def check(self, layer):
        if layer.axis not in (-1,):
            raise UnsupportedLayerError(f"{layer.name!r}: axis {layer.axis}")

    def check_call(self, layer, call):
        if call.kwargs.get("mask") is not None or len(call.args) > 1:
            raise UnsupportedLayerError(f"ghost clipping: GroupNormalization {layer.name!r} is "
                                        "called with a mask; use clipping='vectorized'")

    def rows(self, layer, call, g):
        a = float32(call.inputs)
        channels = a.shape[-1]
        shape = tf.shape(a)
        grouped = tf.reshape(a, tf.concat([shape[:-1], [layer.groups, channels // layer.groups]],
                                          0))
        axes = list(range(1, a.shape.rank - 1)) + [a.shape.rank]
        mean, var = tf.nn.moments(grouped, axes=axes, keepdims=True)
        xhat = tf.reshape((grouped - mean) * tf.math.rsqrt(var + layer.epsilon), shape)
        return _affine_rows(layer, xhat, g, [a.shape.rank - 1])


register_rule(K.LayerNormalization, LayerNormRule())
register_rule(K.BatchNormalization, BatchNormRule())
register_rule(K.GroupNormalization, GroupNormRule())
