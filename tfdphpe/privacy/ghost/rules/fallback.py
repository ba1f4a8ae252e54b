"""The fallback: a layer without a rule gets its per-record gradients formed, layer by layer.

For a layer with weights of its own and no rule (a custom layer, PReLU, a channels_first
convolution, ...), each row's gradient of the layer's own weights is the vector-Jacobian product
of the layer's call on that row alone with that row's recorded output gradient: the layer is
called again, one row at a time (``tf.vectorized_map``), on exactly the recorded arguments. Only
that layer is formed: the rest of the model keeps its ghost and formed rules, and nothing is
recomputed beyond the layer's own call. Cost: one more forward of the layer and its per-row
gradients (memory rows x the layer's weights).

It is exact when the layer's output row depends on that row's inputs alone and the call is
deterministic. Refused, naming the layer, where that fails: a call that creates random ops
(Dropout inside the layer in training: a second call draws other masks), a BatchNorm-like layer
in batch-statistics mode (mixes examples, and must never learn from private data), and a layer
called inside a loop (an RNN cell: its recorded tensors live in the loop's graph).

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.keras_utils import is_batchnorm_like
from tfdphpe.privacy.ghost.recording import not_recording
from tfdphpe.privacy.ghost.registry import RowsRule, UnsupportedLayerError, own_weights

_RANDOM_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                  "GaussianDropout", "GaussianNoise", "AlphaDropout")


def _random_sublayers(layer) -> list[str]:
    return [sub.name for sub in layer._flatten_layers(include_self=True)  # pylint: disable=protected-access
            if type(sub).__name__ in _RANDOM_LAYERS and getattr(sub, "rate", 0)]


class FallbackRule(RowsRule):
    track_ops = True

    def check_call(self, layer, call):
        what = (f"ghost clipping: {layer.name!r} ({type(layer).__name__}) has no per-example rule "
                "and its gradients would be formed by calling it again per example, but ")
        if is_batchnorm_like(layer) and call.training is not False and layer.trainable \
                and not getattr(layer, "frozen_stats", False):
            raise UnsupportedLayerError(
                what + "it normalises with batch statistics, which mix examples and must never be "
                "learnt from private data: freeze it (tfdphpe.models.freeze_batchnorm, or "
                "trainable=False)")
        random_ops = sorted({t for t in (call.ops or {}).values() if "Random" in t})
        if random_ops or (call.ops is None and call.training and _random_sublayers(layer)):
            raise UnsupportedLayerError(
                what + f"its call draws random numbers ({', '.join(random_ops) or 'Dropout'}), "
                "which a second call would draw anew: register a rule for it "
                "(tfdphpe.privacy.ghost.register_rule), move the randomness out of the layer, or "
                "use clipping='vectorized'")

    def rows(self, layer, call, g):
        weights = own_weights(layer)
        flat_g = tf.nest.flatten(g)
        rows = flat_g[0].shape[0]
        leaves = tf.nest.flatten((call.args, call.kwargs))
        batched = [i for i, t in enumerate(leaves) if _is_batched(t, rows, flat_g[0])]

        def one(elems):
            row_leaves, row_g = elems
            values = list(leaves)
            for i, t in zip(batched, row_leaves):
                values[i] = t[None]
            args, kwargs = tf.nest.pack_sequence_as((call.args, call.kwargs), values)
            with not_recording(), tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(weights)
                out = layer.call(*args, **kwargs)
            out_flat = tf.nest.flatten(out)
            seeds = [tf.cast(r[None], o.dtype) for r, o in zip(row_g, out_flat)]
            grads = tape.gradient(out_flat, weights, output_gradients=seeds,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return [tf.cast(tf.convert_to_tensor(x), tf.float32) for x in grads]

        return tf.vectorized_map(one, ([leaves[i] for i in batched], flat_g),
                                 fallback_to_while_loop=True)


def _is_batched(t, rows, g) -> bool:
    if not tf.is_tensor(t) or t.shape.rank is None or t.shape.rank == 0:
        return False
    if rows is not None and t.shape[0] is not None:
        return t.shape[0] == rows
    return t.shape[0] is None and g.shape[0] is None
