"""Per-example clipping from layer inputs and output gradients: mixed ghost clipping + book-keeping.

The vectorized path (``mechanisms.clipped_sum``) forms every example's full gradient. This path
never does for the model as a whole. One forward pass records, for every layer that owns a
trainable variable, its input A and output Z; one backward pass of the summed loss gives the output
gradients G = dL/dZ. With frozen normalisation statistics no example influences another, so row i
of G is example i's own dl_i/dZ, and example i's gradient for that layer is a small function of
(A_i, G_i) alone:

    Dense       W_i = A_i^T G_i  (tokens t: sum_t a_t g_t^T),   b_i = sum_t g_t
    Conv2D      the stock filter-gradient kernel on example i alone  (1x1: as Dense)
    Depthwise   the same with the depthwise filter-gradient kernel
    Norms       gamma_i = sum_t xhat_i * G_i,  beta_i = sum_t G_i  (xhat recomputed from A_i;
                BatchNorm only with frozen statistics, where xhat_i depends on A_i alone)
    custom      a layer may define ``per_example_gradients(inputs, output_gradient)`` returning
                per-row gradients of its own trainable weights (the attention-bias table does);
                with ``per_example_gradients_linear = True`` (linear in the output gradient, the
                inputs unread) it is called once per example on the sum of that example's rows

Per-example squared norms add up over layers, giving the clip factors s_i = C / max(||g_i||, C)
exactly as ``tf.clip_by_global_norm`` would; the clipped sum sum_i s_i g_i then needs no second
backward pass (book-keeping): for a layer whose per-example gradients were formed it is a weighted
sum of them, for a Dense layer left "ghost" it is one ordinary weight-gradient matmul with G's rows
scaled by s_i: A^T (s * G).

Mixed: a Dense layer on T tokens (per example) with din x dout weights gets its per-example norm
either from the ghost identity ||A_i^T G_i||^2 = sum_{t,u} (A_i A_i^T)_{tu} (G_i G_i^T)_{tu}
(cost ~ T^2 (din + dout), memory T^2) or by forming A_i^T G_i (cost ~ T din dout, memory
din dout), whichever is cheaper for its shapes (Bu et al. 2022, "mixed ghost clipping"). Conv and
norm layers form their per-example gradients: their kernels are small.

Conv + frozen BatchNorm: when only the BatchNorm reads a convolution's output (checked on the
traced graph), both layers come from one filter gradient against the BatchNorm's output gradient
(``_ConvNormWork``), with no pass over the feature map for gamma.

Layers called by windows (attention on B * nW windows) have B' = B * nW rows, example-major; rows
are folded back to examples by summing groups of B'/B consecutive rows. A layer called more than
once in the loss (Feature DP's l(x) - l(psi(x))) gets the sum of its calls' contributions.

Why we write this ourselves: TF-Privacy's own "fast gradient clipping" registry (0.9) covers Dense
and Embedding on Keras functional models with a second full backward pass; our models nest custom
layers, call layers on windows and need Conv2D, depthwise, norm and bias-table rules.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Optional, Sequence

import tensorflow as tf

from tfdphpe.privacy.mechanisms import clip_scales, keep_mask
from tfdphpe.privacy.per_example import LossFn, Variables

_ZERO = tf.UnconnectedGradients.ZERO


class UnsupportedLayerError(ValueError):
    """A trainable variable belongs to a layer this path has no per-example rule for."""


# --------------------------------------------------------------------------- recording
class _Call:
    """One recorded call; ``ops``: names of the graph ops it created (BatchNorm, traced only);
    ``public``: made while computing the loss on the public view (Feature DP)."""
    __slots__ = ("inputs", "outputs", "training", "ops", "public")

    def __init__(self, inputs, outputs, training, ops=None, public=False):
        self.inputs, self.outputs, self.training, self.ops = inputs, outputs, training, ops
        self.public = public


def _graph_ops():
    """The ops of the graph being traced, in creation order (None when executing eagerly)."""
    if tf.executing_eagerly():
        return None
    return tf.compat.v1.get_default_graph().get_operations()


# MirroredStrategy traces each replica's step in its own thread, all calling the same layer
# objects: a layer's call is wrapped once (reference-counted across threads), and each call is
# logged to the recording of the thread that makes it.
_RECORDING = threading.local()
_PATCH_LOCK = threading.Lock()
_PATCHED: dict[int, list] = {}          # id(layer) -> [layer, number of open recordings]


def _recording_wrapper(layer, original):
    track = isinstance(layer, tf.keras.layers.BatchNormalization)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        log = getattr(_RECORDING, "calls", {}).get(id(layer))
        before = _graph_ops() if (track and log is not None) else None
        outputs = original(*args, **kwargs)
        if log is not None:
            ops = None
            if before is not None:
                ops = frozenset(op.name for op in _graph_ops()[len(before):])
            log.append(_Call(args[0] if args else kwargs.get("inputs"), outputs,
                             kwargs.get("training"), ops, getattr(_RECORDING, "public", False)))
        return outputs

    return wrapper


@contextlib.contextmanager
def record_calls(layers: Sequence[tf.keras.layers.Layer]):
    """Within the block, every call of ``layers`` by this thread is recorded.

    Yields {id(layer): [_Call, ...]}. Safe when several threads record the same layers at once
    (MirroredStrategy's replica threads): each sees only its own calls.
    """
    calls: dict[int, list[_Call]] = {id(layer): [] for layer in layers}
    with _PATCH_LOCK:
        for layer in layers:
            entry = _PATCHED.get(id(layer))
            if entry is None:
                object.__setattr__(layer, "call", _recording_wrapper(layer, layer.call))
                entry = _PATCHED[id(layer)] = [layer, 0]   # past Keras' attribute tracking
            entry[1] += 1
    outer = getattr(_RECORDING, "calls", None)
    _RECORDING.calls = calls if outer is None else {**outer, **calls}
    try:
        yield calls
    finally:
        _RECORDING.calls = outer
        with _PATCH_LOCK:
            for layer in layers:
                entry = _PATCHED[id(layer)]
                entry[1] -= 1
                if entry[1] == 0:
                    object.__delattr__(layer, "call")
                    del _PATCHED[id(layer)]


@contextlib.contextmanager
def _public_view_calls():
    """Calls recorded within the block are marked as made on the public view psi(x)."""
    outer = getattr(_RECORDING, "public", False)
    _RECORDING.public = True
    try:
        yield
    finally:
        _RECORDING.public = outer


def variable_owners(root: tf.keras.layers.Layer,
                    var_list: Variables) -> list[tuple[tf.keras.layers.Layer, list[int]]]:
    """[(layer, indices into var_list)] for the layers that directly own the variables.

    The rules assume that a variable enters the loss only through its own layer's ``call``. A
    variable owned by two layers (tied weights) is refused; one read directly by another layer's
    code would be missed, which the exactness tests of each model guard against.
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
        _rule_for(layer)    # raises for unsupported layers, before any tracing work
    return owners


# --------------------------------------------------------------------------- per-layer rules
def _fold(rows: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """[B', ...] per-row values -> [n, ...] per-example sums (B' = n * k, example-major)."""
    shape = tf.shape(rows)
    folded = tf.reshape(rows, tf.concat([[n, shape[0] // n], shape[1:]], 0))
    return tf.reduce_sum(folded, axis=1)


def _tokens(t: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """[B', ..., d] -> [n, T, d]: every position of every row of one example is a token."""
    return tf.reshape(t, tf.stack([n, -1, tf.shape(t)[-1]]))


def _linear(layer) -> None:
    act = getattr(layer, "activation", None)
    if act is not None and act is not tf.keras.activations.linear:
        raise UnsupportedLayerError(f"ghost clipping: layer {layer.name!r} has a fused activation "
                                    f"{getattr(act, '__name__', act)}; use a separate activation")


def _per_row(fn, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
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


def _filter_gradient(op, layer, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Per-row kernel gradients [B', *kernel.shape] of a Conv2D/DepthwiseConv2D layer."""
    kernel_shape = (layer.depthwise_kernel if hasattr(layer, "depthwise_kernel")
                    else layer.kernel).shape
    stride = layer.strides[0]

    def one(x, gy):
        return op(input=x, filter_sizes=list(kernel_shape), out_backprop=gy,
                  strides=[1, stride, stride, 1], padding=layer.padding.upper())

    return _per_row(one, a, g)


def _check_conv(layer) -> None:
    _linear(layer)
    if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1):
        raise UnsupportedLayerError(f"ghost clipping: {layer.name!r} needs channels_last and no "
                                    "dilation")
    if layer.strides[0] != layer.strides[1] or layer.padding not in ("valid", "same"):
        raise UnsupportedLayerError(f"ghost clipping: {layer.name!r} needs equal strides and "
                                    "'valid' or 'same' padding")


class _Rule:
    """Per-example gradients of one layer's own variables from its recorded calls.

    ``rows(layer, call, g)`` returns per-row gradients [B', *var.shape] for each own variable in
    ``layer._trainable_weights`` order (None where the rule prefers the ghost route).
    """

    def check(self, layer):  # layer-level checks before tracing; none by default
        pass

    def rows(self, layer, call, g) -> list[tf.Tensor]:
        raise NotImplementedError


class _DenseRule(_Rule):
    def check(self, layer):
        _linear(layer)


class _ConvRule(_Rule):
    filter_gradient = staticmethod(tf.raw_ops.Conv2DBackpropFilter)

    def check(self, layer):
        _check_conv(layer)
        if getattr(layer, "groups", 1) != 1:
            raise UnsupportedLayerError(f"ghost clipping: grouped Conv2D {layer.name!r}")

    def rows(self, layer, call, g):
        a = _float32(call.inputs)
        out = [_filter_gradient(self.filter_gradient, layer, a, g)]
        if layer.use_bias:
            out.append(tf.reduce_sum(g, axis=[1, 2]))
        return out


class _DepthwiseRule(_ConvRule):
    filter_gradient = staticmethod(tf.raw_ops.DepthwiseConv2dNativeBackpropFilter)

    def check(self, layer):
        _check_conv(layer)
        if layer.depth_multiplier != 1:
            raise UnsupportedLayerError(f"ghost clipping: {layer.name!r} has depth_multiplier "
                                        f"{layer.depth_multiplier} (only 1 is supported)")


def _last_axis_only(layer, rank: int) -> bool:
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


def _check_last_axis(layer, rank: int) -> None:
    if not _last_axis_only(layer, rank):
        raise UnsupportedLayerError(f"ghost clipping: {layer.name!r} must normalise only the last "
                                    f"axis, got axis={layer.axis}")


def _affine_rows(layer, xhat, g) -> list[tf.Tensor]:
    axes = list(range(1, g.shape.rank - 1))
    out = []
    if layer.scale:
        out.append(tf.reduce_sum(xhat * g, axis=axes))
    if layer.center:
        out.append(tf.reduce_sum(g, axis=axes))
    return out


class _LayerNormRule(_Rule):
    """The last axis only; checked per call, where the input rank is known."""

    def rows(self, layer, call, g):
        a = tf.cast(call.inputs, tf.float32)
        _check_last_axis(layer, a.shape.rank)
        mean, var = tf.nn.moments(a, axes=[-1], keepdims=True)
        return _affine_rows(layer, (a - mean) * tf.math.rsqrt(var + layer.epsilon), g)


def _frozen(layer, call) -> bool:
    """A BatchNorm call that normalises with its moving statistics."""
    return bool(getattr(layer, "frozen_stats", False) or call.training is False
                or not layer.trainable)


class _BatchNormRule(_Rule):
    """Frozen statistics and the last axis only; both checked per call."""

    def rows(self, layer, call, g):
        if not _frozen(layer, call):
            raise UnsupportedLayerError(
                f"ghost clipping: BatchNorm {layer.name!r} normalises with batch statistics, which "
                "mix examples (and must never be learnt from private data): freeze its statistics "
                "(tfdphpe.models.freeze_batchnorm) before private training")
        # gamma_i = sum_t G * (A - mean) * r = r * (sum_t G * A - mean * sum_t G): no xhat map.
        a = tf.cast(call.inputs, tf.float32)
        _check_last_axis(layer, a.shape.rank)
        axes = list(range(1, g.shape.rank - 1))
        g_sum = tf.reduce_sum(g, axis=axes)
        out = []
        if layer.scale:
            r = tf.math.rsqrt(layer.moving_variance + layer.epsilon)
            out.append(r * (tf.reduce_sum(g * a, axis=axes) - layer.moving_mean * g_sum))
        if layer.center:
            out.append(g_sum)
        return out


class _GroupNormRule(_Rule):
    def check(self, layer):
        if layer.axis != -1:
            raise UnsupportedLayerError(f"ghost clipping: {layer.name!r} must normalise the "
                                        "channel (last) axis")

    def rows(self, layer, call, g):
        a = tf.cast(call.inputs, tf.float32)
        channels = a.shape[-1]
        grouped = tf.reshape(a, tf.stack([tf.shape(a)[0], -1, layer.groups,
                                          channels // layer.groups]))
        mean, var = tf.nn.moments(grouped, axes=[1, 3], keepdims=True)
        xhat = tf.reshape((grouped - mean) * tf.math.rsqrt(var + layer.epsilon), tf.shape(a))
        return _affine_rows(layer, xhat, g)


class _CustomRule(_Rule):
    def rows(self, layer, call, g):
        return list(layer.per_example_gradients(call.inputs, g))


def _linear_in_output(layer) -> bool:
    """True for a custom rule that may be applied to per-example sums of output-gradient rows."""
    return bool(getattr(layer, "per_example_gradients_linear", False))


def _rule_for(layer) -> _Rule:
    if hasattr(layer, "per_example_gradients"):
        return _CustomRule()
    k = tf.keras.layers
    if isinstance(layer, k.Conv2DTranspose):
        raise UnsupportedLayerError(f"ghost clipping has no rule for {layer.name!r} "
                                    "(Conv2DTranspose); use clipping='vectorized'")
    # Order matters: DepthwiseConv2D is a Conv2D subclass.
    for cls, rule in ((k.DepthwiseConv2D, _DepthwiseRule), (k.Conv2D, _ConvRule),
                      (k.Dense, _DenseRule), (k.LayerNormalization, _LayerNormRule),
                      (k.BatchNormalization, _BatchNormRule),
                      (k.GroupNormalization, _GroupNormRule)):
        if isinstance(layer, cls):
            instance = rule()
            instance.check(layer)
            return instance
    raise UnsupportedLayerError(
        f"ghost clipping has no per-example rule for layer {layer.name!r} "
        f"({type(layer).__name__}); supported: Dense, Conv2D, DepthwiseConv2D, LayerNormalization, "
        "BatchNormalization (frozen), GroupNormalization, or a layer with a "
        "per_example_gradients(inputs, output_gradient) method; or use clipping='vectorized'")


def _float32(t) -> tf.Tensor:
    """Rules run in float32: with mixed precision the recorded inputs are float16, and norms and
    clipped sums must not be (float16 squares overflow past 256 and lose digits early)."""
    return tf.cast(tf.convert_to_tensor(t), tf.float32)


def _token_matrices(inputs, grads, n: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """All calls' rows as tokens of their example: A [n, T, din] and G [n, T, dout]."""
    a = tf.concat([_tokens(_float32(x), n) for x in inputs], 1)
    g = tf.concat([_tokens(_float32(gg), n) for gg in grads], 1)
    return a, g


def _matmul_tokens(calls: list, n: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(A, G, bias rows sum_t G) of a matmul layer's calls, in a form that keeps the digits.

    Feature DP records grad[l(x) - l(psi(x))]: the layer is called on x (A_p, output gradient
    G_p) and on psi(x) (A_q, G_q ~ -G_p), and the record A_p^T G_p + A_q^T G_q nearly cancels.
    The ghost identity on those tokens would subtract large float32 numbers and can come out
    negative (NaN) or far too small (a record let through above C). The same record is
    A_p^T (G_p + G_q) + (A_q - A_p)^T G_q, whose tokens [A_p; A_q - A_p] and [G_p + G_q; G_q]
    are small where the record is: norm and clipped sum are then computed without the
    cancellation. Calls are paired in order (the k-th private call with the k-th public call)
    when the layer has as many of each with equal shapes; otherwise the tokens stay as recorded.
    """
    a, g = _token_matrices([c.inputs for c, _ in calls], [gg for _, gg in calls], n)
    bias = tf.reduce_sum(g, axis=1)
    private = [(c, gg) for c, gg in calls if not c.public]
    public = [(c, gg) for c, gg in calls if c.public]
    if not public or len(public) != len(private) or any(
            p.inputs.shape != q.inputs.shape or pg.shape != qg.shape
            for (p, pg), (q, qg) in zip(private, public)):
        return a, g, bias
    a_p, g_p = _token_matrices([c.inputs for c, _ in private], [gg for _, gg in private], n)
    a_q, g_q = _token_matrices([c.inputs for c, _ in public], [gg for _, gg in public], n)
    return (tf.concat([a_p, a_q - a_p], 1), tf.concat([g_p + g_q, g_q], 1), bias)


def _outer_sums(a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """[n, T, din], [n, T, dout] -> [n, din, dout]: every example's A_i^T G_i."""
    return tf.matmul(a, g, transpose_a=True)


def _is_pointwise(layer) -> bool:
    return (isinstance(layer, tf.keras.layers.Conv2D)
            and not isinstance(layer, tf.keras.layers.DepthwiseConv2D)
            and tuple(layer.kernel_size) == (1, 1) and layer.strides[0] == 1)


# --------------------------------------------------------------------------- the clipped sum
class _LayerWork:
    """Per-example squared norms of one layer, and then its share of the clipped sum."""

    def __init__(self, layer, own: list[int], var_refs: list, calls: list[_Call],
                 grads: list[tf.Tensor], n: tf.Tensor, ghost: Optional[bool]):
        self.layer, self.own, self.n = layer, own, n
        self.weights = list(layer._trainable_weights)   # pylint: disable=protected-access
        position = {w.ref(): j for j, w in enumerate(self.weights)}
        self.targets = [(i, position[var_refs[i]]) for i in own]   # (var_list index, weight)
        self.calls = [(c, g) for c, g in zip(calls, grads)]
        self.matmul = isinstance(layer, tf.keras.layers.Dense) or _is_pointwise(layer)
        self.ghost = False
        self.kept: Optional[list[tf.Tensor]] = None
        if self.matmul:
            self.a, self.g, self.kept_bias = _matmul_tokens(self.calls, n)
            self.ghost = _prefer_ghost(self.a, self.g, ghost)

    def squared_norms(self) -> tf.Tensor:
        if self.matmul:
            return self._matmul_norms()
        per_var = None
        for call, g in self.calls:
            if _linear_in_output(self.layer):
                # Sum each example's rows (windows) first: the rule then runs on n rows, not B'.
                call, g = _Call(None, call.outputs, call.training), _fold(g, self.n)
            rows = self._rule_rows(call, g)
            per_var = rows if per_var is None else [p + r for p, r in zip(per_var, rows)]
        self.kept = [_fold(r, self.n) for r in per_var]
        return self._targeted_norms()

    def _targeted_norms(self) -> tf.Tensor:
        """Squared norms over the weights in var_list (a layer may own others that stay fixed)."""
        return tf.add_n([_sq(self.kept[j]) for _, j in self.targets])

    def _rule_rows(self, call, g):
        rows = _rule_for(self.layer).rows(self.layer, call, g)
        if len(rows) != len(self.weights):
            raise UnsupportedLayerError(f"ghost clipping: rule for {self.layer.name!r} gave "
                                        f"{len(rows)} gradients for {len(self.weights)} weights")
        return rows

    def _matmul_norms(self) -> tf.Tensor:
        a, g = self.a, self.g
        counted = {j for _, j in self.targets}      # 0: kernel, 1: bias
        terms = []
        if self.ghost:
            if 0 in counted:
                aa = tf.matmul(a, a, transpose_b=True)
                gg = tf.matmul(g, g, transpose_b=True)
                # A sum of products: rounding can take a tiny true value below 0.
                terms.append(tf.maximum(tf.einsum("btu,btu->b", aa, gg), 0.0))
        else:
            self.kept = [_outer_sums(a, g)]
            if 0 in counted:
                terms.append(_sq(self.kept[0]))
        if _has_bias(self.layer):
            if 1 in counted:
                terms.append(_sq(self.kept_bias))
        return tf.add_n(terms)

    def clipped_sums(self, scale: tf.Tensor) -> list[tuple[int, tf.Tensor]]:
        """[(index in var_list, sum_i scale_i g_i)] for this layer's variables."""
        if self.matmul:
            if self.ghost:
                n_t = tf.shape(self.a)[0] * tf.shape(self.a)[1]
                sg = self.g * tf.reshape(scale, [-1, 1, 1])
                kernel = tf.matmul(tf.reshape(self.a, tf.stack([n_t, -1])),
                                   tf.reshape(sg, tf.stack([n_t, -1])), transpose_a=True)
            else:
                kernel = tf.tensordot(scale, self.kept[0], axes=1)
            sums = [kernel]
            if _has_bias(self.layer):
                sums.append(tf.linalg.matvec(self.kept_bias, scale, transpose_a=True))
        else:
            sums = [tf.tensordot(scale, k, axes=1) for k in self.kept]
        return [(i, tf.reshape(sums[j], self.weights[j].shape)) for i, j in self.targets]


class _ConvNormWork(_LayerWork):
    """A convolution whose output only a frozen BatchNorm reads: both layers from one kernel.

    The BatchNorm is y = gamma * r * (z - mean) + beta per channel (r = 1 / sqrt(var + eps)), so
    with G = dL/dy the convolution's output gradient is dL/dz = G * gamma * r. Let K_i be the
    filter gradient of example i's input A_i against G_i (the conv rule's kernel, fed G instead of
    dL/dz). Then, per output channel c:

        conv kernel_i = K_i * gamma * r            conv bias_i = sum_s G_i * gamma * r
        gamma_i = sum_s G_i (z_i - mean) r = r * (<W, K_i>_c + b * sum_s G_i - mean * sum_s G_i)
        beta_i  = sum_s G_i

    using sum_s G_i z_i = <W, K_i>_c + b_c sum_s G_i (z is linear in W and b). The BatchNorm
    rule's pass over the map (G * A, the largest elementwise work of the step on conv stages)
    becomes a sum of G alone plus work on kernel-sized tensors. Nothing is divided by gamma
    (TinyViT starts some at 0).
    """

    def __init__(self, conv, norm, own: list[int], var_refs: list, inputs: list[tf.Tensor],
                 grads: list[tf.Tensor], n: tf.Tensor, tokens=None):
        self.layer, self.norm, self.n = conv, norm, n
        self.weights = (list(conv._trainable_weights)            # pylint: disable=protected-access
                        + list(norm._trainable_weights))         # pylint: disable=protected-access
        position = {w.ref(): j for j, w in enumerate(self.weights)}
        self.targets = [(i, position[var_refs[i]]) for i in own]
        self.inputs, self.grads = inputs, grads
        self.tokens = tokens      # a 1x1 conv's (A, G) token matrices, as _token_matrices gives
        self.matmul, self.ghost, self.kept = False, False, None

    def squared_norms(self) -> tf.Tensor:
        conv, norm, n = self.layer, self.norm, self.n
        if self.tokens is not None:
            a, g = self.tokens
            k = _outer_sums(a, g)
            g_sum = tf.reduce_sum(g, axis=1)
        else:   # the conv rule's kernel rows, fed the BatchNorm's output gradient
            rule = _rule_for(conv)
            k = _fold(tf.add_n([rule.rows(conv, _Call(x, None, None), gg)[0]
                                for x, gg in zip(self.inputs, self.grads)]), n)
            g_sum = _fold(tf.add_n([tf.reduce_sum(gg, axis=[1, 2]) for gg in self.grads]), n)
        kernel = (conv.depthwise_kernel if isinstance(conv, tf.keras.layers.DepthwiseConv2D)
                  else conv.kernel)
        channels = norm.moving_mean.shape[0]
        # Output channel last: conv [kh*kw*cin, cout]; depthwise (multiplier 1) [kh*kw, C].
        k = tf.reshape(tf.cast(k, tf.float32), tf.stack([n, -1, channels]))
        g_sum = tf.cast(g_sum, tf.float32)
        r = tf.math.rsqrt(norm.moving_variance + norm.epsilon)
        gamma_r = r * norm.gamma if norm.scale else r
        per = {kernel.ref(): tf.reshape(k * gamma_r, tf.concat([[n], kernel.shape], 0))}
        if conv.use_bias:
            per[conv.bias.ref()] = g_sum * gamma_r
        if norm.scale:
            g_dot_z = tf.einsum("npc,pc->nc", k, tf.reshape(tf.cast(kernel, tf.float32),
                                                            [-1, channels]))
            if conv.use_bias:
                g_dot_z += tf.cast(conv.bias, tf.float32) * g_sum
            per[norm.gamma.ref()] = r * (g_dot_z - norm.moving_mean * g_sum)
        if norm.center:
            per[norm.beta.ref()] = g_sum
        self.kept = [per[w.ref()] for w in self.weights]
        return self._targeted_norms()


def _conv_norm_pairs(recorded) -> dict[int, int]:
    """{index in ``recorded`` of a frozen BatchNorm: index of the convolution feeding it}.

    Checked on the traced graph before the backward pass adds readers: every call of the
    BatchNorm reads the output of a call of the same convolution, as many calls each, and the
    only ops reading that output are ops the BatchNorm call created (so dL/dz is gamma * r * G
    exactly). Executing eagerly there is no graph to check and nothing is paired.
    """
    convs = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D)
    producer = {}
    for r, (layer, _, cs) in enumerate(recorded):
        if isinstance(layer, convs):
            for c in cs:
                producer[id(c.outputs)] = r
    pairs = {}
    for r, (layer, _, cs) in enumerate(recorded):
        if not isinstance(layer, tf.keras.layers.BatchNormalization) or not cs:
            continue
        sources = {producer.get(id(c.inputs)) for c in cs}
        if len(sources) != 1 or None in sources:
            continue
        conv = sources.pop()
        if len(recorded[conv][2]) != len(cs):
            continue
        if all(c.ops is not None and _frozen(layer, c) and tf.is_tensor(c.inputs)
               and _last_axis_only(layer, c.inputs.shape.rank)
               and all(op.name in c.ops for op in c.inputs.consumers()) for c in cs):
            pairs[r] = conv
    return pairs


def _has_bias(layer) -> bool:
    return bool(getattr(layer, "use_bias", False))


def _sq(t: tf.Tensor) -> tf.Tensor:
    flat = tf.reshape(t, tf.stack([tf.shape(t)[0], -1]))
    return tf.einsum("bi,bi->b", flat, flat)


def _prefer_ghost(a: tf.Tensor, g: tf.Tensor, ghost: Optional[bool]) -> bool:
    if ghost is not None:
        return ghost
    tokens, din, dout = a.shape[1], a.shape[2], g.shape[2]
    if tokens is None or din is None or dout is None:
        return False     # unknown token count: forming A_i^T G_i has bounded cost
    return tokens * (din + dout) < din * dout


def ghost_clipped_sum(l2_norm_clip: tf.Tensor, loss_fn: LossFn, batch: Any, var_list: Variables,
                      layers: tf.keras.layers.Layer, public_loss_fn: Optional[LossFn] = None,
                      batch_mask: Optional[tf.Tensor] = None, ghost: Optional[bool] = None,
                      return_norms: bool = False):
    """sum_i mask_i * clip(record_i) for ``var_list``, the same value as ``clipped_sum``.

    Args:
      l2_norm_clip: C.
      loss_fn: batch -> per-example losses [B]; must run ``layers`` (the model) on the batch.
      batch: nest of tensors with leading dimension B.
      var_list: trainable variables, each owned by a supported layer inside ``layers``.
      layers: the Keras model (or layer) whose sublayers own ``var_list``.
      public_loss_fn: Feature DP: the record is grad[l(x_i) - l(psi(x_i))].
      batch_mask: optional [B] 0/1 mask; padded examples contribute nothing.
      ghost: None (mixed, by cost), True (ghost norms for every matmul layer) or False (form
        every per-example gradient); the result is the same, only cost differs.
      return_norms: also return the per-example (unclipped) norms [B].
    """
    var_list = list(var_list)
    works, n = _record(loss_fn, batch, var_list, layers, public_loss_fn, batch_mask, ghost)
    sq = tf.zeros([n], tf.float32)
    for work in works:
        sq = sq + tf.cast(work.squared_norms(), tf.float32)
    norms = tf.sqrt(tf.maximum(sq, 0.0))
    # Padding and records whose norm is not finite are left out (mechanisms.clip_scales).
    keep, poisoned = keep_mask(norms, batch_mask)
    scale = tf.where(keep, clip_scales(norms, l2_norm_clip), tf.zeros_like(norms))
    for work in works:
        _guard_padding(work, keep, poisoned)
    result = [tf.zeros_like(v) for v in var_list]
    for work in works:
        for i, s in work.clipped_sums(scale):
            result[i] = tf.cast(s, var_list[i].dtype)
    return (result, norms) if return_norms else result


def _record(loss_fn, batch, var_list, layers, public_loss_fn, batch_mask, ghost):
    """Forward pass with recorded layer calls, one backward pass to the layer outputs.

    Returns (one _LayerWork per called owner layer, batch size n).
    """
    owners = variable_owners(layers, var_list)
    owner_layers = [layer for layer, _ in owners]
    with record_calls(owner_layers) as calls:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(var_list)
            losses = loss_fn(batch)
            if public_loss_fn is not None:
                with _public_view_calls():
                    public = public_loss_fn(batch)
                losses = losses - public
            if batch_mask is not None:
                keep = tf.cast(batch_mask, tf.bool)
                losses = tf.where(keep, losses, tf.zeros_like(losses))
            total = tf.reduce_sum(losses)
    n = tf.shape(losses)[0]
    recorded = [(layer, own, calls[id(layer)]) for layer, own in owners]
    pairs = _conv_norm_pairs(recorded)          # before the backward pass adds readers
    outputs = [c.outputs for _, _, cs in recorded for c in cs]
    out_grads = tape.gradient(total, outputs, unconnected_gradients=_ZERO) if outputs else []
    out_grads = [_float32(g) for g in out_grads]
    grads, k = [], 0
    for _, _, cs in recorded:
        grads.append(out_grads[k:k + len(cs)])
        k += len(cs)
    refs = [v.ref() for v in var_list]
    fused = {}                                  # conv index -> its fused work
    for norm_r, conv_r in pairs.items():
        conv, conv_own, conv_calls = recorded[conv_r]
        norm, norm_own, norm_calls = recorded[norm_r]
        inputs = [next(cc.inputs for cc in conv_calls if cc.outputs is c.inputs)
                  for c in norm_calls]
        tokens = None
        if _is_pointwise(conv):
            tokens = _token_matrices(inputs, grads[norm_r], n)
            if _prefer_ghost(*tokens, ghost):
                continue       # a ghost-norm 1x1 conv never forms the kernel the fusion needs
        fused[conv_r] = _ConvNormWork(conv, norm, conv_own + norm_own, refs, inputs,
                                      grads[norm_r], n, tokens)
    skip = {norm_r for norm_r, conv_r in pairs.items() if conv_r in fused}
    works = []
    for r, (layer, own, cs) in enumerate(recorded):
        if r in fused:
            works.append(fused[r])
        elif cs and r not in skip:    # a layer never called has zero gradient
            works.append(_LayerWork(layer, own, refs, cs, grads[r], n, ghost))
    return works, n


def per_example_gradients(loss_fn: LossFn, batch: Any, var_list: Variables,
                          layers: tf.keras.layers.Layer) -> list[tf.Tensor]:
    """Every example's gradient, [B, *var.shape] per variable, from the same layer rules.

    The same values as ``per_example.per_example_gradients`` (which vectorizes the whole model);
    used for the public subspace, which needs the gradients themselves, not only their norms.
    """
    var_list = list(var_list)
    works, n = _record(loss_fn, batch, var_list, layers, None, None, ghost=False)
    result = [None] * len(var_list)
    for work in works:
        work.squared_norms()    # forms and keeps the per-example gradients
        kept = list(work.kept) + ([work.kept_bias] if work.matmul and _has_bias(work.layer)
                                  else [])
        for i, j in work.targets:
            result[i] = tf.reshape(kept[j], tf.concat([[n], var_list[i].shape], 0))
    return [tf.zeros(tf.concat([[n], v.shape], 0), v.dtype) if r is None else
            tf.cast(r, v.dtype) for r, v in zip(result, var_list)]


def _guard_padding(work: _LayerWork, keep: tf.Tensor, poisoned: tf.Tensor) -> None:
    """0 * NaN is NaN: zero the left-out examples' rows when one of them is not finite."""
    def zero(t):
        k = tf.reshape(keep, [-1] + [1] * (t.shape.rank - 1))
        return lambda: tf.where(k, t, tf.zeros_like(t))

    if work.matmul:
        if work.ghost:
            work.a = tf.cond(poisoned, zero(work.a), lambda: work.a)
            work.g = tf.cond(poisoned, zero(work.g), lambda: work.g)
        else:
            work.kept = [tf.cond(poisoned, zero(t), lambda t=t: t) for t in work.kept]
        if _has_bias(work.layer):
            work.kept_bias = tf.cond(poisoned, zero(work.kept_bias), lambda: work.kept_bias)
    else:
        work.kept = [tf.cond(poisoned, zero(t), lambda t=t: t) for t in work.kept]
