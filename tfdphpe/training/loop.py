"""The step loop of one training phase: checkpoints, the ledger protocol, the DP step, logs.

``run_phase(phase, ...)`` trains ``phase.model`` for ``phase.steps`` steps and returns the phase's
result with its ledger (the restored one after a resume). The ledger protocol (see
``tfdphpe.privacy.ledger``): each step is recorded before it runs, the run stops before the
target epsilon would be exceeded, and the ledger is saved before every checkpoint.

A step is two parts. In each replica, ``dp_gradients`` computes the global update (clipped,
all-reduced, noised once); then, in the cross-replica context, the update is applied only if it is
finite. A condition around ``apply_gradients`` cannot run inside a replica (it synchronises), and
a non-finite update can only come from public quantities (records with non-finite norms are left
out of the private sum), so skipping it reveals nothing private; the ledger counts such steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional

import tensorflow as tf

from tfdphpe.models import simcc_kl_loss
from tfdphpe.privacy import PrivacyLedger
from tfdphpe.privacy.optimizers import update_is_finite
from tfdphpe.training.checkpointing import RunCheckpoint
from tfdphpe.training.distribution import Distribution

Log = Callable[[str], None]
# What a training step reads from a batch (metadata and strings stay out of the graph).
STEP_KEYS = ("image", "public_image", "target_x", "target_y", "target_weight", "mask")
# The independently sampled batch of public views (fdp, fpdp) carries no private pixels.
PUBLIC_VIEW_KEYS = ("public_image", "target_x", "target_y", "target_weight", "mask")


@dataclasses.dataclass
class Phase:
    """One phase to run.

    ``make_data(start, key)`` returns {replica id: PoseDataset} from step ``start`` with the
    sampling key ``key``; ``make_views`` (Feature DP) the same for the public views; ``key`` is
    called once the checkpoint state is known: ``key(resumed) -> sampling key``.
    """

    out_dir: str
    model: tf.keras.Model
    optimizer: tf.keras.optimizers.legacy.Optimizer
    ledger: PrivacyLedger
    steps: int
    make_data: Callable
    key: Callable[[bool], tuple]
    bn_training: bool
    evaluate: Optional[Callable] = None
    public_batch: Optional[dict] = None
    make_views: Optional[Callable] = None
    examples_per_unit: Optional[int] = None


@dataclasses.dataclass
class PhaseResult:
    steps: int
    stopped_by_budget: bool
    metrics: dict
    ledger: PrivacyLedger


def _concat_chunks(chunks: list[dict]) -> dict:
    """Joins the chunks of one Poisson step (rare overflow) into one masked batch."""
    if len(chunks) == 1:
        return chunks[0]
    out = {}
    for k, v in chunks[0].items():
        out[k] = v if v.shape.rank == 0 else tf.concat([c[k] for c in chunks], axis=0)
    return out


def _step_batches(dataset: tf.data.Dataset):
    """Yields whole steps: the chunks that share a step number, joined."""
    pending: list[dict] = []
    for batch in dataset:
        pending.append(batch)
        if int(batch["chunk"]) + 1 == int(batch["num_chunks"]):
            yield int(batch["step"]), _concat_chunks(pending)
            pending = []
    if pending:
        raise RuntimeError("the data pipeline ended in the middle of a Poisson step")


def shard_steps(shards: dict, keys=STEP_KEYS):
    """Yields (step, {replica id: that replica's batch of the step}) from per-replica datasets."""
    iterators = {r: _step_batches(ds.dataset) for r, ds in shards.items()}
    while True:
        got = {}
        for r, it in iterators.items():
            item = next(it, None)
            if item is None:
                if got:
                    raise RuntimeError(f"replica {r}'s data ended before the others'")
                return
            got[r] = item
        steps = {step for step, _ in got.values()}
        if len(steps) != 1:
            raise RuntimeError(f"replicas' data pipelines are at different steps: {sorted(steps)}")
        yield steps.pop(), {r: {k: v for k, v in batch.items() if k in keys}
                            for r, (_, batch) in got.items()}


class _Steps:
    """The compiled step functions of a phase (replica gradients, cross-replica apply)."""

    def __init__(self, phase: Phase, dist: Distribution, jit: bool):
        model, opt = phase.model, phase.optimizer
        var_list = model.trainable_variables
        strategy = dist.strategy
        bn_training = phase.bn_training
        units = phase.examples_per_unit
        self.var_list = var_list

        def loss_fn(batch):
            return simcc_kl_loss(model(batch["image"], training=bn_training), batch)

        def public_loss_fn(batch):
            return simcc_kl_loss(model(batch["public_image"], training=bn_training), batch)

        self.loss_fn = loss_fn
        # Ghost clipping records the calls of the model's layers inside loss_fn.
        layers = model if opt.clipping == "ghost" else None
        self.layers = layers

        def grads(batch, views=None):
            kwargs = {}
            if views is not None:
                # The optimizer clips and noises grad[l(x) - l(psi(x))] over the private batch
                # and adds the un-noised grad l(psi(x_j)) over the independent public views.
                kwargs = dict(public_loss_fn=public_loss_fn, public_batch=views,
                              public_batch_mask=views["mask"])
            if units:
                kwargs["examples_per_unit"] = units
            return opt.dp_gradients(loss_fn, batch, var_list, batch_mask=batch.get("mask"),
                                    layers=layers, **kwargs)

        def apply(update):
            opt.apply_gradients(zip(update, var_list))

        # Keras' pattern: XLA compiles each replica's step; strategy.run runs it on every
        # replica (with the default strategy, on the one device).
        replica_grads = tf.function(grads, jit_compile=jit, reduce_retracing=True)

        @tf.function(reduce_retracing=True)
        def step(batch, views=None):
            args = (batch,) if views is None else (batch, views)
            update = strategy.run(replica_grads, args=args)
            local = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0],
                                          update)

            def applied():
                strategy.run(apply, args=(update,))
                return tf.constant(True)

            return tf.cond(update_is_finite(local), applied, lambda: tf.constant(False))

        @tf.function(reduce_retracing=True)
        def batch_loss(batch):
            mask = tf.cast(batch["mask"], tf.float32) if "mask" in batch else None
            losses = loss_fn(batch)
            if mask is None:
                return tf.reduce_mean(losses)
            return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

        self.step, self.batch_loss = step, batch_loss


