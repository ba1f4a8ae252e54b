"""EinsumDense (MultiHeadAttention's projections): a matmul over tokens, or an einsum per row.

Write the equation with explicit letters (an ellipsis expanded from the input's rank), b the
batch letter. When no letter is shared by the input, the kernel and the output, the kernel's
gradient is A^T G with the input's remaining letters as tokens, the contracted letters as din
and the kernel's output letters as dout: the matmul route, with ghost norms (MultiHeadAttention's
"abc,cde->abde" query/key/value and "abcd,cde->abe" output projections). Otherwise each row's
kernel gradient is the einsum of its input and output gradient onto the kernel's letters, which
is exact for any equation. The bias (over some output axes) sums the output gradient over the
axes it broadcasts along.

Tests: tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import dataclasses
import string

import tensorflow as tf

from tfdphpe.privacy.ghost.registry import (MatmulRule, RowsRule, UnsupportedLayerError,
                                            float32, leading, own_weights, register_rule)
from tfdphpe.privacy.ghost.works import MatmulWork, formed_work


@dataclasses.dataclass(frozen=True)
class EinsumSpec:
    inputs: str
    kernel: str
    outputs: str

    @property
    def batch(self) -> str:
        return self.inputs[0]

    @property
    def matmul(self) -> bool:
        shared = set(self.inputs) & set(self.kernel) & set(self.outputs)
        tokens = [c for c in self.inputs[1:] if c not in self.kernel]
        return (not shared and self.outputs[0] == self.batch and self.batch not in self.kernel
                and all(c in self.outputs for c in tokens))

    @property
    def tokens(self) -> str:
        return "".join(c for c in self.inputs[1:] if c not in self.kernel)

    @property
    def contracted(self) -> str:
        return "".join(c for c in self.inputs if c in self.kernel)

    @property
    def produced(self) -> str:
        return "".join(c for c in self.kernel if c not in self.inputs)


def parse(equation: str, input_rank: int) -> EinsumSpec:
    """The equation with explicit letters (an ellipsis expanded for ``input_rank``)."""
    left, outputs = equation.replace(" ", "").split("->")
    inputs, kernel = left.split(",")
    if "..." in inputs:
        free = [c for c in string.ascii_uppercase + string.ascii_lowercase
                if c not in equation][:input_rank]
        fill = "".join(free[:input_rank - (len(inputs) - 3)])
        inputs, outputs = inputs.replace("...", fill), outputs.replace("...", fill)
    if "..." in kernel or len(inputs) != input_rank:
        raise UnsupportedLayerError(f"cannot read the einsum equation {equation!r}")
    return EinsumSpec(inputs, kernel, outputs)


def _reorder(t: tf.Tensor, letters: str, want: str) -> tf.Tensor:
    """``t`` (axes named by ``letters``) with its axes in the order of ``want``."""
    if letters == want:
        return t
    return tf.transpose(t, [letters.index(c) for c in want])


def _flat(t: tf.Tensor, d: int) -> tf.Tensor:
    """[B', token axes..., d axes...] -> [B', T, d]."""
    rows = t.shape[0]
    if rows is not None:
        return tf.reshape(t, [rows, -1, d])
    return tf.reshape(t, tf.stack([tf.shape(t)[0], -1, d]))


def _bias_rows(layer, g):
    """Per-row bias gradients: g summed over the axes the bias broadcasts along."""
    bias = layer.bias
    rank, r = g.shape.rank, bias.shape.rank
    leading = list(range(1, rank - r))
    keep_one = [j for j in range(max(1, rank - r), rank)
                if bias.shape[j - (rank - r)] == 1 and g.shape[j] != 1]
    rows = tf.reduce_sum(g, axis=keep_one, keepdims=True) if keep_one else g
    rows = tf.reduce_sum(rows, axis=leading) if leading else rows
    return tf.reshape(rows, tf.concat([[-1], bias.shape], 0))


def _position(layer, variable) -> int:
    return next(j for j, w in enumerate(own_weights(layer)) if w is variable)


class _MatmulEinsum(MatmulRule):
    """The matmul route for one layer's equation."""

    def __init__(self, spec: EinsumSpec):
        self.spec = spec

    def tokens(self, layer, call, g):
        s = self.spec
        a = _reorder(float32(call.inputs), s.inputs, f"{s.batch}{s.tokens}{s.contracted}")
        g = _reorder(g, s.outputs, f"{s.batch}{s.tokens}{s.produced}")
        return (_flat(a, self._size(layer, s.contracted)),
                _flat(g, self._size(layer, s.produced)))

    def _size(self, layer, letters: str) -> int:
        return int(tf.TensorShape([self._dim(layer, c) for c in letters]).num_elements() or 1)

    def _dim(self, layer, letter: str) -> int:
        return int(layer.kernel.shape[self.spec.kernel.index(letter)])

    def to_kernel(self, layer, matrices):
        s = self.spec
        lead = matrices.shape.rank - 2
        dims = [self._dim(layer, c) for c in s.contracted + s.produced]
        shaped = tf.reshape(matrices, leading(matrices, 2) + dims)
        order = s.contracted + s.produced
        return tf.transpose(shaped, list(range(lead)) + [lead + order.index(c) for c in s.kernel])

    def rows(self, layer, call, g):
        return {} if layer.bias is None else {_position(layer, layer.bias): _bias_rows(layer, g)}


class EinsumDenseRule(RowsRule):
    preactivation = True

    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        spec = parse(layer.equation, calls[0].inputs.shape.rank)
        if spec.matmul and spec.produced and spec.contracted:
            return MatmulWork(_MatmulEinsum(spec), layer, own, var_refs, calls, grads, n, ghost)
        return formed_work(self, layer, own, var_refs, calls, grads, n)

    def rows(self, layer, call, g):
        spec = parse(layer.equation, call.inputs.shape.rank)
        if spec.batch in spec.kernel or spec.outputs[0] != spec.batch:
            raise UnsupportedLayerError(f"ghost clipping: EinsumDense {layer.name!r}: the batch "
                                        f"letter of {layer.equation!r} must lead the output and "
                                        "not enter the kernel")
        kernel = tf.einsum(f"{spec.inputs},{spec.outputs}->{spec.batch}{spec.kernel}",
                           float32(call.inputs), g)
        by_position = {_position(layer, layer.kernel): kernel}
        if layer.bias is not None:
            by_position[_position(layer, layer.bias)] = _bias_rows(layer, g)
        return [by_position[j] for j in range(len(own_weights(layer)))]


register_rule(tf.keras.layers.EinsumDense, EinsumDenseRule())
