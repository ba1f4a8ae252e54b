"""tfdphpe: differentially private 2D human pose estimation on TensorFlow/Keras."""

__version__ = "0.1.0"