def _restore(phase: Phase, ckpt: RunCheckpoint, resume: bool, log: Log) -> tuple[int, PrivacyLedger]:
    """(first step, ledger): a fresh start, or the checkpoint's step and its restored ledger."""
    if resume:
        restored = ckpt.restore_latest(phase.ledger)
        if restored is not None:
            start, ledger = restored
            log(f"resumed at step {start} (epsilon so far "
                f"{ledger.epsilon() if ledger.private else 0:.4g})")
            return start, ledger
    elif ckpt.latest_checkpoint() is not None:
        raise FileExistsError(f"{phase.out_dir} already has checkpoints: pass --resume to "
                              "continue that run, or choose a new --run_dir")
    return 0, phase.ledger


def run_phase(phase: Phase, dist: Distribution, run, jit: bool, log: Log) -> PhaseResult:
    """Trains one phase (see the module docstring); ``run`` is the RunConfig."""
    opt, model = phase.optimizer, phase.model
    # Every worker saves (a checkpoint of distributed variables is a collective step); only
    # the chief's copy is kept, and every worker resumes from it.
    with dist.strategy.scope():
        ckpt = RunCheckpoint(os.path.join(dist.output_dir(phase.out_dir), "checkpoints"), model,
                             opt, var_list=model.trainable_variables,
                             source_directory=os.path.join(phase.out_dir, "checkpoints"))
    start, ledger = _restore(phase, ckpt, run.resume, log)
    key = phase.key(start > 0)
    steps_fns = _Steps(phase, dist, jit)
    data = phase.make_data(start, key)
    if ledger.private:
        log(f"sampling: {next(iter(data.values())).sampling.describe()}")
    views = (shard_steps(phase.make_views(start, key), PUBLIC_VIEW_KEYS)
             if phase.make_views is not None else None)
    writer = tf.summary.create_file_writer(os.path.join(dist.output_dir(phase.out_dir),
                                                        "tensorboard"))
    loop = _Loop(phase, dist, run, log, ckpt, ledger, steps_fns, writer)
    return loop.run(start, shard_steps(data), views)


