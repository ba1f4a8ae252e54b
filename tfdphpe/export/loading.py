"""Finding what to export: a trained run (model + privacy statement + config) or a fresh model."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import tensorflow as tf

from tfdphpe.data.joints import JointSet, get_joint_set
from tfdphpe.models import CUSTOM_OBJECTS, build_pose_model
from tfdphpe.models.tinyvit import VARIANTS

MODEL_FILENAME = "model.keras"
CONFIG_FILENAME = "config.json"
PRIVACY_FILENAME = "privacy.json"


@dataclasses.dataclass(frozen=True)
class DeploymentPreset:
    """A model size for a deployment target (variant and input size).

    The head's Dense layers depend on the input size, so a preset other than the one a model was
    trained at needs its own fine-tuning run; a preset chooses what to train, then export.
    """

    variant: str
    input_size: tuple[int, int]
    note: str = ""


#: ``mobile``: the largest input of scripts/bench_tflite.py's candidates whose int8 latency
#: (one thread) is at BlazePose full's: 1.05x at 128x96 on our x86 machine, 1.37x at 160x128.
#: Its PCKh cost, measured on synthetic validation with the same short recipe at both sizes:
#: 11.65 vs 18.29 PCKh@0.5 at 256x192 (-6.6 points; docs/deployment.md, "Mobile preset").
PRESETS: dict[str, DeploymentPreset] = {
    "server": DeploymentPreset("5m", (256, 192), "the papers' setting"),
    "mobile": DeploymentPreset("5m", (128, 96), "int8 at BlazePose full's latency (measured); "
                               "-6.6 PCKh@0.5 vs 256x192 at equal training (synthetic)"),
}


@dataclasses.dataclass
class ExportSource:
    model: tf.keras.Model
    joint_set: JointSet
    privacy: Any            # dict, path or None (no DP guarantee)
    config: dict[str, Any]  # what is known about how the model was made
    origin: str             # checkpoint path, or "fresh (untrained)"


def load_checkpoint(path: str) -> ExportSource:
    """A ``.keras`` model file, or a run directory holding ``model.keras``.

    ``config.json`` and ``privacy.json`` are read from the run directory; for a ``.keras`` file
    from its directory, or from the run directory when the file sits in ``<run>/checkpoints/``.
    The joint set is ``config["joint_set"]`` if given, else the ``joint_names`` training writes
    into ``privacy.json`` (MPII, COCO or a custom set), else the one with the model's joint
    count. Without a ``privacy.json`` the export states that the model carries no DP guarantee.
    """
    path = os.fspath(path)
    if tf.io.gfile.isdir(path):
        model_file, run_dir = os.path.join(path, MODEL_FILENAME), path
    elif path.endswith(".keras"):
        model_file = path
        run_dir = os.path.dirname(path) or "."
        if os.path.basename(run_dir) == "checkpoints":
            run_dir = os.path.dirname(run_dir) or "."
    else:
        raise ValueError(f"--checkpoint must be a .keras file or a run directory, got {path!r}")
    if not tf.io.gfile.exists(model_file):
        raise FileNotFoundError(f"no model at {model_file}")
    model = tf.keras.models.load_model(model_file, custom_objects=CUSTOM_OBJECTS, compile=False)
    config: dict[str, Any] = {}
    config_file = _first_existing(run_dir, os.path.dirname(model_file), name=CONFIG_FILENAME)
    if config_file:
        with tf.io.gfile.GFile(config_file, "r") as f:
            config = json.load(f)
    privacy = _first_existing(os.path.dirname(model_file), run_dir, name=PRIVACY_FILENAME)
    num_joints = int(model.output_shape["x"][1])
    names = config.get("joint_names")
    if not names and privacy:  # training writes the joint names into its privacy.json
        with tf.io.gfile.GFile(privacy, "r") as f:
            names = json.load(f).get("joint_names")
    if names and not config.get("joint_set"):
        from tfdphpe.data.custom import joint_set_from_names
        joint_set = joint_set_from_names(names)
        if joint_set.num_joints != num_joints:
            raise ValueError(f"{len(names)} joint names for a {num_joints}-joint model")
    else:
        joint_set = resolve_joint_set(config.get("joint_set"), num_joints)
    return ExportSource(model, joint_set, privacy, config, origin=model_file)


def fresh_model(variant: str = "5m", input_size: Sequence[int] = (256, 192),
                num_joints: int = 16, split_ratio: float = 2.0,
                joint_set: str | None = None) -> ExportSource:
    """An untrained model (for tests, demos and latency measurements)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    model = build_pose_model(variant, tuple(int(v) for v in input_size), num_joints, split_ratio)
    config = {"variant": variant, "input_size": [int(v) for v in input_size],
              "num_joints": num_joints, "split_ratio": split_ratio}
    return ExportSource(model, resolve_joint_set(joint_set, num_joints), None, config,
                        origin="fresh (untrained)")


def resolve_joint_set(name: str | None, num_joints: int) -> JointSet:
    """The named joint set (checked against the model), or the one with ``num_joints`` joints."""
    if name:
        joint_set = get_joint_set(name)
    else:
        by_count = {16: "mpii", 17: "coco"}
        if num_joints not in by_count:
            raise ValueError(f"cannot tell the joint set of a {num_joints}-joint model; "
                             "give joint_set")
        joint_set = get_joint_set(by_count[num_joints])
    if joint_set.num_joints != num_joints:
        raise ValueError(f"joint set {joint_set.name!r} has {joint_set.num_joints} joints, the "
                         f"model predicts {num_joints}")
    return joint_set


def _first_existing(*dirs: str, name: str) -> str | None:
    for d in dirs:
        candidate = os.path.join(d, name)
        if tf.io.gfile.exists(candidate):
            return candidate
    return None
