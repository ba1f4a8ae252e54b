"""tfdphpe: differentially private 2D human pose estimation on TensorFlow/Keras."""

from tfdphpe import compat  # noqa: F401  (first: it must run before TensorFlow is imported)

__version__ = "0.1.0"
