import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY, TINY_INPUT
from tfdphpe.codecs import SimCCCodec
from tfdphpe.data.joints import MPII_TO_COCO
from tfdphpe.models import (apply_strategy, batchnorm_is_frozen, build_pose_model,
                            freeze_batchnorm, simcc_kl_loss, transfer_joint_head)


def test_output_shapes_at_256x192():
    model = build_pose_model("5m", input_size=(256, 192), num_joints=16)
    assert model.output_shape == {"x": (None, 16, 384), "y": (None, 16, 512)}


def test_save_load_round_trip(tmp_path):
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=5)
    x = tf.random.normal([2, *TINY_INPUT, 3], seed=1)
    want = model(x, training=False)
    path = str(tmp_path / "pose.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    got = loaded(x, training=False)
    np.testing.assert_allclose(got["x"], want["x"], atol=1e-5)
    np.testing.assert_allclose(got["y"], want["y"], atol=1e-5)


def _batch(model, codec, b=3, k=5):
    rng = np.random.RandomState(0)
    kp = rng.uniform(0, [TINY_INPUT[1] - 1, TINY_INPUT[0] - 1], size=(b, k, 2))
    targets = codec.encode(kp, np.ones((b, k)))
    return tf.random.normal([b, *TINY_INPUT, 3], seed=2), targets


def test_frozen_batchnorm_statistics_do_not_move_in_a_training_step():
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=5)
    codec = SimCCCodec(TINY_INPUT)
    assert freeze_batchnorm(model) > 0 and batchnorm_is_frozen(model)
    images, targets = _batch(model, codec)
    moving = [w for w in model.weights if "moving" in w.name]
    moving_before = [w.numpy() for w in moving]
    gammas = [v for v in model.trainable_variables if "bn/gamma" in v.name]
    gammas_before = [v.numpy() for v in gammas]
    opt = tf.keras.optimizers.SGD(1.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(simcc_kl_loss(model(images, training=True), targets))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    assert len(moving) > 0 and len(gammas) > 0
    for w, before in zip(moving, moving_before):
        np.testing.assert_array_equal(w.numpy(), before)
    # gamma/beta still train: frozen statistics, not frozen affine parameters
    assert any(np.any(v.numpy() != b) for v, b in zip(gammas, gammas_before))


def test_unfrozen_batchnorm_does_update_statistics():
    """Control for the test above: without freezing, the same step moves the statistics."""
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=5)
    images, _ = _batch(model, SimCCCodec(TINY_INPUT))
    before = [w.numpy() for w in model.weights if "moving_mean" in w.name]
    model(images, training=True)
    after = [w.numpy() for w in model.weights if "moving_mean" in w.name]
    assert any(np.any(a != b) for a, b in zip(before, after))


def test_strategies_select_exactly_the_expected_variables():
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=5)
    everything = {v.name for v in model.variables if "moving" not in v.name}
    assert set(apply_strategy(model, "full")) == everything
    assert set(apply_strategy(model, "scratch")) == everything
    names = set(apply_strategy(model, "finetune"))
    for name in everything:
        last_stage_or_head = ("stages_3_" in name) or ("simcc_head" in name)
        layer_norm = "/norm/" in name  # LayerNorms: attn.norm and mlp.norm
        assert (name in names) == (last_stage_or_head or layer_norm), name
    assert any("stages_1_blocks_0/attn/norm" in n for n in names)
    assert not any("attention_biases" in n and "stages_3" not in n for n in names)
    with pytest.raises(ValueError, match="strategy"):
        apply_strategy(model, "partial")


def test_transfer_coco_to_mpii_head():
    coco = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=17)
    mpii = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=16)
    fresh_kernel = mpii.get_layer("simcc_head").final_layer.kernel.numpy().copy()
    fresh = transfer_joint_head(coco, mpii, MPII_TO_COCO)
    assert fresh == [6, 7, 8, 9]
    src = coco.get_layer("simcc_head").final_layer.kernel.numpy()
    dst = mpii.get_layer("simcc_head").final_layer.kernel.numpy()
    for t, s in MPII_TO_COCO.items():
        np.testing.assert_array_equal(dst[..., t], src[..., s])
    for t in fresh:
        np.testing.assert_array_equal(dst[..., t], fresh_kernel[..., t])
    for a, b in zip(coco.get_layer("backbone").weights, mpii.get_layer("backbone").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
