"""A training run: optional non-private pretraining on public data, then private training.

``train(config)`` runs a whole run in ``config.run.run_dir``:

    run_dir/
      config.json             the validated configuration
      pretrain/               phase 1 (public data, non-private): checkpoints, model.keras
      checkpoints/            phase 2: TF checkpoints + ledger-<step>.json (+ state.json) and
                              the secret sampling key (stays with the private data)
      public_split.json       S_pub manifest (pdpsgd, fpdp): which images were given up
      tensorboard/            loss, learning rate, epsilon spent, validation metrics
      metrics.jsonl           one JSON line per evaluation
      model.keras             the final private model
      privacy.json / .txt     the privacy statement (the ledger and its words)
      metrics.json            final metrics

Privacy rules enforced here (DESIGN 4, docs/privacy.md): BatchNorm statistics are frozen for the
private phase; Poisson sampling over privacy units with coins from a secret key unless asked
otherwise (and then the statement says so and the accounting drops amplification); the ledger
records each step before it is applied and the run stops before the target epsilon would be
exceeded; S_pub is disjoint from the private set by image and by unit; pretraining data may not be
the private data directory. The step loop itself is ``loop.run_phase``.

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
from tfdphpe.files import atomic_write
from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, transfer_joint_head
from tfdphpe.data.units import apply_video_map, available_groupings, unit_ids, unit_keys
from tfdphpe.privacy.sampling import (PUBLIC_VIEW_STREAM, UnitIndex, derived_key,
                                      reproducible_sampling_key, secret_sampling_key)
from tfdphpe.training import checkpointing
from tfdphpe.training.config import TrainConfig
from tfdphpe.training.datasets import coco_annotation_file, load_split
from tfdphpe.training.distribution import Distribution, make_distribution
from tfdphpe.training.evaluate import predict_records
from tfdphpe.training.loop import Phase, PhaseResult, run_phase

Log = Callable[[str], None]
# --mixed_precision: static loss scale against float16 underflow in the backward pass (the
# optimizer divides it out in float32 before clipping's sum is noised; see make_optimizer).
MIXED_PRECISION_LOSS_SCALE = 2.0 ** 10
# What one example is, for the statement (the privacy package knows nothing about pose).
UNIT_DESCRIPTIONS = {
    "example": "one person crop: one annotated person in one image",
    "image": "one image with every annotated person in it",
    "video": "one video: every frame of it and every person in those frames",
    "identity": "one person: every crop of that person in every image and video",
}
NOT_COVERED = ("Validation metrics and training losses computed on private data, and any "
               "hyper-parameter search on it, are not covered by this guarantee.")


@dataclasses.dataclass
class PrivateData:
    """What the private phase trains and validates on."""

    train: list                 # private training records
    val: list
    joint_set: joints_lib.JointSet
    metric: str                 # "pckh" or "coco_ap"
    coco_annotations: Optional[str]
    public_batch: Optional[dict]  # S_pub, as one batch (pdpsgd, fpdp)
    units: Optional[UnitIndex]    # the privacy units of ``train`` (None: one per example)
    groupings: dict               # example-level runs: {coarser unit: group sizes}


@dataclasses.dataclass
class Plan:
    """How long the private phase is and how much noise it adds."""

    num_units: int
    batch_size: int
    steps: int
    sampling: str
    noise_multiplier: float
    revealed: bool


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

    # ------------------------------------------------------------------ data
    def _shards(self, records, pipeline, batching: BatchConfig) -> dict:
        """{replica id: its PoseDataset} for this process's replicas (one shard each)."""
        replicas = self.dist.num_replicas
        if batching.method == privacy.Sampling.SHUFFLE.value and batching.batch_size % replicas:
            raise ValueError(f"--batch_size/--pretrain_batch_size {batching.batch_size} must be "
                             f"divisible by the {replicas} replicas for fixed-size (shuffled) "
                             "batches")
        return {r: build_dataset(records, pipeline, dataclasses.replace(
                    batching, num_shards=replicas, shard_index=r))
                for r in self._local_replicas}

    @property
    def _local_replicas(self) -> list[int]:
        if not hasattr(self, "_replica_ids"):
            self._replica_ids = self.dist.local_replica_ids()
        return self._replica_ids

    def _pipeline(self, augment: bool, dataset_name: str, public_blur: Optional[float] = None):
        d = self.config.data
        aug = AugmentConfig.for_dataset("mpii" if dataset_name != "coco" else "coco") \
            if augment and d.augment else None
        return PipelineConfig(input_size=tuple(d.input_size), split_ratio=d.split_ratio,
                              sigma=d.simcc_sigma, augment=aug, public_blur_sigma=public_blur)

    @staticmethod
    def _cap(result, n: int) -> list:
        records = list(result.records)
        return records[:n] if n else records

    def _private_data(self) -> PrivateData:
        c, p = self.config, self.config.privacy
        fmt = "coco" if c.data.dataset == "coco" else "mpii"
        train = load_split(c.data.dataset, c.data.data_dir, "train", fmt=fmt)
        val = load_split(c.data.dataset, c.data.data_dir, "val", fmt=fmt)
        records = self._cap(train, c.data.max_train_examples)
        if c.data.unit_map:
            apply_video_map(records, c.data.unit_map)
        keys = unit_keys(records, p.privacy_unit, c.data.unit_field)
        metric = "pckh" if train.joint_set.name == "mpii" else "coco_ap"
        if metric == "coco_ap" and c.data.max_val_examples:
            raise ValueError("--max_val_examples cannot be used with COCO AP (it scores whole "
                             "annotation files)")
        coco_ann = (coco_annotation_file(c.data.dataset, c.data.data_dir)
                    if metric == "coco_ap" else None)
        public_batch = None
        if privacy.Method(p.method).projected:
            split = split_public(records, p.public_examples, seed=c.run.seed,
                                 unit_keys=None if p.privacy_unit == "example" else keys)
            write_manifest(split, os.path.join(self.run_dir, "public_split.json"))
            records = split.private
            keys = unit_keys(records, p.privacy_unit, c.data.unit_field)
            pub = build_dataset(split.public, self._pipeline(False, c.data.dataset),
                                BatchConfig("sequential", batch_size=len(split.public)))
            public_batch = {k: v for k, v in next(iter(pub.dataset)).items()
                            if k in ("image", "target_x", "target_y", "target_weight")}
            self.log(f"S_pub: {len(split.public)} examples given up (not protected) for the "
                     "projection, no image or unit shared with the private set; manifest "
                     f"{os.path.join(self.run_dir, 'public_split.json')}")
        units, groupings = None, {}
        if p.privacy_unit != "example":
            units = UnitIndex(unit_ids(keys), p.examples_per_unit)
            stats = units.group_sizes()
            self.log(f"privacy unit {p.privacy_unit}: {stats['units']} units over "
                     f"{stats['examples']} examples (median {stats['median']:g}, largest "
                     f"{stats['max']} examples per unit); a sampled unit gives at most "
                     f"{p.examples_per_unit} per step")
        else:
            groupings = {u: g for u, g in available_groupings(records, c.data.unit_field).items()
                         if g["max"] > 1}
        return PrivateData(records, self._cap(val, c.data.max_val_examples), train.joint_set,
                           metric, coco_ann, public_batch, units, groupings)

    def _evaluator(self, data: PrivateData) -> Callable:
        pipeline = self._pipeline(False, self.config.data.dataset)

        def evaluate(model) -> dict:
            preds = predict_records(model, data.val, data.joint_set, pipeline,
                                    self.config.run.flip_test)
            return score(preds, data.metric, data.coco_annotations)

        return evaluate

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

    def _private_model(self, pretrained: Optional[str], joint_set) -> tf.keras.Model:
        c = self.config
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
        return model

    def _optimizer(self, method: str, sigma: float, batch_size: int, steps: int):
        c, p = self.config, self.config.privacy
        lr = learning_rate_schedule(c.optim.learning_rate, steps, c.optim.lr_schedule,
                                    c.optim.warmup_steps)
        opt_kwargs = {"momentum": c.optim.momentum} if c.optim.optimizer == "sgd" else {}
        private = privacy.Method(method).private
        with self.dist.strategy.scope():
            # The global batch: the all-reduced (clipped, noised) sum is divided by it.
            return privacy.make_optimizer(
                method, l2_norm_clip=p.l2_norm_clip if private else 1.0,
                noise_multiplier=sigma, learning_rate=lr, optimizer=c.optim.optimizer,
                expected_batch_size=batch_size, projection_dim=p.projection_dim,
                refresh_every=p.projection_refresh_steps,
                clipping=p.clipping if private else "vectorized", loss_scale=self._loss_scale,
                **opt_kwargs)

    # ------------------------------------------------------------------ privacy
    def _plan(self, num_units: int) -> Plan:
        c, p = self.config, self.config.privacy
        b = c.run.batch_size
        if b > num_units:
            raise ValueError(f"--batch_size={b} exceeds the {num_units} private training "
                             f"{privacy.accounting.plural(p.privacy_unit)}")
        steps = int(round(c.run.epochs * num_units / b))
        if c.run.max_steps:
            steps = min(steps, c.run.max_steps) if c.run.epochs > 0 else c.run.max_steps
        steps = max(steps, 1)
        sampling = privacy.Sampling(p.sampling).value
        revealed = p.reproducible_sampling and sampling == "poisson"
        sigma = 0.0
        if p.private:
            sigma = p.noise_multiplier
            if sigma is None:
                sigma = privacy.calibrate_noise_multiplier(
                    num_units, b, p.target_epsilon, p.delta, steps=steps, sampling=sampling,
                    accountant=p.accountant, sampling_revealed=revealed)
                self.log(f"noise multiplier {sigma:.4f} calibrated to epsilon "
                         f"{p.target_epsilon:g} at delta {p.delta:g} over {steps} steps "
                         f"(N={num_units} {privacy.accounting.plural(p.privacy_unit)}, B={b}, "
                         f"{sampling} sampling{', coins not secret' if revealed else ''})")
        return Plan(num_units, b, steps, sampling, sigma, revealed)

    def _ledger(self, opt, plan: Plan, public_batch) -> privacy.PrivacyLedger:
        p = self.config.privacy
        psi = (f"Gaussian blur of the person crop, sigma {p.public_view_sigma:g} px, with its "
               "keypoint labels" if privacy.Method(p.method).feature_dp else None)
        projection = (f"k={p.projection_dim} directions from S_pub: m={p.public_examples} "
                      "examples of the training data set given up for the projection (public: "
                      "not protected), sharing no image with the private set, refreshed every "
                      f"{p.projection_refresh_steps} steps" if public_batch is not None else None)
        return privacy.PrivacyLedger.from_optimizer(
            opt, num_examples=plan.num_units, delta=p.delta,
            target_epsilon=p.target_epsilon if p.private else None, sampling=plan.sampling,
            accountant=p.accountant, psi=psi, projection=projection,
            privacy_unit=p.privacy_unit, unit_description=UNIT_DESCRIPTIONS[p.privacy_unit],
            examples_per_unit=None if p.privacy_unit == "example" else p.examples_per_unit,
            sampling_key_secret=not plan.revealed, sampling_revealed=plan.revealed)

    def _sampling_key(self, resumed: bool) -> tuple[int, int]:
        """The private phase's sampling key: from the seed (reproducible, not secret), the
        checkpoint's key file (resume), or fresh from the OS (the chief's, on every worker)."""
        p, dist = self.config.privacy, self.dist
        if p.reproducible_sampling:
            return reproducible_sampling_key(self.config.run.seed)
        source = os.path.join(self.run_dir, "checkpoints")
        if resumed:
            return checkpointing.load_sampling_key(source)
        key = dist.from_chief(secret_sampling_key())
        checkpointing.save_sampling_key(os.path.join(dist.output_dir(self.run_dir),
                                                     "checkpoints"), key)
        return key

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
        opt = self._optimizer("none", 0.0, b, steps)
        ledger = privacy.PrivacyLedger(method="none", noise_multiplier=0.0, l2_norm_clip=1.0,
                                       num_examples=n, batch_size=b, delta=c.privacy.delta,
                                       sampling="shuffle")
        self.log(f"phase 1: non-private pretraining on {n} public people "
                 f"({c.data.public_dataset}), {steps} steps of {b}")
        # Public data: the batches may follow from the seed; BatchNorm learns its statistics
        # here (training=True, not frozen).
        batching = BatchConfig(privacy.Sampling.SHUFFLE.value, batch_size=b, num_steps=steps,
                               seed=c.run.seed + 1, reproducible_sampling=True)
        pipeline = self._pipeline(True, c.data.public_dataset)
        phase = Phase(out_dir, model, opt, ledger, steps, bn_training=True,
                      make_data=lambda start, key: self._shards(
                          records, pipeline, dataclasses.replace(batching, start_step=start)),
                      key=lambda resumed: None)
        run_phase(phase, self.dist, c.run, self.jit, self.log)
        # Every worker saves (see run_phase) and goes on from its own file: the chief's is
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
        data = self._private_data()
        plan = self._plan(len(data.train) if data.units is None else data.units.num_units)
        model = self._private_model(pretrained, data.joint_set)
        opt = self._optimizer(p.method, plan.noise_multiplier, plan.batch_size, plan.steps)
        ledger = self._ledger(opt, plan, data.public_batch)
        self.log(f"phase 2: {p.method} on {plan.num_units} private "
                 f"{privacy.accounting.plural(p.privacy_unit)} ({c.data.dataset}), "
                 f"{plan.steps} steps, expected batch {plan.batch_size}")
        result = run_phase(self._private_phase(data, plan, model, opt, ledger), self.dist,
                           c.run, self.jit, self.log)
        self.model = model
        return self._finish(result, data, model, opt)

    def _private_phase(self, data: PrivateData, plan: Plan, model, opt, ledger) -> Phase:
        c, p = self.config, self.config.privacy
        blur = p.public_view_sigma if privacy.Method(p.method).feature_dp else None
        pipeline = self._pipeline(True, c.data.dataset, blur)
        batching = BatchConfig(plan.sampling, batch_size=plan.batch_size, num_steps=plan.steps,
                               seed=c.run.seed, units=data.units)

        def make_data(start, key):
            return self._shards(data.train, pipeline,
                                dataclasses.replace(batching, start_step=start,
                                                    sampling_key=key))

        def make_views(start, key):
            # Public views psi(x_j) of an independent Poisson sample of the training units: the
            # un-noised public term then says nothing about which units the private batch
            # holds, so amplification by subsampling still holds (docs/privacy.md).
            views_key = tuple(int(v) for v in derived_key(key, PUBLIC_VIEW_STREAM).numpy())
            return make_data(start, views_key)

        return Phase(self.run_dir, model, opt, ledger, plan.steps, bn_training=False,
                     make_data=make_data, key=self._sampling_key,
                     evaluate=self._evaluator(data), public_batch=data.public_batch,
                     make_views=make_views if blur is not None else None,
                     examples_per_unit=None if data.units is None else p.examples_per_unit)

    def _finish(self, result: PhaseResult, data: PrivateData, model, opt) -> dict:
        """Saves the model and publishes the statement of the ledger the run ended with."""
        c, p = self.config, self.config.privacy
        ledger = result.ledger
        metrics = dict(result.metrics, steps=result.steps,
                       epsilon=ledger.epsilon() if p.private else None,
                       delta=p.delta if p.private else None)
        dropped = int(opt.non_finite_records.numpy()) if p.private else 0
        if dropped:
            self.log(f"{dropped} sampled record(s) had a non-finite gradient norm and were left "
                     "out of their step's sum (a diagnostic on private data: not published)")
        model.save(os.path.join(self.dist.output_dir(self.run_dir), "model.keras"))
        if not self.dist.is_chief:
            for phase_dir in (self.run_dir, os.path.join(self.run_dir, "pretrain")):
                shutil.rmtree(self.dist.output_dir(phase_dir), ignore_errors=True)
            return metrics
        groups = self._group_privacy(ledger, data.groupings)
        report = privacy.published_statement(
            ledger, group_privacy=groups, stopped_by_budget=result.stopped_by_budget,
            sampling_used=ledger.sampling,
            replicas=self.dist.num_replicas, joint_names=list(data.joint_set.names),
            input_size=list(c.data.input_size), split_ratio=c.data.split_ratio,
            variant=c.model.variant if isinstance(c.model.variant, str)
            else dataclasses.asdict(c.model.variant), not_covered=NOT_COVERED)
        atomic_write(os.path.join(self.run_dir, "privacy.json"), _json(report))
        words = ledger.statement() + "".join(f"\n{g['statement']}" for g in groups.values())
        atomic_write(os.path.join(self.run_dir, "privacy.txt"), words + "\n")
        atomic_write(os.path.join(self.run_dir, "metrics.json"), _json(metrics))
        if data.metric == "pckh":
            self.log("Validation PCKh (flip test {}):\n{}".format(
                "on" if c.run.flip_test else "off", table_from_metrics(metrics)))
        elif metrics:
            self.log("Validation COCO AP: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                       metrics.items() if k.startswith("COCO/")))
        self.log("Privacy statement:\n" + words)
        return metrics

    @staticmethod
    def _group_privacy(ledger, groupings: dict) -> dict:
        """Example-level runs on grouped data: what the guarantee says about a whole group."""
        if not ledger.private or not groupings:
            return {}
        out = {}
        for unit, stats in groupings.items():
            eps, delta = ledger.group_epsilon(stats["max"])
            out[unit] = dict(stats, epsilon=eps, delta=delta, statement=(
                f"NOTE: this protects one example, not one {unit}: one {unit} holds up to "
                f"{stats['max']} examples here (median {stats['median']:g}). By group privacy "
                f"a whole {unit} of {stats['max']} gets only epsilon = {eps:.4g}, delta = "
                f"{delta:.3g}. Train with --privacy_unit={unit} to protect it."))
        return out


def _json(value) -> str:
    return json.dumps(value, indent=1)


def train(config: TrainConfig, log: Log = print) -> dict:
    """Runs a training run (see the module docstring); returns the final metrics."""
    return Trainer(config, log).train()
