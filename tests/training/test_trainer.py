"""End-to-end training on a tiny synthetic data set with a reduced TinyViT."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY_INPUT, TRAIN_TINY
from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset
from tfdphpe.privacy import PrivacyLedger
from tfdphpe.training import (DataConfig, ModelConfig, OptimConfig, PrivacyConfig, RunConfig,
                              TrainConfig, Trainer, train)
from tfdphpe.training.checkpointing import SAMPLING_KEY_FILE, load_sampling_key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    cfg = SyntheticConfig(image_size=(96, 80))
    write_synthetic_dataset(str(root / "private"), 48, 8, seed=0, cfg=cfg, num_workers=1)
    write_synthetic_dataset(str(root / "public"), 24, 4, seed=1, cfg=cfg, num_workers=1)
    return str(root / "private"), str(root / "public")


def _config(data_dirs, run_dir, method="dpsgd", **run):
    private, public = data_dirs
    privacy = dict(method=method, l2_norm_clip=1.0, target_epsilon=8.0, delta=1e-3,
                   projection_dim=4, public_examples=8, public_view_sigma=2.0)
    run_kwargs = dict(run_dir=str(run_dir), epochs=1.0, batch_size=8, checkpoint_every=2,
                      log_every=1, flip_test=True)
    run_kwargs.update(run)
    return TrainConfig(
        data=DataConfig("synthetic", private, "synthetic", public, TINY_INPUT, augment=True),
        model=ModelConfig(variant=TRAIN_TINY, strategy="scratch"),
        privacy=PrivacyConfig(**privacy),
        optim=OptimConfig(learning_rate=1e-3),
        run=RunConfig(**run_kwargs))


def test_dp_run_writes_model_statement_and_metrics(data_dirs, tmp_path):
    cfg = _config(data_dirs, tmp_path / "run", pretrain_epochs=1.0, pretrain_batch_size=8)
    cfg.model.strategy = "finetune"
    metrics = train(cfg, log=lambda s: None)
    run = tmp_path / "run"
    for name in ("config.json", "model.keras", "privacy.json", "privacy.txt", "metrics.json",
                 "metrics.jsonl", "pretrain/model.keras"):
        assert (run / name).exists(), name
    report = json.loads((run / "privacy.json").read_text())
    assert report["method"] == "dpsgd" and report["sampling_used"] == "poisson"
    assert 0 < report["epsilon"] <= 8.0 + 1e-6
    assert report["steps_taken"] == 6 and metrics["steps"] == 6
    assert "PCKh@0.5/Mean" in metrics and 0.0 <= metrics["PCKh@0.5/Mean"] <= 100.0
    # BatchNorm statistics: the private model keeps the pretrained (public) ones.
    pre = tf.keras.models.load_model(str(run / "pretrain" / "model.keras"), compile=False)
    post = tf.keras.models.load_model(str(run / "model.keras"), compile=False)
    pre_stats = [w.numpy() for w in pre.get_layer("backbone").weights if "moving" in w.name]
    post_stats = [w.numpy() for w in post.get_layer("backbone").weights if "moving" in w.name]
    assert pre_stats and all(np.array_equal(a, b) for a, b in zip(pre_stats, post_stats))
    # ... and the public pretraining did learn statistics (BatchNorm trains on public data).
    assert any(np.any(s != 0) for s in pre_stats if s.ndim == 1)


@pytest.mark.parametrize("method", ["none", "pdpsgd", "fpdp"])
def test_every_method_trains(data_dirs, tmp_path, method):
    cfg = _config(data_dirs, tmp_path / method, method=method, max_steps=2)
    metrics = train(cfg, log=lambda s: None)
    assert metrics["steps"] == 2
    report = json.loads((tmp_path / method / "privacy.json").read_text())
    if method in ("pdpsgd", "fpdp"):
        manifest = json.loads((tmp_path / method / "public_split.json").read_text())
        assert manifest["num_public"] == 8 and report["num_examples"] == 48 - 8
    if method == "fpdp":
        assert "blur" in report["psi"] and "Feature DP" in report["statement"]
    if method == "none":
        assert report["epsilon"] is None and "no differential privacy" in report["statement"]


def test_mixed_precision_run(data_dirs, tmp_path):
    """--mixed_precision: float16 compute, float32 variables, a finite update, a loadable model."""
    cfg = _config(data_dirs, tmp_path / "mp", max_steps=2, mixed_precision=True, flip_test=False)
    cfg.privacy.clipping = "ghost"
    logs = []
    metrics = train(cfg, log=logs.append)
    assert metrics["steps"] == 2 and any("mixed precision" in line for line in logs)
    model = tf.keras.models.load_model(str(tmp_path / "mp" / "model.keras"), compile=False)
    conv = model.get_layer("backbone").get_layer("patch_embed").conv1.conv
    assert conv.compute_dtype == "float16"     # sublayers keep their parent's policy on load
    assert all(v.dtype == tf.float32 for v in model.weights)
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_weights)
    assert tf.keras.mixed_precision.global_policy().name == "float32"   # restored


def test_budget_cap_stops_the_run(data_dirs, tmp_path):
    cfg = _config(data_dirs, tmp_path / "cap", epochs=10.0, flip_test=False, eval_every=1000)
    cfg.privacy.noise_multiplier = 1.2   # 6 steps fit in epsilon 2 (N=48, B=8, delta 1e-3)
    cfg.privacy.target_epsilon = 2.0
    metrics = train(cfg, log=lambda s: None)
    ledger = PrivacyLedger.load(str(tmp_path / "cap" / "checkpoints" /
                                    f"ledger-{metrics['steps']}.json"))
    assert metrics["steps"] < 60 and metrics["steps"] == ledger.max_steps()
    assert metrics["steps"] > 0
    assert ledger.epsilon() <= 2.0 and ledger.epsilon(ledger.steps + 1) > 2.0
    assert json.loads((tmp_path / "cap" / "privacy.json").read_text())["stopped_by_budget"]


def test_killed_run_resumes_with_its_budget(data_dirs, tmp_path):
    run = tmp_path / "killed"
    cfg = _config(data_dirs, run, epochs=2.0, checkpoint_every=2, flip_test=False,
                  eval_every=1000)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "training", "driver.py"),
                             str(cfg_path)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ledger4 = run / "checkpoints" / "ledger-4.json"
    deadline = time.time() + 300
    while not (ledger4.exists() and (run / "checkpoints" / "ckpt-4.index").exists()):
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.keras").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(cfg, log=lambda s: None).train()
    resumed = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, resume=True))
    lines = []
    metrics = Trainer(resumed, log=lines.append).train()
    resumed_at = [l for l in lines if l.startswith("resumed at step")]
    assert resumed_at and int(resumed_at[0].split()[3]) >= 4
    assert metrics["steps"] == 12
    final = PrivacyLedger.load(str(run / "checkpoints" / "ledger-12.json"))
    fresh = PrivacyLedger.from_dict(dict(final.to_dict(), steps=12))
    assert final.steps == 12 and final.epsilon() == pytest.approx(fresh.epsilon())
    # Issue 24.2: every published figure equals an uninterrupted run's (it used to say 0 steps,
    # epsilon 0 after a resume, and the export copied that).
    straight = tmp_path / "straight"
    train(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_dir=str(straight))),
          log=lambda s: None)
    _assert_same_publication(run, straight)


def _assert_same_publication(run, reference):
    from tfdphpe.export import deployment_metadata, load_checkpoint
    got, want = (json.loads((d / "privacy.json").read_text()) for d in (run, reference))
    assert got["steps_taken"] == want["steps_taken"] > 0 and got["epsilon"] > 0
    assert got == want
    assert (run / "privacy.txt").read_text() == (reference / "privacy.txt").read_text()
    got_m, want_m = (json.loads((d / "metrics.json").read_text()) for d in (run, reference))
    for key in ("steps", "epsilon", "delta"):
        assert got_m[key] == want_m[key], key
    exported = []
    for d in (run, reference):
        source = load_checkpoint(str(d))
        exported.append(deployment_metadata(source.privacy, source.joint_set, TINY_INPUT,
                                            2.0)["privacy"])
    assert exported[0] == exported[1] and exported[0]["steps_taken"] == 12


def test_sampling_is_secret_and_nothing_published_recomputes_it(data_dirs, tmp_path):
    """Issue 24.1: the Poisson coins came from --seed (public), so anyone could recompute every
    batch. Two runs with the same flags must draw different batches, and nothing a run
    publishes may hold its sampling key."""
    runs = [tmp_path / "a", tmp_path / "b"]
    keys, batches = [], []
    for run in runs:
        trainer = Trainer(_config(data_dirs, run, max_steps=2, flip_test=False),
                          log=lambda s: None)
        trainer.train()
        keys.append(load_sampling_key(str(run / "checkpoints")))
        data = trainer._private_data()                        # pylint: disable=protected-access
        phase = trainer._private_phase(data, trainer._plan(len(data.train)), trainer.model,
                                       None, None)            # pylint: disable=protected-access
        shards = phase.make_data(0, keys[-1])
        batches.append([b["record_index"].numpy()[b["mask"].numpy() > 0].tolist()
                        for b, _ in zip(shards[0].dataset, range(6))])
    assert keys[0] != keys[1] and batches[0] != batches[1]
    key_file = runs[0] / "checkpoints" / SAMPLING_KEY_FILE
    assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
    words = [str(v) for v in keys[0]]
    for name in ("config.json", "privacy.json", "privacy.txt", "metrics.json"):
        text = (runs[0] / name).read_text()
        assert not any(w in text for w in words), name
    report = json.loads((runs[0] / "privacy.json").read_text())
    assert report["sampling_key_secret"] and not report["sampling_revealed"]
    assert "one person crop" in report["statement"] and "Privacy unit" in report["statement"]


def test_reproducible_sampling_is_accounted_without_amplification(data_dirs, tmp_path):
    cfg = _config(data_dirs, tmp_path / "seeded", max_steps=2, flip_test=False)
    cfg.privacy.noise_multiplier, cfg.privacy.target_epsilon = 2.0, None
    secret = _config(data_dirs, tmp_path / "secret", max_steps=2, flip_test=False)
    secret.privacy.noise_multiplier, secret.privacy.target_epsilon = 2.0, None
    cfg.privacy.reproducible_sampling = True
    train(cfg, log=lambda s: None)
    train(secret, log=lambda s: None)
    seeded, hidden = (json.loads((tmp_path / d / "privacy.json").read_text())
                      for d in ("seeded", "secret"))
    assert seeded["sampling_revealed"] and not seeded["sampling_key_secret"]
    assert seeded["epsilon"] > 2 * hidden["epsilon"]
    assert "coins follow from a seed" in seeded["statement"]
    assert not (tmp_path / "seeded" / "checkpoints" / SAMPLING_KEY_FILE).exists()


def test_config_errors_name_the_flag(data_dirs, tmp_path):
    cfg = _config(data_dirs, tmp_path / "bad")
    cfg.privacy.delta = 1.5
    with pytest.raises(ValueError, match="--delta"):
        cfg.validate()
    cfg = _config(data_dirs, tmp_path / "bad2")
    cfg.model.strategy = "finetune"
    with pytest.raises(ValueError, match="pretrain"):
        cfg.validate()
    cfg = _config(data_dirs, tmp_path / "bad3", pretrain_epochs=1.0)
    cfg.data.public_data_dir = cfg.data.data_dir
    with pytest.raises(ValueError, match="private pixels"):
        Trainer(cfg, log=lambda s: None).train()
    cfg = _config(data_dirs, tmp_path / "bad4", batch_size=500)
    with pytest.raises(ValueError, match="--batch_size"):
        Trainer(cfg, log=lambda s: None).train()


def test_config_json_round_trip(data_dirs, tmp_path):
    cfg = _config(data_dirs, tmp_path / "rt")
    again = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_resume_continues_the_secret_sample(data_dirs, tmp_path):
    """The sampling key survives a resume (from checkpoints/, never from a seed): two copies of
    a 2-step run resumed to 4 steps draw the same batches (zero noise: equal weights)."""
    import shutil

    def config(run, steps, resume=False):
        cfg = _config(data_dirs, run, max_steps=steps, flip_test=False, eval_every=1000,
                      resume=resume)
        cfg.privacy.noise_multiplier, cfg.privacy.target_epsilon = 0.0, None
        return cfg

    train(config(tmp_path / "a", 2), log=lambda s: None)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    key = load_sampling_key(str(tmp_path / "a" / "checkpoints"))
    weights = []
    for name in ("a", "b"):
        trainer = Trainer(config(tmp_path / name, 4, resume=True), log=lambda s: None)
        assert trainer.train()["steps"] == 4
        assert load_sampling_key(str(tmp_path / name / "checkpoints")) == key
        weights.append(trainer.model.get_weights())
    assert all(np.array_equal(x, y) for x, y in zip(*weights))
    fresh = Trainer(config(tmp_path / "c", 4), log=lambda s: None)
    fresh.train()
    assert any(not np.array_equal(x, y) for x, y in zip(weights[0], fresh.model.get_weights()))
