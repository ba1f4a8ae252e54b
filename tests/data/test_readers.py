"""Readers on the real MPII/COCO samples and on official-layout .mat files written here."""

import json
import os

import numpy as np
import pytest

from tfdphpe.data import (COCO, MPII, read_coco, read_custom, read_mpii_json, read_mpii_mat)
from tfdphpe.data.mpii import write_gt_valid_mat, write_release_mat, write_tompson_split
from tests.data.conftest import COCO_DIR, MPII_DIR

COCO_JSON = os.path.join(COCO_DIR, "test_coco.json")
COCO_DET = os.path.join(COCO_DIR, "test_coco_det_AP_H_56.json")
MPII_JSON = os.path.join(MPII_DIR, "test_mpii.json")


def test_coco_ground_truth_boxes():
    result = read_coco(COCO_JSON, COCO_DIR)
    # 14 annotations, two with zero keypoints: skipped and counted.
    assert len(result) == 12
    assert result.summary.skipped == {"no_keypoints": 2}
    assert result.joint_set is COCO
    first = [r for r in result.records if r.annotation_id == 442619][0]
    assert first.image_id == 785 and first.image_size == (425, 640)
    raw = json.load(open(COCO_JSON))
    ann = [a for a in raw["annotations"] if a["id"] == 442619][0]
    kp = np.array(ann["keypoints"], np.float32).reshape(17, 3)
    np.testing.assert_allclose(first.keypoints[kp[:, 2] > 0], kp[kp[:, 2] > 0, :2])
    np.testing.assert_array_equal(first.visible, kp[:, 2] > 0)
    x, y, w, h = ann["bbox"]
    # HRNet's cleaned box: width w - 1 from x (clipped to the image), centre in the middle.
    np.testing.assert_allclose(first.center, [x + (w - 1) / 2, y + (h - 1) / 2], atol=1e-3)


def test_coco_detections_with_threshold():
    all_dets = read_coco(COCO_JSON, COCO_DIR, boxes="detections", detection_file=COCO_DET)
    assert len(all_dets) == 118 and all_dets.summary.num_skipped == 0
    strong = read_coco(COCO_JSON, COCO_DIR, boxes="detections", detection_file=COCO_DET,
                       score_threshold=0.5)
    assert len(strong) + strong.summary.skipped["below_score_threshold"] == 118
    assert all(r.box_score >= 0.5 and not r.visible.any() for r in strong.records)


def test_mpii_json_conventions():
    result = read_mpii_json(MPII_JSON, MPII_DIR)
    raw = json.load(open(MPII_JSON))
    assert len(result) == len(raw) == 5 and result.joint_set is MPII
    r, e = result.records[0], raw[0]
    assert r.image_id == int(e["image"].split(".")[0]) and r.image_size == (720, 1280)
    vis = np.array(e["joints_vis"]) > 0
    np.testing.assert_allclose(r.keypoints[vis], np.array(e["joints"])[vis] - 1.0, atol=1e-4)
    # HRNet: centre y + 15 * scale, 0-based; box 200 * scale (padded by the pipeline).
    np.testing.assert_allclose(r.center, [e["center"][0] - 1, e["center"][1] + 15 * e["scale"] - 1],
                               atol=1e-3)
    np.testing.assert_allclose(r.box_size, [200 * e["scale"]] * 2, rtol=1e-6)
    assert not r.head_box.any()
    missing = [rec for rec in result.records if rec.visible.sum() < 16]
    assert missing and all((rec.keypoints[rec.visible == 0] == 0).all() for rec in missing)


def test_mpii_json_head_boxes_from_gt_valid_mat(tmp_path):
    raw = json.load(open(MPII_JSON))
    boxes = np.array([[10, 20, 60, 90], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12],
                      [13, 14, 15, 16]], np.float64)
    mat = str(tmp_path / "gt_valid.mat")
    write_gt_valid_mat(mat, np.array([e["joints"] for e in raw]),
                       np.array([e["joints_vis"] for e in raw]), boxes)
    result = read_mpii_json(MPII_JSON, MPII_DIR, head_boxes_file=mat)
    np.testing.assert_allclose(result.records[0].head_box, boxes[0] - 1)
    from scipy.io import loadmat
    m = loadmat(mat)
    assert m["headboxes_src"].shape == (2, 2, 5) and m["pos_gt_src"].shape == (16, 2, 5)
    assert m["jnt_missing"].shape == (16, 5)


