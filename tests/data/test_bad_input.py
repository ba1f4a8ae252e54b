"""Issue 3 section 5: nothing is skipped silently."""

import json
import logging
import os
import shutil

import numpy as np
import pytest

from tfdphpe.data import AnnotationError, read_coco, read_mpii_json
from tests.data.conftest import COCO_DIR, MPII_DIR

COCO_JSON = os.path.join(COCO_DIR, "test_coco.json")
MPII_JSON = os.path.join(MPII_DIR, "test_mpii.json")


@pytest.fixture
def coco_copy(tmp_path):
    """The COCO sample in a writable folder."""
    for name in os.listdir(COCO_DIR):
        shutil.copy(os.path.join(COCO_DIR, name), tmp_path / name)
    return tmp_path


def test_missing_and_corrupt_images_are_skipped_named_and_counted(coco_copy, caplog):
    os.remove(coco_copy / "000000000785.jpg")  # 1 person
    (coco_copy / "000000040083.jpg").write_bytes(b"not a jpeg at all")  # 2 persons (+1 empty)
    with caplog.at_level(logging.WARNING, logger="tfdphpe.data"):
        result = read_coco(str(coco_copy / "test_coco.json"), str(coco_copy))
    assert result.summary.skipped["missing_image"] == 1
    assert result.summary.skipped["corrupt_image"] == 3
    assert len(result) == 12 - 1 - 2
    text = caplog.text
    assert "000000000785.jpg" in text and "000000040083.jpg" in text
    assert "missing_image" in result.summary.describe()


def test_truncated_image_caught_by_full_decode(coco_copy):
    data = (coco_copy / "000000000785.jpg").read_bytes()
    (coco_copy / "000000000785.jpg").write_bytes(data[: len(data) // 3])
    header_only = read_coco(str(coco_copy / "test_coco.json"), str(coco_copy))
    assert header_only.summary.skipped.get("corrupt_image", 0) == 0
    decoded = read_coco(str(coco_copy / "test_coco.json"), str(coco_copy), check_images="decode")
    assert decoded.summary.skipped["corrupt_image"] == 1


@pytest.mark.parametrize("field,value,match", [
    ("keypoints", [1, 2, 3], r"annotation #0 \(id=442619.*'keypoints' must have 51"),
    ("bbox", "wide", r"annotation #0 \(id=442619.*'bbox'"),
    ("image_id", 12345, r"annotation #0 \(id=442619.*image_id not in"),
])
def test_malformed_coco_annotation_names_file_and_record(tmp_path, field, value, match):
    data = json.load(open(COCO_JSON))
    data["annotations"][0][field] = value
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=match) as err:
        read_coco(str(path), COCO_DIR)
    assert "broken.json" in str(err.value)


def test_unparsable_json_names_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json: not valid JSON"):
        read_coco(str(path), COCO_DIR)


def test_malformed_mpii_record_names_file_and_record(tmp_path):
    data = json.load(open(MPII_JSON))
    data[3]["joints"] = data[3]["joints"][:10]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"train.json: record #3 \(image 004645041.jpg\)"):
        read_mpii_json(str(path), MPII_DIR)


def test_outside_joints_invisible_and_empty_persons_skipped(tmp_path):
    data = json.load(open(MPII_JSON))
    data[0]["joints"][0] = [5000.0, 10.0]   # beyond the 1280-wide image
    data[0]["joints"][1] = [-40.0, 10.0]
    data[1]["joints"] = [[-50.0, -50.0]] * 16  # every joint outside: nothing left to learn
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    result = read_mpii_json(str(path), MPII_DIR)
    assert result.summary.joints_outside_image == 2 + 16
    assert result.summary.skipped == {"no_visible_joints": 1}
    assert len(result) == 4
    r = result.records[0]
    assert r.visible[0] == 0 and r.visible[1] == 0 and r.visible[2] == 1
    np.testing.assert_array_equal(r.keypoints[:2], 0.0)
    assert "18 joint(s) outside the image" in result.summary.describe()
