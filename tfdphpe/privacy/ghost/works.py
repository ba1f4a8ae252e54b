"""The engine's per-layer work: per-record squared norms, then the layer's share of the sum.

A work object holds what one layer needs between the two halves of the computation:

* ``squared_norms()`` -> [n]: each record's squared gradient norm over the layer's weights in
  var_list (a layer may own weights that stay fixed);
* ``guarded()`` / ``set_guarded(tensors)``: the per-record tensors the sum reads, so the engine
  can zero the rows of left-out records (padding, non-finite norms) when one of them is not
  finite (0 * NaN is NaN), in one condition for the whole model;
* ``clipped_sums(scale)`` -> [(var_list index, sum_i scale_i g_i)];
* ``per_example()`` -> [(var_list index, [n, *shape])]: the formed per-record gradients.

``FormedWork`` keeps formed per-record gradients; ``MatmulWork`` keeps a matmul layer's token
matrices and picks the ghost norm or the formed one by cost.

Tests: tests/privacy/test_ghost.py, tests/privacy/test_units.py.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfdphpe.privacy.ghost.recording import Call
from tfdphpe.privacy.ghost.registry import fold, own_weights, tokens
from tfdphpe.privacy.per_example import row_squared_norms


class Work:
    """Shared bookkeeping: the layer's own weights and which of them var_list holds."""

    def __init__(self, layer, own: list[int], var_refs: list, n: tf.Tensor, weights=None):
        self.layer, self.n = layer, n
        self.weights = own_weights(layer) if weights is None else weights
        position = {w.ref(): j for j, w in enumerate(self.weights)}
        self.targets = [(i, position[var_refs[i]]) for i in own]   # (var_list index, weight)
        self.kept: dict[int, tf.Tensor] = {}                        # weight position -> [n, ...]

    def _kept_norms(self) -> list[tf.Tensor]:
        return [row_squared_norms(self.kept[j]) for _, j in self.targets if j in self.kept]

    def squared_norms(self) -> tf.Tensor:
        return tf.add_n(self._kept_norms())

    def guarded(self) -> list:
        return [self.kept[j] for j in sorted(self.kept)]

    def set_guarded(self, tensors: list) -> None:
        self.kept = dict(zip(sorted(self.kept), tensors))

    def clipped_sums(self, scale: tf.Tensor) -> list[tuple[int, tf.Tensor]]:
        return [(i, tf.reshape(tf.tensordot(scale, self.kept[j], axes=1), self.weights[j].shape))
                for i, j in self.targets]

    def per_example(self) -> list[tuple[int, tf.Tensor]]:
        return [(i, self.kept[j]) for i, j in self.targets]


def formed_work(rule, layer, own, var_refs, calls, grads, n) -> Work:
    """A RowsRule's per-row gradients, summed over calls and folded to records."""
    work = Work(layer, own, var_refs, n)
    per_weight = None
    for call, g in zip(calls, grads):
        rule.check_call(layer, call)
        if rule.linear_in_output:
            # Sum each record's rows (windows) first: the rule then runs on n rows, not B'.
            call, g = Call(None, call.outputs, call.training), fold(g, n)
            rows = [r for r in rule.rows(layer, call, g)]
        else:
            rows = [fold(r, n) for r in rule.rows(layer, call, g)]
        if len(rows) != len(work.weights):
            from tfdphpe.privacy.ghost.registry import UnsupportedLayerError
            raise UnsupportedLayerError(f"ghost clipping: the rule for {layer.name!r} gave "
                                        f"{len(rows)} gradients for {len(work.weights)} weights")
        per_weight = rows if per_weight is None else [p + r for p, r in zip(per_weight, rows)]
    work.kept = dict(enumerate(per_weight))
    return work


def paired_tokens(rule, layer, calls, grads, n) -> tuple[tf.Tensor, tf.Tensor]:
    """A matmul layer's token matrices [n, T, din], [n, T, dout] over all its calls.

    Feature DP records grad[l(x) - l(psi(x))]: the layer is called on x (A_x, output gradient
    G_x) and on psi(x) (A_q, G_q ~ -G_x), and the record A_x^T G_x + A_q^T G_q nearly cancels.
    The ghost identity on those tokens would subtract large float32 numbers and can come out
    negative (NaN) or far too small (a record let through above C). The same record is
    A_x^T (G_x + G_q) + (A_q - A_x)^T G_q, whose tokens [A_x; A_q - A_x] and [G_x + G_q; G_q]
    are small where the record is: norm and clipped sum are then computed without the
    cancellation. Calls are paired in order (the k-th private call with the k-th public call)
    when the layer has as many of each with equal shapes; otherwise the tokens stay as recorded.
    """
    pairs = [rule.tokens(layer, c, g) for c, g in zip(calls, grads)]
    private = [p for p, c in zip(pairs, calls) if not c.public]
    public = [p for p, c in zip(pairs, calls) if c.public]
    if public and len(public) == len(private) and all(
            x[0].shape == q[0].shape and x[1].shape == q[1].shape
            for x, q in zip(private, public)):
        a = [tokens(x[0], n) for x in private] + [tokens(q[0] - x[0], n)
                                                  for x, q in zip(private, public)]
        g = [tokens(x[1] + q[1], n) for x, q in zip(private, public)] + [
            tokens(q[1], n) for q in public]
    else:
        a = [tokens(x[0], n) for x in pairs]
        g = [tokens(x[1], n) for x in pairs]
    return tf.concat(a, 1), tf.concat(g, 1)


