import numpy as np
import pytest
import tensorflow as tf

from tfdphpe.codecs import SimCCCodec, flip_keypoints
from tfdphpe.data.joints import MPII

CODEC = SimCCCodec((256, 192), split_ratio=2.0, sigma=6.0)


def test_bin_counts():
    assert (CODEC.num_bins_x, CODEC.num_bins_y) == (384, 512)


def test_encode_decode_round_trip_within_one_bin():
    rng = np.random.RandomState(0)
    kp = rng.uniform(0, [191, 255], size=(8, 16, 2)).astype(np.float32)
    t = CODEC.encode(kp, np.ones((8, 16)))
    np.testing.assert_allclose(tf.reduce_sum(t["target_x"], -1), 1.0, rtol=1e-5)
    decoded, scores = CODEC.decode(tf.math.log(t["target_x"]), tf.math.log(t["target_y"]))
    assert decoded.shape == (8, 16, 2) and scores.shape == (8, 16)
    assert np.max(np.abs(decoded.numpy() - kp)) <= 1.0 / CODEC.split_ratio


def test_target_weight_zero_for_invisible_and_outside():
    kp = np.array([[10.0, 10.0], [10.0, 10.0], [-3.0, 10.0], [10.0, 300.0], [np.nan, 1.0]])
    t = CODEC.encode(kp, np.array([1, 0, 1, 1, 1]))
    np.testing.assert_array_equal(t["target_weight"], [1, 0, 0, 0, 0])
    assert np.all(np.isfinite(t["target_x"].numpy()))


def test_encode_works_inside_tf_data():
    ds = tf.data.Dataset.from_tensor_slices(
        {"kp": np.full((3, 16, 2), 50.0, np.float32), "vis": np.ones((3, 16), np.float32)})
    ds = ds.map(lambda e: CODEC.encode(e["kp"], e["vis"]))
    elem = next(iter(ds))
    assert elem["target_x"].shape == (16, 384) and elem["target_y"].shape == (16, 512)


def test_flip_test_decoding_is_consistent_with_swapped_joints():
    """Logits predicted on a mirrored image, unflipped, decode to the original keypoints."""
    rng = np.random.RandomState(1)
    kp = rng.uniform(0, [191, 255], size=(2, 16, 2)).astype(np.float32)
    vis = np.ones((2, 16), np.float32)
    fkp, fvis = flip_keypoints(kp, vis, 192, MPII.flip_pairs)
    ft = CODEC.encode(fkp, fvis)
    ux, uy = CODEC.unflip_logits(tf.math.log(ft["target_x"]), tf.math.log(ft["target_y"]),
                                 MPII.flip_pairs)
    decoded, _ = CODEC.decode(ux, uy)
    assert np.max(np.abs(decoded.numpy() - kp)) <= 1.0 / CODEC.split_ratio
    # flip_average of a prediction and its own mirror keeps the argmax
    t = CODEC.encode(kp, vis)
    ax, ay = CODEC.flip_average(tf.math.log(t["target_x"]), tf.math.log(t["target_y"]),
                                tf.math.log(ft["target_x"]), tf.math.log(ft["target_y"]),
                                MPII.flip_pairs)
    avg, _ = CODEC.decode(ax, ay)
    assert np.max(np.abs(avg.numpy() - kp)) <= 1.0 / CODEC.split_ratio


def test_flip_keypoints_swaps_pairs():
    kp = np.zeros((16, 2), np.float32)
    kp[0] = [10, 5]  # r_ankle
    vis = np.zeros(16, np.float32)
    vis[0] = 1
    fkp, fvis = flip_keypoints(kp, vis, 192, MPII.flip_pairs)
    np.testing.assert_allclose(fkp[5], [181, 5])  # becomes l_ankle, mirrored
    assert fvis[5] == 1 and fvis[0] == 0


def test_bad_config():
    with pytest.raises(ValueError):
        SimCCCodec((256,), 2.0)
    with pytest.raises(ValueError):
        SimCCCodec((256, 192), sigma=0)
