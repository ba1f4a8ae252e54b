"""Convolutions: the stock filter-gradient kernel on one row at a time.

The kernel gradient of a convolution is the filter gradient of its input against its output
gradient; TensorFlow's backprop-filter kernels compute it for a batch, so one call per row gives
the per-row gradients (``registry.per_row``, measured as cheap as one batched call). Every
variant reduces to a 2-D or 3-D filter gradient:

* Conv2D (any strides, dilation, groups), Conv1D (as a 2-D convolution of height 1; 'causal'
  padding as explicit left padding), Conv3D;
* DepthwiseConv2D (any depth multiplier);
* Conv2DTranspose: its output is the input space of the convolution it transposes, so its kernel
  gradient is the filter gradient of the *output* gradient against the *input*;
* SeparableConv2D: the depthwise output is recomputed from the recorded input, the pointwise
  kernel is a 1x1 matmul on it, and the depthwise kernel's gradient comes from the pointwise
  layer's input gradient.

A 1x1 Conv2D with stride 1 is a Dense layer on pixels (the matmul route, ghost norms possible).
channels_first layers and Conv2DTranspose with output_padding have no rule here: the fallback
forms their gradients.

Tests: tests/privacy/test_ghost.py, tests/privacy/test_ghost_zoo.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.privacy.ghost.registry import (MatmulRule, RowsRule, UnsupportedLayerError,
                                            float32, own_weights, per_row, register_rule)
from tfdphpe.privacy.ghost.rules.dense import bias_rows
from tfdphpe.privacy.ghost.works import MatmulWork, formed_work

K = tf.keras.layers


def ordered(layer, by_variable: dict) -> list[tf.Tensor]:
    """Rows keyed by variable -> a list in the layer's own-weight order."""
    out = []
    for w in own_weights(layer):
        if w.ref() not in by_variable:
            raise UnsupportedLayerError(f"ghost clipping: no rule output for weight {w.name!r} "
                                        f"of {layer.name!r}")
        out.append(by_variable[w.ref()])
    return out


def _check_layout(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"{layer.name!r}: channels_first")
    if layer.padding not in ("valid", "same", "causal"):
        raise UnsupportedLayerError(f"{layer.name!r}: padding {layer.padding!r}")


def _filter_gradient_2d(a, g, kernel_shape, strides, padding, dilations, groups=1):
    """Per-row [B', *kernel_shape] filter gradients of a 2-D convolution (groups split)."""
    cin_g = kernel_shape[2]
    cout_g = kernel_shape[3] // groups

    def one(x, gy):
        parts = []
        for k in range(groups):
            parts.append(tf.raw_ops.Conv2DBackpropFilter(
                input=x[..., k * cin_g:(k + 1) * cin_g],
                filter_sizes=list(kernel_shape[:3]) + [cout_g],
                out_backprop=gy[..., k * cout_g:(k + 1) * cout_g],
                strides=[1, *strides, 1], padding=padding, dilations=[1, *dilations, 1]))
        return parts[0] if groups == 1 else tf.concat(parts, axis=-1)

    return per_row(one, a, g)


class ConvRule(MatmulRule):
    """Conv1D, Conv2D, Conv3D; the matmul route for a stride-1 1x1 Conv2D."""

    def check(self, layer):
        _check_layout(layer)
        if layer.padding == "causal" and layer.rank != 1:
            raise UnsupportedLayerError(f"{layer.name!r}: causal padding")

    @staticmethod
    def pointwise(layer) -> bool:
        return (layer.rank == 2 and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) == (1, 1) and getattr(layer, "groups", 1) == 1)

    def work(self, layer, own, var_refs, calls, grads, n, ghost):
        if self.pointwise(layer):
            return MatmulWork(self, layer, own, var_refs, calls, grads, n, ghost)
        return formed_work(self, layer, own, var_refs, calls, grads, n)

    # the matmul route (pointwise)
    def tokens(self, layer, call, g):
        return float32(call.inputs), g

    def rows(self, layer, call, g):
        if self.pointwise(layer):
            return bias_rows(layer, g)
        return ordered(layer, self.kernel_rows(layer, float32(call.inputs), g)
                       | self._bias(layer, g))

    def _bias(self, layer, g) -> dict:
        if not layer.use_bias:
            return {}
        return {layer.bias.ref(): tf.reduce_sum(g, axis=list(range(1, g.shape.rank - 1)))}

    def kernel_rows(self, layer, a, g) -> dict:
        shape = layer.kernel.shape
        groups = getattr(layer, "groups", 1)
        padding = layer.padding.upper()
        if layer.rank == 1:
            if layer.padding == "causal":
                a = tf.pad(a, [[0, 0], [layer.dilation_rate[0] * (shape[0] - 1), 0], [0, 0]])
                padding = "VALID"
            rows = _filter_gradient_2d(a[:, None], g[:, None], [1, *shape],
                                       (1, layer.strides[0]), padding,
                                       (1, layer.dilation_rate[0]), groups)
            return {layer.kernel.ref(): tf.reshape(rows, tf.concat([[-1], shape], 0))}
        if layer.rank == 2:
            return {layer.kernel.ref(): _filter_gradient_2d(
                a, g, list(shape), layer.strides, padding, layer.dilation_rate, groups)}
        return {layer.kernel.ref(): self._filter_gradient_3d(layer, a, g, padding)}

    @staticmethod
    def _filter_gradient_3d(layer, a, g, padding):
        shape = list(layer.kernel.shape)
        groups = getattr(layer, "groups", 1)
        cin_g, cout_g = shape[3], shape[4] // groups

        def one(x, gy):
            parts = [tf.raw_ops.Conv3DBackpropFilterV2(
                input=x[..., k * cin_g:(k + 1) * cin_g], filter_sizes=shape[:4] + [cout_g],
                out_backprop=gy[..., k * cout_g:(k + 1) * cout_g],
                strides=[1, *layer.strides, 1], padding=padding,
                dilations=[1, *layer.dilation_rate, 1]) for k in range(groups)]
            return parts[0] if groups == 1 else tf.concat(parts, axis=-1)

        return per_row(one, a, g)



