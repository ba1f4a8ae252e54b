"""tfdphpe.compat: Keras 2 on every stack, in this process and in subprocesses; LiteRT inference."""

import importlib.util
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfdphpe import compat

HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_tf_keras_is_keras2_here():
    compat.check_keras2()
    assert ".engine." in tf.keras.layers.Layer.__module__
    assert sys.skip_tf_privacy_import


def test_importing_tfdphpe_first_gives_keras2_without_the_variable():
    out = _python("import tfdphpe, tensorflow as tf; print(tf.keras.layers.Layer.__module__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ".engine." in out.stdout.strip().splitlines()[-1]


def test_tensorflow_imported_first_still_gives_keras2():
    # TF 2.21 resolves tf.keras at its first use, so the variable may come after the import.
    out = _python("import tensorflow as tf; import tfdphpe; print(tf.keras.layers.Layer.__module__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ".engine." in out.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not HAS_TF_KERAS, reason="TF 2.15 stack: tf.keras is Keras 2 anyway")
def test_keras3_already_in_use_is_refused():
    out = _python("import tensorflow as tf; tf.keras.layers; import tfdphpe")
    assert out.returncode != 0
    assert "tfdphpe needs Keras 2" in out.stderr


def test_interpreter_is_litert_where_installed():
    cls = compat.tflite_interpreter_class()
    if importlib.util.find_spec("ai_edge_litert") is not None:
        assert cls.__module__.startswith("ai_edge_litert")
    else:
        assert cls is tf.lite.Interpreter
