"""Embedding: per-record norms from the token ids, never a dense vocab x dim table per record.

Record i's gradient of the table E puts sum_{t: id_t = v} G_t on row v. Its squared norm is
sum over the distinct ids v of record i of ||sum_{t: id_t = v} G_t||^2: group the (record, id)
pairs, segment-sum G over each group, square and add by record. Cost O(tokens x dim), like the
layer's own backward pass. The clipped sum scatters s_i G_t to row id_t. Only the per-record
gradients a public subspace needs (``per_example``) form [n, vocab, dim].

Tests: tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.privacy.ghost.registry import Rule, register_rule
from tfdphpe.privacy.ghost.works import Work
from tfdphpe.privacy.per_example import row_squared_norms


class EmbeddingWork(Work):
    def __init__(self, layer, own, var_refs, calls, grads, n):
        super().__init__(layer, own, var_refs, n)
        ids, gs = [], []
        for call, g in zip(calls, grads):
            ids.append(tf.reshape(tf.cast(call.inputs, tf.int64), tf.stack([n, -1])))
            gs.append(tf.reshape(g, tf.stack([n, -1, tf.shape(g)[-1]])))
        self.ids = tf.concat(ids, 1)                 # [n, T]
        self.g = tf.concat(gs, 1)                    # [n, T, dim]
        self.vocab = int(layer.input_dim)

    def _groups(self):
        """(group of each token, record of each group, number of groups)."""
        n, t = tf.shape(self.ids)[0], tf.shape(self.ids)[1]
        record = tf.repeat(tf.range(tf.cast(n, tf.int64)), t)
        keys = record * self.vocab + tf.reshape(self.ids, [-1])
        unique, group = tf.unique(keys)
        return group, unique // self.vocab, tf.shape(unique)[0]

    def squared_norms(self) -> tf.Tensor:
        group, group_record, count = self._groups()
        flat = tf.reshape(self.g, [-1, tf.shape(self.g)[-1]])
        sums = tf.math.unsorted_segment_sum(flat, group, count)
        return tf.math.unsorted_segment_sum(row_squared_norms(sums), group_record,
                                            self.n)

    def guarded(self) -> list:
        return [self.g]

    def set_guarded(self, tensors: list) -> None:
        (self.g,) = tensors

    def clipped_sums(self, scale):
        scaled = self.g * tf.reshape(scale, [-1, 1, 1])
        table = tf.math.unsorted_segment_sum(
            tf.reshape(scaled, [-1, tf.shape(scaled)[-1]]), tf.reshape(self.ids, [-1]),
            self.vocab)
        return [(i, table) for i, _ in self.targets]

    def per_example(self):
        n, t = tf.shape(self.ids)[0], tf.shape(self.ids)[1]
        record = tf.repeat(tf.range(tf.cast(n, tf.int64)), t)
        rows = record * self.vocab + tf.reshape(self.ids, [-1])
        flat = tf.math.unsorted_segment_sum(tf.reshape(self.g, [-1, tf.shape(self.g)[-1]]),
                                            rows, tf.cast(n, tf.int64) * self.vocab)
        shaped = tf.reshape(flat, tf.stack([n, self.vocab, -1]))
        return [(i, shaped) for i, _ in self.targets]


class EmbeddingRule(Rule):
    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        # Keras casts non-integer ids to int32 in the call; the cast here is the same.
        return EmbeddingWork(layer, own, var_refs, calls, grads, n)


register_rule(tf.keras.layers.Embedding, EmbeddingRule())
