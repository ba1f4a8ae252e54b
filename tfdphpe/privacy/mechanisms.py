"""The private term of one step, before noise (DESIGN 2.2 and 2.4).

* DP-SGD: the private record of example i is its gradient g_i = grad l(x_i), clipped to norm C.
* Feature DP: the private record is the gradient of d_i = l(x_i) - l(psi(x_i)), clipped to C (one
  backward pass through both losses). The public term is an ordinary batched gradient, see
  ``optimizers.DPOptimizer.dp_gradients``.

Records are computed in one ``tf.vectorized_map`` pass. The clip norm comes from the query
(``derive_sample_params``); the clip is the formula of the query's ``preprocess_record``
(``tf.clip_by_global_norm`` over all variables of one example: scale C / max(||g||, C)), written
without ``L2Loss`` (which has no vectorized converter) and fused with the sum: sum_i s_i g_i is one
contraction over the batch, so the clipped records are never materialised. Tests check the clip
against ``preprocess_record`` example by example.

Tests: tests/privacy/test_optimizers.py, tests/privacy/test_units.py.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import tensorflow as tf

from tfdphpe.privacy.per_example import (LossFn, Tensors, Variables, _dense, _example_as_batch,
                                         record_losses, record_mask,
                                         global_norms)


def clip_scales(norms: tf.Tensor, l2_norm_clip: tf.Tensor) -> tf.Tensor:
    """C / max(norm, C) per record; 0 where the norm is not finite (the record is dropped).

    ``tf.clip_by_global_norm`` returns NaN there, which poisons the whole sum: the release would
    then depend on whether that one record was sampled (NaN or not), an unbounded leak. A dropped
    record contributes 0, within the sensitivity C. The caller must also zero the record's values
    (0 * NaN is NaN): see ``keep_mask`` and ``zero_rows``.
    """
    clip = tf.cast(l2_norm_clip, norms.dtype)
    scale = clip * tf.minimum(1.0 / norms, 1.0 / clip)
    return tf.where(tf.math.is_finite(norms), scale, tf.zeros_like(scale))


def keep_mask(norms: tf.Tensor, batch_mask: Optional[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """(records that enter the sum, whether any left-out record is not finite).

    A record is left out when it is padding (mask 0) or its norm is not finite; the second value
    says whether its values must be zeroed before the weighted sum (0 * NaN is NaN).
    """
    keep = tf.math.is_finite(norms)
    if batch_mask is not None:
        keep = tf.logical_and(keep, tf.cast(batch_mask, tf.bool))
    poisoned = tf.reduce_any(tf.logical_and(tf.logical_not(keep),
                                            tf.logical_not(tf.math.is_finite(norms))))
    return keep, poisoned


def clip_record(record: Sequence[tf.Tensor], l2_norm_clip: tf.Tensor) -> Tensors:
    """tf.clip_by_global_norm(record, C)[0] for one record (no batch dimension); a record that is
    not finite becomes zeros (see ``clip_scales``)."""
    batched = [tf.expand_dims(tf.cast(g, tf.float32), 0) for g in record]
    norm = global_norms(batched)
    scale = clip_scales(norm, l2_norm_clip)[0]
    finite = tf.math.is_finite(norm)[0]
    return [tf.where(finite, g * tf.cast(scale, g.dtype), tf.zeros([], g.dtype)) for g in record]


def _units(batch: Any, k: int) -> Any:
    """[U * k, ...] -> [U, k, ...] for every tensor of the batch."""
    return tf.nest.map_structure(
        lambda t: tf.reshape(t, tf.concat([[-1, k], tf.shape(t)[1:]], 0)), batch)


def private_records(loss_fn: LossFn, batch: Any, var_list: Variables,
                    public_loss_fn: Optional[LossFn] = None,
                    examples_per_unit: Optional[int] = None,
                    batch_mask: Optional[tf.Tensor] = None) -> Tensors:
    """Unclipped private records, one [R, *var.shape] tensor per variable.

    A record is an example's gradient (R = B), or with ``examples_per_unit`` = k a unit's: the
    gradient of the mean loss of its real examples (R = B / k; ``batch_mask`` says which slots
    are real), computed on the unit's k examples as one batch. With ``public_loss_fn`` (Feature
    DP) the loss is l(x) - l(psi(x)).
    """
    var_list = list(var_list)
    if examples_per_unit:
        k = int(examples_per_unit)
        mask = (tf.ones([tf.shape(tf.nest.flatten(batch)[0])[0]]) if batch_mask is None
                else tf.cast(batch_mask, tf.float32))

        def one_unit(unit):
            examples, slots = unit
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(var_list)
                losses = loss_fn(examples)
                if public_loss_fn is not None:
                    losses = losses - public_loss_fn(examples)
                loss, _ = record_losses(losses, slots, k)
                loss = tf.reduce_sum(loss)
            grads = tape.gradient(loss, var_list,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return _dense(grads, var_list)

        return list(tf.vectorized_map(one_unit, (_units(batch, k), tf.reshape(mask, [-1, k]))))

    def one_example(example):
        example = _example_as_batch(example)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(var_list)
            loss = tf.reduce_sum(loss_fn(example))
            if public_loss_fn is not None:
                loss = loss - tf.reduce_sum(public_loss_fn(example))
        grads = tape.gradient(loss, var_list, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return _dense(grads, var_list)

    return list(tf.vectorized_map(one_example, batch))


def clipped_per_example_terms(l2_norm_clip: tf.Tensor, loss_fn: LossFn, batch: Any,
                              var_list: Variables,
                              public_loss_fn: Optional[LossFn] = None) -> Tensors:
    """Clipped private records, [B, *var.shape] per variable; every row has norm <= C."""
    records = private_records(loss_fn, batch, var_list, public_loss_fn)
    norms = global_norms(records)
    keep, _ = keep_mask(norms, None)
    scale = clip_scales(norms, l2_norm_clip)
    return [g * tf.reshape(tf.cast(scale, g.dtype), [-1] + [1] * (g.shape.rank - 1))
            for g in zero_rows(records, keep)]


def clipped_sum(l2_norm_clip: tf.Tensor, loss_fn: LossFn, batch: Any, var_list: Variables,
                public_loss_fn: Optional[LossFn] = None,
                batch_mask: Optional[tf.Tensor] = None, return_norms: bool = False,
                examples_per_unit: Optional[int] = None):
    """sum over records of mask * clip(record), computed as one contraction per variable.

    Records are examples, or units of ``examples_per_unit`` slots (``private_records``). Records
    whose norm is not finite are left out (``clip_scales``). ``return_norms``: also return the
    records' (unclipped) norms.
    """
    records = private_records(loss_fn, batch, var_list, public_loss_fn, examples_per_unit,
                              batch_mask)
    norms = global_norms(records)
    keep, poisoned = keep_mask(norms, record_mask(batch_mask, examples_per_unit))
    scale = tf.where(keep, clip_scales(norms, l2_norm_clip), tf.zeros_like(norms))
    # 0 * NaN is NaN: zero the left-out records' values only when one of them is not finite.
    records = tf.cond(poisoned, lambda: zero_rows(records, keep), lambda: records)
    n = tf.shape(scale)[0]
    sums = [tf.reshape(tf.linalg.matvec(tf.reshape(g, [n, -1]), tf.cast(scale, g.dtype),
                                        transpose_a=True), tf.shape(g)[1:])
            for g in records]
    return (sums, norms) if return_norms else sums


def zero_rows(tensors: Sequence[tf.Tensor], keep: tf.Tensor) -> Tensors:
    """Each [n, ...] tensor with the rows of records not kept set to 0.

    The 0 is a scalar that ``where`` broadcasts: ``zeros_like`` of a statically shaped tensor is
    constant-folded by Grappler into a constant as large as the tensor, kept for the whole run
    (measured: +17 % peak tensors on bench_privacy's transformer at batch 64, one such constant
    per guarded layer tensor).
    """
    return [tf.where(tf.reshape(keep, [-1] + [1] * (t.shape.rank - 1)), t, tf.zeros([], t.dtype))
            for t in tensors]