class _Loop:
    """The per-step work of ``run_phase``: budget, subspace, step, logs, checkpoints, evals."""

    def __init__(self, phase, dist, run, log, ckpt, ledger, fns, writer):
        self.phase, self.dist, self.run_cfg, self.log = phase, dist, run, log
        self.ckpt, self.ledger, self.fns, self.writer = ckpt, ledger, fns, writer
        self.progbar = tf.keras.utils.Progbar(phase.steps,
                                              stateful_metrics=["loss", "epsilon", "lr"])
        epoch_steps = max(1, int(round(ledger.num_examples / ledger.batch_size)))
        self.eval_every = run.eval_every or epoch_steps
        self.metrics: dict = {}
        self.t0 = time.time()

    def run(self, start: int, batches, views) -> PhaseResult:
        ledger, phase = self.ledger, self.phase
        self.progbar.update(start)
        step, stopped = start, False
        for step_index, shards in batches:
            if step_index != step:
                raise RuntimeError(f"data pipeline yielded step {step_index}, expected {step}")
            view_shards = self._views(views, step)
            if ledger.private and not ledger.can_step():
                stopped = True
                self.log(f"stopping at step {step}: one more step would exceed the target "
                         f"epsilon {ledger.target_epsilon}")
                break
            self._refresh_subspace()
            ledger.record_step()
            self._step(shards, view_shards, step)
            step += 1
            self._after_step(step, shards)
        self.ckpt.save(step, ledger, {"elapsed_s": time.time() - self.t0, "finished": True})
        if phase.evaluate is not None:
            self.metrics = self._evaluate(step)
        self.writer.flush()
        return PhaseResult(steps=step, stopped_by_budget=stopped, metrics=self.metrics,
                           ledger=ledger)

    def _views(self, views, step):
        if views is None:
            return None
        view_step, view_shards = next(views)
        if view_step != step:
            raise RuntimeError(f"public views for step {view_step}, expected {step}")
        return view_shards

    def _refresh_subspace(self) -> None:
        opt = self.phase.optimizer
        if self.phase.public_batch is not None and opt.subspace_due():
            # Outside the strategy's scope: V is computed from the (mirrored) weights in this
            # process and held in ordinary variables that every local replica reads; each
            # worker computes the same V from the same public batch and weights.
            opt.refresh_subspace(self.fns.loss_fn, self.phase.public_batch, self.fns.var_list,
                                 layers=self.fns.layers)

    def _step(self, shards, view_shards, step) -> None:
        per_replica = self.dist.per_replica
        if view_shards is None:
            applied = self.fns.step(per_replica(shards))
        else:
            applied = self.fns.step(per_replica(shards), per_replica(view_shards))
        if not bool(applied):
            self.ledger.record_skipped_update()
            self.log(f"\nstep {step + 1}: the update was not finite and was not applied (it "
                     "still counts in epsilon)")

    def _after_step(self, step: int, shards) -> None:
        run, ledger, opt = self.run_cfg, self.ledger, self.phase.optimizer
        values = [("lr", float(opt._decayed_lr(tf.float32)))]  # pylint: disable=protected-access
        if ledger.private:
            values.append(("epsilon", ledger.epsilon()))
        if step % run.log_every == 0 or step == self.phase.steps:
            # The first local replica's share of the batch (a log figure, not a release).
            loss = float(self.fns.batch_loss(next(iter(shards.values()))))
            values.append(("loss", loss))
            with self.writer.as_default(step=step):
                for name, v in values:
                    tf.summary.scalar(f"train/{name}", v)
        self.progbar.update(step, values=values)
        if step % run.checkpoint_every == 0 and step < self.phase.steps:
            self.ckpt.save(step, ledger, {"elapsed_s": time.time() - self.t0})
        # Every worker evaluates (and saves) alike: reading distributed BatchNorm statistics
        # in the cross-replica context is a collective op that all workers must join. Only the
        # chief's files are kept.
        if self.phase.evaluate is not None and step % self.eval_every == 0 \
                and step < self.phase.steps:
            self.metrics = self._evaluate(step)

    def _evaluate(self, step: int) -> dict:
        t = time.time()
        metrics = self.phase.evaluate(self.phase.model)
        with self.writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(f"val/{k}", v)
        out_dir = self.dist.output_dir(self.phase.out_dir)
        with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(dict(metrics, step=step)) + "\n")
        main = {k: v for k, v in metrics.items() if k.endswith("0.5/Mean") or k == "COCO/AP"}
        self.log(f"\nstep {step}: " + ", ".join(f"{k} {v:.2f}" if "PCKh" in k else
                                                 f"{k} {v:.4f}" for k, v in main.items())
                 + f" ({time.time() - t:.0f} s)")
        return metrics