def prefer_ghost(a: tf.Tensor, g: tf.Tensor, ghost: Optional[bool]) -> bool:
    """Ghost norm or formed gradient, by memory: T (din + dout) < din * dout (Bu et al. 2022)."""
    if ghost is not None:
        return ghost
    tokens_, din, dout = a.shape[1], a.shape[2], g.shape[2]
    if tokens_ is None or din is None or dout is None:
        return False     # unknown token count: forming A_i^T G_i has bounded cost
    return tokens_ * (din + dout) < din * dout


def outer_sums(a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """[n, T, din], [n, T, dout] -> [n, din, dout]: every record's A_i^T G_i."""
    return tf.matmul(a, g, transpose_a=True)


class MatmulWork(Work):
    """A matmul layer: the kernel's norm by the ghost identity or formed; other weights formed.

    Ghost: ||A_i^T G_i||^2 = sum_{t,u} (A_i A_i^T)_{tu} (G_i G_i^T)_{tu} (cost ~ T^2 (din + dout),
    memory T^2), and the clipped sum is one ordinary weight-gradient matmul with G's rows scaled:
    A^T (s * G). Formed: A_i^T G_i (cost ~ T din dout, memory din dout per record).
    """

    def __init__(self, rule, layer, own, var_refs, calls, grads, n, ghost):
        super().__init__(layer, own, var_refs, n)
        self.rule = rule
        for call in calls:
            rule.check_call(layer, call)
        kernel = rule.kernel(layer)
        self.kernel_position = next(j for j, w in enumerate(self.weights) if w is kernel)
        self.a, self.g = paired_tokens(rule, layer, calls, grads, n)
        self.ghost = prefer_ghost(self.a, self.g, ghost)
        for call, g in zip(calls, grads):
            for j, rows in rule.rows(layer, call, g).items():
                rows = fold(rows, n)
                self.kept[j] = self.kept[j] + rows if j in self.kept else rows
        self.counted = {j for _, j in self.targets}

    def squared_norms(self) -> tf.Tensor:
        terms = self._kept_norms()
        if self.kernel_position in self.counted:
            if self.ghost and self.a.shape[1] == 1:
                # One token per record: ||a g^T||^2 = ||a||^2 ||g||^2.
                terms.append(row_squared_norms(self.a) * row_squared_norms(self.g))
            elif self.ghost:
                aa = tf.matmul(self.a, self.a, transpose_b=True)
                gg = tf.matmul(self.g, self.g, transpose_b=True)
                # A sum of products: rounding can take a tiny true value below 0.
                terms.append(tf.maximum(tf.einsum("btu,btu->b", aa, gg), 0.0))
            else:
                self.kept[self.kernel_position] = self.rule.to_kernel(
                    self.layer, outer_sums(self.a, self.g))
                terms.append(row_squared_norms(self.kept[self.kernel_position]))
        return tf.add_n(terms)

    def _reads_tokens(self) -> bool:
        return self.kernel_position not in self.kept    # the sum is A^T (s * G)

    def guarded(self) -> list:
        return super().guarded() + ([self.a, self.g] if self._reads_tokens() else [])

    def set_guarded(self, tensors: list) -> None:
        if self._reads_tokens():
            tensors, (self.a, self.g) = tensors[:-2], tensors[-2:]
        super().set_guarded(tensors)

    def clipped_sums(self, scale):
        out = []
        for i, j in self.targets:
            if j == self.kernel_position and j not in self.kept:
                # A^T (s G) = (s A)^T G: scale the smaller of the two token matrices.
                a, g, din, dout = self.a, self.g, self.a.shape[-1], self.g.shape[-1]
                if din is not None and dout is not None and din < dout:
                    a = a * tf.reshape(scale, [-1, 1, 1])
                else:
                    g = g * tf.reshape(scale, [-1, 1, 1])
                m = tf.matmul(tf.reshape(a, [-1, din]), tf.reshape(g, [-1, dout]),
                              transpose_a=True)
                out.append((i, self.rule.to_kernel(self.layer, m)))
            else:
                out.append((i, tf.reshape(tf.tensordot(scale, self.kept[j], axes=1),
                                          self.weights[j].shape)))
        return out

    def per_example(self):
        if self.kernel_position not in self.kept:
            self.kept[self.kernel_position] = self.rule.to_kernel(
                self.layer, outer_sums(self.a, self.g))
        return super().per_example()
