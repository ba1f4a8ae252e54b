"""Crop geometry: box -> region -> crop -> keypoints back in image pixels."""

import numpy as np
import pytest
import tensorflow as tf

from tfdphpe.export import preprocessing as pp

SIZE = (64, 48)


def test_normalize_pixels_matches_imagenet_statistics():
    pixels = tf.constant([[[[0, 128, 255]]]], tf.uint8)
    mean, std = np.array(pp.IMAGENET_MEAN), np.array(pp.IMAGENET_STD)
    expected = (np.array([0, 128, 255]) / 255.0 - mean) / std
    np.testing.assert_allclose(pp.normalize_pixels(pixels).numpy()[0, 0, 0], expected, rtol=1e-5)


def test_crop_regions_pad_and_fix_aspect_ratio():
    # A tall box keeps its height x 1.25 and widens to W/H = 0.75.
    cx, cy, w, h = pp.crop_regions(tf.constant([10.0, 20.0, 30.0, 100.0]), SIZE).numpy()
    assert (cx, cy) == (20.0, 60.0)
    assert h == pytest.approx(100.0) and w == pytest.approx(75.0)
    # A wide box keeps its width x 1.25 and grows in height.
    _, _, w, h = pp.crop_regions(tf.constant([0.0, 0.0, 120.0, 10.0]), SIZE).numpy()
    assert w == pytest.approx(150.0) and h == pytest.approx(200.0)


def test_crop_maps_a_bright_point_back_to_its_image_position():
    image = np.zeros((300, 400, 3), np.uint8)
    px, py = 173, 121
    image[py - 1:py + 2, px - 1:px + 2] = 255  # 3x3 blob, smooth enough to survive resampling
    box = tf.constant([[100.0, 40.0, 260.0, 260.0]])
    region = pp.crop_regions(box, SIZE)
    crop = pp.crop_image(tf.constant(image), region[0], SIZE).numpy()[..., 0]
    cy, cx = np.unravel_index(np.argmax(crop), crop.shape)
    back = pp.crop_to_image(tf.constant([[[cx, cy]]], tf.float32), region, SIZE).numpy()[0, 0]
    scale = pp.region_scale(region, SIZE).numpy()[0]
    assert np.abs(back - [px, py]).max() <= scale  # within one crop pixel
    there = pp.image_to_crop(tf.constant([[[px, py]]], tf.float32), region, SIZE).numpy()[0, 0]
    assert np.abs(there - [cx, cy]).max() <= 1.0


def test_crop_to_image_and_image_to_crop_are_inverse():
    regions = tf.constant([[50.0, 80.0, 90.0, 120.0], [3.0, 4.0, 30.0, 40.0]])
    kp = tf.random.uniform([2, 5, 2], 0, 40)
    back = pp.image_to_crop(pp.crop_to_image(kp, regions, SIZE), regions, SIZE)
    np.testing.assert_allclose(back.numpy(), kp.numpy(), atol=1e-4)


def test_whole_image_box_spans_the_image():
    box = pp.whole_image_box(tf.constant([300, 400, 3]))
    cx, cy, w, h = pp.crop_regions(box, SIZE).numpy()
    assert (cx, cy) == (199.5, 149.5)
    assert w == pytest.approx(400.0) and h == pytest.approx(400.0 / 0.75)


def test_crop_outside_the_image_is_zero_padded():
    image = tf.fill([20, 20, 3], tf.constant(200, tf.uint8))
    region = pp.crop_regions(tf.constant([10.0, 10.0, 30.0, 30.0]), SIZE)
    crop = pp.crop_image(image, region, SIZE).numpy()
    assert crop.shape == (64, 48, 3)
    assert crop[0, 0, 0] == pytest.approx(200.0)  # inside the image
    assert crop[-1, -1, 0] == 0.0                 # beyond its bottom-right corner


@pytest.mark.parametrize("box", [[500.0, 0.0, 600.0, 10.0], [-50.0, -50.0, -10.0, -10.0],
                                 [10.0, 10.0, 5.0, 20.0], [0.0, 0.0, float("nan"), 5.0]])
def test_check_box_rejects_boxes_off_the_image_or_degenerate(box):
    with pytest.raises(tf.errors.InvalidArgumentError, match="overlap the image"):
        pp.check_box(tf.constant(box), tf.constant([100, 200, 3]))


def test_check_box_accepts_a_box_partly_outside():
    pp.check_box(tf.constant([-20.0, -20.0, 30.0, 30.0]), tf.constant([100, 200, 3]))
