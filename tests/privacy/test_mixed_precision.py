"""Mixed precision (--mixed_precision): float16 compute, float32 clipping norms, sums and noise."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY
from tfdphpe import privacy
from tfdphpe.models import build_pose_model, freeze_batchnorm, simcc_kl_loss
from tfdphpe.privacy import ghost, per_example
from tfdphpe.training.trainer import MIXED_PRECISION_LOSS_SCALE

N, K, H, W = 4, 4, 64, 48


def _batch(seed=1):
    r = np.random.default_rng(seed)
    return {"image": tf.constant(r.normal(size=(N, H, W, 3)), tf.float32),
            "target_x": tf.nn.softmax(tf.constant(r.normal(size=(N, K, 2 * W)), tf.float32)),
            "target_y": tf.nn.softmax(tf.constant(r.normal(size=(N, K, 2 * H)), tf.float32)),
            "target_weight": tf.ones([N, K])}


def _model(policy: str, weights=None):
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_pose_model(TINY, input_size=(H, W), num_joints=K)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    if weights is not None:
        model.set_weights(weights)
    freeze_batchnorm(model)
    return model


@pytest.fixture(scope="module")
def models():
    tf.keras.utils.set_random_seed(0)
    full = _model("float32")
    half = _model("mixed_float16", full.get_weights())
    assert half.get_layer("backbone").compute_dtype == "float16"
    assert all(v.dtype == tf.float32 for v in half.trainable_variables)
    return full, half


def _loss(model):
    return lambda b: simcc_kl_loss(model(b["image"], training=True), b)


def _rel(a, b) -> float:
    a = np.concatenate([np.ravel(x) for x in a]).astype(np.float64)
    b = np.concatenate([np.ravel(x) for x in b]).astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("clipping", ["ghost", "vectorized"])
def test_float16_compute_gives_float32_norms_within_1e3(models, clipping):
    """Per-example norms of the loss-scaled records (as the optimizer forms them), unscaled."""
    batch, scale = _batch(), MIXED_PRECISION_LOSS_SCALE
    norms = {}
    for name, model in zip(("float32", "float16"), models):
        var_list = model.trainable_variables
        loss_fn = lambda b, m=model: _loss(m)(b) * scale  # noqa: E731
        if clipping == "ghost":
            sums, n = tf.function(lambda b: ghost.ghost_clipped_sum(
                scale, loss_fn, b, var_list, model, return_norms=True))(batch)
            assert all(s.dtype == tf.float32 for s in sums)
        else:
            grads = tf.function(lambda b: per_example.per_example_gradients(
                loss_fn, b, var_list))(batch)
            n = per_example.global_norms(grads)
        assert n.dtype == tf.float32
        norms[name] = n.numpy() / scale
    rel = np.abs(norms["float16"] - norms["float32"]) / norms["float32"]
    print(f"{clipping}: max relative norm difference float16 vs float32 {rel.max():.2e}")
    assert rel.max() < 1e-3, rel


def test_loss_scale_is_divided_out_exactly(models):
    """On a float32 model S only scales and unscales: the update is the same to 1e-5."""
    full, _ = models
    batch, var_list = _batch(), full.trainable_variables
    updates = []
    for scale in (1.0, 1024.0):
        opt = privacy.make_optimizer("dpsgd", 0.05, 0.0, 0.1, expected_batch_size=N,
                                     clipping="ghost", loss_scale=scale)
        updates.append(opt.dp_gradients(_loss(full), batch, var_list, layers=full))
    assert _rel(updates[1], updates[0]) < 1e-5


@pytest.mark.parametrize("method", ["dpsgd", "pdpsgd"])
def test_mixed_precision_update_matches_float32(models, method):
    """float16 compute with S = 1024 against float32 with S = 1: the same clipped update (noise 0,
    within float16 rounding; pdpsgd: the subspace refreshed from the scaled float16 loss), and
    for dpsgd the same seeded float32 noise on top of it."""
    full, half = models
    batch = _batch()
    clean, noise = [], []
    for model, scale in ((full, 1.0), (half, 1024.0)):
        per_sigma = []
        for sigma in ((0.0, 1.0) if method == "dpsgd" else (0.0,)):
            opt = privacy.make_optimizer(method, 0.05, sigma, 0.1, expected_batch_size=N,
                                         projection_dim=2, seed=0, clipping="ghost",
                                         loss_scale=scale)
            if opt.method.projected:
                opt.refresh_subspace(_loss(model), _batch(3), model.trainable_variables,
                                     layers=model)
            update = opt.dp_gradients(_loss(model), batch, model.trainable_variables,
                                      layers=model)
            assert all(u.dtype == tf.float32 for u in update)
            per_sigma.append([u.numpy() for u in update])
        clean.append(per_sigma[0])
        noise.append([b - a for a, b in zip(*per_sigma[:2])] if len(per_sigma) > 1 else None)
    assert _rel(clean[1], clean[0]) < 1e-2
    if method == "dpsgd":    # the noise is drawn in float32 from the same key: the same noise
        assert _rel(noise[1], noise[0]) < 1e-6


def test_bad_loss_scale_is_refused():
    with pytest.raises(ValueError, match="loss_scale"):
        privacy.make_optimizer("dpsgd", 1.0, 1.0, 0.1, expected_batch_size=4, loss_scale=0.0)
