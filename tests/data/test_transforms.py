"""dict -> dict ops: geometry conventions, each op eagerly and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tfdphpe.codecs import SimCCCodec, flip_keypoints
from tfdphpe.data import COCO, MPII
from tfdphpe.data import transforms as T

SIZE = (64, 48)  # (H, W)


def run_both(op, example):
    """Runs ``op`` eagerly and inside tf.data; asserts both agree; returns the eager result."""
    eager = op(dict(example))
    graph = next(iter(tf.data.Dataset.from_tensors(dict(example)).map(op)))
    assert set(eager) == set(graph)
    for k in eager:
        np.testing.assert_allclose(np.asarray(eager[k]), np.asarray(graph[k]), rtol=1e-5,
                                   atol=1e-4, err_msg=k)
    return eager


def test_affine_centre_edges_and_inverse():
    m = T.affine_matrix([100.0, 50.0], [96.0, 128.0], 0.0, SIZE)
    np.testing.assert_allclose(T.apply_affine(m, [[100.0, 50.0]]), [[23.5, 31.5]], atol=1e-5)
    # The box edges (centre +- scale / 2) land on the crop's pixel edges (-0.5, W - 0.5).
    np.testing.assert_allclose(T.apply_affine(m, [[52.0, -14.0], [148.0, 114.0]]),
                               [[-0.5, -0.5], [47.5, 63.5]], atol=1e-4)
    m = T.affine_matrix([100.0, 50.0], [96.0, 128.0], 33.0, SIZE, flip=True)
    pts = tf.random.uniform([10, 2], 0, 200)
    back = T.apply_affine(T.invert_affine(m), T.apply_affine(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-3)


def test_positive_rotation_turns_content_counter_clockwise():
    m = T.affine_matrix([100.0, 100.0], [48.0, 64.0], 90.0, SIZE)
    right_of_centre = T.apply_affine(m, [[110.0, 100.0]]).numpy()[0]
    centre = np.array([23.5, 31.5])
    d = right_of_centre - centre
    assert abs(d[0]) < 1e-4 and d[1] < -5  # now above the centre


def test_flip_matches_codec_convention():
    kp = tf.constant(np.random.default_rng(0).uniform(0, 200, (16, 2)), tf.float32)
    vis = tf.ones([16])
    m = T.affine_matrix([100.0, 90.0], [120.0, 160.0], 10.0, SIZE)
    mf = T.affine_matrix([100.0, 90.0], [120.0, 160.0], 10.0, SIZE, flip=True)
    expected, _ = flip_keypoints(T.apply_affine(m, kp), vis, SIZE[1], MPII.flip_pairs)
    got = tf.gather(T.apply_affine(mf, kp), MPII.flip_permutation())
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("rotation,flip", [(0.0, False), (25.0, False), (-60.0, True)])
def test_warp_agrees_with_keypoint_transform(rotation, flip):
    image = np.zeros((120, 160, 3), np.uint8)
    x0, y0 = 97, 41
    image[y0 - 1:y0 + 2, x0 - 1:x0 + 2] = 255  # a 3x3 dot centred on (x0, y0)
    ex = {"image": tf.constant(image), "center": tf.constant([90.0, 50.0]),
          "scale": tf.constant([60.0, 80.0]), "rotation": tf.constant(rotation),
          "flipped": tf.constant(flip),
          "original_keypoints": tf.constant([[float(x0), float(y0)]] + [[0.0, 0.0]] * 15),
          "original_visible": tf.constant([1.0] + [0.0] * 15)}
    out = run_both(T.affine_crop(SIZE, MPII), ex)
    crop = out["image"].numpy()[..., 0]
    ys, xs = np.nonzero(crop > 0.3 * crop.max())
    w = crop[ys, xs]
    found = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    joint = MPII.flip_permutation()[0] if flip else 0  # r_ankle lands on l_ankle when flipped
    np.testing.assert_allclose(out["keypoints"].numpy()[joint], found, atol=0.35)
    assert out["visible"].numpy()[joint] == 1.0
    assert out["image"].shape == (64, 48, 3) and out["image"].dtype == tf.float32


def test_box_to_center_scale_fixes_aspect_and_pads():
    ex = {"box_center": tf.constant([10.0, 20.0]), "box_size": tf.constant([30.0, 100.0])}
    out = run_both(T.box_to_center_scale(SIZE, 1.25), ex)
    np.testing.assert_allclose(out["scale"], [75.0 * 1.25, 100.0 * 1.25])
    ex["box_size"] = tf.constant([90.0, 40.0])
    out = T.box_to_center_scale(SIZE, 1.0)(ex)
    np.testing.assert_allclose(out["scale"], [90.0, 120.0])


def _augment_example(seed, vis=None):
    kp = np.stack([np.linspace(50, 150, 17), np.linspace(10, 300, 17)], 1).astype(np.float32)
    return {"seed": tf.constant(seed, tf.int64), "center": tf.constant([100.0, 150.0]),
            "scale": tf.constant([240.0, 320.0]), "rotation": tf.constant(0.0),
            "original_keypoints": tf.constant(kp),
            "original_visible": tf.constant(np.ones(17, np.float32) if vis is None else vis)}


def test_half_body_picks_a_half_when_enough_joints():
    op = T.random_half_body(COCO, SIZE, prob=1.0, min_joints=8, padding=1.5)
    out = run_both(op, _augment_example([1, 2]))
    assert out["scale"][1] < 320.0  # the box shrank to half a body
    few = np.zeros(17, np.float32)
    few[:5] = 1
    out = op(_augment_example([1, 2], few))
    np.testing.assert_allclose(out["scale"], [240.0, 320.0])


def test_scale_rotation_flip_ranges_and_determinism():
    op = T.compose([T.random_scale_rotation(0.25, 30.0, 0.6), T.random_flip(0.5)])
    scales, rots, flips = [], [], []
    for s in range(300):
        out = op(_augment_example([7, s]))
        scales.append(float(out["scale"][0]) / 240.0)
        rots.append(float(out["rotation"]))
        flips.append(bool(out["flipped"]))
    assert 0.75 - 1e-6 <= min(scales) and max(scales) <= 1.25 + 1e-6
    assert max(abs(r) for r in rots) <= 60.0 + 1e-6
    assert 0.3 < np.mean(np.array(rots) == 0.0) < 0.5
    assert 0.4 < np.mean(flips) < 0.6
    again = op(_augment_example([7, 3]))
    assert float(again["rotation"]) == rots[3] and bool(again["flipped"]) == flips[3]
    run_both(op, _augment_example([7, 3]))


def test_gaussian_blur():
    img = tf.constant(np.full((20, 16, 3), 7.0, np.float32))
    np.testing.assert_allclose(T.gaussian_blur(img, 2.0), img, atol=1e-4)
    impulse = np.zeros((31, 31, 1), np.float32)
    impulse[15, 15] = 1.0
    out = T.gaussian_blur(tf.constant(impulse), 2.0).numpy()[..., 0]
    assert abs(out.sum() - 1.0) < 1e-4 and out.max() < 0.05
    from scipy.ndimage import gaussian_filter
    np.testing.assert_allclose(out, gaussian_filter(impulse[..., 0], 2.0, truncate=3.0),
                               atol=1e-4)
    ex = {"image": tf.constant(np.random.default_rng(0).uniform(0, 255, (64, 48, 3)),
                               tf.float32)}
    out = run_both(T.public_view(1.5), ex)
    assert out["public_image"].shape == (64, 48, 3)
    assert np.std(out["public_image"]) < np.std(ex["image"])


def test_normalize_and_targets():
    ex = {"image": tf.fill([64, 48, 3], 255.0 * 0.485),
          "keypoints": tf.constant([[10.0, 20.0]] * 16), "visible": tf.ones([16])}
    out = run_both(T.normalize(), ex)
    np.testing.assert_allclose(out["image"][..., 0], 0.0, atol=1e-5)
    codec = SimCCCodec(SIZE)
    out = run_both(T.encode_targets(codec), ex)
    ref = codec.encode(ex["keypoints"], ex["visible"])
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k])
    assert out["target_x"].shape == (16, 96) and out["target_y"].shape == (16, 128)


def test_decode_and_outside_image():
    png = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
    ex = {"image_bytes": png, "original_keypoints": tf.constant([[5.0, 5.0], [45.0, 5.0]]),
          "original_visible": tf.constant([1.0, 1.0])}
    out = run_both(T.compose([T.decode_image(), T.invisible_outside_image()]), ex)
    assert out["image"].shape == (30, 40, 3) and list(out["image_size"]) == [30, 40]
    np.testing.assert_array_equal(out["original_visible"], [1.0, 0.0])


def test_random_color_is_seeded_and_in_range():
    rng = np.random.default_rng(1)
    ex = {"seed": tf.constant([3, 4], tf.int64),
          "image": tf.constant(rng.uniform(0, 255, (16, 12, 3)), tf.float32)}
    op = T.random_color(brightness=0.2, contrast=0.3, saturation=0.3, hue=0.05)
    out = run_both(op, ex)
    assert 0.0 <= float(tf.reduce_min(out["image"])) and float(tf.reduce_max(out["image"])) <= 255
    assert not np.allclose(out["image"], ex["image"])
    other = op(dict(ex, seed=tf.constant([3, 5], tf.int64)))
    assert not np.allclose(out["image"], other["image"])
