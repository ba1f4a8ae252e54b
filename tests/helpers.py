"""Shared test helpers: a tiny TinyViT configuration that builds and runs fast."""

from tfdphpe.models import TinyViTConfig

TINY = TinyViTConfig(embed_dims=(8, 16, 16, 24), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 3),
                     window_sizes=(7, 7, 7, 7))
TINY_INPUT = (64, 48)
