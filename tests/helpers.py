"""Shared test helpers: a tiny TinyViT configuration that builds and runs fast."""

from tfdphpe.models import TinyViTConfig

TINY = TinyViTConfig(embed_dims=(8, 16, 16, 24), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 3),
                     window_sizes=(7, 7, 7, 7))
TINY_INPUT = (64, 48)

# Two stages: the fewest ops that still have every layer type, for end-to-end training tests
# (tracing vectorized per-example gradients costs time per op, not per parameter).
TRAIN_TINY = TinyViTConfig(embed_dims=(8, 16), depths=(1, 1), num_heads=(1, 2),
                           window_sizes=(7, 7))
