"""MediaPipe's pose detector in the package: anchors, decoding, NMS, boxes; real images."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.inference.conftest import FIXTURES
from tfdphpe.export import coco_person_boxes
from tfdphpe.inference import (Detections, MediaPipePoseDetector, PersonDetector,
                               WholeFrameDetector, alignment_box)
from tfdphpe.inference import ssd
from tfdphpe.inference.detector import POSE_DETECTOR_SSD, detector_regions


def test_anchor_grid_matches_the_model():
    anchors = ssd.anchor_centres(POSE_DETECTOR_SSD)
    assert anchors.shape == (2254, 2)             # 28x28x2 + 14x14x2 + 7x7x6
    np.testing.assert_allclose(anchors[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_decode_and_weighted_nms():
    config = ssd.SSDConfig((224, 224), (8,), num_keypoints=1)
    anchors = np.array([[0.5, 0.5], [0.52, 0.5], [0.1, 0.1]], np.float32)
    raw = np.array([[0, 0, 44.8, 44.8, 22.4, 0]] * 3, np.float32)
    boxes, keypoints, scores = ssd.decode(raw, np.array([3.0, 1.0, 2.0]), anchors, config)
    np.testing.assert_allclose(boxes[0], [0.4, 0.4, 0.6, 0.6], atol=1e-6)
    np.testing.assert_allclose(keypoints[0, 0], [0.6, 0.5], atol=1e-6)
    merged, _, kept = ssd.weighted_nms(boxes, keypoints, scores, 0.3)
    assert len(kept) == 2 and kept[0] == pytest.approx(1 / (1 + np.exp(-3)))
    w = scores[:2] / scores[:2].sum()               # the two overlapping boxes averaged
    np.testing.assert_allclose(merged[0], w @ boxes[:2], atol=1e-6)


def test_alignment_box_is_tall_for_standing_and_wide_for_lying_people():
    standing = alignment_box(np.array([[100.0, 200.0]]), np.array([[100.0, 100.0]]), 0.4)
    np.testing.assert_allclose(standing, [[60, 100, 140, 300]])
    lying = alignment_box(np.array([[100.0, 200.0]]), np.array([[200.0, 200.0]]), 0.4)
    np.testing.assert_allclose(lying, [[0, 160, 200, 240]])


def test_tiles_cover_the_frame():
    regions = detector_regions((400, 900), tiles=3)
    assert len(regions) == 1 + 3 * 2
    lo = min(r[0] - r[2] / 2 for r in regions[1:])
    hi = max(r[0] + r[2] / 2 for r in regions[1:])
    assert lo <= 0 and hi >= 899


@pytest.fixture(scope="module")
def detector():
    return MediaPipePoseDetector()


def test_finds_people_in_real_photos(detector):
    assert isinstance(detector, PersonDetector) and isinstance(WholeFrameDetector(),
                                                               PersonDetector)
    truth = coco_person_boxes(f"{FIXTURES}/coco/test_coco.json", min_size=0)
    photo = np.asarray(Image.open(f"{FIXTURES}/coco/000000000785.jpg").convert("RGB"))
    found = detector.detect(photo)
    assert len(found) == 1 and found.scores[0] > 0.9
    assert ssd.box_iou(found.boxes, truth["000000000785.jpg"]).max() > 0.6
    with open(f"{FIXTURES}/mpii/test_mpii.json") as f:
        people = json.load(f)
    hits = 0
    for person in people:    # MPII: the annotated person's joints, box grown by 10 %
        joints = np.array(person["joints"])[np.array(person["joints_vis"]) > 0]
        lo, hi = joints.min(0), joints.max(0)
        box = np.concatenate([lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)])
        image = np.asarray(Image.open(f"{FIXTURES}/mpii/{person['image']}").convert("RGB"))
        boxes = detector.detect(image).boxes
        hits += bool(len(boxes)) and ssd.box_iou(box, boxes).max() >= 0.5
    assert hits >= 4          # measured: 4 of 5 (docs/deployment.md)


def test_nobody_gives_empty_detections(detector):
    empty = detector.detect(np.full((240, 320, 3), 90, np.uint8))
    assert isinstance(empty, Detections) and len(empty) == 0 and empty.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="scores"):
        Detections(np.zeros((2, 4)), np.zeros(1))
