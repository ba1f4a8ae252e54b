"""The audit's tasks (tfdphpe.training.audit) and scripts/audit_privacy.py, at tiny scale."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import TRAIN_TINY
from tfdphpe.privacy.audit import AuditConfig
from tfdphpe.training import audit as tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "audit_privacy.py")


def test_shuffle_joints_permutes_each_axis_per_example():
    rng = np.random.default_rng(0)
    people = {"target_x": rng.random((30, 5, 8)), "target_y": rng.random((30, 5, 9)),
              "target_weight": (rng.random((30, 5)) < 0.8).astype(np.float32)}
    out = tasks.shuffle_joints(people, seed=1)
    moved = 0
    for i in range(30):
        px = [int(np.flatnonzero((people["target_x"][i] == row).all(1))[0])
              for row in out["target_x"][i]]
        py = [int(np.flatnonzero((people["target_y"][i] == row).all(1))[0])
              for row in out["target_y"][i]]
        assert sorted(px) == sorted(py) == list(range(5))
        want = people["target_weight"][i][px] * people["target_weight"][i][py]
        np.testing.assert_array_equal(out["target_weight"][i], want)
        moved += px != list(range(5))
    assert moved >= 25


def test_black_box_pose_task_runs(tmp_path):
    task = tasks.pose_task(TRAIN_TINY, (64, 48), "full", num_real=12, num_canaries=12,
                           num_public=4, data_dir=str(tmp_path / "synthetic"), log=lambda s: None)
    assert task.data["image"].shape == (12, 64, 48, 3)
    assert task.public_data["target_x"].shape[0] == 4
    config = AuditConfig(method="pdpsgd", clipping="ghost", target_epsilon=8.0,
                         num_canaries=12, batch_size=6, steps=2, projection_dim=2)
    result = tasks.run_audit("black_box", config, task, log=lambda s: None)
    assert result.kind == "black-box" and result.noised_sum is None
    assert result.epsilon_lower_bound <= result.claimed_epsilon
    assert "| black-box | pdpsgd | ghost |" in tasks.table([result])


def test_script_prints_the_table_and_writes_json(tmp_path):
    out_json = tmp_path / "rows.jsonl"
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = ["--epsilons=2", "--methods=dpsgd,fpdp", "--clipping=ghost", "--num_canaries=64",
            "--num_real=32", "--num_public=8", "--batch_size=16", "--steps=4",
            "--projection_dim=2", f"--json={out_json}"]
    out = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| kind | method | clipping | claimed_eps |" in out.stdout
    rows = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["method"] for r in rows] == ["dpsgd", "fpdp"]
    for r in rows:
        assert r["claimed_eps"] == pytest.approx(2.0, rel=2e-3)
        assert r["bound"] <= r["claimed_eps"] and r["m"] == 64
    assert rows[1]["released_bound"] == 0.0      # projected: the release never moves canaries
