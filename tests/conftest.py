"""Imports tfdphpe.compat before any test module imports TensorFlow (Keras 2 on every stack).

Its environment variable is inherited by the subprocesses the tests start.
"""

import tfdphpe.compat  # noqa: F401
