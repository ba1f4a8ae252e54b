"""The tasks `scripts/audit_privacy.py` audits (see `tfdphpe.privacy.audit`, docs/privacy.md).

* ``toy_task``: a small conv + dense regression model on random data, for white-box audits of
  every method and clipping path in seconds on a CPU.
* ``pose_task``: the pose model (TinyViT + SimCC) on synthetic people, with mislabelled
  synthetic people as black-box canaries (each canary's joints shuffled: its x targets by one
  random permutation of the joints, its y targets by another, so no other example carries its
  labels and a model can only fit them by memorising that canary).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfdphpe.privacy import audit

POSE_KEYS = ("image", "public_image", "target_x", "target_y", "target_weight")


@dataclasses.dataclass
class Task:
    """What an audit trains: model, per-example losses, real data, S_pub, black-box canaries."""

    model: tf.keras.Model
    loss_fn: object
    public_loss_fn: object
    data: dict
    public_data: dict
    canaries: Optional[dict] = None


def toy_task(num_real: int, num_public: int = 50, seed: int = 0) -> Task:
    """Conv 3x3 (4 filters) + tanh + Dense(3) on 6x6x2 inputs; the public view is 0.5 x."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((6, 6, 2))
    x = tf.keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = tf.keras.layers.Flatten()(tf.nn.tanh(x))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="head")(x), name="toy")
    rng = np.random.default_rng([seed, 11])

    def examples(n):
        image = rng.normal(size=(n, 6, 6, 2)).astype(np.float32)
        return {"image": image, "public_image": 0.5 * image,
                "target": rng.normal(size=(n, 3)).astype(np.float32)}

    def loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["image"]) - batch["target"]), axis=1)

    def public_loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["public_image"]) - batch["target"]), axis=1)

    return Task(model, loss_fn, public_loss_fn, examples(num_real), examples(num_public))


def shuffle_joints(examples: dict, seed: int) -> dict:
    """Mislabels every example: x targets by one random joint permutation, y by another."""
    rng = np.random.default_rng([seed, 13])
    out = dict(examples)
    n, k = examples["target_x"].shape[:2]
    px = np.stack([rng.permutation(k) for _ in range(n)])
    py = np.stack([rng.permutation(k) for _ in range(n)])
    rows = np.arange(n)[:, None]
    out["target_x"] = examples["target_x"][rows, px]
    out["target_y"] = examples["target_y"][rows, py]
    w = examples["target_weight"]
    out["target_weight"] = w[rows, px] * w[rows, py]
    return out


def synthetic_people(data_dir: str, num: int, input_size, blur: float, seed: int = 0,
                     log=print) -> dict:
    """``num`` synthetic people as model-ready arrays (rendered into data_dir if missing)."""
    from tfdphpe.data.pipeline import PipelineConfig, build_dataset
    from tfdphpe.data.sampling import BatchConfig
    from tfdphpe.data.synthetic import write_synthetic_dataset
    from tfdphpe.training.datasets import load_split
    if not os.path.exists(os.path.join(data_dir, "mpii", "train.json")):
        log(f"rendering {num} synthetic people into {data_dir}")
        write_synthetic_dataset(data_dir, num_train=num, num_val=0, seed=seed)
    records = list(load_split("synthetic", data_dir, "train").records)
    if len(records) < num:
        raise ValueError(f"{data_dir} holds {len(records)} people, {num} needed")
    config = PipelineConfig(input_size=tuple(input_size), augment=None, public_blur_sigma=blur)
    built = build_dataset(records[:num], config, BatchConfig("sequential", batch_size=64,
                                                             pad_final_batch=False))
    parts = [{k: b[k].numpy() for k in POSE_KEYS} for b in built.dataset]
    return {k: np.concatenate([p[k] for p in parts]) for k in POSE_KEYS}


def pose_task(variant, input_size, strategy: str, num_real: int, num_canaries: int,
              num_public: int, data_dir: str, blur: float = 4.0, seed: int = 0,
              log=print) -> Task:
    """The pose model (BatchNorm frozen, ``strategy`` applied) and its data, in that order:
    the first num_real people train, the next num_canaries are mislabelled canaries, the
    last num_public are S_pub."""
    from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss
    people = synthetic_people(data_dir, num_real + num_canaries + num_public, input_size, blur,
                              seed, log)
    split = np.cumsum([num_real, num_canaries])
    data, canaries, public = ({k: v[a:b] for k, v in people.items()}
                              for a, b in ((0, split[0]), (split[0], split[1]), (split[1], None)))
    tf.keras.utils.set_random_seed(seed)
    model = build_pose_model(variant, tuple(input_size), num_joints=people["target_x"].shape[1])
    apply_strategy(model, strategy)
    freeze_batchnorm(model)

    def loss_fn(batch):
        return simcc_kl_loss(model(batch["image"], training=False), batch)

    def public_loss_fn(batch):
        return simcc_kl_loss(model(batch["public_image"], training=False), batch)

    return Task(model, loss_fn, public_loss_fn, data, public, shuffle_joints(canaries, seed))


def run_audit(kind: str, config: audit.AuditConfig, task: Task, log=print) -> audit.AuditResult:
    """A white-box or black-box audit of ``task`` under ``config``."""
    kwargs = dict(public_loss_fn=task.public_loss_fn if config.feature_dp else None,
                  public_data=task.public_data if config.projected else None)
    if kind == "white_box":
        run = audit.WhiteBoxAudit(config, task.model, task.loss_fn, task.data, **kwargs)
    elif kind == "black_box":
        run = audit.BlackBoxAudit(config, task.model, task.loss_fn, task.data, task.canaries,
                                  public_view_keys={"image": "public_image"}, **kwargs)
    else:
        raise ValueError(f"kind must be white_box or black_box, got {kind!r}")
    return run.run(log)


COLUMNS = ("kind", "method", "clipping", "claimed_eps", "delta", "m", "r", "correct", "bound",
           "released_bound", "seconds", "unit", "canary_size")


def table(results: list[audit.AuditResult]) -> str:
    """A markdown table, one row per audit (``bound``: the audited figure)."""
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        row = r.row()
        lines.append("| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)