def _depthwise_filter_gradient(layer, a, g):
    """Per-row [B', kh, kw, cin, multiplier] gradients of a layer's depthwise kernel."""
    def one(x, gy):
        return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=list(layer.depthwise_kernel.shape), out_backprop=gy,
            strides=[1, *layer.strides, 1], padding=layer.padding.upper(),
            dilations=[1, *layer.dilation_rate, 1])

    return per_row(one, a, g)


class DepthwiseRule(RowsRule):
    preactivation = True

    def check(self, layer):
        _check_layout(layer)

    def rows(self, layer, call, g):
        a = float32(call.inputs)
        by_variable = {layer.depthwise_kernel.ref(): _depthwise_filter_gradient(layer, a, g)}
        if layer.use_bias:
            by_variable[layer.bias.ref()] = tf.reduce_sum(g, axis=[1, 2])
        return ordered(layer, by_variable)


class SeparableConvRule(RowsRule):
    preactivation = True

    def check(self, layer):
        _check_layout(layer)
        if layer.padding == "causal":
            raise UnsupportedLayerError(f"{layer.name!r}: causal padding")

    def rows(self, layer, call, g):
        a = float32(call.inputs)
        strides, dilations = [1, *layer.strides, 1], list(layer.dilation_rate)
        dk = tf.cast(layer.depthwise_kernel, tf.float32)
        pk = tf.cast(layer.pointwise_kernel, tf.float32)
        d = tf.nn.depthwise_conv2d(a, dk, strides, layer.padding.upper(), dilations=dilations)
        pointwise = tf.einsum("bhwc,bhwo->bco", d, g)[:, None, None]
        g_d = tf.einsum("bhwo,co->bhwc", g, pk[0, 0])
        by_variable = {layer.depthwise_kernel.ref(): _depthwise_filter_gradient(layer, a, g_d),
                       layer.pointwise_kernel.ref(): pointwise}
        if layer.use_bias:
            by_variable[layer.bias.ref()] = tf.reduce_sum(g, axis=[1, 2])
        return ordered(layer, by_variable)


class ConvTransposeRule(RowsRule):
    preactivation = True

    def check(self, layer):
        _check_layout(layer)
        if layer.output_padding is not None:
            raise UnsupportedLayerError(f"{layer.name!r}: output_padding")

    def rows(self, layer, call, g):
        a = float32(call.inputs)
        rows = _filter_gradient_2d(g, a, list(layer.kernel.shape), layer.strides,
                                   layer.padding.upper(), layer.dilation_rate)
        by_variable = {layer.kernel.ref(): rows}
        if layer.use_bias:
            by_variable[layer.bias.ref()] = tf.reduce_sum(g, axis=[1, 2])
        return ordered(layer, by_variable)


register_rule(K.Conv1D, ConvRule())
register_rule(K.Conv2D, ConvRule())
register_rule(K.Conv3D, ConvRule())
register_rule(K.DepthwiseConv2D, DepthwiseRule())
register_rule(K.SeparableConv2D, SeparableConvRule())
register_rule(K.Conv2DTranspose, ConvTransposeRule())
