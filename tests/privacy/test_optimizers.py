"""DP optimizers: exact with zero noise, then clipping, then noise (TF-Privacy's test pattern)."""

import numpy as np
import pytest
import dp_accounting
import tensorflow as tf
from tensorflow_privacy.privacy.dp_query import gaussian_query

import tfdphpe.privacy as privacy
from tfdphpe.privacy import mechanisms
from tests.privacy import helpers

C = 0.8   # small enough that some examples of the test batch are clipped and some are not


def _grads(opt, model, batch, mask=None, public_batch=None):
    loss_fn, public_loss_fn = helpers.losses(model)
    var_list = model.trainable_variables
    public = public_loss_fn if opt.method.feature_dp else None
    fn = tf.function(lambda b, m, pb: opt.dp_gradients(loss_fn, b, var_list, public_loss_fn=public,
                                                       batch_mask=m, public_batch=pb))
    return [g.numpy().astype(np.float64) for g in fn(batch, mask, public_batch)]


@pytest.mark.parametrize("method,public_term", [
    ("dpsgd", "independent"), ("pdpsgd", "independent"), ("fdp", "independent"),
    ("fpdp", "independent"), ("fpdp", "same_batch")])
def test_zero_noise_update_equals_one_example_at_a_time(method, public_term):
    model = helpers.small_model()
    batch = helpers.make_batch(helpers.BATCH)
    # A padded example (mask 0) with a NaN private image must contribute nothing.
    image = batch["image"].numpy()
    image[2] = np.nan
    batch["image"] = tf.constant(image)
    mask = np.array([1, 1, 0, 1, 1, 1], np.float32)
    expected_b = 8  # Poisson: divide by the expected batch size, not the number of examples
    opt = privacy.make_optimizer(method, l2_norm_clip=C, noise_multiplier=0.0, learning_rate=0.1,
                                 expected_batch_size=expected_b, projection_dim=4, seed=3,
                                 public_term=public_term)
    var_list = model.trainable_variables
    basis = None
    if opt.method.projected:
        loss_fn, _ = helpers.losses(model)
        opt.refresh_subspace(loss_fn, helpers.make_batch(10, seed=9), var_list)
        basis = helpers.basis_matrix(opt.subspace.basis)
    public_batch = None
    if opt.method.feature_dp and public_term == "independent":
        public_batch = helpers.make_batch(7, seed=12)   # public views sampled apart from `batch`
    got = helpers.flat(_grads(opt, model, batch, tf.constant(mask), public_batch))
    want = helpers.reference_update(model, batch, var_list, C, expected_b,
                                    feature_dp=opt.method.feature_dp, basis=basis, mask=mask,
                                    public_batch=public_batch)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    # The clip is active for this batch (otherwise the test would not test clipping).
    loss_fn, public_loss_fn = helpers.losses(model)
    norms = [np.linalg.norm(helpers.flat(helpers.example_grad(loss_fn, helpers.take(batch, i),
                                                              var_list)))
             for i in (0, 1, 3, 4, 5)]
    assert max(norms) > C
    assert opt.sampling_revealed == (opt.method.feature_dp and public_term == "same_batch")


