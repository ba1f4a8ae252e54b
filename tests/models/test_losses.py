import numpy as np
import tensorflow as tf

from tfdphpe.codecs import SimCCCodec
from tfdphpe.models import simcc_kl_loss

CODEC = SimCCCodec((32, 24), split_ratio=2.0, sigma=2.0)


def _targets(b=4, k=3, seed=0):
    kp = np.random.RandomState(seed).uniform(2, 20, size=(b, k, 2))
    return CODEC.encode(kp, np.ones((b, k)))


def test_loss_is_per_example_and_zero_at_the_targets():
    t = _targets()
    perfect = {"x": tf.math.log(t["target_x"] + 1e-30), "y": tf.math.log(t["target_y"] + 1e-30)}
    loss = simcc_kl_loss(perfect, t)
    assert loss.shape == (4,)
    np.testing.assert_allclose(loss, 0.0, atol=1e-4)


def test_loss_grows_away_from_the_targets_and_respects_weights():
    t = _targets()
    logits = {"x": tf.math.log(t["target_x"] + 1e-30), "y": tf.math.log(t["target_y"] + 1e-30)}
    shifted = {"x": tf.roll(logits["x"], 3, axis=-1), "y": logits["y"]}
    far = {"x": tf.roll(logits["x"], 8, axis=-1), "y": logits["y"]}
    l0, l1, l2 = (simcc_kl_loss(o, t).numpy() for o in (logits, shifted, far))
    assert np.all(l1 > l0 + 1e-3) and np.all(l2 > l1)
    zero_w = dict(t, target_weight=tf.zeros_like(t["target_weight"]))
    np.testing.assert_allclose(simcc_kl_loss(far, zero_w), 0.0)


def test_per_example_losses_are_independent():
    t = _targets()
    logits = {"x": tf.random.normal([4, 3, CODEC.num_bins_x], seed=3),
              "y": tf.random.normal([4, 3, CODEC.num_bins_y], seed=4)}
    full = simcc_kl_loss(logits, t).numpy()
    one = simcc_kl_loss({k: v[1:2] for k, v in logits.items()},
                        {k: v[1:2] for k, v in t.items()}).numpy()
    np.testing.assert_allclose(full[1:2], one, rtol=1e-6)
