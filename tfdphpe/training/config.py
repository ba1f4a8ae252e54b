"""Validated configuration objects for a training run: the one place each setting lives.

Library code takes these objects, never flags. Every field carries its default and its help text;
``tfdphpe.training.flags`` turns the fields into the command-line flags of ``scripts/train.py``
(same name, same default, same help), so a flag cannot drift from its field. A Python user builds
the objects directly. Each ``validate`` raises ``ValueError`` naming the field (by its flag name)
at fault.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional, Union

from tfdphpe.models.tinyvit import VARIANTS, TinyViTConfig
from tfdphpe.privacy.method import Method, Sampling

STRATEGIES = ("finetune", "full", "scratch")
DATASETS = ("synthetic", "mpii", "coco", "custom")
PUBLIC_DATASETS = ("synthetic", "coco")
PRIVACY_UNITS = ("example", "image", "video", "identity")
CLIPPINGS = ("ghost", "vectorized")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


def setting(default: Any, help: str, choices: tuple | None = None,  # noqa: A002 (flag help)
            alias: str | None = None):
    """A config field with its flag's help text (and choices, and an old flag name to accept)."""
    metadata = {"help": help, "choices": choices, "alias": alias}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _check(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ValueError(f"--{field}: {message}")


def _check_choice(config, name: str) -> None:
    value = getattr(config, name)
    choices = next(f for f in dataclasses.fields(config) if f.name == name).metadata["choices"]
    _check(value in choices, name, f"{value!r} not in {choices}")


@dataclasses.dataclass
class DataConfig:
    """Where the data come from and how crops are made."""

    dataset: str = setting("synthetic", "Private (or only) data set; layouts in docs/data.md.",
                           DATASETS)
    data_dir: str = setting("data/synthetic/private", "Root of the private data set.")
    public_dataset: str = setting("synthetic", "Public pretraining set (COCO format).",
                                  PUBLIC_DATASETS)
    public_data_dir: str = setting("data/synthetic/public", "Root of the public data set.")
    input_size: tuple[int, int] = setting((256, 192), "Model input height,width.")
    split_ratio: float = setting(2.0, "SimCC bins per pixel.")
    simcc_sigma: float = setting(6.0, "SimCC Gaussian target std, in bins.")
    augment: bool = setting(True, "Training augmentation (scale, rotation, flip, half-body).")
    max_train_examples: int = setting(0, "Cap on training people (0 = all).")
    max_val_examples: int = setting(0, "Cap on validation people (0 = all).")
    unit_field: str = setting(
        "", "COCO-style and custom JSON: the annotation (or image) field that names each "
        "record's privacy unit, e.g. track_id, vid_id, patient_id (default: the reader's own "
        "key for --privacy_unit).")
    unit_map: str = setting(
        "", "MPII JSON: a JSON file {image name: video id} giving each image's video, for "
        "--privacy_unit=video.")

    def validate(self) -> None:
        _check_choice(self, "dataset")
        _check_choice(self, "public_dataset")
        _check(len(self.input_size) == 2 and min(self.input_size) >= 32, "input_size",
               f"must be height,width >= 32, got {self.input_size}")
        _check(self.split_ratio > 0, "split_ratio", "must be > 0")
        _check(self.simcc_sigma > 0, "simcc_sigma", "must be > 0")
        _check(self.max_train_examples >= 0, "max_train_examples", "must be >= 0")
        _check(self.max_val_examples >= 0, "max_val_examples", "must be >= 0")


@dataclasses.dataclass
class ModelConfig:
    # A variant name, or (from Python) a reduced TinyViTConfig, e.g. for fast tests.
    variant: Union[str, TinyViTConfig] = setting("5m", "TinyViT variant.", tuple(VARIANTS))
    strategy: str = setting("finetune", "Which weights train (DESIGN 2.6: finetune = stage 4, "
                            "head and LayerNorms; full; scratch = random initialisation).",
                            STRATEGIES)
    norm: str = setting("batch", "Backbone normalisation (group: DP from scratch).",
                        ("batch", "group"))
    init_checkpoint: str = setting("", "Pose model (.keras) to start from, e.g. a pretraining "
                                   "run's model.")
    backbone_weights: str = setting("", "TinyViT weights from scripts/convert_tinyvit.py.")

    def validate(self) -> None:
        _check(isinstance(self.variant, TinyViTConfig) or self.variant in VARIANTS, "variant",
               f"unknown {self.variant!r}; expected one of {sorted(VARIANTS)}")
        _check_choice(self, "strategy")
        _check_choice(self, "norm")
        _check(not (self.init_checkpoint and self.backbone_weights), "init_checkpoint",
               "give either --init_checkpoint or --backbone_weights, not both")


@dataclasses.dataclass
class PrivacyConfig:
    method: str = setting("dpsgd", "Privacy method (docs/privacy.md).", Method.names())
    l2_norm_clip: float = setting(1.0, "Clip norm C of one record (one privacy unit).")
    # Noise calibrated to target_epsilon when noise_multiplier is None; with both, sigma is
    # fixed and target_epsilon caps the run (it stops when the budget is spent).
    target_epsilon: Optional[float] = setting(
        None, "Target epsilon: the noise is calibrated to it, or (with --noise_multiplier) a cap "
        "that stops the run.")
    noise_multiplier: Optional[float] = setting(None, "Fixed noise multiplier sigma.")
    delta: float = setting(4e-5, "Target delta (below 1 / the number of privacy units).")
    sampling: str = setting("poisson", "Batch sampling; the epsilon claimed rests on it.",
                            Sampling.names())
    accountant: str = setting("rdp", "Privacy accountant.", ("rdp", "pld"))
    privacy_unit: str = setting(
        "example", "What one guarantee protects: example (one person crop), image (everyone "
        "in one image), video, or identity (one person in every frame). docs/privacy.md.",
        PRIVACY_UNITS)
    examples_per_unit: int = setting(
        4, "With --privacy_unit other than example: at most this many of a sampled unit's "
        "examples enter a step (drawn by the unit's own coins), averaged into one record.")
    reproducible_sampling: bool = setting(
        False, "Draw the batches from --seed instead of a secret key, for repeatable "
        "experiments. Anyone who knows the seed then knows every batch, so the run is "
        "accounted without amplification by subsampling (far more noise for the same epsilon).")
    projection_dim: int = setting(50, "k: public subspace dimension (pdpsgd, fpdp).")
    public_examples: int = setting(100, "m: examples of the training set given up (not "
                                   "protected) to compute the public subspace S_pub.")
    projection_refresh_steps: int = setting(1, "R: steps between subspace refreshes.")
    public_view_sigma: float = setting(4.0, "Blur sigma (crop pixels) of the public view psi(x) "
                                       "(fdp, fpdp).", alias="public_view")
    clipping: str = setting("ghost", "Per-example clipping path: ghost (norms from layer inputs "
                            "and output gradients, no per-example gradients of the whole model) "
                            "or vectorized (tf.vectorized_map); same update, different speed "
                            "and memory.", CLIPPINGS)

    @property
    def private(self) -> bool:
        return self.method != "none"

    def validate(self) -> None:
        _check_choice(self, "method")
        _check_choice(self, "clipping")
        _check_choice(self, "privacy_unit")
        _check(self.examples_per_unit >= 1, "examples_per_unit",
               f"must be >= 1, got {self.examples_per_unit}")
        if not self.private:
            return
        _check(self.l2_norm_clip > 0, "l2_norm_clip", "must be > 0")
        _check(0 < self.delta < 1, "delta", f"must be in (0, 1), got {self.delta}")
        _check(self.sampling in Sampling.names() or self.sampling == "shuffled", "sampling",
               "must be poisson or shuffle")
        _check_choice(self, "accountant")
        _check(self.target_epsilon is not None or self.noise_multiplier is not None,
               "target_epsilon", "give --target_epsilon, --noise_multiplier, or both")
        if self.target_epsilon is not None:
            _check(self.target_epsilon > 0, "target_epsilon", "must be > 0")
        if self.noise_multiplier is not None:
            _check(self.noise_multiplier >= 0, "noise_multiplier", "must be >= 0")
        _check(self.privacy_unit == "example" or Sampling(self.sampling) is Sampling.POISSON,
               "privacy_unit", "units other than example need --sampling=poisson")
        if Method(self.method).projected:
            _check(self.projection_dim > 0, "projection_dim", "must be > 0")
            _check(self.public_examples >= self.projection_dim, "public_examples",
                   f"must be >= --projection_dim ({self.projection_dim})")
            _check(self.projection_refresh_steps > 0, "projection_refresh_steps", "must be > 0")
        if Method(self.method).feature_dp:
            _check(self.public_view_sigma > 0, "public_view_sigma", "blur sigma must be > 0")


@dataclasses.dataclass
class OptimConfig:
    optimizer: str = setting("adam", "Base optimizer.", ("adam", "sgd"))
    learning_rate: float = setting(1e-3, "Peak learning rate.")
    lr_schedule: str = setting("cosine", "Learning-rate schedule.", ("cosine", "constant"))
    warmup_steps: int = setting(0, "Linear warm-up steps.")
    momentum: float = setting(0.9, "SGD momentum.")

    def validate(self) -> None:
        _check_choice(self, "optimizer")
        _check(self.learning_rate > 0, "learning_rate", "must be > 0")
        _check_choice(self, "lr_schedule")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")


@dataclasses.dataclass
class RunConfig:
    run_dir: str = setting("runs/default", "Output directory of the run.")
    epochs: float = setting(25.0, "Private training epochs (expected passes over the units).")
    pretrain_epochs: float = setting(0.0, "Non-private pretraining epochs on the public set "
                                     "first.")
    batch_size: int = setting(64, "Expected batch size B in privacy units (q = B/N under "
                              "Poisson sampling).")
    pretrain_batch_size: int = setting(32, "Batch size of public pretraining.")
    max_steps: int = setting(0, "Hard cap on private steps (0 = from --epochs).")
    seed: int = setting(0, "Seed of initialisation and augmentation (never of the noise, nor of "
                        "the sampling unless --reproducible_sampling).")
    checkpoint_every: int = setting(100, "Steps between checkpoints.")
    eval_every: int = setting(0, "Steps between validations (0 = every epoch).")
    flip_test: bool = setting(True, "Flip test in validation.")
    jit_compile: Optional[bool] = setting(None, "XLA; default on when a GPU is present (slower "
                                          "on CPU).")
    resume: bool = setting(False, "Continue the run in --run_dir from its last checkpoint.")
    log_every: int = setting(10, "Steps between loss logs.")
    pretrain_only: bool = setting(False, "Stop after the public pretraining phase.")
    distribution: str = setting("none", "Devices: one; all local GPUs (or --cpu_replicas logical "
                                "CPUs); or several hosts from TF_CONFIG (docs/training.md).",
                                DISTRIBUTIONS)
    cpu_replicas: int = setting(0, "--distribution=mirrored without GPUs: logical CPU replicas "
                                "(0 = one).")
    mixed_precision: bool = setting(False, "float16 compute (for GPUs); per-example clipping "
                                    "norms, clipped sums and noise stay float32; static loss "
                                    "scale 1024.")

    def validate(self) -> None:
        _check(self.epochs > 0 or self.max_steps > 0, "epochs", "must be > 0")
        _check(self.pretrain_epochs >= 0, "pretrain_epochs", "must be >= 0")
        _check(not self.pretrain_only or self.pretrain_epochs > 0, "pretrain_only",
               "needs --pretrain_epochs > 0")
        _check(self.batch_size > 0, "batch_size", "must be > 0")
        _check(self.pretrain_batch_size > 0, "pretrain_batch_size", "must be > 0")
        _check(self.checkpoint_every > 0, "checkpoint_every", "must be > 0")
        _check(self.log_every > 0, "log_every", "must be > 0")
        _check(self.max_steps >= 0, "max_steps", "must be >= 0")
        _check(bool(self.run_dir), "run_dir", "must not be empty")
        _check_choice(self, "distribution")
        _check(self.cpu_replicas >= 0, "cpu_replicas", "must be >= 0")
        _check(self.cpu_replicas == 0 or self.distribution == "mirrored", "cpu_replicas",
               "logical CPU replicas need --distribution=mirrored")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "privacy": PrivacyConfig,
            "optim": OptimConfig, "run": RunConfig}
# Field names of older config.json files.
_RENAMED = {"data": {"sigma": "simcc_sigma"}, "optim": {"schedule": "lr_schedule"}}


@dataclasses.dataclass
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def validate(self) -> "TrainConfig":
        for part in (self.data, self.model, self.privacy, self.optim, self.run):
            part.validate()
        if self.model.strategy in ("finetune", "full") and not (
                self.model.init_checkpoint or self.model.backbone_weights
                or self.run.pretrain_epochs > 0):
            raise ValueError(f"--strategy={self.model.strategy} starts from pretrained weights: "
                             "give --pretrain_epochs > 0, --init_checkpoint or "
                             "--backbone_weights (or use --strategy=scratch)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        parts = {}
        for name, section in SECTIONS.items():
            values = {_RENAMED.get(name, {}).get(k, k): v for k, v in d.get(name, {}).items()}
            parts[name] = section(**values)
        data, model = parts["data"], parts["model"]
        data.input_size = tuple(data.input_size)
        if isinstance(model.variant, dict):
            model.variant = TinyViTConfig(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in model.variant.items()})
        return cls(**parts)
