"""Per-record clipping from layer inputs and output gradients: mixed ghost clipping + book-keeping.

The vectorized path (``mechanisms.clipped_sum``) forms every record's full gradient. This path
never does for the model as a whole. One forward pass records, for every layer that owns a
trainable variable, its inputs and output Z; one backward pass of the summed loss gives the output
gradients G = dL/dZ. With frozen normalisation statistics no example influences another, so row i
of G is record i's own dl_i/dZ, and record i's gradient for that layer is a small function of
(A_i, G_i) alone, computed by the layer's **rule** (``registry.py``; one module per layer family
in ``rules/``, registered by layer class):

    Dense, EinsumDense, 1x1 Conv2D   kernel_i = A_i^T G_i over the record's tokens (ghost norm or
                                     formed, by cost), bias_i = sum_t G_i
    Conv1D/2D/3D, Depthwise,         the stock filter-gradient kernel on one row at a time
    Separable, Conv2DTranspose
    LayerNorm, GroupNorm,            gamma_i = sum xhat_i * G_i, beta_i = sum G_i (xhat recomputed;
    BatchNorm (frozen)               BatchNorm only with frozen statistics)
    Embedding                        norms from the token ids, sparse sums (never vocab x dim)
    a layer's own rule               ``per_example_gradients(inputs, output_gradient)``
    anything else (fallback)         that layer alone, called again per row (vector-Jacobian
                                     product); refused only where that cannot be exact

A fused activation (``Dense(..., activation="gelu")``) is applied outside the recorded call, so
the rules see the gradient before it. Per-record squared norms add up over layers, giving the clip
factors s_i = C / max(||g_i||, C) exactly as ``tf.clip_by_global_norm`` would; the clipped sum
sum_i s_i g_i then needs no second backward pass (book-keeping): for a layer whose per-record
gradients were formed it is a weighted sum of them, for a matmul layer left "ghost" it is one
ordinary weight-gradient matmul with G's rows scaled by s_i: A^T (s * G).

Mixed: a matmul layer on T tokens per record with din x dout weights gets its norm either from the
ghost identity ||A_i^T G_i||^2 = sum_{t,u} (A_i A_i^T)_{tu} (G_i G_i^T)_{tu} (cost ~ T^2 (din +
dout), memory T^2) or by forming A_i^T G_i (cost ~ T din dout, memory din dout), whichever is
cheaper for its shapes (Bu et al. 2022, "mixed ghost clipping").

Conv + frozen BatchNorm: when only the BatchNorm reads a convolution's output (checked on the
traced graph), both layers come from one filter gradient against the BatchNorm's output gradient
(``fusion.py``), with no pass over the feature map for gamma.

Records: an example, or (``examples_per_unit`` = k) a unit of k consecutive example slots whose
loss is the mean of its examples' (a person's or a video's record). Layers called by windows
(attention on B * nW windows) have B' rows, record-major; rows fold back to records by summing
groups of B'/n consecutive rows, and a matmul layer's tokens are all the record's rows' positions,
so a unit is one record whose tokens are all its examples' tokens. A layer called more than once
in the loss (Feature DP's l(x) - l(psi(x))) gets the sum of its calls' contributions.

Why we write this ourselves: TF-Privacy's own "fast gradient clipping" registry (0.9) covers Dense,
Embedding, EinsumDense and LayerNormalization on Keras functional models with a second full
backward pass; our models nest custom layers, call layers on windows, and need convolution,
normalisation, bias-table and unit rules and a per-layer fallback.
"""

from tfdphpe.privacy.ghost.engine import (ghost_clipped_sum, per_example_gradients, rules_in_use,
                                          variable_owners)
from tfdphpe.privacy.ghost.recording import record_calls
from tfdphpe.privacy.ghost.registry import (MatmulRule, Rule, RowsRule, UnsupportedLayerError,
                                            register_rule, rule_for)
# The built-in rules register themselves on import.
from tfdphpe.privacy.ghost.rules import conv, custom, dense, einsum, embedding, fallback, norms  # noqa: F401,E501

__all__ = ["MatmulRule", "Rule", "RowsRule", "UnsupportedLayerError", "ghost_clipped_sum",
           "per_example_gradients", "record_calls", "register_rule", "rule_for", "rules_in_use",
           "variable_owners"]
