"""``PrivacyLedgerCallback``: the ledger protocol for ``model.fit`` (see ``ledger.py``).

    data = build_dataset(records, pipeline, BatchConfig("poisson", batch_size=B, num_steps=T))
    dp.fit(data.dataset, callbacks=[PrivacyLedgerCallback(num_examples=N, delta=1e-5,
                                                          sampling=data.sampling,
                                                          directory=ckpt_dir)])

It records every step before it runs, stops before the target epsilon, writes
``ledger-<step>.json`` beside the Keras checkpoints through the same ``LedgerStore`` the trainer
uses, and restores the ledger on resume.
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from tfdphpe.privacy.accounting import BudgetExceededError
from tfdphpe.privacy.dp_model import check_dp_optimizer
from tfdphpe.privacy.ledger import LedgerStore, PrivacyLedger
from tfdphpe.privacy.method import Sampling

# The data sampler's batchings, by the sampling the ledger accounts for.
_SAMPLER_KINDS = {"poisson": Sampling.POISSON, "poisson_variable": Sampling.POISSON,
                  "shuffled": Sampling.SHUFFLE, "shuffle": Sampling.SHUFFLE}


def sampling_kind(sampling) -> str:
    """The ledger's sampling ("poisson" or "shuffle") from a name or a sampler's SamplingInfo."""
    if isinstance(sampling, str):
        try:
            return Sampling(sampling).value
        except ValueError:
            raise ValueError(f"sampling must be one of {Sampling.names()} (how the dataset's "
                             f"batches were actually drawn), got {sampling!r}") from None
    method = getattr(sampling, "method", None)
    if method not in _SAMPLER_KINDS:
        raise ValueError(f"sampling {method or sampling!r}: training batches must be Poisson or "
                         "shuffled (tfdphpe.data.sampling), or name the kind: 'poisson'/'shuffle'")
    return _SAMPLER_KINDS[method].value


class PrivacyLedgerCallback(tf.keras.callbacks.Callback):
    """Records every ``fit`` step in a PrivacyLedger and stops before the target epsilon.

    Args:
      num_examples: N, the number of privacy units in the private training set (examples,
        unless the dataset samples units).
      delta: the delta of the guarantee.
      sampling: how the batches were drawn, required: the ``SamplingInfo`` of a tfdphpe dataset
        (``.sampling``; its coins' secrecy and its units are then taken from it), or a name:
        "poisson" (each unit joins each step independently with q = B/N, with coins nobody can
        recompute) or "shuffle" (fixed-size batches of a shuffled pass; the statement then
        claims the once-per-epoch figure).
      target_epsilon: stop (``model.stop_training``) when one more step would exceed it.
      directory: where ``ledger-<step>.json`` is written at each epoch end (and every
        ``save_every`` steps, and at the end): beside the Keras checkpoints (ModelCheckpoint,
        BackupAndRestore), with the same frequency. On resume (the optimizer restored at step t >
        0) the ledger of step t is read from it; a restored model without that file is refused.
      save_every: also save every this many steps (match ModelCheckpoint's integer save_freq).
      log: receives one line per epoch (epsilon so far) and on stopping.
      **ledger_kwargs: further PrivacyLedger fields (accountant, projection, privacy_unit, ...).

    The ledger's sigma, C, B and method come from the model's optimizer. ``epsilon`` is added to
    each epoch's logs (place the callback before CSVLogger/TensorBoard to log it).
    """

    def __init__(self, num_examples: int, delta: float, sampling, *,
                 target_epsilon: Optional[float] = None, directory: Optional[str] = None,
                 save_every: Optional[int] = None, log: Callable[[str], None] = print,
                 **ledger_kwargs):
        super().__init__()
        self.sampling = sampling_kind(sampling)
        self._sampler = None if isinstance(sampling, str) else sampling
        if self._sampler is not None:
            if self._sampler.units != num_examples:
                raise ValueError(f"the dataset samples from {self._sampler.units} units, not "
                                 f"num_examples={num_examples}")
            if not getattr(self._sampler, "key_secret", True):
                # Coins that follow from a seed: account without amplification.
                ledger_kwargs.update(sampling_key_secret=False, sampling_revealed=True)
            if getattr(self._sampler, "num_units", None) is not None:
                ledger_kwargs.setdefault("examples_per_unit", self._sampler.examples_per_unit)
        self.num_examples, self.delta, self.target_epsilon = num_examples, delta, target_epsilon
        self.directory, self.save_every, self.log = directory, save_every, log
        self.store = LedgerStore(directory) if directory else None
        self._ledger_kwargs = ledger_kwargs
        self.ledger: Optional[PrivacyLedger] = None
        self.stopped_by_budget = False
        self._synced = False
        self._skipped_seen = 0

    def _new_ledger(self, optimizer) -> PrivacyLedger:
        check_dp_optimizer(optimizer, allow_non_private=True)
        if self._sampler is not None and self._sampler.batch_size != optimizer.expected_batch_size:
            raise ValueError(f"the dataset's batch size {self._sampler.batch_size} differs from "
                             f"the optimizer's expected_batch_size {optimizer.expected_batch_size}")
        return PrivacyLedger.from_optimizer(
            optimizer, self.num_examples, self.delta, sampling=self.sampling,
            target_epsilon=self.target_epsilon if optimizer.method.private else None,
            **self._ledger_kwargs)

    def on_train_begin(self, logs=None):
        if getattr(self.model, "_steps_per_execution", None) is not None and \
                int(self.model._steps_per_execution.numpy()) != 1:   # pylint: disable=protected-access
            raise ValueError("PrivacyLedgerCallback needs steps_per_execution=1 (one record per "
                             "step, before it runs)")
        if self.ledger is None:
            self.ledger = self._new_ledger(self.model.optimizer)
        self._synced = False     # other callbacks' on_train_begin may restore a checkpoint

    def _sync(self) -> None:
        """Matches the ledger to the optimizer's step counter (resume), or refuses."""
        taken = int(self.model.optimizer.iterations.numpy())
        saved = set(self.store.steps()) if self.store else set()
        if taken == self.ledger.steps:
            if taken == 0 and saved:
                raise FileExistsError(
                    f"{self.directory} holds ledgers up to step {max(saved)} but the optimizer is "
                    "at step 0: restore the checkpoint first, or use a new directory")
            return
        if self.ledger.steps == 0 and taken in saved:
            try:
                self.ledger = self.store.restore(taken, like=self.ledger)
            except RuntimeError as err:
                raise RuntimeError(f"{err} (the ledger was written for another configuration "
                                   "or run)") from None
            self.log(f"privacy ledger restored at step {taken} "
                     f"(epsilon so far {self._epsilon():.4g})")
            return
        raise RuntimeError(f"the optimizer has taken {taken} steps but the privacy ledger records "
                           f"{self.ledger.steps} (no ledger-{taken}.json in {self.directory}); "
                           "refusing to train with an unknown spent budget")

    def _epsilon(self) -> float:
        return self.ledger.epsilon() if self.ledger.private else float("inf")

    def on_train_batch_begin(self, batch, logs=None):
        if not self._synced:
            self._sync()
            self._synced = True
            self._skipped_seen = self._optimizer_skips()
        try:
            self.ledger.record_step()        # before the step runs
        except BudgetExceededError:
            self.stopped_by_budget = True
            raise

    def _optimizer_skips(self) -> int:
        counter = getattr(self.model.optimizer, "skipped_updates", None)
        return 0 if counter is None else int(counter.numpy())

    def on_train_batch_end(self, batch, logs=None):
        skipped = self._optimizer_skips()
        for _ in range(skipped - self._skipped_seen):   # DPOptimizer.apply_if_finite skipped it
            self.ledger.record_skipped_update()
        self._skipped_seen = skipped
        if self.ledger.private and not self.ledger.can_step():
            self.model.stop_training = True
            self.stopped_by_budget = True
            self.log(f"stopping after step {self.ledger.steps}: one more step would exceed the "
                     f"target epsilon {self.ledger.target_epsilon:g}")
        if self.save_every and self.ledger.steps % self.save_every == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        taken = int(self.model.optimizer.iterations.numpy())
        if taken != self.ledger.steps:
            raise RuntimeError(f"the optimizer took {taken} steps, the ledger recorded "
                               f"{self.ledger.steps}")
        if logs is not None:
            logs["epsilon"] = self._epsilon()
        self.log(f"epoch {epoch + 1}: {self.ledger.steps} steps, epsilon "
                 f"{self._epsilon():.4g} at delta {self.delta:g} ({self.sampling} sampling)")
        self.save()

    def on_train_end(self, logs=None):
        self.save()

    def save(self) -> Optional[str]:
        """Writes ``ledger-<steps>.json`` into ``directory`` (if any); returns its path."""
        if self.store is None or self.ledger is None:
            return None
        return self.store.save(self.ledger)
