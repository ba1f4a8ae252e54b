"""The shipped public model: the file format round-trips, and the shipped file loads and scores
what its card (and docs/demo.md) says."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY, TINY_INPUT
from tfdphpe.models import build_pose_model
from tfdphpe.models import pretrained

SHIPPED = os.path.join(pretrained.PRETRAINED_DIR, pretrained.DEFAULT_MODEL + ".safetensors")
# Subset PCKh@0.5 may move this much between TF builds and CPUs (docs/demo.md); one joint of
# the 32 people is about 0.2 points.
TOLERANCE = 1.0


def test_float16_file_round_trips(tmp_path):
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=16)
    stem = str(tmp_path / "tiny")
    weights, _ = pretrained.save_public_model(model, stem, {"description": "test"}, TINY, 2.0,
                                              [f"j{i}" for i in range(16)])
    loaded = pretrained.load_public_model(stem)
    for a, b in zip(model.weights, loaded.weights):
        assert a.name == b.name
        np.testing.assert_array_equal(b.numpy(), a.numpy().astype(np.float16).astype(np.float32))
    x = tf.random.normal([1, *TINY_INPUT, 3], seed=2)
    np.testing.assert_allclose(loaded(x)["x"], model(x)["x"], atol=2e-2)
    card = pretrained.update_public_model_card(stem, {"pckh": {"PCKh@0.5/Mean": 1.0}})
    assert card["description"] == "test" and card["dtype"] == "float16"
    assert os.path.getsize(weights) < 2 * sum(int(np.prod(w.shape)) for w in model.weights) + 1e5


def test_a_model_loaded_from_a_keras_file_round_trips(tmp_path):
    # Loaded .keras models repeat weight names across blocks: the file must not key by name.
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=16)
    model.save(str(tmp_path / "m.keras"))
    loaded_keras = tf.keras.models.load_model(str(tmp_path / "m.keras"), compile=False)
    names = [w.name for w in loaded_keras.weights]
    assert len(set(names)) < len(names)           # the case this test is about
    stem = str(tmp_path / "from_keras")
    pretrained.save_public_model(loaded_keras, stem, {}, TINY, 2.0,
                                 [f"j{i}" for i in range(16)])
    back = pretrained.load_public_model(stem)
    assert len(back.weights) == len(names)
    for a, b in zip(loaded_keras.weights, back.weights):
        np.testing.assert_array_equal(b.numpy(), a.numpy().astype(np.float16).astype(np.float32))


def test_a_float16_overflow_is_refused(tmp_path):
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=4)
    model.weights[0].assign(tf.fill(model.weights[0].shape, 1e6))
    with pytest.raises(ValueError, match="float16"):
        pretrained.save_public_model(model, str(tmp_path / "m"), {}, TINY, 2.0, list("abcd"))


def test_shipped_model_loads_and_scores_what_its_card_says(tmp_path):
    from tfdphpe.data.synthetic import SyntheticConfig, check_disjoint, write_synthetic_dataset
    from tfdphpe.training.evaluate import evaluate_checkpoint

    card = pretrained.public_model_card()
    scored = card["scored_on"]["info"]
    # Public data and the private people it is scored on share no seed and no person.
    check_disjoint(card["data"]["info"], scored)
    model = pretrained.load_public_model()
    assert model.input_shape[1:3] == tuple(card["input_size"]) == (128, 96)
    assert model.get_layer("simcc_head").num_joints == len(card["joints"]) == 16
    assert os.path.getsize(SHIPPED) < 12e6
    # The first validation people of the private set: image i depends only on (seed, split, i).
    cfg = SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in scored["config"].items()})
    people = card["subset"]["people"]
    write_synthetic_dataset(str(tmp_path), 0, people, seed=scored["seed"], cfg=cfg,
                            num_workers=1)
    path = pretrained.export_keras(str(tmp_path / "public.keras"), model=model)
    got = evaluate_checkpoint(path, "synthetic", str(tmp_path))
    want = card["subset"]["pckh"]
    assert got["PCKh@0.5/Mean"] == pytest.approx(want["PCKh@0.5/Mean"], abs=TOLERANCE)
