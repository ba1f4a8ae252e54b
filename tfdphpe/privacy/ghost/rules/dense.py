"""Dense: kernel_i = A_i^T G_i over the record's tokens, bias_i = sum_t G_i.

A Dense layer on [B', ..., din] treats every position as a token (attention's qkv and MLP layers
on [windows, tokens, dim]); a fused activation is applied outside the recorded call, so G is the
gradient before it.

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.privacy.ghost.registry import MatmulRule, float32, own_weights, register_rule


def bias_rows(layer, g: tf.Tensor, bias=None) -> dict:
    """{position of the bias: per-row sums of g over every axis but the first and the last}."""
    bias = layer.bias if bias is None else bias
    if not getattr(layer, "use_bias", False) or bias is None:
        return {}
    position = next(j for j, w in enumerate(own_weights(layer)) if w is bias)
    return {position: tf.reduce_sum(g, axis=list(range(1, g.shape.rank - 1)))}


class DenseRule(MatmulRule):
    def tokens(self, layer, call, g):
        return float32(call.inputs), g

    def rows(self, layer, call, g):
        return bias_rows(layer, g)


register_rule(tf.keras.layers.Dense, DenseRule())
