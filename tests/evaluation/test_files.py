"""Scoring predictions files without a model, through the library and scripts/evaluate.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat

from tfdphpe.data.mpii import read_mpii_json, write_gt_valid_mat
from tfdphpe.evaluation.files import score_mpii_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "..", "shared", "fixtures")
MPII_JSON = os.path.join(FIXTURES, "mpii", "test_mpii.json")


@pytest.fixture()
def mpii_with_heads(tmp_path):
    with open(MPII_JSON) as f:
        entries = json.load(f)
    gt = np.array([e["joints"] for e in entries], np.float64)
    vis = np.array([e["joints_vis"] for e in entries], np.float64)
    top, neck = gt[:, 9], gt[:, 8]
    c = (top + neck) / 2
    boxes = np.concatenate([c - 2, c + 2], axis=1)  # small heads: 0.1 threshold is 0.34 px
    heads = tmp_path / "gt_valid.mat"
    write_gt_valid_mat(str(heads), gt + 1, vis, boxes + 1)
    return gt, str(heads)


def test_ground_truth_file_scores_100_and_one_based_is_honoured(mpii_with_heads, tmp_path):
    gt, heads = mpii_with_heads
    records = read_mpii_json(MPII_JSON, os.path.join(FIXTURES, "mpii"), head_boxes_file=heads)
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"preds": gt.tolist()}))
    assert score_mpii_file(str(path), records.records).mean[0.5] == pytest.approx(100.0)
    mat = tmp_path / "pred.mat"
    savemat(str(mat), {"preds": gt + 1})  # HRNet's pred.mat is 1-based
    assert score_mpii_file(str(mat), records.records, one_based=True).mean[0.5] == \
        pytest.approx(100.0)
    shifted = score_mpii_file(str(mat), records.records, one_based=False)
    assert shifted.mean[0.1] == 0.0  # a 1-pixel shift in x and y fails every joint


def test_count_mismatch_is_an_error(mpii_with_heads, tmp_path):
    gt, heads = mpii_with_heads
    records = read_mpii_json(MPII_JSON, os.path.join(FIXTURES, "mpii"), head_boxes_file=heads)
    path = tmp_path / "pred.npy"
    np.save(path, gt[:2])
    with pytest.raises(ValueError, match="2 predictions, but"):
        score_mpii_file(str(path), records.records)


def test_evaluate_script_scores_files(mpii_with_heads, tmp_path):
    gt, heads = mpii_with_heads
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(gt.tolist()))
    out = tmp_path / "m.json"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), f"--predictions={pred}",
           "--dataset=mpii", f"--annotations={MPII_JSON}", f"--head_boxes={heads}",
           f"--output={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| PCKh@0.5 | 100.00" in res.stdout
    assert json.loads(out.read_text())["PCKh@0.5/Mean"] == pytest.approx(100.0)
    coco_ann = os.path.join(FIXTURES, "coco", "test_coco.json")
    data = json.load(open(coco_ann))
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0} for a in data["annotations"] if a.get("num_keypoints", 0) > 0]
    rpath = tmp_path / "res.json"
    rpath.write_text(json.dumps(results))
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), f"--predictions={rpath}",
           "--dataset=coco", f"--annotations={coco_ann}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "COCO/AP: 1.0000" in res.stdout
