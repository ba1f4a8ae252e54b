"""One tiny trained-run stand-in, exported once per session by scripts/export.py itself.

The export script runs as a user would run it (a subprocess): a run directory with model.keras,
config.json and privacy.json goes in; a SavedModel and float32/float16/int8 TFLite files (int8
calibrated on the public COCO fixture images) come out. The other tests use these artefacts.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY, TINY_INPUT
from tfdphpe.export import normalize_pixels
from tfdphpe.models import CUSTOM_OBJECTS, build_pose_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(os.path.dirname(REPO), "shared", "fixtures")
PRIVACY = {"method": "dpsgd", "epsilon": 1.0, "delta": 4e-5, "noise_multiplier": 1.1,
           "l2_norm_clip": 0.01, "statement": "DP-SGD test statement: (1.0, 4e-05)-DP."}


def run_script(name, *args, timeout=600):
    """Runs scripts/<name> with the venv's Python; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def tiny_model(seed=0):
    """The tiny model with realistic activations.

    Freshly initialised BatchNorm statistics (mean 0, variance 1) let activations shrink stage by
    stage to ~1e-5, where every numeric difference vanishes and parity tests would prove
    nothing. A few forward passes in training mode set the statistics from the data, as
    training would, so features and logits reach the ranges of a trained network.
    """
    tf.keras.utils.set_random_seed(seed)
    model = build_pose_model(TINY, TINY_INPUT)
    rng = np.random.default_rng(seed)
    images = normalize_pixels(rng.integers(0, 256, (16, *TINY_INPUT, 3), dtype=np.uint8))
    for _ in range(40):
        model(images, training=True)
    return model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run_dir = root / "run"
    run_dir.mkdir()
    model = tiny_model()
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps(
        {"variant": "tiny", "input_size": list(TINY_INPUT), "num_joints": 16, "split_ratio": 2.0,
         "joint_set": "mpii"}))
    (run_dir / "privacy.json").write_text(json.dumps(PRIVACY))
    result = run_script(
        "export.py", f"--checkpoint={run_dir}", "--name=tiny", "--version=1",
        f"--output_dir={root / 'savedmodels'}", "--tflite=float32,float16,int8",
        f"--calibration_images={FIXTURES}/coco/*.jpg",
        f"--calibration_annotations={FIXTURES}/coco/test_coco.json")
    assert result.returncode == 0, result.stderr[-3000:]
    version = root / "savedmodels" / "tiny" / "1"
    keras_model = tf.keras.models.load_model(run_dir / "model.keras",
                                             custom_objects=CUSTOM_OBJECTS, compile=False)
    return {"root": root, "run_dir": run_dir, "saved_model": str(version),
            "tflite": {fmt: str(version / "tflite" / f"pose_{fmt}.tflite")
                       for fmt in ("float32", "float16", "int8")},
            "model": keras_model, "stdout": result.stdout}


@pytest.fixture(scope="session")
def loaded(exported):
    return tf.saved_model.load(exported["saved_model"])


@pytest.fixture(scope="session")
def crops():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, TINY_INPUT[0], TINY_INPUT[1], 3), dtype=np.uint8)
