"""The training loop: optional non-private pretraining on public data, then private training.

``train(config)`` runs a whole run in ``config.run.run_dir``:

    run_dir/
      config.json             the validated configuration
      pretrain/               phase 1 (public data, non-private): checkpoints, model.keras
      checkpoints/            phase 2: TF checkpoints + ledger-<step>.json (+ state.json)
      public_split.json       S_pub manifest (pdpsgd, fpdp): which images are public
      tensorboard/            loss, learning rate, epsilon spent, validation metrics
      metrics.jsonl           one JSON line per evaluation
      model.keras             the final private model
      privacy.json / .txt     the privacy statement (the ledger and its words)
      metrics.json            final metrics

Privacy rules enforced here (DESIGN 4): BatchNorm statistics are frozen for the private phase;
Poisson sampling unless ``sampling="shuffle"`` is asked for (and then the statement says so); the
ledger records each step before it is applied and the run stops before the target epsilon would
be exceeded; S_pub is disjoint from the private set by image; pretraining data may not be the
private data directory.

Distributed (``RunConfig.distribution``, see ``distribution.py``): model, optimizer and
checkpoints live in the strategy's scope; every replica reads its own shard of each step's
Poisson sample (one pipeline per local replica), the optimizer all-reduces the clipped sums and
noises the global sum once; the ledger counts global steps at the global q. Only the chief
(worker 0) writes the run's files and evaluates; other workers keep their checkpoint copies in
``.worker-<i>`` folders, removed at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfdphpe import privacy
from tfdphpe.data import joints as joints_lib
from tfdphpe.data.pipeline import AugmentConfig, PipelineConfig, build_dataset
from tfdphpe.data.sampling import BatchConfig
from tfdphpe.data.splits import split_public, write_manifest
from tfdphpe.evaluation.inference import score
from tfdphpe.evaluation.pckh import table_from_metrics
from tfdphpe.models import (apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss,
                            transfer_joint_head)
from tfdphpe.training.checkpointing import RunCheckpoint, atomic_write
from tfdphpe.training.config import TrainConfig
from tfdphpe.training.datasets import coco_annotation_file, load_split
from tfdphpe.training.distribution import Distribution, make_distribution
from tfdphpe.training.evaluate import predict_records

Log = Callable[[str], None]
# --mixed_precision: static loss scale against float16 underflow in the backward pass (the
# optimizer divides it out in float32 before clipping's sum is noised; see make_optimizer).
MIXED_PRECISION_LOSS_SCALE = 2.0 ** 10
# What a training step reads from a batch (metadata and strings stay out of the graph).
STEP_KEYS = ("image", "public_image", "target_x", "target_y", "target_weight", "mask")
# The independently sampled batch of public views (fdp, fpdp) carries no private pixels.
PUBLIC_VIEW_KEYS = ("public_image", "target_x", "target_y", "target_weight", "mask")
_PUBLIC_VIEW_SEED_OFFSET = 7919


@dataclasses.dataclass
class PhaseResult:
    steps: int
    stopped_by_budget: bool
    metrics: dict


def _gpu_present() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def _dtype_policy(mixed: bool):
    """Layers built inside compute in float16 (variables stay float32) when ``mixed``."""
    if not mixed:
        yield
        return
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def learning_rate_schedule(base: float, total_steps: int, schedule: str, warmup: int):
    """Cosine (or constant) decay with linear warm-up, as a Keras schedule."""
    total_steps = max(int(total_steps), 1)
    if schedule == "constant" and warmup == 0:
        return base

    class _Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            if schedule == "cosine":
                progress = tf.clip_by_value((step - warmup) / max(total_steps - warmup, 1), 0, 1)
                lr = base * 0.5 * (1.0 + tf.cos(math.pi * progress))
            else:
                lr = tf.constant(base, tf.float32)
            if warmup:
                lr = lr * tf.minimum(1.0, (step + 1.0) / warmup)
            return lr

        def get_config(self):
            return {"base": base, "total_steps": total_steps, "schedule": schedule,
                    "warmup": warmup}

    return _Schedule()


def _concat_chunks(chunks: list[dict]) -> dict:
    """Joins the chunks of one Poisson step (rare overflow) into one masked batch."""
    if len(chunks) == 1:
        return chunks[0]
    out = {}
    for k, v in chunks[0].items():
        out[k] = v if v.shape.rank == 0 else tf.concat([c[k] for c in chunks], axis=0)
    return out


def _shard_steps(shards: dict):
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
        yield steps.pop(), {r: batch for r, (_, batch) in got.items()}


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


class Trainer:
    """Runs one training run; see the module docstring. ``log`` receives progress lines.

    After ``train()``, ``model`` is the private model (as saved in ``model.keras``).
    """

    model: Optional[tf.keras.Model] = None

    def __init__(self, config: TrainConfig, log: Log = print):
        self.config = config.validate()
        self.log = log
        self.run_dir = config.run.run_dir
        self.jit = config.run.jit_compile if config.run.jit_compile is not None \
            else _gpu_present()
        # First, before other TensorFlow work: logical CPU replicas need an uninitialised runtime.
        self.dist: Distribution = make_distribution(config.run.distribution,
                                                    config.run.cpu_replicas)
        self._loss_scale = MIXED_PRECISION_LOSS_SCALE if config.run.mixed_precision else 1.0
        if config.run.mixed_precision and not _gpu_present():
            log("mixed precision: float16 compute without a GPU is slow on most CPUs (it is "
                "meant for GPUs); clipping norms and noise stay float32")

    def _shards(self, records, pipeline, method: str, batch_size: int, steps: int, seed: int,
                start: int) -> dict:
        """{replica id: its PoseDataset} for this process's replicas (one shard each)."""
        replicas = self.dist.num_replicas
        if method == "shuffled" and batch_size % replicas:
            raise ValueError(f"--batch_size/--pretrain_batch_size {batch_size} must be divisible "
                             f"by the {replicas} replicas for fixed-size (shuffled) batches")
        return {r: build_dataset(records, pipeline, BatchConfig(
                    method, batch_size=batch_size, num_steps=steps, seed=seed, start_step=start,
                    num_shards=replicas, shard_index=r))
                for r in self._local_replicas}

    @property
    def _local_replicas(self) -> list[int]:
        if not hasattr(self, "_replica_ids"):
            self._replica_ids = self.dist.local_replica_ids()
        return self._replica_ids

    # ------------------------------------------------------------------ data
    def _pipeline(self, augment: bool, dataset_name: str, public_blur: Optional[float] = None):
        d = self.config.data
        aug = AugmentConfig.for_dataset("mpii" if dataset_name != "coco" else "coco") \
            if augment and d.augment else None
        return PipelineConfig(input_size=tuple(d.input_size), split_ratio=d.split_ratio,
                              sigma=d.sigma, augment=aug, public_blur_sigma=public_blur)

    @staticmethod
    def _cap(result, n: int) -> list:
        records = list(result.records)
        return records[:n] if n else records

    def _evaluate(self, model, val, metric: str, coco_ann: Optional[str]) -> dict:
        preds = predict_records(model, val, self._joint_set,
                                self._pipeline(False, self.config.data.dataset),
                                self.config.run.flip_test)
        return score(preds, metric, coco_ann)

    # ------------------------------------------------------------------ model
    @staticmethod
    def _init_from_file(model: tf.keras.Model, path: str) -> None:
        """Copies a saved pose model into ``model``; a COCO-17 head is mapped to MPII-16."""
        source = tf.keras.models.load_model(path, compile=False)
        k_src = source.get_layer("simcc_head").num_joints
        k_dst = model.get_layer("simcc_head").num_joints
        if k_src == k_dst:
            model.set_weights(source.get_weights())
        elif (k_src, k_dst) == (17, 16):
            transfer_joint_head(source, model, joints_lib.MPII_TO_COCO)
        else:
            raise ValueError(f"{path} has {k_src} joints; cannot map to {k_dst}")

    def _load_init(self, model: tf.keras.Model, pretrained: Optional[str]) -> None:
        m = self.config.model
        if pretrained:
            self._init_from_file(model, pretrained)
            self.log("private model initialised from the pretrained public model")
        elif m.init_checkpoint:
            self._init_from_file(model, m.init_checkpoint)
            self.log(f"initialised from {m.init_checkpoint}")
        elif m.backbone_weights:
            model.get_layer("backbone").load_weights(m.backbone_weights)
            self.log(f"backbone initialised from {m.backbone_weights}")

    # ------------------------------------------------------------------ phases
    def pretrain(self) -> Optional[str]:
        """Non-private pretraining on the public (COCO-format) set; returns the model path."""
        c = self.config
        if c.run.pretrain_epochs <= 0:
            return None
        out_dir = os.path.join(self.run_dir, "pretrain")
        final = os.path.join(out_dir, "model.keras")
        if os.path.exists(final):
            self.log(f"pretraining already done: {final}")
            return final
        if os.path.realpath(c.data.public_data_dir) == os.path.realpath(c.data.data_dir):
            raise ValueError("--public_data_dir is the private --data_dir: public pretraining "
                             "would carry private pixels (DESIGN 4); use a separate public set")
        train = load_split(c.data.public_dataset, c.data.public_data_dir, "train", fmt="coco")
        records = self._cap(train, c.data.max_train_examples)
        n = len(records)
        b = min(c.run.pretrain_batch_size, n)
        steps = max(1, int(c.run.pretrain_epochs * n // b))
        tf.keras.utils.set_random_seed(c.run.seed)    # --seed: the initialisation too
        with self.dist.strategy.scope(), _dtype_policy(c.run.mixed_precision):
            model = build_pose_model(c.model.variant, c.data.input_size, num_joints=17,
                                     split_ratio=c.data.split_ratio, norm=c.model.norm)
            if c.model.backbone_weights:
                model.get_layer("backbone").load_weights(c.model.backbone_weights)
            apply_strategy(model, "full")
            lr = learning_rate_schedule(c.optim.learning_rate, steps, c.optim.schedule,
                                        c.optim.warmup_steps)
            # The global batch: the all-reduced gradient sum is divided by b.
            opt = privacy.make_optimizer("none", l2_norm_clip=1.0, noise_multiplier=0.0,
                                         learning_rate=lr, optimizer=c.optim.optimizer,
                                         expected_batch_size=b, loss_scale=self._loss_scale)
        ledger = privacy.PrivacyLedger(method="none", noise_multiplier=0.0, l2_norm_clip=1.0,
                                       num_examples=n, batch_size=b, delta=c.privacy.delta,
                                       sampling="shuffle")
        self.log(f"phase 1: non-private pretraining on {n} public people "
                 f"({c.data.public_dataset}), {steps} steps of {b}")

        def make_data(start):
            return self._shards(records, self._pipeline(True, c.data.public_dataset),
                                "shuffled", b, steps, c.run.seed + 1, start)

        # Public data: BatchNorm learns its statistics here (training=True, not frozen).
        self._run_phase(out_dir, model, opt, ledger, make_data, steps, bn_training=True,
                        evaluate=None)
        # Every worker saves (see _run_phase) and goes on from its own file: the chief's is
        # `final`, which another worker might read before it is complete.
        own = os.path.join(self.dist.output_dir(out_dir), "model.keras")
        os.makedirs(os.path.dirname(own), exist_ok=True)
        model.save(own)
        self.log(f"pretrained model: {final}")
        return own

    def train(self) -> dict:
        c, p = self.config, self.config.privacy
        os.makedirs(self.run_dir, exist_ok=True)
        if self.dist.kind != "none":
            self.log(f"distribution {self.dist.describe()}")
        if self.dist.is_chief:
            atomic_write(os.path.join(self.run_dir, "config.json"), c.to_json())
        pretrained = self.pretrain()
        if c.run.pretrain_only:
            return {"pretrained_model": pretrained}

        fmt = "coco" if c.data.dataset == "coco" else "mpii"
        train = load_split(c.data.dataset, c.data.data_dir, "train", fmt=fmt)
        val = load_split(c.data.dataset, c.data.data_dir, "val", fmt=fmt)
        train_records = self._cap(train, c.data.max_train_examples)
        joint_set = self._joint_set = train.joint_set
        val = self._cap(val, c.data.max_val_examples)
        metric = "pckh" if joint_set.name == "mpii" else "coco_ap"
        coco_ann = coco_annotation_file(c.data.dataset, c.data.data_dir) \
            if metric == "coco_ap" else None
        if metric == "coco_ap" and c.data.max_val_examples:
            raise ValueError("--max_val_examples cannot be used with COCO AP (it scores whole "
                             "annotation files)")

        public_batch = None
        if p.method in ("pdpsgd", "fpdp"):
            split = split_public(train_records, p.public_examples, seed=c.run.seed)
            write_manifest(split, os.path.join(self.run_dir, "public_split.json"))
            train_records = split.private
            pub = build_dataset(split.public, self._pipeline(False, c.data.dataset),
                                BatchConfig("sequential", batch_size=len(split.public)))
            public_batch = {k: v for k, v in next(iter(pub.dataset)).items()
                            if k in ("image", "target_x", "target_y", "target_weight")}
            self.log(f"S_pub: {len(split.public)} public people (disjoint images), "
                     f"manifest {os.path.join(self.run_dir, 'public_split.json')}")

        n = len(train_records)
        b = c.run.batch_size
        if b > n:
            raise ValueError(f"--batch_size={b} exceeds the {n} private training examples")
        steps = int(round(c.run.epochs * n / b))
        if c.run.max_steps:
            steps = min(steps, c.run.max_steps) if c.run.epochs > 0 else c.run.max_steps
        steps = max(steps, 1)
        sampling = "shuffle" if p.sampling == "shuffle" else "poisson"

        sigma = 0.0
        if p.private:
            if p.noise_multiplier is not None:
                sigma = p.noise_multiplier
            else:
                sigma = privacy.calibrate_noise_multiplier(
                    n, b, p.target_epsilon, p.delta, steps=steps, sampling=sampling,
                    accountant=p.accountant)
                self.log(f"noise multiplier {sigma:.4f} calibrated to epsilon "
                         f"{p.target_epsilon:g} at delta {p.delta:g} over {steps} steps "
                         f"(N={n}, B={b}, {sampling} sampling)")

        tf.keras.utils.set_random_seed(c.run.seed)    # --seed: the initialisation too
        with self.dist.strategy.scope(), _dtype_policy(c.run.mixed_precision):
            model = build_pose_model(c.model.variant, c.data.input_size,
                                     num_joints=joint_set.num_joints,
                                     split_ratio=c.data.split_ratio, norm=c.model.norm)
            self._load_init(model, pretrained)
            apply_strategy(model, c.model.strategy)
            n_bn = freeze_batchnorm(model)
        self.log(f"strategy {c.model.strategy}: "
                 f"{sum(int(np.prod(v.shape)) for v in model.trainable_variables):,} trainable "
                 f"parameters; {n_bn} BatchNorm layers frozen (no statistics from private data)")

        lr = learning_rate_schedule(c.optim.learning_rate, steps, c.optim.schedule,
                                    c.optim.warmup_steps)
        opt_kwargs = {"momentum": c.optim.momentum} if c.optim.optimizer == "sgd" else {}
        with self.dist.strategy.scope():
            opt = privacy.make_optimizer(
                p.method, l2_norm_clip=p.l2_norm_clip, noise_multiplier=sigma, learning_rate=lr,
                optimizer=c.optim.optimizer, expected_batch_size=b,
                projection_dim=p.projection_dim, refresh_every=p.projection_refresh_steps,
                clipping=p.clipping if p.private else "vectorized",
                loss_scale=self._loss_scale, **opt_kwargs)
        psi = (f"Gaussian blur of the person crop, sigma {p.public_view_sigma:g} px, with its "
               "keypoint labels" if p.method in ("fdp", "fpdp") else None)
        projection = (f"k={p.projection_dim} directions from m={p.public_examples} public "
                      f"examples (S_pub, disjoint images), refreshed every "
                      f"{p.projection_refresh_steps} steps" if public_batch is not None else None)
        ledger = privacy.PrivacyLedger(
            method=p.method, noise_multiplier=sigma, l2_norm_clip=p.l2_norm_clip,
            num_examples=n, batch_size=b, delta=p.delta,
            target_epsilon=p.target_epsilon if p.private else None, sampling=sampling,
            accountant=p.accountant, psi=psi, projection=projection,
            noise_key_secret=opt.noise_key_secret)

        blur = p.public_view_sigma if p.method in ("fdp", "fpdp") else None

        def batches(start, seed):
            method = "poisson" if sampling == "poisson" else "shuffled"
            return self._shards(train_records, self._pipeline(True, c.data.dataset, blur),
                                method, b, steps, seed, start)

        def make_data(start):
            return batches(start, c.run.seed)

        make_public_views = None
        if blur is not None:
            def make_public_views(start):
                # Public views psi(x_j) of an independent Poisson sample of the training set: the
                # un-noised public term then says nothing about which examples the private batch
                # holds, so amplification by subsampling still holds (docs/privacy.md).
                return batches(start, c.run.seed + _PUBLIC_VIEW_SEED_OFFSET)

        def evaluate(m):
            return self._evaluate(m, val, metric, coco_ann)

        self.log(f"phase 2: {p.method} on {n} private people ({c.data.dataset}), "
                 f"{steps} steps, expected batch {b}")
        result = self._run_phase(self.run_dir, model, opt, ledger, make_data, steps,
                                 bn_training=False, make_public_views=make_public_views,
                                 evaluate=evaluate, public_batch=public_batch)
        self.model = model
        metrics = dict(result.metrics, steps=result.steps,
                       epsilon=ledger.epsilon() if p.private else None,
                       delta=p.delta if p.private else None)
        model.save(os.path.join(self.dist.output_dir(self.run_dir), "model.keras"))
        if not self.dist.is_chief:
            for phase_dir in (self.run_dir, os.path.join(self.run_dir, "pretrain")):
                shutil.rmtree(self.dist.output_dir(phase_dir), ignore_errors=True)
            return metrics
        report = dict(ledger.to_dict(), epsilon=ledger.epsilon() if p.private else None,
                      statement=ledger.statement(), steps_taken=ledger.steps,
                      stopped_by_budget=result.stopped_by_budget,
                      sampling_used=sampling,
                      replicas=self.dist.num_replicas,
                      joint_names=list(joint_set.names), input_size=list(c.data.input_size),
                      split_ratio=c.data.split_ratio,
                      variant=c.model.variant if isinstance(c.model.variant, str)
                      else dataclasses.asdict(c.model.variant),
                      not_covered=("Validation metrics and training losses computed on private "
                                   "data, and any hyper-parameter search on it, are not covered "
                                   "by this guarantee."))
        atomic_write(os.path.join(self.run_dir, "privacy.json"), json.dumps(report, indent=1))
        atomic_write(os.path.join(self.run_dir, "privacy.txt"), ledger.statement() + "\n")
        atomic_write(os.path.join(self.run_dir, "metrics.json"), json.dumps(metrics, indent=1))
        if metric == "pckh":
            self.log("Validation PCKh (flip test {}):\n{}".format(
                "on" if c.run.flip_test else "off", table_from_metrics(metrics)))
        elif metrics:
            self.log("Validation COCO AP: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                       metrics.items() if k.startswith("COCO/")))
        self.log("Privacy statement:\n" + ledger.statement())
        return metrics

    # ------------------------------------------------------------------ the loop
    def _run_phase(self, out_dir, model, opt, ledger, make_data, steps, bn_training: bool,
                   evaluate, public_batch=None, make_public_views=None) -> PhaseResult:
        c, dist = self.config, self.dist
        strategy = dist.strategy
        var_list = model.trainable_variables
        # Every worker saves (a checkpoint of distributed variables is a collective step); only
        # the chief's copy is kept, and every worker resumes from it.
        ckpt_dir = os.path.join(out_dir, "checkpoints")
        with strategy.scope():
            ckpt = RunCheckpoint(os.path.join(dist.output_dir(out_dir), "checkpoints"), model,
                                 opt, var_list=var_list, source_directory=ckpt_dir)
        start = 0
        if c.run.resume:
            restored = ckpt.restore_latest()
            if restored is not None:
                start, saved = restored
                if not saved.same_configuration(ledger):
                    raise RuntimeError(f"{out_dir}: the checkpoint's ledger differs from this "
                                       "configuration; resume with the same flags")
                ledger = saved
                self.log(f"resumed at step {start} (epsilon so far "
                         f"{ledger.epsilon() if ledger.private else 0:.4g})")
        elif ckpt.latest_checkpoint() is not None:
            raise FileExistsError(f"{out_dir} already has checkpoints: pass --resume to continue "
                                  "that run, or choose a new --run_dir")

        def loss_fn(batch):
            return simcc_kl_loss(model(batch["image"], training=bn_training), batch)

        # Ghost clipping records the calls of the model's layers inside loss_fn.
        layers = model if opt.clipping == "ghost" else None

        def public_loss_fn(batch):
            return simcc_kl_loss(model(batch["public_image"], training=bn_training), batch)

        def replica_step(batch):
            grads = opt.dp_gradients(loss_fn, batch, var_list, batch_mask=batch.get("mask"),
                                     layers=layers)
            opt.apply_gradients(zip(grads, var_list))

        def replica_feature_dp_step(batch, views):
            # The optimizer clips and noises grad[l(x) - l(psi(x))] over the private batch and adds
            # the un-noised grad l(psi(x_j)) over the independently sampled public views.
            grads = opt.dp_gradients(loss_fn, batch, var_list, batch_mask=batch["mask"],
                                     public_loss_fn=public_loss_fn, public_batch=views,
                                     public_batch_mask=views["mask"], layers=layers)
            opt.apply_gradients(zip(grads, var_list))

        # Keras' pattern: XLA compiles each replica's step; strategy.run runs it on every replica
        # (with the default strategy, on the one device).
        replica_fns = [tf.function(fn, jit_compile=self.jit, reduce_retracing=True)
                       for fn in (replica_step, replica_feature_dp_step)]

        @tf.function(reduce_retracing=True)
        def train_step(batch):
            strategy.run(replica_fns[0], args=(batch,))

        @tf.function(reduce_retracing=True)
        def feature_dp_step(batch, views):
            strategy.run(replica_fns[1], args=(batch, views))

        @tf.function(reduce_retracing=True)
        def batch_loss(batch):
            mask = tf.cast(batch["mask"], tf.float32) if "mask" in batch else None
            losses = loss_fn(batch)
            if mask is None:
                return tf.reduce_mean(losses)
            return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

        writer = tf.summary.create_file_writer(os.path.join(dist.output_dir(out_dir),
                                                            "tensorboard"))
        progbar = tf.keras.utils.Progbar(steps, stateful_metrics=["loss", "epsilon", "lr"])
        progbar.update(start)
        metrics: dict = {}
        stopped = False
        step = start
        epoch_steps = max(1, int(round(ledger.num_examples / ledger.batch_size)))
        eval_every = c.run.eval_every or epoch_steps
        # Every worker evaluates (and saves) alike: reading distributed BatchNorm statistics in
        # the cross-replica context is a collective op that all workers must join. Only the
        # chief's files are kept.
        evaluate_fn = evaluate
        data = make_data(start)
        if ledger.private:
            self.log(f"sampling: {next(iter(data.values())).sampling.describe()}")
        views_iter = None
        if make_public_views is not None:
            views_iter = _shard_steps(make_public_views(start))
        t0 = time.time()
        for step_index, shards in _shard_steps(data):
            shards = {r: {k: v for k, v in batch.items() if k in STEP_KEYS}
                      for r, batch in shards.items()}
            if step_index != step:
                raise RuntimeError(f"data pipeline yielded step {step_index}, expected {step}")
            views = None
            if views_iter is not None:
                view_step, views = next(views_iter)
                views = {r: {k: v for k, v in batch.items() if k in PUBLIC_VIEW_KEYS}
                         for r, batch in views.items()}
                if view_step != step:
                    raise RuntimeError(f"public views for step {view_step}, expected {step}")
            if ledger.private and not ledger.can_step():
                stopped = True
                self.log(f"stopping at step {step}: one more step would exceed the target "
                         f"epsilon {ledger.target_epsilon}")
                break
            if public_batch is not None and opt.subspace_due():
                # Outside the strategy's scope: V is computed from the (mirrored) weights in this
                # process and held in ordinary variables that every local replica reads; each
                # worker computes the same V from the same public batch and weights.
                opt.refresh_subspace(loss_fn, public_batch, var_list, layers=layers)
            ledger.record_step()
            if views is None:
                train_step(self.dist.per_replica(shards))
            else:
                feature_dp_step(self.dist.per_replica(shards), self.dist.per_replica(views))
            step += 1
            values = [("lr", float(opt._decayed_lr(tf.float32)))]
            if ledger.private:
                values.append(("epsilon", ledger.epsilon()))
            if step % c.run.log_every == 0 or step == steps:
                # The first local replica's share of the batch (a log figure, not a release).
                loss = float(batch_loss(next(iter(shards.values()))))
                values.append(("loss", loss))
                with writer.as_default(step=step):
                    tf.summary.scalar("train/loss", loss)
                    for name, v in values:
                        tf.summary.scalar(f"train/{name}", v)
            progbar.update(step, values=values)
            if step % c.run.checkpoint_every == 0 and step < steps:
                ckpt.save(step, ledger, {"elapsed_s": time.time() - t0})
            if evaluate_fn is not None and step % eval_every == 0 and step < steps:
                metrics = self._log_eval(evaluate_fn, model, step, writer,
                                         dist.output_dir(out_dir))
        ckpt.save(step, ledger, {"elapsed_s": time.time() - t0, "finished": True})
        if evaluate_fn is not None:
            metrics = self._log_eval(evaluate_fn, model, step, writer, dist.output_dir(out_dir))
        writer.flush()
        return PhaseResult(steps=step, stopped_by_budget=stopped, metrics=metrics)

    def _log_eval(self, evaluate, model, step, writer, out_dir) -> dict:
        t = time.time()
        metrics = evaluate(model)
        with writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(f"val/{k}", v)
        with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(dict(metrics, step=step)) + "\n")
        main = {k: v for k, v in metrics.items() if k.endswith("0.5/Mean") or k == "COCO/AP"}
        self.log(f"\nstep {step}: " + ", ".join(f"{k} {v:.2f}" if "PCKh" in k else
                                                 f"{k} {v:.4f}" for k, v in main.items())
                 + f" ({time.time() - t:.0f} s)")
        return metrics


def train(config: TrainConfig, log: Log = print) -> dict:
    """Runs a training run (see the module docstring); returns the final metrics."""
    return Trainer(config, log).train()
