"""The rule registry: which per-example rule computes a layer's per-record gradients.

A rule is registered for a layer class (``register_rule(tf.keras.layers.Dense, DenseRule())``).
A layer gets the rule of its own class, or of the nearest base class whose ``call`` it inherits
unchanged: a subclass that overrides ``call`` may compute something else, so it never silently
borrows its parent's rule. It may say that its ``call`` has the same gradients as a base class's
with the class attribute ``same_gradients_as = <that class>`` (tfdphpe's LayerNorm and BatchNorm
do). A layer that defines ``per_example_gradients(inputs, output_gradient)`` is its own rule.
A layer with no rule, or whose configuration its rule cannot do exactly, gets the fallback rule:
its per-record gradients are formed by calling the layer again, one row at a time. Only what no
rule can do exactly is refused, with the layer's name and what to do.

Three kinds of rules, by what they hand the engine (see ``works.py``):

* ``RowsRule.rows(layer, call, g)``: per-row gradients [B', *w.shape] of each own weight;
* ``MatmulRule.tokens(layer, call, g)``: the kernel's gradient is A^T G over tokens, so its norm
  can come from the ghost identity without forming it; other weights (the bias) by ``rows``;
* ``Rule.work(...)``: any other computation (the sparse embedding rule).

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


class UnsupportedLayerError(ValueError):
    """No rule can compute this layer's per-example gradients exactly here; the message says
    why and what to do."""


# --------------------------------------------------------------------------- shared helpers
def fold(rows: tf.Tensor, n) -> tf.Tensor:
    """[B', ...] per-row values -> [n, ...] per-record sums (B' = n * r, record-major)."""
    static = rows.shape.as_list() if rows.shape.rank is not None else None
    if isinstance(n, int) and static and None not in static:
        if static[0] == n:
            return rows
        return tf.reduce_sum(tf.reshape(rows, [n, static[0] // n] + static[1:]), axis=1)
    shape = tf.shape(rows)
    folded = tf.reshape(rows, tf.concat([[n, shape[0] // n], shape[1:]], 0))
    return tf.reduce_sum(folded, axis=1)


def tokens(t: tf.Tensor, n) -> tf.Tensor:
    """[B', ..., d] -> [n, T, d]: every position of every row of one record is a token."""
    d = t.shape[-1]
    if isinstance(n, int) and d is not None:
        return tf.reshape(t, [n, -1, d])
    return tf.reshape(t, tf.stack([n, -1, tf.shape(t)[-1]]))


def float32(t) -> tf.Tensor:
    """Rules run in float32: with mixed precision the recorded inputs are float16, and norms and
    clipped sums must not be (float16 squares overflow past 256 and lose digits early)."""
    return tf.cast(tf.convert_to_tensor(t), tf.float32)


def per_row(fn, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """fn(a[i:i+1], g[i:i+1]) for every row i, stacked: per-example use of a batched kernel.

    A loop of the stock filter-gradient kernels, one row each, costs about what one batched call
    does (measured: 0.025 s vs 0.023 s for a 3x3 depthwise filter gradient at 16x64x48x256),
    where forming the taps by shifted slices costs 13x and moving the batch into the channels 6x.
    """
    rows = a.shape[0]
    if rows is not None:
        return tf.stack([fn(a[i:i + 1], g[i:i + 1]) for i in range(rows)])
    return tf.map_fn(lambda x: fn(x[0][None], x[1][None]), (a, g),
                     fn_output_signature=a.dtype, parallel_iterations=4)


def leading(t: tf.Tensor, drop: int):
    """The shape of ``t`` without its last ``drop`` axes: a list when static, else a tensor."""
    lead = t.shape[:-drop]
    if lead.is_fully_defined():
        return lead.as_list()
    return tf.unstack(tf.shape(t)[:-drop])


def own_weights(layer) -> list:
    return list(layer._trainable_weights)   # pylint: disable=protected-access


# --------------------------------------------------------------------------- rules
class Rule:
    """Per-record gradients (or only their norms) of one layer's own trainable weights.

    ``check(layer)`` runs before any tracing and raises ``UnsupportedLayerError`` for a
    configuration the rule cannot do exactly (the registry then falls back). ``check_call``
    runs on each recorded call. ``preactivation``: the rule needs the gradient before a fused
    activation (the recording applies the activation outside the layer's call).
    ``track_ops``: the recording notes the graph ops each call creates.
    """

    preactivation = False
    track_ops = False

    def check(self, layer) -> None:
        pass

    def check_call(self, layer, call) -> None:
        pass

    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        raise NotImplementedError


class RowsRule(Rule):
    """Per-row gradients of every own weight, in ``layer._trainable_weights`` order.

    ``linear_in_output``: the rows are linear in the output gradient and do not read the inputs,
    so the engine may sum each record's rows (windows) before calling ``rows`` (on n rows).
    """

    linear_in_output = False

    def rows(self, layer, call, g) -> list[tf.Tensor]:
        raise NotImplementedError

    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        from tfdphpe.privacy.ghost.works import formed_work
        return formed_work(self, layer, own, var_refs, calls, grads, n)


class MatmulRule(RowsRule):
    """A weight whose gradient is A^T G over tokens (Dense, 1x1 convolutions, EinsumDense).

    ``tokens(layer, call, g)`` gives A [B', ..., din] and G [B', ..., dout] with the same token
    dimensions; ``to_kernel(layer, m)`` maps [..., din, dout] matrices to the kernel's shape;
    ``rows`` gives the other weights' per-row gradients ({weight position: rows}).
    """

    preactivation = True

    def kernel(self, layer) -> tf.Variable:
        return layer.kernel

    def tokens(self, layer, call, g) -> tuple[tf.Tensor, tf.Tensor]:
        raise NotImplementedError

    def to_kernel(self, layer, matrices: tf.Tensor) -> tf.Tensor:
        return tf.reshape(matrices, leading(matrices, 2) + list(self.kernel(layer).shape))

    def rows(self, layer, call, g) -> dict:
        return {}

    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        from tfdphpe.privacy.ghost.works import MatmulWork
        return MatmulWork(self, layer, own, var_refs, calls, grads, n, ghost)


_RULES: dict[type, Rule] = {}


def register_rule(layer_class: type, rule: Rule) -> None:
    """Registers ``rule`` for ``layer_class`` (and for subclasses that keep its ``call``)."""
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a tfdphpe.privacy.ghost.Rule, got {type(rule).__name__}")
    _RULES[layer_class] = rule


def _registered(layer) -> Optional[Rule]:
    cls = type(layer)
    declared = getattr(cls, "same_gradients_as", None)
    if declared is not None:
        cls = declared
    for base in cls.__mro__:
        rule = _RULES.get(base)
        if rule is not None:
            # The base's rule holds for the layer only if the layer computes what the base does.
            if base is cls or getattr(cls, "call", None) is getattr(base, "call", None):
                return rule
            return None
    return None


def rule_for(layer) -> Rule:
    """The rule for ``layer`` (its own, a registered one, or the fallback); raises
    ``UnsupportedLayerError`` only when even the fallback cannot be exact."""
    from tfdphpe.privacy.ghost.rules.custom import CustomRule
    from tfdphpe.privacy.ghost.rules.fallback import FallbackRule
    if hasattr(layer, "per_example_gradients"):
        return CustomRule()
    rule = _registered(layer)
    if rule is not None:
        try:
            rule.check(layer)
            return rule
        except UnsupportedLayerError:
            pass
    fallback = FallbackRule()
    fallback.check(layer)
    return fallback
