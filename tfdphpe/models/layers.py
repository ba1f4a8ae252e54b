"""TinyViT building blocks as Keras layers (Wu et al., ECCV 2022).

Written bottom-up after timm's ``models/tiny_vit.py`` so that weights convert one to one:
attribute names (``conv``, ``bn``, ``attn``, ``qkv`` ...) follow timm's module names, which is what
``tfdphpe.models.convert`` relies on. Numerics follow PyTorch: BatchNorm and LayerNorm epsilon
1e-5, exact (erf) GELU, symmetric zero padding for strided convolutions (Keras' "same" pads
asymmetrically for stride 2, PyTorch's ``pad=1`` does not).

Every layer works on NHWC feature maps. Normalisation inside convolutions is BatchNorm by default;
``norm="group"`` swaps in GroupNorm for DP training from scratch, where BatchNorm statistics
cannot be learnt from private data (DESIGN 4).

Tests: tests/models/test_tinyvit.py, tests/models/test_convert.py, tests/privacy/test_ghost.py.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

BN_EPSILON = 1e-5
LN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


_numerics = threading.local()


@contextlib.contextmanager
def numerics(gelu: Optional[Callable] = None, layer_norm: Optional[Callable] = None):
    """Traces the layers with other GELU / LayerNorm implementations (this thread only).

    For export graphs whose runtime prefers other ops for the same function (TFLite, see
    ``tfdphpe.export.tflite``). ``gelu(x)`` replaces the exact GELU; ``layer_norm(layer, x)``
    replaces ``LayerNorm.call``. Weights are untouched; the setting is read while a function is
    traced, so trace inside the block.
    """
    saved = (getattr(_numerics, "gelu", None), getattr(_numerics, "layer_norm", None))
    _numerics.gelu, _numerics.layer_norm = gelu, layer_norm
    try:
        yield
    finally:
        _numerics.gelu, _numerics.layer_norm = saved


def gelu(x: tf.Tensor) -> tf.Tensor:
    """Exact (erf) GELU, as torch.nn.GELU() (unless ``numerics`` says otherwise)."""
    override = getattr(_numerics, "gelu", None)
    if override is not None:
        return override(x)
    return tf.nn.gelu(x, approximate=False)


class LayerNorm(tf.keras.layers.LayerNormalization):
    """LayerNormalization (epsilon 1e-5, as PyTorch) that honours ``numerics(layer_norm=...)``."""

    # Computes what LayerNormalization computes (per-example gradient rules may rely on it).
    same_gradients_as = tf.keras.layers.LayerNormalization

    def __init__(self, epsilon: float = LN_EPSILON, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)

    def call(self, inputs):
        override = getattr(_numerics, "layer_norm", None)
        if override is not None:
            return override(self, inputs)
        return super().call(inputs)


def _group_count(channels: int, max_groups: int = 32) -> int:
    """Largest divisor of ``channels`` not above ``max_groups``."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class BatchNorm(tf.keras.layers.BatchNormalization):
    """BatchNormalization that can be pinned to inference mode while gamma/beta still train.

    With ``frozen_stats=True`` the layer always normalises with its moving statistics and never
    updates them, whatever ``training`` says. DP training needs exactly that (DESIGN 4: no
    statistics learnt from private data) while the affine parameters may still be trained. Keras'
    own ``trainable=False`` also freezes gamma and beta, which the strategies do not want.
    The flag is read when a function is traced: set it before building the training step.
    """

    # Computes what BatchNormalization computes, in inference mode when frozen.
    same_gradients_as = tf.keras.layers.BatchNormalization

    def __init__(self, frozen_stats: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.frozen_stats = frozen_stats

    def call(self, inputs, training=None):
        if self.frozen_stats:
            training = False
        return super().call(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config["frozen_stats"] = self.frozen_stats
        return config


def make_norm(channels: int, norm: str, gamma_init: float = 1.0, name: str = "bn", dtype=None):
    """BatchNorm (PyTorch numerics) or GroupNorm for a conv output of ``channels``.

    ``dtype``: the parent's dtype policy. Sublayers made in a layer's ``__init__`` take the
    global policy unless given one, so every composite layer here passes its own: a model saved
    under mixed precision then loads (and computes) in float16 under any global policy.
    """
    init = tf.keras.initializers.Constant(gamma_init)
    if norm == "batch":
        return BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, gamma_initializer=init,
                         name=name, dtype=dtype)
    if norm == "group":
        return tf.keras.layers.GroupNormalization(
            groups=_group_count(channels), epsilon=BN_EPSILON, gamma_initializer=init, name=name,
            dtype=dtype)
    raise ValueError(f"norm must be 'batch' or 'group', got {norm!r}")


class ConvNorm(tf.keras.layers.Layer):
    """Conv2d (no bias) followed by a normalisation, as timm's ``ConvNorm``.

    ``groups == in_channels == out_channels`` gives a depthwise convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 strides: int = 1, padding: int = 0, groups: int = 1, gamma_init: float = 1.0,
                 norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.groups = groups
        self.gamma_init = gamma_init
        self.norm = norm
        self.depthwise = groups > 1
        if self.depthwise and not (groups == in_channels == out_channels):
            raise ValueError("ConvNorm supports groups=1 or depthwise (groups == channels); got "
                             f"groups={groups}, in={in_channels}, out={out_channels}")
        conv_kwargs = dict(kernel_size=kernel_size, strides=strides, padding="valid",
                           use_bias=False, name="conv", dtype=self.dtype_policy)
        if self.depthwise:
            self.conv = tf.keras.layers.DepthwiseConv2D(**conv_kwargs)
        else:
            self.conv = tf.keras.layers.Conv2D(out_channels, **conv_kwargs)
        self.bn = make_norm(out_channels, norm, gamma_init, dtype=self.dtype_policy)

    def build(self, input_shape):
        shape = list(input_shape)
        if shape[-1] is not None and shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}: expected {self.in_channels} input channels, "
                             f"got {shape[-1]}")
        if self.padding:
            shape = [shape[0],
                     None if shape[1] is None else shape[1] + 2 * self.padding,
                     None if shape[2] is None else shape[2] + 2 * self.padding, shape[3]]
        _build(self.conv, shape)
        out = self.conv.compute_output_shape(shape)
        _build(self.bn, out)
        super().build(input_shape)

    def call(self, x, training=None):
        if self.padding:
            p = self.padding
            x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        return self.bn(self.conv(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels,
                      kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                      groups=self.groups, gamma_init=self.gamma_init, norm=self.norm)
        return config


class PatchEmbed(tf.keras.layers.Layer):
    """Stem: Conv3x3/2 + norm, GELU, Conv3x3/2 + norm (output stride 4)."""

    def __init__(self, in_channels: int, embed_dim: int, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.norm = norm
        self.conv1 = ConvNorm(in_channels, embed_dim // 2, 3, 2, 1, norm=norm, name="conv1",
                              dtype=self.dtype_policy)
        self.conv2 = ConvNorm(embed_dim // 2, embed_dim, 3, 2, 1, norm=norm, name="conv2",
                              dtype=self.dtype_policy)

    def build(self, input_shape):
        _build(self.conv1, input_shape)
        mid = self.conv1.conv.compute_output_shape(_padded(input_shape, 1))
        _build(self.conv2, mid)
        super().build(input_shape)

    def call(self, x, training=None):
        return self.conv2(gelu(self.conv1(x, training=training)), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, embed_dim=self.embed_dim, norm=self.norm)
        return config


class MBConv(tf.keras.layers.Layer):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project (gamma 0), residual, GELU."""

    def __init__(self, channels: int, expand_ratio: float = 4.0, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.expand_ratio = expand_ratio
        self.norm = norm
        hidden = int(channels * expand_ratio)
        self.conv1 = ConvNorm(channels, hidden, 1, norm=norm, name="conv1",
                              dtype=self.dtype_policy)
        self.conv2 = ConvNorm(hidden, hidden, 3, 1, 1, groups=hidden, norm=norm, name="conv2",
                              dtype=self.dtype_policy)
        self.conv3 = ConvNorm(hidden, channels, 1, gamma_init=0.0, norm=norm, name="conv3",
                              dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden_shape = list(input_shape[:-1]) + [int(self.channels * self.expand_ratio)]
        _build(self.conv1, input_shape)
        _build(self.conv2, hidden_shape)
        _build(self.conv3, hidden_shape)
        super().build(input_shape)

    def call(self, x, training=None):
        y = gelu(self.conv1(x, training=training))
        y = gelu(self.conv2(y, training=training))
        y = self.conv3(y, training=training)
        return gelu(x + y)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, expand_ratio=self.expand_ratio, norm=self.norm)
        return config


class PatchMerging(tf.keras.layers.Layer):
    """Downsampling between stages: 1x1 conv, GELU, 3x3 depthwise stride 2, GELU, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm = norm
        self.conv1 = ConvNorm(in_channels, out_channels, 1, norm=norm, name="conv1",
                              dtype=self.dtype_policy)
        self.conv2 = ConvNorm(out_channels, out_channels, 3, 2, 1, groups=out_channels,
                              norm=norm, name="conv2", dtype=self.dtype_policy)
        self.conv3 = ConvNorm(out_channels, out_channels, 1, norm=norm, name="conv3",
                              dtype=self.dtype_policy)

    def build(self, input_shape):
        mid = list(input_shape[:-1]) + [self.out_channels]
        _build(self.conv1, input_shape)
        _build(self.conv2, mid)
        _build(self.conv3, self.conv2.conv.compute_output_shape(_padded(mid, 1)))
        super().build(input_shape)

    def call(self, x, training=None):
        x = gelu(self.conv1(x, training=training))
        x = gelu(self.conv2(x, training=training))
        return self.conv3(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels,
                      norm=self.norm)
        return config


def attention_bias_index(window_size: int) -> tuple[np.ndarray, int]:
    """Index table [N, N] of relative offsets (|dy|, |dx|) in a window, LeViT style.

    Offsets are numbered in order of first appearance, as the reference does, so the learnt
    bias table converts without reordering.
    """
    points = list(itertools.product(range(window_size), range(window_size)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            if off not in offsets:
                offsets[off] = len(offsets)
            idxs.append(offsets[off])
    n = len(points)
    return np.asarray(idxs, dtype=np.int32).reshape(n, n), len(offsets)


class RelativePositionBias(tf.keras.layers.Layer):
    """Adds a learnt bias per head and relative offset to attention logits [B', heads, N, N]."""

    def __init__(self, num_heads: int, window_size: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.window_size = window_size
        self._index, self.num_offsets = attention_bias_index(window_size)

    def build(self, input_shape=None):
        self.attention_biases = self.add_weight(
            name="attention_biases", shape=(self.num_heads, self.num_offsets),
            initializer="zeros", trainable=True)
        super().build(input_shape)

    def bias(self) -> tf.Tensor:
        """The bias expanded to [heads, N, N]."""
        return tf.gather(self.attention_biases, self._index, axis=1)

    def call(self, logits):
        return logits + tf.cast(self.bias(), logits.dtype)[None]

    # The table's gradient is linear in the output gradient and never reads the logits, so the
    # ghost engine may sum each example's windows before calling per_example_gradients.
    per_example_gradients_linear = True

    def per_example_gradients(self, logits, output_gradient):
        """Per-row gradient of the bias table [rows, heads, offsets] (tfdphpe.privacy.ghost).

        Each table entry receives the sum of the output gradients at the (query, key) pairs with
        its offset: one segment sum over the pairs (a one-hot matmul would cost N^2 x offsets).
        ``logits`` is not read (see ``per_example_gradients_linear``).
        """
        del logits
        n = self.window_size * self.window_size
        g = tf.reshape(output_gradient, [-1, self.num_heads, n * n])
        per_pair = tf.transpose(g, [2, 0, 1])                                # [N*N, rows, heads]
        table = tf.math.unsorted_segment_sum(per_pair, self._index.reshape(-1), self.num_offsets)
        return [tf.transpose(table, [1, 2, 0])]                               # [rows, heads, off]

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, window_size=self.window_size)
        return config


class WindowAttention(tf.keras.layers.Layer):
    """Multi-head self-attention on window tokens [B', N, C] with a learnt relative-position bias.

    LayerNorm on the input first (it lives inside the attention module in the reference).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, **kwargs):
        super().__init__(**kwargs)
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.norm = LayerNorm(name="norm", dtype=self.dtype_policy)
        self.qkv = tf.keras.layers.Dense(3 * dim, name="qkv", dtype=self.dtype_policy,
                                         kernel_initializer=_trunc_normal_init())
        self.proj = tf.keras.layers.Dense(dim, name="proj", dtype=self.dtype_policy,
                                          kernel_initializer=_trunc_normal_init())
        self.bias = RelativePositionBias(num_heads, window_size, name="bias",
                                         dtype=self.dtype_policy)

    def build(self, input_shape):
        _build(self.norm, input_shape)
        _build(self.qkv, input_shape)
        _build(self.proj, list(input_shape[:-1]) + [self.dim])
        _build(self.bias, [None, self.num_heads, self.window_size ** 2, self.window_size ** 2])
        super().build(input_shape)

    @property
    def attention_biases(self):
        return self.bias.attention_biases

    def call(self, x, training=None):
        n = self.window_size * self.window_size
        b = tf.shape(x)[0]
        x = self.norm(x)
        qkv = tf.reshape(self.qkv(x), [b, n, self.num_heads, 3 * self.key_dim])
        qkv = tf.transpose(qkv, [0, 2, 1, 3])  # [B', heads, N, 3d]
        q, k, v = tf.split(qkv, 3, axis=-1)
        attn = tf.matmul(q * self.scale, k, transpose_b=True)
        attn = tf.nn.softmax(self.bias(attn), axis=-1)   # + learnt bias [heads, N, N]
        out = tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3])
        return self.proj(tf.reshape(out, [b, n, self.dim]))

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, window_size=self.window_size)
        return config


class Mlp(tf.keras.layers.Layer):
    """LayerNorm -> Dense -> GELU -> Dense (the norm lives inside the MLP in the reference)."""

    def __init__(self, dim: int, hidden_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.norm = LayerNorm(name="norm", dtype=self.dtype_policy)
        self.fc1 = tf.keras.layers.Dense(hidden_dim, name="fc1", dtype=self.dtype_policy,
                                         kernel_initializer=_trunc_normal_init())
        self.fc2 = tf.keras.layers.Dense(dim, name="fc2", dtype=self.dtype_policy,
                                         kernel_initializer=_trunc_normal_init())

    def build(self, input_shape):
        _build(self.norm, input_shape)
        _build(self.fc1, input_shape)
        _build(self.fc2, list(input_shape[:-1]) + [self.hidden_dim])
        super().build(input_shape)

    def call(self, x, training=None):
        return self.fc2(gelu(self.fc1(self.norm(x))))

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, hidden_dim=self.hidden_dim)
        return config


class TinyViTBlock(tf.keras.layers.Layer):
    """Window attention + residual, depthwise 3x3 conv-norm, MLP + residual, on NHWC maps.

    Feature maps whose sides are not multiples of the window are zero-padded at the bottom/right,
    attended in windows, and cropped back (so 256x192 inputs work).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.0,
                 local_conv_size: int = 3, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.local_conv_size = local_conv_size
        self.norm = norm
        self.attn = WindowAttention(dim, num_heads, window_size, name="attn",
                                    dtype=self.dtype_policy)
        self.local_conv = ConvNorm(dim, dim, local_conv_size, 1, local_conv_size // 2,
                                   groups=dim, norm=norm, name="local_conv",
                                   dtype=self.dtype_policy)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), name="mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        tokens = [None, self.window_size * self.window_size, self.dim]
        _build(self.attn, tokens)
        _build(self.local_conv, input_shape)
        _build(self.mlp, input_shape)
        super().build(input_shape)

    def _window_attention(self, x):
        ws = self.window_size
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        pad_b = (ws - h % ws) % ws
        pad_r = (ws - w % ws) % ws
        x = tf.pad(x, [[0, 0], [0, pad_b], [0, pad_r], [0, 0]])
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // ws, pw // ws
        x = tf.reshape(x, [b, nh, ws, nw, ws, self.dim])
        x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [b * nh * nw, ws * ws, self.dim])
        x = self.attn(x)
        x = tf.reshape(x, [b, nh, nw, ws, ws, self.dim])
        x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [b, ph, pw, self.dim])
        return x[:, :h, :w, :]

    def call(self, x, training=None):
        x = x + self._window_attention(x)
        x = self.local_conv(x, training=training)
        return x + self.mlp(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, window_size=self.window_size,
                      mlp_ratio=self.mlp_ratio, local_conv_size=self.local_conv_size,
                      norm=self.norm)
        return config


def _build(layer: tf.keras.layers.Layer, input_shape) -> None:
    """Builds a sublayer inside its own name scope, so variables get full paths
    (``stages_1_blocks_0/attn/norm/gamma``) as they would when built lazily."""
    with tf.name_scope(layer.name):
        layer.build(input_shape)


def _padded(shape, pad: int):
    shape = list(shape)
    return [shape[0]] + [None if s is None else s + 2 * pad for s in shape[1:3]] + [shape[3]]


def _trunc_normal_init():
    return tf.keras.initializers.TruncatedNormal(stddev=0.02)


CUSTOM_OBJECTS = {cls.__name__: cls for cls in
                  (BatchNorm, LayerNorm, ConvNorm, PatchEmbed, RelativePositionBias, MBConv,
                   PatchMerging, WindowAttention, Mlp, TinyViTBlock)}

for _cls in CUSTOM_OBJECTS.values():
    tf.keras.utils.register_keras_serializable(package="tfdphpe")(_cls)
