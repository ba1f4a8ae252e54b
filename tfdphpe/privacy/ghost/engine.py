"""The ghost clipping engine: one recorded forward pass, one backward pass to the layer outputs.

``ghost_clipped_sum`` runs the loss with every owner layer's calls recorded, takes the gradient
of the summed loss with respect to the recorded outputs (G = dL/dZ; row i of G belongs to record
i alone once no layer mixes examples), asks each layer's rule for its per-record squared norms,
clips, and asks again for the layer's share of the clipped sum (book-keeping: no second backward
pass). See the package docstring for the method.

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tfdphpe.privacy.ghost import fusion
from tfdphpe.privacy.ghost.recording import graph_ops, public_view_calls, record_calls
from tfdphpe.privacy.ghost.registry import UnsupportedLayerError, float32, rule_for
from tfdphpe.privacy.mechanisms import clip_scales, keep_mask, record_losses, zero_rows
from tfdphpe.privacy.per_example import LossFn, Variables

_ZERO = tf.UnconnectedGradients.ZERO


def variable_owners(root: tf.keras.layers.Layer,
                    var_list: Variables) -> list[tuple[tf.keras.layers.Layer, list[int]]]:
    """[(layer, indices into var_list)] for the layers that directly own the variables.

    The rules assume that a variable enters the loss only through its own layer's ``call``. A
    variable owned by two layers (tied weights) is refused; one read directly by another layer's
    code would be missed, which the exactness tests of each model guard against. Every owner's
    rule is found (and checked) here, before any tracing work.
    """
    index = {v.ref(): i for i, v in enumerate(var_list)}
    owners, seen = [], {}
    for layer in root._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
        own = []
        for w in layer._trainable_weights:   # pylint: disable=protected-access
            if w.ref() not in index:
                continue
            if w.ref() in seen and seen[w.ref()] is not layer:
                raise UnsupportedLayerError(
                    f"ghost clipping: variable {w.name!r} is shared by layers "
                    f"{seen[w.ref()].name!r} and {layer.name!r}; use clipping='vectorized'")
            if w.ref() not in seen:
                seen[w.ref()] = layer
                own.append(index[w.ref()])
        if own:
            owners.append((layer, own))
    missing = [v.name for v in var_list if v.ref() not in seen]
    if missing:
        raise UnsupportedLayerError(
            f"ghost clipping: variables not owned by any layer of {root.name!r}: {missing[:5]}")
    for layer, _ in owners:
        rule_for(layer)
    return owners


def rules_in_use(root: tf.keras.layers.Layer, var_list: Variables) -> dict[str, str]:
    """{layer name: the rule that computes it}: which layers are ghost, formed or fallen back."""
    return {layer.name: type(rule_for(layer)).__name__
            for layer, _ in variable_owners(root, list(var_list))}


def _check_graphs(recorded) -> None:
    """A call traced inside a loop or a nested function (an RNN cell) cannot be recorded."""
    if tf.executing_eagerly():
        return
    outer = tf.compat.v1.get_default_graph()
    for layer, _, calls in recorded:
        for call in calls:
            if call.graph is not None and call.graph is not outer:
                raise UnsupportedLayerError(
                    f"ghost clipping: {layer.name!r} ({type(layer).__name__}) is called inside "
                    "a loop or a nested function (an RNN cell?), whose tensors the step cannot "
                    "differentiate per example; use clipping='vectorized' for this model")


def _record(loss_fn, batch, var_list, layers, public_loss_fn, batch_mask, ghost,
            examples_per_unit):
    """Forward pass with recorded layer calls, one backward pass to the layer outputs.

    Returns (one work per called owner layer, number of records n, record mask or None).
    """
    owners = variable_owners(layers, var_list)
    rules = {id(layer): rule_for(layer) for layer, _ in owners}
    owner_layers = [layer for layer, _ in owners]
    with record_calls(owner_layers, preactivation=lambda l: rules[id(l)].preactivation,
                      track_ops=lambda l: rules[id(l)].track_ops) as calls:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(var_list)
            losses = loss_fn(batch)
            if public_loss_fn is not None:
                with public_view_calls():
                    losses = losses - public_loss_fn(batch)
            losses, mask = record_losses(losses, batch_mask, examples_per_unit)
            total = tf.reduce_sum(losses)
    # Static when the batch is (the usual case): reshapes then need no shape ops.
    n = losses.shape[0] if losses.shape[0] is not None else tf.shape(losses)[0]
    recorded = [(layer, own, calls[id(layer)]) for layer, own in owners]
    _check_graphs(recorded)
    layer_rules = [rules[id(layer)] for layer, _, _ in recorded]
    pairs = fusion.conv_norm_pairs(recorded, layer_rules)   # before the backward adds readers
    outputs = [c.outputs for _, _, cs in recorded for c in cs]
    out_grads = tape.gradient(total, outputs, unconnected_gradients=_ZERO) if outputs else []
    out_grads = [tf.nest.map_structure(float32, g) for g in out_grads]
    grads, k = [], 0
    for _, _, cs in recorded:
        grads.append(out_grads[k:k + len(cs)])
        k += len(cs)
    refs = [v.ref() for v in var_list]
    fused, absorbed = fusion.fused_works(pairs, recorded, layer_rules, grads, n, refs, ghost)
    works = []
    for r, (layer, own, cs) in enumerate(recorded):
        if r in fused:
            works.append(fused[r])
        elif cs and r not in absorbed:    # a layer never called has zero gradient
            works.append(layer_rules[r].work(layer, own, refs, cs, grads[r], n, ghost))
    return works, n, mask


# Plain Python inside a traced step (no tensor-dependent Python control flow here), so that a
# refusal reaches the user as UnsupportedLayerError, not wrapped by AutoGraph.
@tf.autograph.experimental.do_not_convert
def ghost_clipped_sum(l2_norm_clip: tf.Tensor, loss_fn: LossFn, batch: Any, var_list: Variables,
                      layers: tf.keras.layers.Layer, public_loss_fn: Optional[LossFn] = None,
                      batch_mask: Optional[tf.Tensor] = None, ghost: Optional[bool] = None,
                      return_norms: bool = False, examples_per_unit: Optional[int] = None):
    """sum over records of mask * clip(record), the same value as ``mechanisms.clipped_sum``.

    Args:
      l2_norm_clip: C.
      loss_fn: batch -> per-example losses [B]; must run ``layers`` (the model) on the batch.
      batch: nest of tensors with leading dimension B.
      var_list: trainable variables, each owned by a layer inside ``layers``.
      layers: the Keras model (or layer) whose sublayers own ``var_list``.
      public_loss_fn: Feature DP: the record is grad[l(x_i) - l(psi(x_i))].
      batch_mask: optional [B] 0/1 mask; padded examples contribute nothing.
      ghost: None (mixed, by cost), True (ghost norms for every matmul layer) or False (form
        every per-record gradient); the result is the same, only cost differs.
      return_norms: also return the per-record (unclipped) norms.
      examples_per_unit: k: the batch is units of k consecutive example slots, and a record is
        a unit: the mean of its examples' losses (padding left out), clipped as one.
    """
    var_list = list(var_list)
    works, n, mask = _record(loss_fn, batch, var_list, layers, public_loss_fn, batch_mask, ghost,
                             examples_per_unit)
    sq = tf.add_n([tf.cast(work.squared_norms(), tf.float32) for work in works]) if works \
        else tf.zeros([n], tf.float32)
    norms = tf.sqrt(tf.maximum(sq, 0.0))
    # Padding and records whose norm is not finite are left out (mechanisms.clip_scales).
    keep, poisoned = keep_mask(norms, mask)
    scale = tf.where(keep, clip_scales(norms, l2_norm_clip), tf.zeros_like(norms))
    _guard(works, keep, poisoned)
    result = [None] * len(var_list)
    for work in works:
        for i, s in work.clipped_sums(scale):
            result[i] = tf.cast(s, var_list[i].dtype)
    # A variable whose layer was never called has a zero gradient.
    result = [tf.zeros_like(v) if r is None else r for r, v in zip(result, var_list)]
    return (result, norms) if return_norms else result


def _guard(works, keep: tf.Tensor, poisoned: tf.Tensor) -> None:
    """0 * NaN is NaN: when a left-out record is not finite, zero every left-out row the sums
    read (one condition for the whole model)."""
    tensors = [t for work in works for t in work.guarded()]
    if not tensors:
        return
    kept = tf.cond(poisoned, lambda: zero_rows(tensors, keep), lambda: list(tensors))
    for work in works:
        count = len(work.guarded())
        work.set_guarded(kept[:count])
        kept = kept[count:]


@tf.autograph.experimental.do_not_convert
def per_example_gradients(loss_fn: LossFn, batch: Any, var_list: Variables,
                          layers: tf.keras.layers.Layer) -> list[tf.Tensor]:
    """Every example's gradient, [B, *var.shape] per variable, from the same layer rules.

    The same values as ``per_example.per_example_gradients`` (which vectorizes the whole model);
    used for the public subspace, which needs the gradients themselves, not only their norms.
    """
    var_list = list(var_list)
    works, n, _ = _record(loss_fn, batch, var_list, layers, None, None, False, None)
    result = [None] * len(var_list)
    for work in works:
        work.squared_norms()    # forms and keeps the per-example gradients
        for i, g in work.per_example():
            result[i] = tf.reshape(g, tf.concat([[n], var_list[i].shape], 0))
    return [tf.zeros(tf.concat([[n], v.shape], 0), v.dtype) if r is None else
            tf.cast(r, v.dtype) for r, v in zip(result, var_list)]


__all__ = ["ghost_clipped_sum", "per_example_gradients", "rules_in_use", "variable_owners",
           "graph_ops"]
