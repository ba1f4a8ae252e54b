"""Training curves of finished runs: losses from the TensorBoard logs the trainer writes and
validation metrics from ``metrics.jsonl``, stage after stage, as a CSV and a PNG."""

from __future__ import annotations

import csv
import glob
import json
import os
from typing import Sequence


def read_scalars(logdir: str, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar in a TensorBoard directory, in step order."""
    import tensorflow as tf

    points = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag == tag:
                    points[int(event.step)] = float(tf.make_ndarray(v.tensor))
    return sorted(points.items())


def read_metrics(run_dir: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of one validation metric from a run's ``metrics.jsonl``."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(int(r["step"]), float(r[key])) for r in rows if key in r]


def stage_curves(stages: Sequence[tuple[str, str]], metric: str = "PCKh@0.5/Mean") -> list[dict]:
    """Rows (stage, step, global step, loss or metric) of consecutive training stages, each a
    (name, phase directory with ``tensorboard/``) pair."""
    rows, offset = [], 0
    for name, phase_dir in stages:
        losses = read_scalars(os.path.join(phase_dir, "tensorboard"), "train/loss")
        for step, loss in losses:
            rows.append({"stage": name, "step": step, "global_step": offset + step,
                         "loss": loss, metric: ""})
        for step, value in read_metrics(phase_dir, metric):
            rows.append({"stage": name, "step": step, "global_step": offset + step,
                         "loss": "", metric: value})
        offset += max((s for s, _ in losses), default=0)
    return sorted(rows, key=lambda r: (r["global_step"], r["loss"] == ""))


def write_curves(rows: list[dict], csv_path: str, png_path: str,
                 metric: str = "PCKh@0.5/Mean", title: str = "") -> None:
    """The rows as CSV and as a two-panel plot (loss; metric) against the global step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["stage", "step", "global_step", "loss", metric])
        writer.writeheader()
        writer.writerows(rows)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for stage in dict.fromkeys(r["stage"] for r in rows):
        loss = [(r["global_step"], r["loss"]) for r in rows if r["stage"] == stage and
                r["loss"] != ""]
        value = [(r["global_step"], r[metric]) for r in rows if r["stage"] == stage and
                 r[metric] != ""]
        if loss:
            top.plot(*zip(*loss), label=stage)
        if value:
            bottom.plot(*zip(*value), marker="o", label=stage)
    top.set_ylabel("training loss (KL)")
    bottom.set_ylabel(metric)
    bottom.set_xlabel("step")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        top.set_title(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
