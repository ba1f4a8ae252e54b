"""A layer that knows its own per-example gradients.

A layer may define ``per_example_gradients(inputs, output_gradient)`` returning per-row
gradients of its own trainable weights (tfdphpe's attention-bias table does). With
``per_example_gradients_linear = True`` (linear in the output gradient, the inputs unread) it is
called once per record on the sum of that record's rows.

Tests: tests/privacy/test_ghost.py.
"""

from __future__ import annotations

from tfdphpe.privacy.ghost.registry import RowsRule


class CustomRule(RowsRule):
    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        self.linear_in_output = bool(getattr(layer, "per_example_gradients_linear", False))
        return super().work(layer, own, var_refs, calls, grads, n, ghost)

    def rows(self, layer, call, g):
        return list(layer.per_example_gradients(call.inputs, g))