def _release_images():
    pts = [(j, 100 + 5 * j, 50 + 10 * j, j % 2) for j in range(16)]
    person = {"head_box": [120, 40, 160, 90], "objpos": [130, 150], "scale": 1.5,
              "points": pts}
    return [
        {"name": "005808361.jpg", "train": True, "persons": [person, dict(person, points=None)]},
        {"name": "052475643.jpg", "train": True, "persons": [person, person]},
        {"name": "051423444.jpg", "train": True, "persons": [person]},
        {"name": "004645041.jpg", "train": False, "persons": [dict(person, points=None)]},
        {"name": "060754485.jpg", "train": True, "persons": [dict(person, points=pts[:3])]},
    ]


def test_mpii_official_mat_standard_split(tmp_path):
    release = str(tmp_path / "mpii_human_pose_v1_u12_1.mat")
    write_release_mat(release, _release_images())
    split_file = str(tmp_path / "detections.mat")
    # Validation persons: image 2 person 1, image 3 person 1 (1-based, Tompson's layout).
    write_tompson_split(split_file, [(2, 1), (3, 1)])
    val = read_mpii_mat(release, MPII_DIR, split="val", valid_split_file=split_file)
    assert [(r.image_id, r.annotation_id) for r in val.records] == [(1, 1000), (2, 2000)]
    r = val.records[0]
    np.testing.assert_allclose(r.head_box, [119, 39, 159, 89])
    np.testing.assert_allclose(r.center, [129, 150 + 15 * 1.5 - 1])
    np.testing.assert_allclose(r.keypoints[3], [114, 79])
    assert r.visible.all()  # annotated = target, whatever is_visible says
    train = read_mpii_mat(release, MPII_DIR, split="train", valid_split_file=split_file)
    # Image 1: person 1 only (person 2 has no annopoints); image 2 holds a validation person, so
    # its other person belongs to neither split; image 4 is a test image; image 5 has 3 joints.
    assert [(r.image_id, r.annotation_id) for r in train.records] == [(0, 0), (4, 4000)]
    assert train.summary.skipped == {"no_keypoints": 1, "in_validation_image": 1}
    assert train.records[1].visible.sum() == 3
    everything = read_mpii_mat(release, MPII_DIR, split="trainval")
    assert len(everything) == 5
    json_split = str(tmp_path / "valid.json")
    json.dump([[2, 1], [3, 1]], open(json_split, "w"))
    assert len(read_mpii_mat(release, MPII_DIR, split="val", valid_split_file=json_split)) == 2
    with pytest.raises(ValueError, match="detections.mat"):
        read_mpii_mat(release, MPII_DIR, split="train")


def test_custom_joint_set_from_names(tmp_path):
    names = ["head", "left_hand", "right_hand", "l_foot", "r_foot"]
    data = {
        "images": [{"id": 7, "file_name": "000000000785.jpg", "width": 640, "height": 425}],
        "categories": [{"id": 3, "name": "patient", "keypoints": names,
                        "skeleton": [[1, 2], [1, 3]]}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [280, 44, 218, 346],
                         "keypoints": [367, 81, 2, 449, 165, 2, 309, 178, 1, 466, 362, 2,
                                       396, 341, 0],
                         "head_box": [350, 60, 390, 100]}],
    }
    path = str(tmp_path / "custom.json")
    json.dump(data, open(path, "w"))
    result = read_custom(path, COCO_DIR)
    js = result.joint_set
    assert js.name == "patient" and js.names == tuple(names)
    assert set(js.flip_pairs) == {(1, 2), (3, 4)} and js.skeleton == ((0, 1), (0, 2))
    assert js.upper_body == (0, 1, 2)
    r = result.records[0]
    np.testing.assert_allclose(r.head_box, [350, 60, 390, 100])
    np.testing.assert_array_equal(r.visible, [1, 1, 1, 1, 0])
    coco_named = read_custom(COCO_JSON, COCO_DIR)
    assert coco_named.joint_set is COCO and len(coco_named) == 12
