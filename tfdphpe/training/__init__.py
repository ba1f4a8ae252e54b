"""Training: validated configs, the two-phase loop, checkpoints that carry the privacy ledger."""

from tfdphpe.training.config import (DataConfig, ModelConfig, OptimConfig, PrivacyConfig,
                                     RunConfig, TrainConfig)
from tfdphpe.training.trainer import Trainer, train

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "PrivacyConfig", "OptimConfig",
           "RunConfig", "Trainer", "train"]
