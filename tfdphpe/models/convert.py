"""Loads TinyViT checkpoints that users actually have into the Keras backbone.

Supported files:
* timm's ``model.safetensors`` (``tiny_vit_*_224.*`` on the model hubs; timm key names such as
  ``stages.1.blocks.0.attn.qkv.weight``). Read with the ``safetensors`` numpy reader: no torch.
* the official microsoft/Cream ``.pth`` files (``{'model': state_dict}``, key names such as
  ``layers.1.blocks.0.attn.qkv.weight``). Unpickling these needs torch (``pip install
  tfdphpe[torch]``).

Classifier weights (``head.*``, ``norm_head``) are not part of the backbone and are reported as
unused. Every backbone weight must be found in the file, with the right shape, or the load fails
naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from tfdphpe.models.layers import WindowAttention

_IGNORED_SUFFIXES = ("num_batches_tracked", "attention_bias_idxs")
_CLASSIFIER_PREFIXES = ("head.", "norm_head.")


@dataclasses.dataclass
class LoadReport:
    """What a checkpoint load did."""

    path: str
    loaded: int
    unused_keys: list[str]

    def __str__(self) -> str:
        return (f"loaded {self.loaded} tensors from {self.path}; "
                f"{len(self.unused_keys)} unused (classifier/bookkeeping)")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a checkpoint file into a flat {key: numpy array} dict."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return dict(load_file(path))
    if path.endswith((".pth", ".pt", ".bin", ".pth.tar")):
        try:
            import torch
        except ImportError:
            raise ImportError(
                f"reading {path} needs PyTorch (a pickled .pth file); install it with "
                "`pip install tfdphpe[torch]`, or convert the file to .safetensors") from None
        obj = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
                for k, v in obj.items() if hasattr(v, "numpy")}
    raise ValueError(f"unsupported checkpoint format for {path}: expected .safetensors or .pth")


_OFFICIAL_RULES = [
    (re.compile(r"^patch_embed\.seq\.0\."), "patch_embed.conv1."),
    (re.compile(r"^patch_embed\.seq\.2\."), "patch_embed.conv2."),
    (re.compile(r"^layers\.(\d+)\.downsample\."),
     lambda m: f"stages.{int(m.group(1)) + 1}.downsample."),
    (re.compile(r"^layers\.(\d+)\.blocks\."), lambda m: f"stages.{m.group(1)}.blocks."),
    (re.compile(r"\.c\.weight$"), ".conv.weight"),
    (re.compile(r"^norm_head\."), "head.norm."),
    (re.compile(r"^head\.(weight|bias)$"), r"head.fc.\1"),
]


def official_to_timm_key(key: str) -> str:
    """Maps a microsoft/Cream TinyViT key to timm's name for the same tensor."""
    for pattern, repl in _OFFICIAL_RULES:
        key = pattern.sub(repl, key)
    return key


def normalise_keys(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns the state dict with timm key names, whichever layout it came in."""
    if any(k.startswith("layers.") for k in state):
        return {official_to_timm_key(k): v for k, v in state.items()}
    return dict(state)


def _keras_target(backbone: tf.keras.Model, key: str):
    """Finds the Keras variable for a timm key; returns (variable, kind) or raises KeyError."""
    parts = key.split(".")
    layer = None
    for n in range(1, min(5, len(parts))):
        try:
            layer = backbone.get_layer("_".join(parts[:n]))
        except ValueError:
            continue
        rest = parts[n:]
        break
    if layer is None:
        raise KeyError(key)
    *attrs, param = rest
    module = layer
    for attr in attrs:
        module = getattr(module, attr, None)
        if module is None:
            raise KeyError(key)
    if isinstance(module, WindowAttention) and param == "attention_biases":
        return module.attention_biases, "raw"
    if isinstance(module, tf.keras.layers.DepthwiseConv2D) and param == "weight":
        return module.depthwise_kernel, "depthwise"
    if isinstance(module, tf.keras.layers.Conv2D) and param == "weight":
        return module.kernel, "conv"
    if isinstance(module, tf.keras.layers.Dense):
        return (module.kernel, "dense") if param == "weight" else (module.bias, "raw")
    if isinstance(module, (tf.keras.layers.BatchNormalization,
                           tf.keras.layers.LayerNormalization)):
        names = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                 "running_var": "moving_variance"}
        if param in names:
            return getattr(module, names[param]), "raw"
    raise KeyError(key)


_LAYOUT = {
    "raw": lambda a: a,
    "dense": lambda a: a.T,                              # [out, in] -> [in, out]
    "conv": lambda a: a.transpose(2, 3, 1, 0),           # [O, I, kh, kw] -> [kh, kw, I, O]
    "depthwise": lambda a: a.transpose(2, 3, 0, 1),      # [C, 1, kh, kw] -> [kh, kw, C, 1]
}


def load_tinyvit_checkpoint(backbone: tf.keras.Model, path: str) -> LoadReport:
    """Loads a timm ``.safetensors`` or official ``.pth`` TinyViT checkpoint into ``backbone``.

    Args:
      backbone: a model from ``tfdphpe.models.TinyViT`` built with BatchNorm (``norm="batch"``)
        and the same variant as the checkpoint.
      path: checkpoint file.

    Raises:
      ValueError: a tensor has the wrong shape, a backbone weight is missing from the file, or a
        file key matches nothing in the backbone (wrong variant or not a TinyViT checkpoint).
    """
    state = normalise_keys(read_state_dict(path))
    assigned: set[int] = set()
    unused, unknown = [], []
    for key, value in state.items():
        if key.endswith(_IGNORED_SUFFIXES) or key.startswith(_CLASSIFIER_PREFIXES):
            unused.append(key)
            continue
        try:
            var, kind = _keras_target(backbone, key)
        except KeyError:
            unknown.append(key)
            continue
        array = _LAYOUT[kind](np.asarray(value, dtype=np.float32))
        if tuple(array.shape) != tuple(var.shape):
            raise ValueError(f"{path}: tensor {key!r} has shape {tuple(value.shape)}, which does "
                             f"not fit {var.name} {tuple(var.shape)} (wrong variant or window?)")
        var.assign(array)
        assigned.add(id(var))
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} tensors match nothing in {backbone.name} "
                         f"(wrong variant, GroupNorm backbone, or not TinyViT?): {unknown[:5]}")
    missing = [w.name for w in backbone.weights if id(w) not in assigned]
    if missing:
        raise ValueError(f"{path}: {len(missing)} backbone weights are not in the checkpoint: "
                         f"{missing[:5]}")
    return LoadReport(path=path, loaded=len(assigned), unused_keys=unused)
