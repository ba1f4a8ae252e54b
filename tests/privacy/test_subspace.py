"""Public subspace (PDP-SGD): V from the Gram matrix, orthonormal, public data only."""

import numpy as np
import pytest
import tensorflow as tf

import tfdphpe.privacy as privacy
from tfdphpe.privacy import subspace
from tests.privacy import helpers


def _rows(g: np.ndarray, shapes):
    """Split an m x p matrix into per-variable [m, *shape] tensors."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(tf.constant(g[:, start:start + size].reshape((g.shape[0], *shape)), tf.float32))
        start += size
    return out


SHAPES = [(3, 4), (5,), (2, 2, 3)]   # p = 29


def _projector(rows: np.ndarray) -> np.ndarray:
    return rows.T @ rows


def test_basis_is_top_k_left_singular_subspace_and_orthonormal():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(12, 29)) * np.linspace(3, 0.1, 29)   # m = 12 public gradients
    basis, values, rank = subspace.basis_from_gradients(_rows(g, SHAPES), dim=5)
    v = helpers.basis_matrix(basis)                            # 5 x 29
    np.testing.assert_allclose(v @ v.T, np.eye(5), atol=1e-5)
    _, s, vt = np.linalg.svd(g, full_matrices=False)            # G^T = U S V^T with G p x m here
    np.testing.assert_allclose(_projector(v), _projector(vt[:5]), atol=1e-4)
    np.testing.assert_allclose(values.numpy(), s[:5] ** 2, rtol=1e-4)
    assert int(rank) == 5


def test_rank_deficient_public_set_gives_zero_rows_not_noise():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 29))
    g = np.concatenate([g, 2 * g], axis=0)                      # m = 6, rank 3
    basis, _, rank = subspace.basis_from_gradients(_rows(g, SHAPES), dim=5)
    v = helpers.basis_matrix(basis)
    assert int(rank) == 3
    np.testing.assert_allclose(v[:3] @ v[:3].T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(v[3:], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds"):
        subspace.basis_from_gradients(_rows(g, SHAPES), dim=7)


def test_chunked_and_bfloat16_modes():
    model = helpers.small_model()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    public = helpers.make_batch(8, seed=5)
    whole = tf.function(lambda b: subspace.public_gradients(loss_fn, b, var_list))(public)
    chunked = tf.function(
        lambda b: subspace.public_gradients(loss_fn, b, var_list, chunk_size=3))(public)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    full = privacy.PublicSubspace(4)
    low = privacy.PublicSubspace(4, storage_dtype=tf.bfloat16, chunk_size=3)
    tf.function(lambda b: full.refresh(loss_fn, b, var_list))(public)
    tf.function(lambda b: low.refresh(loss_fn, b, var_list))(public)
    v32, v16 = helpers.basis_matrix(full.basis), helpers.basis_matrix(low.basis)
    assert low.basis[0].dtype == tf.bfloat16 and low.num_bytes() * 2 == full.num_bytes()
    np.testing.assert_allclose(v16 @ v16.T, np.eye(4), atol=2e-2)
    np.testing.assert_allclose(_projector(v16), _projector(v32), atol=3e-2)


def test_private_data_never_enters_the_subspace():
    """NaN-poisoned private inputs leave V unchanged (and finite); only S_pub moves it."""
    model = helpers.small_model()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    opt = privacy.make_optimizer("pdpsgd", 1.0, 1.0, 0.1, expected_batch_size=6,
                                 projection_dim=4, seed=0)
    public = helpers.make_batch(8, seed=5)
    opt.refresh_subspace(loss_fn, public, var_list)
    v_before = [b.numpy() for b in opt.subspace.basis]
    private = helpers.make_batch(6, seed=6)
    private["image"] = tf.fill(private["image"].shape, np.nan)
    grads = tf.function(lambda b: opt.dp_gradients(loss_fn, b, var_list))(private)
    # The poisoned records are left out of the sum (their norms are not finite): noise only...
    assert np.all(np.isfinite(helpers.flat([g.numpy() for g in grads])))
    assert int(opt.non_finite_records.numpy()) == 6
    for a, b in zip(v_before, opt.subspace.basis):                       # ...and V is untouched
        np.testing.assert_array_equal(a, b.numpy())
    assert all(np.all(np.isfinite(b.numpy())) for b in opt.subspace.basis)
    opt.refresh_subspace(loss_fn, public, var_list)                     # same weights, same S_pub
    for a, b in zip(v_before, opt.subspace.basis):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
    assert int(opt.subspace.refreshes.numpy()) == 2


@pytest.mark.parametrize("method", ["pdpsgd", "fpdp"])
def test_noised_projected_update_lies_in_span_of_v(method):
    model = helpers.small_model()
    loss_fn, public_loss_fn = helpers.losses(model)
    var_list = model.trainable_variables
    b = 6
    opt = privacy.make_optimizer(method, 0.5, 2.0, 0.1, expected_batch_size=b, projection_dim=3,
                                 seed=2)
    opt.refresh_subspace(loss_fn, helpers.make_batch(8, seed=5), var_list)
    v = helpers.basis_matrix(opt.subspace.basis)
    np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-5)
    batch = helpers.make_batch(b, seed=8)
    public_batch = helpers.make_batch(5, seed=13) if method == "fpdp" else None
    public = public_loss_fn if method == "fpdp" else None
    step = tf.function(lambda x, pb: opt.dp_gradients(loss_fn, x, var_list, public_loss_fn=public,
                                                      public_batch=pb))
    update = helpers.flat([g.numpy().astype(np.float64) for g in step(batch, public_batch)])
    private_part = update.copy()
    if method == "fpdp":   # the unclipped public sum is added after the projection
        for j in range(5):
            example = helpers.take(public_batch, j)
            grad = helpers.example_grad(public_loss_fn, example, var_list)
            private_part -= helpers.flat(grad) / b
    assert np.linalg.norm(private_part) > 1e-3
    residual = private_part - v.T @ (v @ private_part)
    assert np.linalg.norm(residual) < 1e-4 * np.linalg.norm(private_part)
    # The dimension of the update is k = 3 while p is much larger: the projection really cuts.
    assert v.shape[1] > 20


def test_subspace_due_follows_refresh_every(tmp_path):
    model = helpers.small_model()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    opt = privacy.make_optimizer("pdpsgd", 1.0, 0.0, 0.1, expected_batch_size=6, projection_dim=2,
                                 refresh_every=3)
    assert opt.subspace_due()                       # never computed
    opt.refresh_subspace(loss_fn, helpers.make_batch(4, seed=5), var_list)
    due = []
    for step in range(1, 7):
        opt.iterations.assign(step)
        due.append(opt.subspace_due())
    assert due == [False, False, True, False, False, True]
    # V is not part of the optimizer's checkpoint (recomputed from S_pub on resume).
    names = [name for name, _ in tf.train.list_variables(
        tf.train.Checkpoint(optimizer=opt).write(str(tmp_path / "ckpt")))]
    assert not any("basis" in n for n in names)
