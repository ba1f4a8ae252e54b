"""DESIGN 3b on 2 logical CPU devices: per-replica clipping, all-reduced sums, noise added once.

The checks run in subprocesses because logical devices (and a multi-worker cluster) must be set up
before TensorFlow initialises, which the other tests have already done in this process.
"""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "privacy")


def _env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _check(figures, key):
    # Zero noise: the same update as one device (sums in another order).
    assert figures["diff_zero_noise"] < 1e-5 * max(1.0, figures["scale"]), (key, figures)
    # Seeded noise: added once to the global sum, the same value on every replica.
    assert figures["diff_seeded"] < 1e-5, (key, figures)
    # Noise alone: std sigma*C/B (ratio 1); noise per replica would give sqrt(2) = 1.41.
    assert abs(figures["noise_std_ratio"] - 1.0) < 0.1, (key, figures)
    assert figures["replicas_agree"], (key, figures)


def test_mirrored_strategy_step_equals_single_device_step():
    out = subprocess.run([sys.executable, os.path.join(HERE, "distributed_check.py")],
                         capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {f"{m}/{c}" for m in ("dpsgd", "pdpsgd", "fdp", "fpdp")
                           for c in ("vectorized", "ghost")}
    for key, figures in result.items():
        _check(figures, key)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost(tmp_path):
    from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset
    cfg = SyntheticConfig(image_size=(96, 80))
    write_synthetic_dataset(str(tmp_path / "private"), 32, 4, seed=0, cfg=cfg, num_workers=1)
    write_synthetic_dataset(str(tmp_path / "public"), 8, 0, seed=1, cfg=cfg, num_workers=1)
    run_dir = tmp_path / "run"
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"private": str(tmp_path / "private"),
                                "public": str(tmp_path / "public"), "run_dir": str(run_dir)}))
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(HERE, "multi_worker_check.py"), str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": i}})))
        for i in range(2)]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=600)
            assert p.returncode == 0, stderr[-3000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    for out in outs:
        assert out["replicas"] == 2
        for key, figures in out["checks"].items():
            _check(figures, key)
    # Each worker drew its own secret noise key; the chief's was used by both, so after noisy
    # training steps both hold the same weights (a per-worker key would make them differ).
    assert outs[0]["own_keys_differ"] or outs[1]["own_keys_differ"]
    assert outs[0]["weights"] == outs[1]["weights"]
    assert outs[0]["noise_key"] == outs[1]["noise_key"]
    assert outs[0]["moved"] > 1e-3
    # The trainer across the two workers: identical noisy weights, one set of files by the chief.
    assert [o["trainer"]["chief"] for o in outs] == [True, False]
    assert outs[0]["trainer"]["steps"] == outs[1]["trainer"]["steps"] == 3
    assert outs[0]["trainer"]["weights"] == outs[1]["trainer"]["weights"]
    report = json.loads((run_dir / "privacy.json").read_text())
    assert report["replicas"] == 2 and report["steps_taken"] == 3
    assert report["batch_size"] == 8 and report["num_examples"] == 32
    assert (run_dir / "model.keras").exists() and (run_dir / "checkpoints" / "ledger-3.json").exists()
    assert not (run_dir / ".worker-1").exists()       # the other worker's copies are removed
