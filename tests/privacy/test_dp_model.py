"""DPModel.fit == dp_gradients + apply_gradients; PrivacyLedgerCallback; refusals."""

import numpy as np
import pytest
import tensorflow as tf

from tfdphpe import privacy
from tfdphpe.models.layers import LayerNorm, WindowAttention
from tfdphpe.privacy.dp_model import DPModel
from tfdphpe.privacy.ledger_callback import PrivacyLedgerCallback

K = tf.keras.layers
B = 6
MSE = tf.keras.losses.MeanSquaredError()


def attention_model(seed=0, batchnorm=False):
    """Conv2D -> window attention (LayerNorm, qkv/proj Dense, bias table) -> LayerNorm -> head.

    ``batchnorm``: False, True (Keras BatchNormalization) or a BatchNorm-like layer class.
    """
    tf.keras.utils.set_random_seed(seed)
    image = tf.keras.Input((4, 4, 2))
    x = K.Conv2D(8, 3, padding="same", name="conv")(image)
    if batchnorm:
        norm = K.BatchNormalization if batchnorm is True else batchnorm
        x = norm(name="bn")(x)
    tokens = WindowAttention(8, 2, 4, name="attention")(K.Reshape((16, 8))(x))
    tokens = LayerNorm(name="ln")(tokens)
    return tf.keras.Model(image, K.Dense(3, name="head")(K.Flatten()(tokens)))


def data(n=B, seed=1):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=(n, 4, 4, 2)), tf.float32),
            tf.constant(rng.normal(size=(n, 3)), tf.float32))


def optimizer(method="dpsgd", clipping="ghost", sigma=0.0, **kwargs):
    return privacy.make_optimizer(method, 0.5, sigma, 0.1, expected_batch_size=B,
                                  clipping=clipping, **kwargs)


def direct_steps(model, opt, steps, mask, public=None):
    """The trainer's way: dp_gradients + apply_gradients (refreshing V when due)."""
    var_list = model.trainable_variables
    layers = model if opt.clipping == "ghost" else None

    def loss_fn(batch):
        return MSE.call(batch[1], model(batch[0], training=True))

    for batch in steps:
        if public is not None and opt.subspace_due():
            opt.refresh_subspace(loss_fn, public, var_list, layers=layers)
        grads = opt.dp_gradients(loss_fn, batch, var_list, batch_mask=mask, layers=layers)
        opt.apply_gradients(zip(grads, var_list))
    return model.get_weights()


def fit_steps(model, opt, steps, mask, public=None, callbacks=()):
    dp = DPModel(model, public_data=public)
    dp.compile(optimizer=opt, loss=MSE)
    ds = tf.data.Dataset.from_tensor_slices(
        tuple(tf.stack(t) for t in zip(*steps)) + (tf.stack([mask] * len(steps)),))
    dp.fit(ds, epochs=1, verbose=0, callbacks=list(callbacks))
    return model.get_weights()


