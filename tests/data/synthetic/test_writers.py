"""The written data set: identical files from two processes, both formats readable."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np

from tfdphpe.data import COCO, read_coco, read_mpii_json, read_mpii_mat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


_TIMINGS = ("render_seconds", "total_seconds")
_MAT_HEADER = 116    # MAT-file text header: "MATLAB 5.0 MAT-file ... Created on: <date>"


def _generate(out, workers, hash_seed, seed=5, extra=()):
    """scripts/make_synthetic.py in a fresh process (its own hash seed and worker count)."""
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_synthetic.py"),
                             f"--out={out}", "--num_train=24", "--num_val=6", f"--seed={seed}",
                             "--image_size=96,80", f"--num_workers={workers}", *extra],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return _digests(out)


def _digests(root):
    """{relative path: sha256} of every file, without the two parts that say when it was made."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            data = open(path, "rb").read()
            if name.endswith(".mat"):
                assert data[:19] == b"MATLAB 5.0 MAT-file"
                data = data[_MAT_HEADER:]
            elif name == "info.json":
                info = json.loads(data)
                assert all(info.pop(k) >= 0 for k in _TIMINGS)
                data = json.dumps(info, sort_keys=True).encode()
            out[os.path.relpath(path, root)] = hashlib.sha256(data).hexdigest()
    return out


def test_same_seed_gives_identical_files_in_two_processes(tmp_path):
    # One process renders in a worker pool, the other alone, with different hash seeds.
    a = _generate(tmp_path / "a", workers=2, hash_seed=1)
    b = _generate(tmp_path / "b", workers=1, hash_seed=2)
    assert len([k for k in a if k.endswith(".jpg")]) == 30
    assert {"mpii/train.json", "mpii/gt_valid.mat", "coco/person_keypoints_val.json",
            "mpii/mpii_human_pose_v1_u12_1.mat", "info.json"} <= set(a)
    assert a == b
    # The comparison can see a difference: another seed gives other images.
    other = _generate(tmp_path / "other", workers=1, hash_seed=1, seed=6)
    assert other["images/train_000000.jpg"] != a["images/train_000000.jpg"]


def test_both_formats_flow_through_the_readers(synthetic_dir):
    images = os.path.join(synthetic_dir, "images")
    mpii_train = read_mpii_json(os.path.join(synthetic_dir, "mpii", "train.json"), images)
    mpii_val = read_mpii_json(os.path.join(synthetic_dir, "mpii", "valid.json"), images,
                              head_boxes_file=os.path.join(synthetic_dir, "mpii", "gt_valid.mat"))
    coco_val = read_coco(os.path.join(synthetic_dir, "coco", "person_keypoints_val.json"), images)
    official = read_mpii_mat(os.path.join(synthetic_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                             images, split="val",
                             valid_split_file=os.path.join(synthetic_dir, "mpii",
                                                           "valid_split.json"))
    kept_plus_skipped = len(mpii_train) + mpii_train.summary.num_skipped
    assert kept_plus_skipped == 12 and len(mpii_val) + mpii_val.summary.num_skipped == 4
    assert len(official) == len(mpii_val)
    for a, b in zip(official.records, mpii_val.records):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-2)
        np.testing.assert_allclose(a.head_box, b.head_box, atol=1e-2)
    # COCO body joints are the MPII joints (DESIGN 2.6 map); face points sit in the head box.
    for m, c in zip(mpii_val.records, coco_val.records):
        assert m.image_path == c.image_path
        for mi, ci in {15: 9, 0: 16}.items():
            if m.visible[mi] and c.visible[ci]:
                np.testing.assert_allclose(m.keypoints[mi], c.keypoints[ci], atol=0.02)
        x1, y1, x2, y2 = m.head_box
        for ci in range(5):
            if c.visible[ci]:
                x, y = c.keypoints[ci]
                assert x1 - 2 <= x <= x2 + 2 and y1 - 2 <= y <= y2 + 2
    assert coco_val.joint_set is COCO


def test_mpii_json_layout(synthetic_dir):
    entries = json.load(open(os.path.join(synthetic_dir, "mpii", "valid.json")))
    e = entries[0]
    assert {"image", "center", "scale", "joints", "joints_vis", "is_visible", "head_box"} <= set(e)
    vis = np.array(e["joints_vis"])
    assert (np.array(e["joints"])[vis == 0] == -1).all()
    info = json.load(open(os.path.join(synthetic_dir, "info.json")))
    assert info["num_train"] == 12 and info["seed"] == 5
