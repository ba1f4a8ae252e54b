"""SimCC codec shared by data, training, evaluation and export (TensorFlow only)."""

from tfdphpe.codecs.simcc import SimCCCodec, flip_keypoints

__all__ = ["SimCCCodec", "flip_keypoints"]
