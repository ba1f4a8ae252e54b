import json
import os

import numpy as np
import pytest

from tfdphpe.data.joints import MPII
from tfdphpe.evaluation import pckh

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")


def _one_person():
    gt = np.zeros((1, 16, 2))
    gt[0, :, 0] = np.arange(16) * 10.0
    box = np.array([[0.0, 0.0, 30.0, 40.0]])  # diagonal 50 -> head size 30
    return gt, np.ones((1, 16)), box


def test_hand_computed_thresholds():
    gt, vis, box = _one_person()
    pred = gt.copy()
    pred[0, MPII.index("head_top"), 0] += 14.0       # 14/30 = 0.47: ok at 0.5, not at 0.1
    pred[0, MPII.index("l_wrist"), 1] += 16.0        # 0.53: fails at 0.5
    pred[0, MPII.index("r_wrist"), 1] += 2.9         # 0.097: passes at 0.1
    res = pckh(pred, gt, vis, box)
    assert res.groups[0.5]["Head"] == 100.0
    assert res.groups[0.1]["Head"] == 0.0
    assert res.groups[0.5]["Wrist"] == 50.0          # mean of left (0) and right (100)
    assert res.groups[0.1]["Wrist"] == 50.0
    # Mean over the 14 joints without pelvis/thorax, equal counts: 13/14 correct at 0.5
    assert res.mean[0.5] == pytest.approx(100.0 * 13 / 14)
    assert res.mean[0.1] == pytest.approx(100.0 * 12 / 14)


def test_pelvis_and_thorax_do_not_count_and_invisible_joints_are_ignored():
    gt, vis, box = _one_person()
    pred = gt.copy()
    pred[0, MPII.index("pelvis")] += 500.0
    pred[0, MPII.index("thorax")] += 500.0
    pred[0, MPII.index("l_ankle")] += 500.0
    vis[0, MPII.index("l_ankle")] = 0
    res = pckh(pred, gt, vis, box)
    assert res.mean[0.5] == pytest.approx(100.0)
    assert res.joint_counts[MPII.index("l_ankle")] == 0


def test_mean_is_weighted_by_visible_counts():
    gt = np.zeros((2, 16, 2))
    vis = np.ones((2, 16))
    vis[1, MPII.index("l_knee")] = 0   # l_knee seen once, every other joint twice
    box = np.tile([[0.0, 0.0, 30.0, 40.0]], (2, 1))
    pred = gt.copy()
    pred[:, MPII.index("r_knee"), 0] = 100.0   # r_knee wrong in both (weight 2/27)
    res = pckh(pred, gt, vis, box)
    assert res.mean[0.5] == pytest.approx(100.0 * (1 - 2 / 27))


def test_mpii_fixture_ground_truth_scores_100_and_offset_fails_expected_joints():
    with open(os.path.join(FIXTURES, "mpii", "test_mpii.json")) as f:
        records = json.load(f)
    gt = np.array([r["joints"] for r in records], dtype=np.float64)
    vis = np.array([r["joints_vis"] for r in records], dtype=np.float64)
    # the fixture has no head boxes: a box around head top / upper neck, as tests must make
    top, neck = gt[:, MPII.index("head_top")], gt[:, MPII.index("upper_neck")]
    centre, half = (top + neck) / 2, np.maximum(np.abs(top - neck).max(1), 10)[:, None] / 2 + 5
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    assert pckh(gt, gt, vis, boxes).mean[0.5] == pytest.approx(100.0)
    sizes = 0.6 * np.linalg.norm(boxes[:, 2:] - boxes[:, :2], axis=1)
    pred = gt.copy()
    shifted = [MPII.index("l_wrist"), MPII.index("r_ankle")]
    pred[:, shifted, 0] += 0.6 * sizes[:, None]          # beyond 0.5 head sizes
    res = pckh(pred, gt, vis, boxes)
    for j in range(16):
        expected = 0.0 if j in shifted else 100.0
        if res.joint_counts[j] > 0:
            assert res.per_joint[0.5][j] == pytest.approx(expected), MPII.names[j]


def test_shape_errors_are_clear():
    gt, vis, box = _one_person()
    with pytest.raises(ValueError, match="16, 2"):
        pckh(gt[:, :15], gt[:, :15], vis, box)
    with pytest.raises(ValueError, match="zero size"):
        pckh(gt, gt, vis, np.zeros((1, 4)))
