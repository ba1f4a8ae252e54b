"""Models: TinyViT backbone, SimCC head, pose model builder, weight conversion, strategies."""

from tfdphpe.models.convert import load_tinyvit_checkpoint
from tfdphpe.models.losses import simcc_kl_loss
from tfdphpe.models.simcc_head import CUSTOM_OBJECTS, SimCCHead, build_pose_model
from tfdphpe.models.strategies import (STRATEGIES, apply_strategy, batchnorm_is_frozen,
                                       count_params, freeze_batchnorm, transfer_joint_head)
from tfdphpe.models.tinyvit import VARIANTS, TinyViT, TinyViTConfig

__all__ = ["TinyViT", "TinyViTConfig", "VARIANTS", "load_tinyvit_checkpoint", "SimCCHead",
           "build_pose_model", "simcc_kl_loss", "STRATEGIES", "apply_strategy",
           "freeze_batchnorm", "batchnorm_is_frozen", "transfer_joint_head", "count_params",
           "CUSTOM_OBJECTS"]
