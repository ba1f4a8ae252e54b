"""Checkpoints that carry the privacy ledger, so a resumed run continues its budget.

Each checkpoint is a TensorFlow checkpoint (model, optimizer with its step counter and noise
state) plus ``ledger-<step>.json`` written *before* it: a checkpoint never exists without the
ledger that accounts for it. The data sampler is stateless (the batches of step t depend only on
the seed and t), so the step number is the whole sampler state.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from tfdphpe.privacy import PrivacyLedger


def atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunCheckpoint:
    """Saves and restores model + optimizer + ledger for one training phase."""

    def __init__(self, directory: str, model: tf.keras.Model, optimizer, max_to_keep: int = 3,
                 var_list=None, source_directory: Optional[str] = None):
        """``source_directory``: where ``restore_latest`` reads (default ``directory``): a
        non-chief worker writes its own copy but resumes from the chief's checkpoints."""
        self.directory = directory
        self.source_directory = source_directory or directory
        if var_list is not None:
            # Create the optimizer's variables (step and noise counters, slots) now, so a
            # restore fills them at once instead of deferring until first use.
            optimizer.create_variables(list(var_list))
        os.makedirs(directory, exist_ok=True)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_steps")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory,
                                                  max_to_keep=max_to_keep)

    def _ledger_path(self, step: int) -> str:
        return os.path.join(self.directory, f"ledger-{step}.json")

    def save(self, step: int, ledger: PrivacyLedger, extra: Optional[dict] = None) -> str:
        if ledger.steps != step:
            raise RuntimeError(f"ledger records {ledger.steps} steps but {step} were taken")
        atomic_write(self._ledger_path(step), ledger.to_json())
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if extra is not None:
            atomic_write(os.path.join(self.directory, "state.json"),
                         json.dumps(dict(extra, step=step, checkpoint=path), indent=1))
        kept = {int(p.rsplit("-", 1)[1]) for p in self.manager.checkpoints}
        for name in os.listdir(self.directory):
            if name.startswith("ledger-") and name.endswith(".json"):
                s = int(name[len("ledger-"):-len(".json")])
                if s not in kept and s != step:
                    os.remove(os.path.join(self.directory, name))
        return path

    def latest_checkpoint(self) -> Optional[str]:
        """The newest checkpoint of ``source_directory``, or None."""
        return tf.train.latest_checkpoint(self.source_directory)

    def restore_latest(self) -> Optional[tuple[int, PrivacyLedger]]:
        """Restores the newest checkpoint; returns (completed steps, ledger) or None."""
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        step = int(self.step.numpy())
        path = os.path.join(self.source_directory, f"ledger-{step}.json")
        if not os.path.exists(path):
            raise RuntimeError(f"checkpoint {latest} has no privacy ledger ({path}); refusing to "
                               "resume a run whose spent budget is unknown")
        ledger = PrivacyLedger.load(path)
        if ledger.steps != step:
            raise RuntimeError(f"{path} records {ledger.steps} steps, checkpoint has {step}")
        return step, ledger