MASK = tf.constant([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize("method,clipping,sigma,n", [
    ("dpsgd", "ghost", 0.0, 1), ("dpsgd", "vectorized", 0.0, 1), ("pdpsgd", "ghost", 0.0, 3),
    ("dpsgd", "ghost", 1.0, 2)])
def test_fit_equals_dp_gradients_and_apply(method, clipping, sigma, n):
    steps = [data(seed=s) for s in range(n)]
    public = data(8, seed=9) if method == "pdpsgd" else None
    kwargs = dict(projection_dim=3, refresh_every=2) if method == "pdpsgd" else {}
    # sigma > 0: the same seed gives the same noise on both paths.
    make = lambda: optimizer(method, clipping, sigma, seed=7, **kwargs)  # noqa: E731
    want = direct_steps(attention_model(), make(), steps, MASK, public)
    got = fit_steps(attention_model(), make(), steps, MASK, public)
    before = attention_model().get_weights()
    assert max(np.abs(w - b).max() for w, b in zip(want, before)) > 1e-4   # the step moved
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_mask_from_dict_key_and_logged_loss():
    x, y = data()
    inner = attention_model()
    losses = MSE.call(y, inner(x)).numpy()      # at the weights before the step
    dp = DPModel(_DictInput(inner))
    dp.compile(optimizer=optimizer(), loss=MSE, metrics=["mae"])
    ds = tf.data.Dataset.from_tensors(({"image": x, "mask": MASK, "step": 0}, y))
    history = dp.fit(ds, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    np.testing.assert_allclose(history.history["loss"][0],
                               losses[MASK.numpy() > 0].mean(), rtol=1e-5)
    want = direct_steps(attention_model(), optimizer(), [(x, y)], MASK)
    for w, g in zip(want, inner.get_weights()):
        np.testing.assert_allclose(g, w, atol=1e-5)


class _DictInput(tf.keras.Model):
    def __init__(self, model):
        super().__init__()
        self.model_ = model

    def call(self, inputs, training=None):
        return self.model_(inputs["image"], training=training)


def _ledger_callback(**kwargs):
    return PrivacyLedgerCallback(num_examples=60, delta=1e-5, sampling="poisson",
                                 log=lambda _: None, **kwargs)


def _fit(dp, steps, epochs=1, callbacks=()):
    x, y = data()
    ds = tf.data.Dataset.from_tensors((x, y, MASK)).repeat(steps)
    return dp.fit(ds, epochs=epochs, verbose=0, callbacks=list(callbacks))


def test_ledger_counts_steps_and_stops_at_target_epsilon(tmp_path):
    dp = DPModel(attention_model())
    dp.compile(optimizer=optimizer(sigma=1.0), loss=MSE)
    cb = _ledger_callback()
    history = _fit(dp, 3, epochs=2, callbacks=[cb])
    direct = privacy.compute_epsilon(60, B, 1.0, 1e-5, steps=6, sampling="poisson")
    assert cb.ledger.steps == 6 == int(dp.optimizer.iterations.numpy())
    assert cb.ledger.sampling == "poisson" and cb.ledger.method == "dpsgd"
    np.testing.assert_allclose(history.history["epsilon"][-1], direct, rtol=1e-9)

    target = privacy.compute_epsilon(60, B, 1.0, 1e-5, steps=4, sampling="poisson")
    dp = DPModel(attention_model())
    dp.compile(optimizer=optimizer(sigma=1.0), loss=MSE)
    cb = _ledger_callback(target_epsilon=target * 1.0001)
    _fit(dp, 10, callbacks=[cb])
    assert cb.stopped_by_budget and cb.ledger.steps == 4 == int(dp.optimizer.iterations.numpy())
    with pytest.raises(privacy.BudgetExceededError):     # no budget left for another fit
        _fit(dp, 10, callbacks=[cb])


def test_ledger_saved_with_checkpoint_and_restored(tmp_path):
    weights = str(tmp_path / "ckpt" / "weights")
    ledgers = str(tmp_path / "ckpt")

    def fresh():
        dp = DPModel(attention_model(seed=1))
        dp.compile(optimizer=optimizer(sigma=1.0), loss=MSE)
        return dp

    dp = fresh()
    _fit(dp, 3, callbacks=[_ledger_callback(directory=ledgers),
                           tf.keras.callbacks.ModelCheckpoint(weights, save_weights_only=True)])
    assert (tmp_path / "ckpt" / "ledger-3.json").exists()

    resumed = fresh()
    resumed.load_weights(weights)
    cb = _ledger_callback(directory=ledgers)
    _fit(resumed, 2, callbacks=[cb])
    assert cb.ledger.steps == 5 == int(resumed.optimizer.iterations.numpy())
    assert (tmp_path / "ckpt" / "ledger-5.json").exists()

    with pytest.raises(FileExistsError, match="restore the checkpoint"):
        _fit(fresh(), 1, callbacks=[_ledger_callback(directory=ledgers)])
    other = fresh()
    other.load_weights(weights)
    with pytest.raises(RuntimeError, match="another configuration"):
        _fit(other, 1, callbacks=[_ledger_callback(directory=ledgers, accountant="pld")])


def test_sampling_must_be_named_and_real():
    with pytest.raises(TypeError):
        PrivacyLedgerCallback(num_examples=60, delta=1e-5)     # pylint: disable=missing-kwoa
    with pytest.raises(ValueError, match="sampling must be one of"):
        PrivacyLedgerCallback(num_examples=60, delta=1e-5, sampling="random")
    from tfdphpe.data.sampling import SamplingInfo
    info = SamplingInfo("sequential", 60, B, 0.1, None, B, 0.0)
    with pytest.raises(ValueError, match="Poisson or shuffled"):
        PrivacyLedgerCallback(num_examples=60, delta=1e-5, sampling=info)
    shuffled = PrivacyLedgerCallback(num_examples=60, delta=1e-5,
                                     sampling=SamplingInfo("shuffled", 60, B, 0.1, None, B, 0.0))
    assert shuffled.sampling == "shuffle"


def test_refusals():
    model = attention_model()
    dp = DPModel(model)
    with pytest.raises(ValueError, match="tfdphpe DP optimizer"):
        dp.compile(optimizer=tf.keras.optimizers.legacy.SGD(0.1), loss=MSE)
    with pytest.raises(ValueError, match="allow_non_private"):
        dp.compile(optimizer=optimizer("none"), loss=MSE)
    with pytest.raises(ValueError, match="Feature DP"):
        dp.compile(optimizer=optimizer("fdp"), loss=MSE)
    with pytest.raises(ValueError, match="public_data"):
        dp.compile(optimizer=optimizer("pdpsgd"), loss=MSE)
    with pytest.raises(ValueError, match="one loss"):
        dp.compile(optimizer=optimizer(), loss=[MSE])
    with pytest.raises(ValueError, match="steps_per_execution"):
        dp.compile(optimizer=optimizer(), loss=MSE, steps_per_execution=2)
    dp.compile(optimizer=optimizer(), loss=lambda y, p: tf.reduce_mean(tf.square(y - p)))
    with pytest.raises(ValueError, match="scalar"):
        _fit(dp, 1)
    dp.compile(optimizer=optimizer(), loss=MSE)
    x, y = data()
    with pytest.raises(tf.errors.InvalidArgumentError, match="0/1"):
        dp.fit(tf.data.Dataset.from_tensors((x, y, 0.5 * MASK)), verbose=0)
    live = DPModel(attention_model(batchnorm=True))
    live.compile(optimizer=optimizer(clipping="vectorized"), loss=MSE)
    with pytest.raises(ValueError, match="BatchNorm"):
        _fit(live, 1)


def test_config_round_trip():
    dp = DPModel(attention_model(), mask_key="valid", training=False)
    clone = DPModel.from_config(dp.get_config(),
                                custom_objects={"WindowAttention": WindowAttention,
                                                "LayerNorm": LayerNorm})
    assert (clone.mask_key, clone.training_call) == ("valid", False)
    x, _ = data()
    clone.inner.set_weights(dp.inner.get_weights())
    np.testing.assert_allclose(clone(x), dp(x), atol=1e-6)


@pytest.mark.parametrize("norm", [K.BatchNormalization,
                                  K.experimental.SyncBatchNormalization])
def test_every_batchnorm_that_would_learn_private_statistics_is_refused(norm):
    """Issue 24.4: SyncBatchNormalization is no BatchNormalization subclass; it was let through
    and its moving statistics learnt from private batches."""
    live = DPModel(attention_model(batchnorm=norm))
    live.compile(optimizer=optimizer(clipping="vectorized"), loss=MSE)
    with pytest.raises(ValueError, match="BatchNorm"):
        _fit(live, 1)
    model = attention_model(batchnorm=norm)
    model.get_layer("bn").trainable = False        # Keras 2: inference mode, stats fixed
    frozen = DPModel(model)
    frozen.compile(optimizer=optimizer(clipping="vectorized"), loss=MSE)
    stats = [w.numpy() for w in model.get_layer("bn").non_trainable_weights]
    _fit(frozen, 2)
    for before, after in zip(stats, model.get_layer("bn").non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
    from tfdphpe.models import freeze_batchnorm
    with pytest.raises(TypeError, match=norm.__name__):
        freeze_batchnorm(attention_model(batchnorm=norm))
