"""A convolution whose output only a frozen BatchNorm reads: both layers from one kernel.

The BatchNorm is y = gamma * r * (z - mean) + beta per channel (r = 1 / sqrt(var + eps)), so
with G = dL/dy the convolution's output gradient is dL/dz = G * gamma * r. Let K_i be the filter
gradient of record i's input A_i against G_i (the conv rule's kernel, fed G instead of dL/dz).
Then, per output channel c:

    conv kernel_i = K_i * gamma * r            conv bias_i = sum_s G_i * gamma * r
    gamma_i = sum_s G_i (z_i - mean) r = r * (<W, K_i>_c + b * sum_s G_i - mean * sum_s G_i)
    beta_i  = sum_s G_i

using sum_s G_i z_i = <W, K_i>_c + b_c sum_s G_i (z is linear in W and b). The BatchNorm rule's
pass over the map (G * A, the largest elementwise work of the step on conv stages) becomes a sum
of G alone plus work on kernel-sized tensors. Nothing is divided by gamma (TinyViT starts some
at 0). Exact only if nothing but the BatchNorm reads z: ``conv_norm_pairs`` checks that on the
traced graph before the backward pass adds readers; eagerly nothing is paired.

Tests: tests/privacy/test_ghost.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfdphpe.privacy.ghost.recording import Call
from tfdphpe.privacy.ghost.registry import fold, own_weights, tokens
from tfdphpe.privacy.ghost.rules.conv import ConvRule, DepthwiseRule
from tfdphpe.privacy.ghost.rules.norms import BatchNormRule, frozen
from tfdphpe.privacy.ghost.rules.norms import axes as norm_axes
from tfdphpe.privacy.ghost.works import Work, outer_sums, prefer_ghost


def _fusable_conv(layer, rule) -> bool:
    return (type(rule) in (ConvRule, DepthwiseRule) and layer.rank == 2
            and getattr(layer, "activation", None) in (None, tf.keras.activations.linear))


def conv_norm_pairs(recorded, rules) -> dict[int, int]:
    """{index in ``recorded`` of a frozen BatchNorm: index of the convolution feeding it}.

    Checked on the traced graph before the backward pass adds readers: every call of the
    BatchNorm reads the output of a call of the same convolution, as many calls each, and the
    only ops reading that output are ops the BatchNorm call created (so dL/dz is gamma * r * G
    exactly). Executing eagerly there is no graph to check and nothing is paired.
    """
    producer = {}
    for r, (layer, _, cs) in enumerate(recorded):
        if _fusable_conv(layer, rules[r]):
            for c in cs:
                producer[id(c.outputs)] = r
    pairs = {}
    for r, (layer, _, cs) in enumerate(recorded):
        if type(rules[r]) is not BatchNormRule or not cs:
            continue
        sources = {producer.get(id(c.inputs)) for c in cs}
        if len(sources) != 1 or None in sources:
            continue
        conv = sources.pop()
        if len(recorded[conv][2]) != len(cs):
            continue
        if all(c.ops is not None and frozen(layer, c) and tf.is_tensor(c.inputs)
               and norm_axes(layer, c.inputs.shape.rank) == [c.inputs.shape.rank - 1]
               and all(op.name in c.ops for op in c.inputs.consumers()) for c in cs):
            pairs[r] = conv
    return pairs


class ConvNormWork(Work):
    """Both layers' per-record gradients from one filter gradient (module docstring)."""

    def __init__(self, conv, norm, conv_rule, own: list[int], var_refs: list,
                 inputs: list[tf.Tensor], grads: list[tf.Tensor], n: tf.Tensor, pointwise=None):
        super().__init__(conv, own, var_refs, n, weights=own_weights(conv) + own_weights(norm))
        self.norm, self.rule = norm, conv_rule
        self.inputs, self.grads = inputs, grads
        self.pointwise = pointwise     # a 1x1 conv's (A, G) token matrices

    def squared_norms(self) -> tf.Tensor:
        conv, norm, n = self.layer, self.norm, self.n
        if self.pointwise is not None:
            a, g = self.pointwise
            k = outer_sums(a, g)
            g_sum = tf.reduce_sum(g, axis=1)
        else:   # the conv rule's kernel rows, fed the BatchNorm's output gradient
            k = fold(tf.add_n([self._kernel_rows(x, gg)
                               for x, gg in zip(self.inputs, self.grads)]), n)
            g_sum = fold(tf.add_n([tf.reduce_sum(gg, axis=[1, 2]) for gg in self.grads]), n)
        kernel = conv.depthwise_kernel if hasattr(conv, "depthwise_kernel") else conv.kernel
        channels = norm.moving_mean.shape[0]
        # Output channel last: conv [kh*kw*cin, cout]; depthwise [kh*kw, C * multiplier].
        k = tf.reshape(tf.cast(k, tf.float32), tf.stack([n, -1, channels]))
        g_sum = tf.cast(g_sum, tf.float32)
        r = tf.math.rsqrt(tf.cast(norm.moving_variance, tf.float32) + norm.epsilon)
        gamma_r = r * norm.gamma if norm.scale else r
        per = {kernel.ref(): tf.reshape(k * gamma_r, tf.concat([[n], kernel.shape], 0))}
        if conv.use_bias:
            per[conv.bias.ref()] = g_sum * gamma_r
        if norm.scale:
            g_dot_z = tf.einsum("npc,pc->nc", k, tf.reshape(tf.cast(kernel, tf.float32),
                                                            [-1, channels]))
            if conv.use_bias:
                g_dot_z += tf.cast(conv.bias, tf.float32) * g_sum
            per[norm.gamma.ref()] = r * (g_dot_z - tf.cast(norm.moving_mean, tf.float32) * g_sum)
        if norm.center:
            per[norm.beta.ref()] = g_sum
        self.kept = {j: per[w.ref()] for j, w in enumerate(self.weights)}
        return tf.add_n(self._kept_norms())

    def _kernel_rows(self, x, g) -> tf.Tensor:
        rows = self.rule.rows(self.layer, Call(x, None), g)
        kernel = (self.layer.depthwise_kernel if hasattr(self.layer, "depthwise_kernel")
                  else self.layer.kernel)
        return rows[next(j for j, w in enumerate(own_weights(self.layer)) if w is kernel)]


def fused_works(pairs, recorded, rules, grads, n, var_refs, ghost) -> tuple[dict, set]:
    """({conv index: ConvNormWork}, {BatchNorm indices they absorb}) for ``pairs`` (from
    ``conv_norm_pairs``, found before the backward pass)."""
    fused = {}
    for norm_r, conv_r in pairs.items():
        conv, conv_own, conv_calls = recorded[conv_r]
        norm, norm_own, norm_calls = recorded[norm_r]
        inputs = [next(cc.inputs for cc in conv_calls if cc.outputs is c.inputs)
                  for c in norm_calls]
        pointwise = None
        if isinstance(rules[conv_r], ConvRule) and ConvRule.pointwise(conv):
            pointwise = (tf.concat([tokens(tf.cast(x, tf.float32), n) for x in inputs], 1),
                         tf.concat([tokens(g, n) for g in grads[norm_r]], 1))
            if prefer_ghost(*pointwise, ghost):
                continue       # a ghost-norm 1x1 conv never forms the kernel the fusion needs
        fused[conv_r] = ConvNormWork(conv, norm, rules[conv_r], conv_own + norm_own, var_refs,
                                     inputs, grads[norm_r], n, pointwise)
    absorbed = {norm_r for norm_r, conv_r in pairs.items() if conv_r in fused}
    return fused, absorbed
