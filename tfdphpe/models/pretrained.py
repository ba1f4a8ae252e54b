"""The public pose model shipped with tfdphpe: float16 weights (safetensors) beside a JSON card.

``load_public_model()`` returns a Keras pose model (TinyViT + SimCC, MPII-16 joints) pretrained
non-privately on public synthetic people only; ``public_model_card()`` says how it was made
(the command, the data seed and identities, its PCKh). ``save_public_model`` writes a model in
this format. docs/demo.md has the story; ``scripts/make_public_model.py`` made the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
DEFAULT_MODEL = "tinyvit5m_public_synthetic_128x96"
_FLOAT16_MAX = 65504.0


def _paths(name_or_stem: str) -> tuple[str, str]:
    stem = name_or_stem if os.sep in name_or_stem else os.path.join(PRETRAINED_DIR, name_or_stem)
    return stem + ".safetensors", stem + ".json"


def public_model_card(name: str = DEFAULT_MODEL) -> dict:
    """The JSON card of a shipped model (a name in ``PRETRAINED_DIR`` or a path without suffix)."""
    path = _paths(name)[1]
    if not os.path.exists(path):
        raise FileNotFoundError(f"no public model card {path}")
    with open(path) as f:
        return json.load(f)


def load_public_model(name: str = DEFAULT_MODEL):
    """The shipped public model as a float32 Keras pose model (``build_pose_model`` layout)."""
    from safetensors.numpy import load_file

    from tfdphpe.models.simcc_head import build_pose_model
    from tfdphpe.models.tinyvit import TinyViTConfig

    card = public_model_card(name)
    variant = card["variant"]
    if isinstance(variant, dict):    # a reduced configuration (tests)
        variant = TinyViTConfig(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in variant.items()})
    model = build_pose_model(variant, tuple(card["input_size"]),
                             num_joints=len(card["joints"]), split_ratio=card["split_ratio"])
    tensors = load_file(_paths(name)[0])
    keys = sorted(tensors)                      # "0000/<weight name>": the weight's position
    if len(keys) != len(model.weights):
        raise ValueError(f"{_paths(name)[0]} holds {len(keys)} tensors; the model of its card "
                         f"has {len(model.weights)} weights")
    for key, w in zip(keys, model.weights):
        value = tensors[key]
        if tuple(value.shape) != tuple(w.shape):
            raise ValueError(f"{_paths(name)[0]}: tensor {key} has shape {value.shape}, the "
                             f"model's weight {w.name} {tuple(w.shape)}")
        w.assign(value.astype(w.dtype.as_numpy_dtype))
    return model


def save_public_model(model, stem: str, card: dict, variant,
                      split_ratio: float, joints) -> tuple[str, str]:
    """Writes ``<stem>.safetensors`` (every weight, float16) and ``<stem>.json`` (``card`` plus
    the architecture fields the loader needs); returns both paths."""
    from safetensors.numpy import save_file

    # Keyed by position: a model loaded from a .keras file repeats weight names across blocks
    # (271 weights, 40 distinct names for TinyViT-5M), so a name alone would overwrite tensors.
    tensors = {}
    for index, w in enumerate(model.weights):
        value = w.numpy()
        if np.abs(value).max(initial=0.0) > _FLOAT16_MAX:
            raise ValueError(f"{w.name} does not fit in float16 (max |w| {np.abs(value).max()})")
        tensors[f"{index:04d}/{w.name}"] = value.astype(np.float16)
    weights_path, card_path = _paths(stem)
    os.makedirs(os.path.dirname(weights_path) or ".", exist_ok=True)
    save_file(tensors, weights_path)
    if not isinstance(variant, str):
        variant = dataclasses.asdict(variant)
    card = dict(card, variant=variant, input_size=list(model.input_shape[1:3]),
                split_ratio=split_ratio, joints=list(joints), dtype="float16",
                weights_file=os.path.basename(weights_path))
    with open(card_path, "w") as f:
        json.dump(card, f, indent=1)
    return weights_path, card_path


def update_public_model_card(stem: str, fields: dict) -> dict:
    """Adds ``fields`` to the card at ``<stem>.json`` (e.g. scores measured after saving)."""
    card = dict(public_model_card(stem), **fields)
    with open(_paths(stem)[1], "w") as f:
        json.dump(card, f, indent=1)
    return card


def export_keras(path: str, name: str = DEFAULT_MODEL, model: Optional[object] = None) -> str:
    """Saves the shipped model as a ``.keras`` file (what ``--init_checkpoint`` takes)."""
    model = model if model is not None else load_public_model(name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    return path
