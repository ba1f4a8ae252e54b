import json
import os

import numpy as np
import pytest

from tfdphpe.evaluation import coco_keypoint_ap, to_coco_results

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")
ANN = os.path.join(FIXTURES, "coco", "test_coco.json")


def _ground_truth_as_predictions(offset=0.0):
    with open(ANN) as f:
        data = json.load(f)
    anns = [a for a in data["annotations"] if a.get("num_keypoints", 0) > 0 and not a["iscrowd"]]
    kps = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    xy = kps[..., :2] + offset
    return [a["image_id"] for a in anns], xy, np.ones((len(anns), 17))


def test_ground_truth_scores_ap_one(tmp_path):
    ids, xy, scores = _ground_truth_as_predictions()
    results = to_coco_results(ids, xy, scores)
    stats = coco_keypoint_ap(ANN, results)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)


def test_offset_predictions_score_lower():
    ids, xy, scores = _ground_truth_as_predictions(offset=15.0)
    stats = coco_keypoint_ap(ANN, to_coco_results(ids, xy, scores))
    assert 0.0 <= stats["AP"] < 0.9


def test_results_file_round_trip_and_unknown_images(tmp_path):
    ids, xy, scores = _ground_truth_as_predictions()
    path = tmp_path / "res.json"
    path.write_text(json.dumps(to_coco_results(ids, xy, scores)))
    assert coco_keypoint_ap(ANN, str(path))["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the annotations"):
        coco_keypoint_ap(ANN, to_coco_results([999999], xy[:1], scores[:1]))
    with pytest.raises(ValueError, match="no keypoint results"):
        coco_keypoint_ap(ANN, [])
