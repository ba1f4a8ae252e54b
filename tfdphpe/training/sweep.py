"""Experiment grids: expand, run (or print commands for a cluster), resume, collect.

A grid is a JSON file::

    {
      "name": "synthetic_benchmark",
      "flagfile": "configs/synthetic_benchmark/base.flags",
      "axes": {"method": ["none", "dpsgd", "pdpsgd"], "target_epsilon": [0.2, 0.8, 7]},
      "fixed": {"l2_norm_clip": 1.0}
    }

Every combination of the axes is one run, named by its axis values, in ``<sweep_dir>/<name>``.
Runs of method ``none`` ignore the privacy axes (epsilon, clip norm) and appear once. A run is
done when its ``metrics.json`` exists; any other run is (re)started with ``--resume`` so a
partly finished sweep continues where it stopped.

Tests: tests/training/test_sweep.py.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import shlex
import subprocess
import sys
from typing import Optional, Sequence

PRIVACY_AXES = ("target_epsilon", "l2_norm_clip", "noise_multiplier", "projection_dim",
                "public_examples", "public_view")
GROUP_COLUMNS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")


@dataclasses.dataclass
class Run:
    name: str
    flags: dict
    run_dir: str

    def command(self, flagfile: Optional[str], python: str = "python") -> list[str]:
        cmd = [python, "scripts/train.py"]
        if flagfile:
            cmd.append(f"--flagfile={flagfile}")
        cmd += [f"--{k}={v}" for k, v in self.flags.items()]
        return cmd + [f"--run_dir={self.run_dir}", "--resume"]

    @property
    def done(self) -> bool:
        return os.path.exists(os.path.join(self.run_dir, "metrics.json"))


def load_grid(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"grid file not found: {path}")
    with open(path) as f:
        grid = json.load(f)
    if not isinstance(grid.get("axes"), dict) or not grid["axes"]:
        raise ValueError(f"{path}: a grid needs a non-empty 'axes' object")
    for k, v in grid["axes"].items():
        if not isinstance(v, list) or not v:
            raise ValueError(f"{path}: axis {k!r} must be a non-empty list")
    return grid


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def expand(grid: dict, sweep_dir: str) -> list[Run]:
    """All runs of the grid (deduplicated for method none)."""
    axes = grid["axes"]
    names = list(axes)
    runs, seen = [], set()
    for values in itertools.product(*(axes[n] for n in names)):
        flags = dict(grid.get("fixed", {}))
        point = dict(zip(names, values))
        if point.get("method") == "none":
            point = {k: v for k, v in point.items() if k not in PRIVACY_AXES}
        key = tuple(sorted((k, _fmt(v)) for k, v in point.items()))
        if key in seen:
            continue
        seen.add(key)
        flags.update(point)
        name = "_".join(f"{k}-{_fmt(v)}" for k, v in point.items())
        runs.append(Run(name=name, flags=flags, run_dir=os.path.join(sweep_dir, name)))
    return runs


def run_all(runs: Sequence[Run], flagfile: Optional[str], log=print) -> list[Run]:
    """Runs the unfinished runs one after another; returns those that failed."""
    failed = []
    todo = [r for r in runs if not r.done]
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already done")
    for i, run in enumerate(todo):
        cmd = run.command(flagfile, python=sys.executable)
        log(f"[{i + 1}/{len(todo)}] {shlex.join(cmd)}")
        os.makedirs(run.run_dir, exist_ok=True)
        with open(os.path.join(run.run_dir, "train.log"), "a") as out:
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
        if code != 0:
            log(f"  run {run.name} failed (exit {code}); see {run.run_dir}/train.log")
            failed.append(run)
    return failed


def collect(runs: Sequence[Run]) -> list[dict]:
    """One row per finished run: its axis values, PCKh groups, epsilon."""
    rows = []
    for run in runs:
        if not run.done:
            continue
        with open(os.path.join(run.run_dir, "metrics.json")) as f:
            metrics = json.load(f)
        row = {"run": run.name, **{k: run.flags.get(k) for k in run.flags}}
        for g in GROUP_COLUMNS:
            row[g] = metrics.get(f"PCKh@0.5/{g}")
        row["Mean@0.1"] = metrics.get("PCKh@0.1/Mean")
        row["epsilon_spent"] = metrics.get("epsilon")
        row["steps"] = metrics.get("steps")
        rows.append(row)
    return rows


def write_tables(rows: list[dict], out_dir: str, axes: Sequence[str]) -> tuple[str, str]:
    """results.csv and results.md (the papers' layout: Head ... Ankle, Mean, Mean@0.1)."""
    os.makedirs(out_dir, exist_ok=True)
    columns = list(axes) + list(GROUP_COLUMNS) + ["Mean@0.1", "epsilon_spent", "steps"]
    csv_path = os.path.join(out_dir, "results.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md_path = os.path.join(out_dir, "results.md")

    def cell(v):
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(rows, key=lambda r: tuple(str(r.get(a)) for a in axes)):
        lines.append("| " + " | ".join(cell(row.get(c)) for c in columns) + " |")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return csv_path, md_path


def plot_pckh_vs_epsilon(rows: list[dict], out_dir: str) -> list[str]:
    """PNG per (strategy, clip norm): PCKh@0.5 Mean against epsilon, one line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("strategy", "-"), r.get("l2_norm_clip", "-")), []).append(r)
    baseline = [r for r in rows if r.get("method") == "none" and r.get("Mean") is not None]
    for (strategy, clip), members in groups.items():
        private = [r for r in members if r.get("method") != "none" and
                   r.get("target_epsilon") is not None and r.get("Mean") is not None]
        if not private:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in sorted({r["method"] for r in private}):
            pts = sorted((float(r["target_epsilon"]), r["Mean"]) for r in private
                         if r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        for r in baseline:
            if r.get("strategy", "-") == strategy:
                ax.axhline(r["Mean"], color="gray", linestyle="--", label="non-private")
        ax.set_xscale("log")
        ax.set_xlabel("epsilon")
        ax.set_ylabel("PCKh@0.5 Mean")
        ax.set_title(f"strategy {strategy}, C = {clip}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = os.path.join(out_dir, f"pckh_vs_epsilon_{strategy}_C{clip}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def overlay_figure(runs: Sequence[Run], dataset: str, data_dir: str, out_path: str,
                   num_images: int = 4) -> str:
    """The same validation images with each run's predicted skeletons, one row per run."""
    from PIL import Image

    from tfdphpe.evaluation.visualize import draw_poses, grid
    from tfdphpe.training.evaluate import predict_run
    from tfdphpe.training.datasets import load_split

    val = load_split(dataset, data_dir, "val")
    records = list(val.records)[:num_images]
    rows, labels = [], []
    for run in runs:
        if not run.done:
            continue
        preds = predict_run(run.run_dir, records, val.joint_set)
        images = [draw_poses(Image.open(r.image_path), kp[None], sc[None],
                             val.joint_set.skeleton, val.joint_set.names, score_threshold=0.0)
                  for r, kp, sc in zip(records, preds.keypoints, preds.scores)]
        rows.append(images)
        labels.append(run.name.replace("_", "\n"))
    if not rows:
        raise ValueError("no finished runs to draw")
    gt = [draw_poses(Image.open(r.image_path), r.keypoints[None], r.visible[None],
                     val.joint_set.skeleton, val.joint_set.names, score_threshold=0.5)
          for r in records]
    picture = grid([gt] + rows, ["ground truth"] + labels)
    picture.save(out_path)
    return out_path
