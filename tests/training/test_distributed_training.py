"""The trainer under MirroredStrategy on 2 logical CPUs: same run as on one device, resumable.

In a subprocess: logical devices must be configured before TensorFlow starts its runtime.
"""

import json
import os
import subprocess
import sys

from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mirrored_training_equals_one_device_and_resumes(tmp_path):
    cfg = SyntheticConfig(image_size=(96, 80))
    write_synthetic_dataset(str(tmp_path / "private"), 40, 6, seed=0, cfg=cfg, num_workers=1)
    write_synthetic_dataset(str(tmp_path / "public"), 8, 0, seed=1, cfg=cfg, num_workers=1)
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"private": str(tmp_path / "private"),
                                "public": str(tmp_path / "public")}))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "training", "distributed_run.py"),
         str(data), str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=900,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["report_replicas"] == 2
    assert out["steps"] == [4, 4, 4] and out["report_steps"] == 4
    # Global accounting: q = B / N with the global B and N, whatever the replicas.
    assert out["report_batch_size"] == 8 and out["report_num_examples"] == 40
    assert "2 replicas in sync" in out["distribution_log"][0]
    assert "2 disjoint shards" in out["sampling_log"][0]
    # Each replica samples its shard; the union is the one-device Poisson batch, augmented alike,
    # and the clipped sums are all-reduced: the same weights after 4 steps (sums in another order).
    assert out["mirrored_vs_single"] < 1e-5, out
    assert out["resumed_log"] and out["resumed_log"][0].startswith("resumed at step 2")
    assert out["resumed_vs_mirrored"] < 1e-6, out
    assert out["moved_in_steps_3_4"] > 1e-3, out     # the comparisons compare trained weights
