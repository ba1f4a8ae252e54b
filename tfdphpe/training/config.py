"""Validated configuration objects for a training run.

Library code takes these objects, never flags: ``scripts/train.py`` turns flags into them, and a
Python user builds them directly. Each ``validate`` raises ``ValueError`` naming the field (by its
flag name) at fault.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional, Union

from tfdphpe.models.tinyvit import VARIANTS, TinyViTConfig

METHODS = ("none", "dpsgd", "pdpsgd", "fdp", "fpdp")
STRATEGIES = ("finetune", "full", "scratch")
DATASETS = ("synthetic", "mpii", "coco", "custom")


def _check(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ValueError(f"--{field}: {message}")


@dataclasses.dataclass
class DataConfig:
    """Where the data comes from and how crops are made."""

    dataset: str = "synthetic"          # private (or only) set: synthetic | mpii | coco | custom
    data_dir: str = "data/synthetic"    # root of the data set (layout per dataset, docs/data.md)
    public_dataset: str = "synthetic"   # pretraining set (COCO format): synthetic | coco
    public_data_dir: str = "data/synthetic"
    input_size: tuple[int, int] = (256, 192)
    split_ratio: float = 2.0
    sigma: float = 6.0
    augment: bool = True
    max_train_examples: int = 0         # 0 = all; a cap for quick runs
    max_val_examples: int = 0

    def validate(self) -> None:
        _check(self.dataset in DATASETS, "dataset", f"{self.dataset!r} not in {DATASETS}")
        _check(self.public_dataset in ("synthetic", "coco"), "public_dataset",
               f"{self.public_dataset!r} not in ('synthetic', 'coco')")
        _check(len(self.input_size) == 2 and min(self.input_size) >= 32, "input_size",
               f"must be height,width >= 32, got {self.input_size}")
        _check(self.split_ratio > 0, "split_ratio", "must be > 0")
        _check(self.sigma > 0, "simcc_sigma", "must be > 0")
        _check(self.max_train_examples >= 0 and self.max_val_examples >= 0,
               "max_train_examples", "must be >= 0")


@dataclasses.dataclass
class ModelConfig:
    # A variant name, or (from Python) a reduced TinyViTConfig, e.g. for fast tests.
    variant: Union[str, TinyViTConfig] = "5m"
    strategy: str = "finetune"
    norm: str = "batch"
    init_checkpoint: str = ""           # pose model (.keras) to start from, e.g. a pretraining run
    backbone_weights: str = ""          # converted TinyViT weights (scripts/convert_tinyvit.py)

    def validate(self) -> None:
        _check(isinstance(self.variant, TinyViTConfig) or self.variant in VARIANTS, "variant",
               f"unknown {self.variant!r}; expected one of {sorted(VARIANTS)}")
        _check(self.strategy in STRATEGIES, "strategy", f"{self.strategy!r} not in {STRATEGIES}")
        _check(self.norm in ("batch", "group"), "norm", "must be batch or group")
        _check(not (self.init_checkpoint and self.backbone_weights), "init_checkpoint",
               "give either --init_checkpoint or --backbone_weights, not both")


@dataclasses.dataclass
class PrivacyConfig:
    method: str = "dpsgd"
    l2_norm_clip: float = 1.0
    # Noise calibrated to target_epsilon when noise_multiplier is None; with both, sigma is
    # fixed and target_epsilon caps the run (it stops when the budget is spent).
    target_epsilon: Optional[float] = 1.0
    noise_multiplier: Optional[float] = None
    delta: float = 4e-5
    sampling: str = "poisson"               # poisson | shuffle
    accountant: str = "rdp"                 # rdp | pld
    projection_dim: int = 50                # k for pdpsgd / fpdp
    public_examples: int = 100              # m = |S_pub|
    projection_refresh_steps: int = 1       # R
    public_view_sigma: float = 4.0          # Gaussian blur sigma (crop pixels) of psi(x) for fdp
    clipping: str = "ghost"                 # ghost | vectorized: same update, different cost

    @property
    def private(self) -> bool:
        return self.method != "none"

    def validate(self) -> None:
        _check(self.method in METHODS, "method", f"{self.method!r} not in {METHODS}")
        _check(self.clipping in ("ghost", "vectorized"), "clipping",
               f"must be ghost or vectorized, got {self.clipping!r}")
        if not self.private:
            return
        _check(self.l2_norm_clip > 0, "l2_norm_clip", "must be > 0")
        _check(0 < self.delta < 1, "delta", f"must be in (0, 1), got {self.delta}")
        _check(self.sampling in ("poisson", "shuffle"), "sampling", "must be poisson or shuffle")
        _check(self.accountant in ("rdp", "pld"), "accountant", "must be rdp or pld")
        _check(self.target_epsilon is not None or self.noise_multiplier is not None,
               "target_epsilon", "give --target_epsilon, --noise_multiplier, or both")
        if self.target_epsilon is not None:
            _check(self.target_epsilon > 0, "target_epsilon", "must be > 0")
        if self.noise_multiplier is not None:
            _check(self.noise_multiplier >= 0, "noise_multiplier", "must be >= 0")
        if self.method in ("pdpsgd", "fpdp"):
            _check(self.projection_dim > 0, "projection_dim", "must be > 0")
            _check(self.public_examples >= self.projection_dim, "public_examples",
                   f"must be >= --projection_dim ({self.projection_dim})")
            _check(self.projection_refresh_steps > 0, "projection_refresh_steps", "must be > 0")
        if self.method in ("fdp", "fpdp"):
            _check(self.public_view_sigma > 0, "public_view", "blur sigma must be > 0")


@dataclasses.dataclass
class OptimConfig:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "cosine"             # constant | cosine
    warmup_steps: int = 0
    momentum: float = 0.9                # sgd only

    def validate(self) -> None:
        _check(self.optimizer in ("adam", "sgd"), "optimizer", "must be adam or sgd")
        _check(self.learning_rate > 0, "learning_rate", "must be > 0")
        _check(self.schedule in ("constant", "cosine"), "lr_schedule", "constant or cosine")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")


@dataclasses.dataclass
class RunConfig:
    run_dir: str = "runs/quickstart"
    epochs: float = 25.0
    pretrain_epochs: float = 0.0        # non-private pretraining on the public set first
    batch_size: int = 64                # expected batch size B (q = B/N under Poisson)
    pretrain_batch_size: int = 32
    max_steps: int = 0                  # 0 = derived from epochs; else a hard cap
    seed: int = 0
    checkpoint_every: int = 100         # steps
    eval_every: int = 0                 # steps; 0 = at the end of each epoch
    flip_test: bool = True
    jit_compile: Optional[bool] = None  # None = on when a GPU is present
    resume: bool = False
    log_every: int = 10
    pretrain_only: bool = False         # stop after the pretraining phase
    distribution: str = "none"          # none | mirrored | multi_worker (training/distribution.py)
    cpu_replicas: int = 0               # mirrored with no GPU: logical CPU devices (0 = one)
    mixed_precision: bool = False       # float16 compute (GPUs); clipping and noise in float32

    def validate(self) -> None:
        _check(self.epochs > 0 or self.max_steps > 0, "epochs", "must be > 0")
        _check(self.pretrain_epochs >= 0, "pretrain_epochs", "must be >= 0")
        _check(not self.pretrain_only or self.pretrain_epochs > 0, "pretrain_only",
               "needs --pretrain_epochs > 0")
        _check(self.batch_size > 0, "batch_size", "must be > 0")
        _check(self.pretrain_batch_size > 0, "pretrain_batch_size", "must be > 0")
        _check(self.checkpoint_every > 0, "checkpoint_every", "must be > 0")
        _check(self.max_steps >= 0, "max_steps", "must be >= 0")
        _check(bool(self.run_dir), "run_dir", "must not be empty")
        _check(self.distribution in ("none", "mirrored", "multi_worker"), "distribution",
               f"must be none, mirrored or multi_worker, got {self.distribution!r}")
        _check(self.cpu_replicas >= 0, "cpu_replicas", "must be >= 0")
        _check(self.cpu_replicas == 0 or self.distribution == "mirrored", "cpu_replicas",
               "logical CPU replicas need --distribution=mirrored")


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
        data = dict(d["data"])
        data["input_size"] = tuple(data["input_size"])
        model = dict(d["model"])
        if isinstance(model["variant"], dict):
            model["variant"] = TinyViTConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in model["variant"].items()})
        return cls(data=DataConfig(**data), model=ModelConfig(**model),
                   privacy=PrivacyConfig(**d["privacy"]), optim=OptimConfig(**d["optim"]),
                   run=RunConfig(**d["run"]))
