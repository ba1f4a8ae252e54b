"""Unit-level DP-SGD (issue 20): one clipped record per unit (the mean of at most k examples), on
both clipping paths and for every method. The unit sampler: tests/privacy/test_sampling.py."""

import numpy as np
import pytest
import tensorflow as tf

from tests.privacy.helpers import clip_np, flat, losses, make_batch, small_model
from tfdphpe import privacy
from tfdphpe.privacy import ghost, mechanisms

K = 3                                                   # examples per unit
# 4 unit slots x 3: unit 0 full, unit 1 two real + pad, unit 2 all padding, unit 3 one real.
MASK = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0], np.float32)


def _unit_reference(loss_fn, batch, var_list, clip, public_fn=None):
    """sum over units of clip(mean of the unit's real examples' gradients), one at a time."""
    total = 0.0
    norms = []
    for u in range(len(MASK) // K):
        real = [i for i in range(u * K, (u + 1) * K) if MASK[i]]
        if not real:
            continue
        grads = 0.0
        for i in real:
            with tf.GradientTape() as tape:
                example = {k: v[i:i + 1] for k, v in batch.items()}
                loss = tf.reduce_sum(loss_fn(example))
                if public_fn is not None:
                    loss = loss - tf.reduce_sum(public_fn(example))
            g = tape.gradient(loss, var_list, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grads = grads + flat([x.numpy().astype(np.float64) for x in g]) / len(real)
        norms.append(np.linalg.norm(grads))
        total = total + clip_np(grads, clip)
    return total, np.array(norms)


@pytest.mark.parametrize("feature_dp", [False, True])
@pytest.mark.parametrize("clipping", ["vectorized", "ghost"])
def test_unit_records_equal_a_unit_by_unit_reference(clipping, feature_dp):
    model = small_model()
    loss_fn, public_fn = losses(model)
    public_fn = public_fn if feature_dp else None
    batch = make_batch(len(MASK))
    var_list = model.trainable_variables
    _, norms = _unit_reference(loss_fn, batch, var_list, 1e9, public_fn)
    clip = float(np.median(norms))                     # some units clipped, some not
    want, _ = _unit_reference(loss_fn, batch, var_list, clip, public_fn)
    mask = tf.constant(MASK)
    if clipping == "ghost":
        got, got_norms = tf.function(lambda b: ghost.ghost_clipped_sum(
            clip, loss_fn, b, var_list, model, public_fn, mask, return_norms=True,
            examples_per_unit=K))(batch)
    else:
        got, got_norms = mechanisms.clipped_sum(clip, loss_fn, batch, var_list, public_fn, mask,
                                                return_norms=True, examples_per_unit=K)
    got = flat([g.numpy() for g in got])
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    real = [u for u in range(4) if MASK[u * K:(u + 1) * K].any()]
    np.testing.assert_allclose(got_norms.numpy()[real], norms, rtol=1e-4)


@pytest.mark.parametrize("method", ["dpsgd", "pdpsgd", "fdp", "fpdp"])
def test_every_method_unit_update_matches_on_both_paths(method):
    """Zero noise: the optimizer's unit-level update is the same on both clipping paths and
    equals the unit-by-unit reference divided by B (dpsgd)."""
    model = small_model()
    loss_fn, public_fn = losses(model)
    batch = make_batch(len(MASK))
    views = make_batch(len(MASK), seed=7)
    var_list = model.trainable_variables
    updates = []
    for clipping in ("vectorized", "ghost"):
        opt = privacy.make_optimizer(method, 0.7, 0.0, 0.1, expected_batch_size=3,
                                     projection_dim=2, seed=0, clipping=clipping)
        kwargs = {"layers": model} if clipping == "ghost" else {}
        if opt.method.projected:
            opt.refresh_subspace(loss_fn, make_batch(6, seed=5), var_list, **kwargs)
        if opt.method.feature_dp:
            kwargs.update(public_loss_fn=public_fn, public_batch=views,
                          public_batch_mask=tf.constant(MASK))
        updates.append(opt.dp_gradients(loss_fn, batch, var_list, batch_mask=tf.constant(MASK),
                                        examples_per_unit=K, **kwargs))
    a, b = (flat([u.numpy() for u in x]) for x in updates)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-5
    if method == "dpsgd":
        want, _ = _unit_reference(loss_fn, batch, var_list, 0.7)
        assert np.linalg.norm(a - want / 3) / np.linalg.norm(want / 3) < 1e-5


def test_every_unit_record_is_within_the_clip_and_a_replaced_unit_moves_the_sum_by_2c():
    model = small_model()
    loss_fn, _ = losses(model)
    var_list = model.trainable_variables
    batch = make_batch(len(MASK))
    clip = 0.5
    mask = tf.constant(MASK)

    def pre_noise_sum(b, m=mask):
        return flat([g.numpy() for g in ghost.ghost_clipped_sum(
            clip, loss_fn, b, var_list, model, batch_mask=m, examples_per_unit=K)])

    for u in range(4):            # each unit alone: its released record has norm <= C
        only = np.zeros_like(MASK)
        only[u * K:(u + 1) * K] = MASK[u * K:(u + 1) * K]
        assert np.linalg.norm(pre_noise_sum(batch, tf.constant(only))) <= clip * (1 + 1e-5)
    base = pre_noise_sum(batch)
    rng = np.random.default_rng(3)
    for _ in range(5):            # replace every example of unit 0 by anything
        other = {k: v.numpy().copy() for k, v in batch.items()}
        for key in other:
            other[key][:K] = rng.normal(size=other[key][:K].shape) * 10
        moved = pre_noise_sum({k: tf.constant(v) for k, v in other.items()})
        assert np.linalg.norm(moved - base) <= 2 * clip * (1 + 1e-5)
