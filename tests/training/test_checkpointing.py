"""Checkpoints carry the ledger; the sampling key is kept apart, owner-only, and required."""

import os
import stat

import numpy as np
import pytest
import tensorflow as tf

from tfdphpe import privacy
from tfdphpe.training.checkpointing import (SAMPLING_KEY_FILE, RunCheckpoint, load_sampling_key,
                                            save_sampling_key)


def test_sampling_key_round_trip_permissions_and_refusal(tmp_path):
    save_sampling_key(str(tmp_path), (12345, -6789))
    path = tmp_path / SAMPLING_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_sampling_key(str(tmp_path)) == (12345, -6789)
    with pytest.raises(RuntimeError, match="sampling key"):
        load_sampling_key(str(tmp_path / "elsewhere"))


def test_checkpoint_saves_the_ledger_first_and_restores_it(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    opt = privacy.make_optimizer("dpsgd", 1.0, 1.0, 0.1, expected_batch_size=4)
    ledger = privacy.PrivacyLedger(method="dpsgd", noise_multiplier=1.0, l2_norm_clip=1.0,
                                   num_examples=100, batch_size=4, delta=1e-5)
    ckpt = RunCheckpoint(str(tmp_path), model, opt, var_list=model.trainable_variables)
    with pytest.raises(RuntimeError, match="ledger records 0"):
        ckpt.save(3, ledger)
    ledger.record_step(3)
    ckpt.save(3, ledger)
    assert (tmp_path / "ledger-3.json").exists()
    weights = [w.numpy() for w in model.weights]
    model.layers[-1].kernel.assign(tf.zeros([3, 2]))
    again = RunCheckpoint(str(tmp_path), model, opt, var_list=model.trainable_variables)
    step, restored = again.restore_latest(like=ledger)
    assert step == 3 and restored.steps == 3
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, model.weights))
    other = privacy.PrivacyLedger.from_dict(dict(ledger.to_dict(), noise_multiplier=2.0))
    with pytest.raises(RuntimeError, match="another configuration"):
        again.restore_latest(like=other)