def test_none_is_the_plain_mean_gradient():
    model = helpers.small_model()
    batch = helpers.make_batch()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    opt = privacy.make_optimizer("none", l2_norm_clip=C, noise_multiplier=5.0, learning_rate=0.1)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(loss_fn(batch))
    want = helpers.flat([g.numpy() for g in tape.gradient(mean, var_list)])
    np.testing.assert_allclose(helpers.flat(_grads(opt, model, batch)), want, rtol=1e-5, atol=1e-7)
    # With an expected batch size and a mask: masked sum / B (padding with finite values).
    opt_b = privacy.make_optimizer("none", l2_norm_clip=C, noise_multiplier=0.0, learning_rate=0.1,
                                   expected_batch_size=10)
    mask = tf.constant([1, 0, 1, 1, 0, 1], tf.float32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(loss_fn(batch) * mask) / 10.0
    want = helpers.flat([g.numpy() for g in tape.gradient(total, var_list)])
    got = helpers.flat(_grads(opt_b, model, batch, mask))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_dpsgd_matches_stock_tf_privacy_path():
    model = helpers.small_model()
    batch = helpers.make_batch()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    opt = privacy.make_optimizer("dpsgd", l2_norm_clip=C, noise_multiplier=0.0, learning_rate=0.1,
                                 expected_batch_size=helpers.BATCH)
    stock = helpers.flat([g.numpy() for g in opt.stock_dp_gradients(loss_fn, batch, var_list)])
    np.testing.assert_allclose(helpers.flat(_grads(opt, model, batch)), stock, rtol=2e-5, atol=1e-7)


def test_vectorized_per_example_gradients_match_jacobian_and_loop():
    model = helpers.small_model()
    batch = helpers.make_batch()
    loss_fn, _ = helpers.losses(model)
    var_list = model.trainable_variables
    fast = tf.function(lambda b: privacy.per_example_gradients(loss_fn, b, var_list))(batch)
    oracle = privacy.jacobian_per_example_gradients(loss_fn, batch, var_list)
    for f, o in zip(fast, oracle):
        np.testing.assert_allclose(f.numpy(), o.numpy(), rtol=1e-5, atol=1e-6)
    for i in range(helpers.BATCH):
        loop = helpers.example_grad(loss_fn, helpers.take(batch, i), var_list)
        np.testing.assert_allclose(helpers.flat([f[i].numpy() for f in fast]), helpers.flat(loop),
                                   rtol=1e-5, atol=1e-6)
    assert len(var_list) == 4   # conv kernel/bias and head kernel/bias: the frozen layer is out


@pytest.mark.parametrize("feature_dp", [False, True])
def test_every_per_example_contribution_has_norm_at_most_c(feature_dp):
    model = helpers.small_model()
    batch = helpers.make_batch(8, seed=4)
    loss_fn, public_loss_fn = helpers.losses(model)
    var_list = model.trainable_variables
    clip = 0.05
    query = gaussian_query.GaussianSumQuery(clip, 0.0)
    clipped = tf.function(lambda b: mechanisms.clipped_per_example_terms(
        tf.constant(clip), loss_fn, b, var_list, public_loss_fn if feature_dp else None))(batch)
    norms = privacy.global_norms(clipped).numpy()
    assert np.all(norms <= clip * (1 + 1e-5))
    assert np.all(norms >= clip * (1 - 1e-5))   # all raw norms exceed 0.05 here: all clipped to C
    # The clip is the query's own preprocess_record, example by example.
    for i in range(8):
        g = helpers.example_grad(loss_fn, helpers.take(batch, i), var_list)
        if feature_dp:
            p = helpers.example_grad(public_loss_fn, helpers.take(batch, i), var_list)
            g = [a - b for a, b in zip(g, p)]
        want = query.preprocess_record(clip, [tf.constant(a, tf.float32) for a in g])
        np.testing.assert_allclose(helpers.flat([c[i].numpy() for c in clipped]),
                                   helpers.flat([w.numpy() for w in want]), rtol=1e-5, atol=1e-8)


def test_clip_record_leaves_small_records_and_drops_nonfinite_ones():
    small = [tf.constant([0.3, 0.4])]
    np.testing.assert_allclose(mechanisms.clip_record(small, 1.0)[0].numpy(), [0.3, 0.4])
    np.testing.assert_allclose(mechanisms.clip_record(small, 0.25)[0].numpy(), [0.15, 0.2],
                               rtol=1e-6)
    # tf.clip_by_global_norm gives NaN here; a dropped record (zeros) keeps the sum finite.
    np.testing.assert_array_equal(
        mechanisms.clip_record([tf.constant([np.inf, 1.0])], 1.0)[0].numpy(), [0.0, 0.0])


def _noise_model():
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([tf.keras.Input((100,)), tf.keras.layers.Dense(80)])


def _noise_only(opt, model, steps):
    """dp_gradients with an all-masked (empty) batch: what is left is the noise / B."""
    batch = {"x": tf.ones([4, 100])}
    loss_fn = lambda b: tf.reduce_sum(model(b["x"]), axis=1)  # noqa: E731
    var_list = model.trainable_variables

    @tf.function
    def step():   # no apply_gradients: the step counter stays, yet every call draws fresh noise
        grads = opt.dp_gradients(loss_fn, batch, var_list, batch_mask=tf.zeros([4]))
        return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
    return np.stack([step().numpy() for _ in range(steps)])


@pytest.mark.parametrize("chained", [False, True])
def test_noise_std_is_sigma_c_over_b_once_per_step(chained, monkeypatch):
    from tfdphpe.privacy import noise
    # Small noise is drawn per variable, early; larger noise by chunks chained after the sums.
    assert noise._chained([tf.zeros([8080])]) is False
    assert noise._chained([tf.zeros([noise.EARLY_NOISE_ELEMENTS + 1])]) is True
    if chained:
        monkeypatch.setattr(noise, "EARLY_NOISE_ELEMENTS", 0)
    sigma, clip, b = 1.7, 0.6, 5
    model = _noise_model()
    opt = privacy.make_optimizer("dpsgd", clip, sigma, 0.1, expected_batch_size=b, seed=11)
    samples = _noise_only(opt, model, steps=3)       # 3 steps x 8080 coordinates
    want = sigma * clip / b
    n = samples.size
    assert abs(samples.std() / want - 1) < 4 * np.sqrt(1 / (2 * n)) + 0.005
    assert abs(samples.mean()) < 4 * want / np.sqrt(n)
    # Fresh noise at every call (even within one step), independent coordinates.
    assert abs(np.corrcoef(samples[0], samples[1])[0, 1]) < 0.05
    assert int(opt.noise_draws.numpy()) == 3 and int(opt.iterations.numpy()) == 0
    # Reproducible with the same seed; a different (secret, default) key gives other noise.
    twin = privacy.make_optimizer("dpsgd", clip, sigma, 0.1, expected_batch_size=b, seed=11)
    again = _noise_only(twin, model, steps=1)
    np.testing.assert_array_equal(again[0], samples[0])
    secret = privacy.make_optimizer("dpsgd", clip, sigma, 0.1, expected_batch_size=b)
    assert secret.noise_key_secret and not opt.noise_key_secret
    assert not np.allclose(_noise_only(secret, model, steps=1)[0], samples[0])


def test_noise_and_accounting_come_from_the_same_query():
    opt = privacy.make_optimizer("fpdp", 0.5, 1.3, 0.1, expected_batch_size=32)
    assert opt.dp_event() == dp_accounting.GaussianDpEvent(1.3)
    # The stock TF-Privacy query, given the same clip and stddev, reports the same event.
    stock = gaussian_query.GaussianSumQuery(0.5, 0.5 * 1.3)
    _, _, event = stock.get_noised_result([tf.zeros([2])], stock.initial_global_state())
    assert float(event.noise_multiplier) == pytest.approx(opt.dp_event().noise_multiplier)
    ledger = privacy.PrivacyLedger.from_optimizer(opt, num_examples=3200, delta=1e-5,
                                                  psi="blur(sigma=3)")
    assert ledger.step_event() == opt.step_dp_event(0.01) and not ledger.sampling_revealed
    same = privacy.make_optimizer("fdp", 0.5, 1.3, 0.1, expected_batch_size=32,
                                  public_term="same_batch")
    revealed = privacy.PrivacyLedger.from_optimizer(same, num_examples=3200, delta=1e-5, psi="blur")
    assert revealed.sampling_revealed
    assert revealed.epsilon(100) > ledger.epsilon(100)
    assert ledger.method == "fpdp" and ledger.l2_norm_clip == 0.5 and ledger.batch_size == 32
    plain = privacy.make_optimizer("none", 1.0, 0.0, 0.1)
    assert plain.dp_event() == dp_accounting.NonPrivateDpEvent()


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_apply_updates_trainable_variables_only(name):
    model = helpers.small_model()
    batch = helpers.make_batch()
    loss_fn, _ = helpers.losses(model)
    frozen = [v.numpy() for v in model.non_trainable_variables]
    before = [v.numpy() for v in model.trainable_variables]
    opt = privacy.make_optimizer("dpsgd", C, 1.0, 0.05, optimizer=name, expected_batch_size=6)
    assert isinstance(opt, privacy.DPAdamOptimizer if name == "adam" else privacy.DPSGDOptimizer)

    @tf.function
    def step(b):
        grads = opt.dp_gradients(loss_fn, b, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
    step(batch)
    assert int(opt.iterations.numpy()) == 1
    assert all(not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(frozen, model.non_trainable_variables))


def test_misuse_is_refused():
    model = helpers.small_model()
    batch = helpers.make_batch()
    loss_fn, public_loss_fn = helpers.losses(model)
    var_list = model.trainable_variables
    with pytest.raises(ValueError, match="expected_batch_size"):
        privacy.make_optimizer("dpsgd", 1.0, 1.0, 0.1)
    with pytest.raises(ValueError):
        privacy.make_optimizer("dpsgd", 0.0, 1.0, 0.1, expected_batch_size=4)
    with pytest.raises(ValueError):
        privacy.make_optimizer("sparse", 1.0, 1.0, 0.1, expected_batch_size=4)
    with pytest.raises(ValueError):
        privacy.make_optimizer("dpsgd", 1.0, 1.0, 0.1, optimizer="rmsprop", expected_batch_size=4)
    fdp = privacy.make_optimizer("fdp", 1.0, 1.0, 0.1, expected_batch_size=4)
    with pytest.raises(ValueError, match="public_loss_fn"):
        fdp.dp_gradients(loss_fn, batch, var_list)
    with pytest.raises(ValueError, match="public_batch"):     # independent public term by default
        fdp.dp_gradients(loss_fn, batch, var_list, public_loss_fn=public_loss_fn)
    with pytest.raises(ValueError, match="public_batch"):
        privacy.make_optimizer("fdp", 1.0, 1.0, 0.1, expected_batch_size=4,
                               public_term="same_batch").dp_gradients(
            loss_fn, batch, var_list, public_loss_fn=public_loss_fn, public_batch=batch)
    with pytest.raises(ValueError, match="public_term"):
        privacy.make_optimizer("fdp", 1.0, 1.0, 0.1, expected_batch_size=4, public_term="whatever")
    with pytest.raises(ValueError, match="public_loss_fn"):
        privacy.make_optimizer("dpsgd", 1.0, 1.0, 0.1, expected_batch_size=4).dp_gradients(
            loss_fn, batch, var_list, public_loss_fn=public_loss_fn)
    with pytest.raises(RuntimeError, match="refresh_subspace"):
        privacy.make_optimizer("pdpsgd", 1.0, 1.0, 0.1, expected_batch_size=4).dp_gradients(
            loss_fn, batch, var_list)
    # minimize()/fit would silently lose the projection or the public view: refused.
    with pytest.raises(NotImplementedError):
        fdp.minimize(lambda: loss_fn(batch), var_list)


def test_noise_key_is_a_variable_but_never_checkpointed(tmp_path):
    # The key travels to every replica (and worker) as a variable, but a checkpoint must not hold
    # it: with the key and the updates anyone could subtract the noise.
    opt = privacy.make_optimizer("dpsgd", l2_norm_clip=C, noise_multiplier=1.0, learning_rate=0.1,
                                 expected_batch_size=4)
    var = tf.Variable([1.0, 2.0])
    opt.create_variables([var])
    key = opt.noise_key.numpy()
    assert key.shape == (2,) and opt.noise_key_secret
    path = tf.train.Checkpoint(optimizer=opt, var=var).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert any("noise_draws" in n for n in names)       # the counter is saved ...
    assert not any("noise_key" in n for n in names)     # ... the key is not
    reader = tf.train.load_checkpoint(path)
    for name in names:
        value = np.asarray(reader.get_tensor(name))
        assert not (value.shape == (2,) and np.array_equal(value, key)), name
