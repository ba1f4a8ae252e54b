"""DP-safe normalisation and the papers' training strategies (DESIGN 2.6, 4).

* ``freeze_batchnorm``: every BatchNorm normalises with its stored statistics and never updates
  them (required for all DP training: statistics would leak private data without noise).
* ``apply_strategy``: which variables train.
    - ``finetune``: stem and stages 1-3 frozen except their LayerNorms; stage 4, the head and
      every LayerNorm train.
    - ``full``: everything trains (starting from pretrained weights).
    - ``scratch``: everything trains (random initialisation; the caller simply loads nothing).
* ``transfer_joint_head``: initialise an MPII-16 model from a COCO-17 one.

Trainability is set on leaf layers only: Keras drops the weights of every child of a frozen
container, which would freeze the LayerNorms that ``finetune`` keeps training.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from tfdphpe.keras_utils import is_batchnorm_like, leaf_layers
from tfdphpe.models.layers import BatchNorm
from tfdphpe.models.tinyvit import stage_of_layer

STRATEGIES = ("finetune", "full", "scratch")


def freeze_batchnorm(model: tf.keras.Model, frozen: bool = True) -> int:
    """Pins every BatchNorm of ``model`` to inference mode; returns how many there are.

    Retrace any ``tf.function`` built before the call. A stock Keras BatchNormalization or
    SyncBatchNormalization (not ours) cannot be pinned without also freezing its affine
    parameters, so it is refused (as is any other layer that keeps moving statistics).
    """
    count = 0
    for layer in leaf_layers(model):
        if isinstance(layer, BatchNorm):
            layer.frozen_stats = frozen
            count += 1
        elif is_batchnorm_like(layer):
            raise TypeError(f"{layer.name} is a {type(layer).__name__} that keeps batch "
                            "statistics; build models with tfdphpe.models so BatchNorm can be "
                            "frozen safely (or set its trainable=False)")
    return count


def batchnorm_is_frozen(model: tf.keras.Model) -> bool:
    """True when every BatchNorm in ``model`` is pinned to its stored statistics."""
    return all(layer.frozen_stats for layer in leaf_layers(model)
               if isinstance(layer, BatchNorm))


def apply_strategy(model: tf.keras.Model, strategy: str) -> list[str]:
    """Sets trainable flags for ``strategy`` on a model from ``build_pose_model``.

    Returns the names of the trainable variables.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    model.trainable = True
    if strategy == "finetune":
        backbone = model.get_layer("backbone")
        last_stage = max(stage_of_layer(l.name) for l in backbone.layers
                         if stage_of_layer(l.name) is not None)
        for top in backbone.layers:
            stage = stage_of_layer(top.name)
            if stage is None or stage == last_stage:
                continue
            for leaf in leaf_layers(top):
                leaf.trainable = isinstance(leaf, tf.keras.layers.LayerNormalization)
    return [v.name for v in model.trainable_variables]


def transfer_joint_head(source: tf.keras.Model, target: tf.keras.Model,
                        joint_map: Mapping[int, int]) -> list[int]:
    """Copies a pose model into one with another joint set (e.g. COCO-17 -> MPII-16).

    The backbone and the head's joint-shared Dense layers are copied whole; the per-joint 1x1
    conv is copied for target joints in ``joint_map`` (target index -> source index, e.g.
    ``tfdphpe.data.joints.MPII_TO_COCO``) and keeps its fresh initialisation for the rest.

    Returns:
      The target joint indices that were initialised fresh.
    """
    src_bb, dst_bb = source.get_layer("backbone"), target.get_layer("backbone")
    if len(src_bb.weights) != len(dst_bb.weights):
        raise ValueError("source and target backbones differ (variant or normalisation)")
    for a, b in zip(src_bb.weights, dst_bb.weights):
        if a.shape != b.shape:
            raise ValueError(f"backbone weight {b.name}: source {a.shape} vs target {b.shape}")
        b.assign(a)
    src_head, dst_head = source.get_layer("simcc_head"), target.get_layer("simcc_head")
    for dense in ("mlp_head_x", "mlp_head_y"):
        for a, b in zip(getattr(src_head, dense).weights, getattr(dst_head, dense).weights):
            if a.shape != b.shape:
                raise ValueError(f"{dense}: input size or split ratio differ ({a.shape} vs "
                                 f"{b.shape})")
            b.assign(a)
    k_src, k_dst = src_head.num_joints, dst_head.num_joints
    kernel = dst_head.final_layer.kernel.numpy()
    bias = dst_head.final_layer.bias.numpy()
    src_kernel = src_head.final_layer.kernel.numpy()
    src_bias = src_head.final_layer.bias.numpy()
    for t, s in joint_map.items():
        if not (0 <= t < k_dst and 0 <= s < k_src):
            raise ValueError(f"joint map entry {t} -> {s} out of range ({k_dst} <- {k_src})")
        kernel[..., t] = src_kernel[..., s]
        bias[t] = src_bias[s]
    dst_head.final_layer.kernel.assign(kernel)
    dst_head.final_layer.bias.assign(bias)
    return sorted(set(range(k_dst)) - set(joint_map))


def count_params(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))
