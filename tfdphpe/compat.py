"""The one place that knows which dependency stack we run on (DESIGN 3a, issue #15).

Two stacks are supported, chosen by the Python version in pyproject.toml:

* Python 3.11: TensorFlow 2.15, whose ``tf.keras`` is Keras 2, and TF-Privacy 0.9.0 as released.
* Python 3.12+: TensorFlow 2.21, whose ``tf.keras`` is Keras 3 unless ``TF_USE_LEGACY_KERAS=1``
  is set before TensorFlow is imported and tf-keras (Keras 2) is installed. TF-Privacy 0.9.0's
  top-level ``__init__`` imports code that breaks on TF >= 2.16; its submodules work once
  ``sys.skip_tf_privacy_import`` is set, which makes that ``__init__`` import nothing.

Both switches are feature tests, not version checks: the environment variable is set only when
tf_keras is importable (TF 2.15 does not need it, and with it set but tf_keras absent its
``tf.keras`` would fail), and skipping TF-Privacy's top-level names costs nothing on either stack
(we import its submodules only). ``tfdphpe/__init__.py`` imports this module first, so importing
anything of tfdphpe before TensorFlow is enough; environment variables reach subprocesses, too.
Our code never uses Keras 3: ``tf.keras`` must be Keras 2 (tf_keras, or TF 2.15's own).
"""

from __future__ import annotations

import importlib.util
import os
import sys

if importlib.util.find_spec("tf_keras") is not None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.skip_tf_privacy_import = True


def check_keras2() -> None:
    """Raises ImportError if ``tf.keras`` is Keras 3.

    TF 2.21 picks the Keras behind ``tf.keras`` at its first use, so importing TensorFlow before
    tfdphpe is fine; using ``tf.keras`` before importing tfdphpe is not.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    module = tf.keras.layers.Layer.__module__   # Keras 2: *.engine.base_layer; Keras 3: no engine
    if ".engine." not in module:
        raise ImportError(
            f"tf.keras is Keras 3 ({module}); tfdphpe needs Keras 2: install tf-keras and import "
            "tfdphpe (or set TF_USE_LEGACY_KERAS=1) before TensorFlow")


if "tensorflow" in sys.modules:   # imported before us: fine unless tf.keras was already used
    check_keras2()


def tflite_interpreter_class():
    """LiteRT's ``Interpreter`` where ai-edge-litert is installed, else ``tf.lite.Interpreter``.

    TensorFlow 2.21 deprecates ``tf.lite.Interpreter`` in favour of LiteRT; both take
    ``model_path`` / ``model_content`` / ``num_threads`` and run XNNPACK. Conversion stays
    ``tf.lite.TFLiteConverter``.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    except ImportError:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
    return Interpreter


def tflite_runtime_name() -> str:
    """Which interpreter ``tflite_interpreter`` uses, with its version (for benchmark output)."""
    cls = tflite_interpreter_class()
    if cls.__module__.startswith("ai_edge_litert"):
        from importlib.metadata import version  # pylint: disable=import-outside-toplevel
        return f"LiteRT {version('ai-edge-litert')}"
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return f"tf.lite {tf.__version__}"


def tflite_interpreter(model_path: str | None = None, model_content: bytes | None = None,
                       num_threads: int | None = None):
    """A TFLite interpreter (see ``tflite_interpreter_class``) for a file or flatbuffer bytes."""
    return tflite_interpreter_class()(model_path=model_path, model_content=model_content,
                                      num_threads=num_threads)
