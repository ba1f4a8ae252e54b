"""SimCC head and the pose model builder (Li et al., ECCV 2022).

Head: 1x1 conv from the last backbone stage to K joint channels, each channel flattened
(8x6 = 48 values at 256x192), then two Dense layers shared across joints to the x bins (W*k) and
the y bins (H*k). As in mmpose's SimCC head for ResNet/ViT backbones.

Tests: tests/models/test_pose_model.py.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfdphpe.models.layers import CUSTOM_OBJECTS as _LAYER_OBJECTS
from tfdphpe.models.layers import _build
from tfdphpe.models.tinyvit import TinyViT, TinyViTConfig


class SimCCHead(tf.keras.layers.Layer):
    """Feature map [B, h, w, C] -> {"x": [B, K, Wk], "y": [B, K, Hk]} logits."""

    def __init__(self, num_joints: int, num_bins_x: int, num_bins_y: int, **kwargs):
        super().__init__(**kwargs)
        self.num_joints = num_joints
        self.num_bins_x = num_bins_x
        self.num_bins_y = num_bins_y
        self.final_layer = tf.keras.layers.Conv2D(num_joints, 1, name="final_layer",
                                                  dtype=self.dtype_policy)
        self.mlp_head_x = tf.keras.layers.Dense(num_bins_x, name="mlp_head_x",
                                                dtype=self.dtype_policy)
        self.mlp_head_y = tf.keras.layers.Dense(num_bins_y, name="mlp_head_y",
                                                dtype=self.dtype_policy)

    def build(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError("SimCCHead needs a static feature-map size (the Dense layers take "
                             f"h*w inputs); got {tuple(input_shape)}")
        flat = int(input_shape[1]) * int(input_shape[2])
        _build(self.final_layer, input_shape)
        _build(self.mlp_head_x, [None, self.num_joints, flat])
        _build(self.mlp_head_y, [None, self.num_joints, flat])
        super().build(input_shape)

    def call(self, features):
        x = self.final_layer(features)  # [B, h, w, K]
        shape = tf.shape(x)
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [shape[0], self.num_joints,
                                                        shape[1] * shape[2]])
        return {"x": self.mlp_head_x(x), "y": self.mlp_head_y(x)}

    def get_config(self):
        config = super().get_config()
        config.update(num_joints=self.num_joints, num_bins_x=self.num_bins_x,
                      num_bins_y=self.num_bins_y)
        return config


def build_pose_model(variant: str | TinyViTConfig = "5m",
                     input_size: Sequence[int] = (256, 192),
                     num_joints: int = 16,
                     split_ratio: float = 2.0,
                     norm: str = "batch",
                     name: str | None = None) -> tf.keras.Model:
    """TinyViT backbone + SimCC head.

    Args:
      variant: TinyViT variant ("5m", "11m", "21m") or a reduced ``TinyViTConfig``.
      input_size: (height, width) of the person crop.
      num_joints: K (16 for MPII, 17 for COCO).
      split_ratio: SimCC bins per pixel (k).
      norm: "batch" or "group" normalisation in the backbone.
      name: model name.

    Returns:
      Keras model: image [B, H, W, 3] float32 (normalised) -> {"x": [B, K, W*k],
      "y": [B, K, H*k]}. The backbone is the nested model named "backbone", the head the layer
      named "simcc_head".
    """
    h, w = int(input_size[0]), int(input_size[1])
    if num_joints <= 0:
        raise ValueError(f"num_joints must be positive, got {num_joints}")
    backbone = TinyViT(variant, input_shape=(h, w, 3), norm=norm, name="backbone")
    head = SimCCHead(num_joints, int(round(w * split_ratio)), int(round(h * split_ratio)),
                     name="simcc_head")
    image = tf.keras.Input(shape=(h, w, 3), name="image")
    outputs = head(backbone(image))
    if name is None:
        name = f"pose_tinyvit_{variant}" if isinstance(variant, str) else "pose_tinyvit"
    model = tf.keras.Model(image, {"x": outputs["x"], "y": outputs["y"]}, name=name)
    return model


CUSTOM_OBJECTS = dict(_LAYER_OBJECTS, SimCCHead=SimCCHead)
tf.keras.utils.register_keras_serializable(package="tfdphpe")(SimCCHead)
