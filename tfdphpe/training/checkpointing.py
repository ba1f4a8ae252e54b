"""Checkpoints that carry the privacy ledger and the sampling key, so a resumed run continues.

Each checkpoint is a TensorFlow checkpoint (model, optimizer with its step counter and noise
counter) plus ``ledger-<step>.json`` written *before* it (``tfdphpe.privacy.LedgerStore``): a
checkpoint never exists without the ledger that accounts for it.

The data sampler is stateless: the batches of step t depend only on the sampling key and t. The
key is secret (who knows it knows every batch, and amplification by subsampling is gone), so it
is kept in its own file beside the checkpoints, readable by the owner only, and nowhere else:
not in the TF checkpoint (which one might copy to resume elsewhere), the config, the flags, the
logs or an export. The ``checkpoints/`` folder stays with the private data; publish the model
and ``privacy.json``, never the run's ``checkpoints/``.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from tfdphpe.files import atomic_write
from tfdphpe.privacy import LedgerStore, PrivacyLedger
from tfdphpe.privacy.sampling import SamplingKey, check_key

SAMPLING_KEY_FILE = "sampling-key.secret"

__all__ = ["RunCheckpoint", "SAMPLING_KEY_FILE", "atomic_write", "load_sampling_key",
           "save_sampling_key"]


def save_sampling_key(directory: str, key: SamplingKey) -> str:
    """Writes the secret sampling key into ``directory`` (owner-only permissions)."""
    os.makedirs(directory, exist_ok=True)
    text = json.dumps({"key": list(check_key(key)),
                       "secret": "the Poisson coins of this run: keep with the private data; "
                                 "never publish (it would void amplification by subsampling)"})
    return atomic_write(os.path.join(directory, SAMPLING_KEY_FILE), text + "\n", mode=0o600)


def load_sampling_key(directory: str) -> SamplingKey:
    path = os.path.join(directory, SAMPLING_KEY_FILE)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: a run cannot be resumed without its sampling key "
                           "(its remaining batches would not be the ones it was accounted for); "
                           "start a new --run_dir")
    with open(path) as f:
        return check_key(json.load(f)["key"])


class RunCheckpoint:
    """Saves and restores model + optimizer + ledger for one training phase."""

    def __init__(self, directory: str, model: tf.keras.Model, optimizer, max_to_keep: int = 3,
                 var_list=None, source_directory: Optional[str] = None):
        """``source_directory``: where ``restore_latest`` reads (default ``directory``): a
        non-chief worker writes its own copy but resumes from the chief's checkpoints."""
        self.directory = directory
        self.source_directory = source_directory or directory
        self.ledgers = LedgerStore(directory, self.source_directory)
        if var_list is not None:
            # Create the optimizer's variables (step and noise counters, slots) now, so a
            # restore fills them at once instead of deferring until first use.
            optimizer.create_variables(list(var_list))
        os.makedirs(directory, exist_ok=True)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_steps")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory,
                                                  max_to_keep=max_to_keep)

    def save(self, step: int, ledger: PrivacyLedger, extra: Optional[dict] = None) -> str:
        if ledger.steps != step:
            raise RuntimeError(f"ledger records {ledger.steps} steps but {step} were taken")
        self.ledgers.save(ledger)
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if extra is not None:
            atomic_write(os.path.join(self.directory, "state.json"),
                         json.dumps(dict(extra, step=step, checkpoint=path), indent=1))
        kept = {int(p.rsplit("-", 1)[1]) for p in self.manager.checkpoints}
        self.ledgers.prune(kept | {step})
        return path

    def latest_checkpoint(self) -> Optional[str]:
        """The newest checkpoint of ``source_directory``, or None."""
        return tf.train.latest_checkpoint(self.source_directory)

    def restore_latest(self, like: Optional[PrivacyLedger] = None
                       ) -> Optional[tuple[int, PrivacyLedger]]:
        """Restores the newest checkpoint; returns (completed steps, its ledger) or None.

        With ``like`` (the ledger this configuration would start), a checkpoint whose ledger
        was written for another configuration is refused.
        """
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        step = int(self.step.numpy())
        return step, self.ledgers.restore(step, like)
