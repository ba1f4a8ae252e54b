"""TinyViT backbone (5M / 11M / 21M) as a Keras functional model.

Layer names mirror timm's module paths with dots replaced by underscores
(``stages_2_blocks_3`` is timm's ``stages.2.blocks.3``), which the checkpoint converter uses.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from tfdphpe.models.layers import MBConv, PatchEmbed, PatchMerging, TinyViTBlock


@dataclasses.dataclass(frozen=True)
class TinyViTConfig:
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_sizes: tuple[int, ...]
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3


VARIANTS: dict[str, TinyViTConfig] = {
    "5m": TinyViTConfig((64, 128, 160, 320), (2, 2, 6, 2), (2, 4, 5, 10), (7, 7, 14, 7)),
    "11m": TinyViTConfig((64, 128, 256, 448), (2, 2, 6, 2), (2, 4, 8, 14), (7, 7, 14, 7)),
    "21m": TinyViTConfig((96, 192, 384, 576), (2, 2, 6, 2), (3, 6, 12, 18), (7, 7, 14, 7)),
}


def get_variant(variant: str | TinyViTConfig) -> TinyViTConfig:
    if isinstance(variant, TinyViTConfig):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown TinyViT variant {variant!r}; "
                         f"expected one of {sorted(VARIANTS)}") from None


def TinyViT(variant: str | TinyViTConfig = "5m",
            input_shape: Sequence[int | None] = (256, 192, 3),
            return_stages: bool = False,
            norm: str = "batch",
            name: str | None = None) -> tf.keras.Model:
    """Builds the TinyViT backbone.

    Args:
      variant: "5m", "11m", "21m" or a ``TinyViTConfig`` (reduced configurations for tests).
      input_shape: (H, W, C); H and W may be None for any-size inputs.
      return_stages: return the four stage outputs (strides 4, 8, 16, 32) instead of the last.
      norm: "batch" (BatchNorm, as the reference) or "group" (GroupNorm, for DP training from
        scratch where BatchNorm statistics must not be learnt from private data).
      name: Keras model name (default ``tinyvit_<variant>``).

    Returns:
      A Keras model: image [B, H, W, C] -> feature map [B, ceil(H/32), ceil(W/32), C4], or the
      list of all four stage outputs.
    """
    cfg = get_variant(variant)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {tuple(input_shape)}")
    n_stages = len(cfg.depths)
    if not (len(cfg.embed_dims) == len(cfg.num_heads) == len(cfg.window_sizes) == n_stages):
        raise ValueError(f"inconsistent TinyViT config: {cfg}")
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    x = PatchEmbed(input_shape[-1], cfg.embed_dims[0], norm=norm, name="patch_embed")(inputs)
    for j in range(cfg.depths[0]):
        x = MBConv(cfg.embed_dims[0], cfg.mbconv_expand_ratio, norm=norm,
                   name=f"stages_0_blocks_{j}")(x)
    outputs = [x]
    for i in range(1, n_stages):
        x = PatchMerging(cfg.embed_dims[i - 1], cfg.embed_dims[i], norm=norm,
                         name=f"stages_{i}_downsample")(x)
        for j in range(cfg.depths[i]):
            x = TinyViTBlock(cfg.embed_dims[i], cfg.num_heads[i], cfg.window_sizes[i],
                             cfg.mlp_ratio, cfg.local_conv_size, norm=norm,
                             name=f"stages_{i}_blocks_{j}")(x)
        outputs.append(x)
    if name is None:
        name = f"tinyvit_{variant}" if isinstance(variant, str) else "tinyvit"
    return tf.keras.Model(inputs, outputs if return_stages else x, name=name)


def stage_of_layer(layer_name: str) -> int | None:
    """Stage index of a backbone layer (``patch_embed`` counts as stage 0), else None."""
    if layer_name == "patch_embed":
        return 0
    if layer_name.startswith("stages_"):
        return int(layer_name.split("_")[1])
    return None
