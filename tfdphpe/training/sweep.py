"""Experiment grids: expand, run (or print commands for a cluster), resume, collect.

A grid is a JSON file::

    {
      "name": "synthetic_benchmark",
      "flagfile": "configs/synthetic_benchmark/base.flags",
      "axes": {"method": ["none", "dpsgd", "pdpsgd"], "target_epsilon": [0.2, 0.8, 7]},
      "fixed": {"l2_norm_clip": 1.0}
    }

Every combination of the axes is one run, named by its axis values, in ``<sweep_dir>/<name>``.
Flags that must follow an axis value go in ``"with"``, e.g. the batch that keeps the examples per
step equal across privacy units::

    "with": {"privacy_unit": {"example": {"batch_size": 64},
                              "identity": {"batch_size": 16, "examples_per_unit": 4}}}

Runs of method ``none`` ignore the privacy axes (epsilon, clip norm) and appear once per value
of the other axes. An axis ``seed`` repeats each point: the tables and plots then show the mean
over seeds with a 95 % t-interval (``tfdphpe.evaluation.intervals``).

Resuming: a run is done when its ``metrics.json`` exists and is kept, never repeated; any other
run is (re)started with ``--resume``, so a half-done run continues from its last checkpoint.
Each launched run records its flags (``sweep_run.json``); a recorded run whose flags no longer
match the grid is an error, not silently mixed into the results. After each run a progress
line gives the runs left and an estimate of the time left (mean duration of the runs of this
session times the runs to go).

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
import time
from typing import Callable, Optional, Sequence

from tfdphpe.evaluation.intervals import aggregate

PRIVACY_AXES = ("target_epsilon", "l2_norm_clip", "noise_multiplier", "projection_dim",
                "public_examples", "public_view")
GROUP_COLUMNS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")
VALUE_COLUMNS = GROUP_COLUMNS + ("Mean@0.1", "epsilon_spent", "steps")
SEED_AXIS = "seed"
RECORD_FILE = "sweep_run.json"


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

    def _record(self, flagfile: Optional[str]) -> dict:
        return {"flagfile": flagfile, "flags": {k: _fmt(v) for k, v in self.flags.items()}}

    def check_record(self, flagfile: Optional[str]) -> None:
        """Raises if this run directory was launched with other flags than the grid's now."""
        path = os.path.join(self.run_dir, RECORD_FILE)
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f) != self._record(flagfile):
                    raise ValueError(f"{self.run_dir} was started with other flags than the "
                                     f"grid gives now (see {path}); use a new --sweep_dir or "
                                     "remove that run")

    def write_record(self, flagfile: Optional[str]) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        with open(os.path.join(self.run_dir, RECORD_FILE), "w") as f:
            json.dump(self._record(flagfile), f, indent=1)


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
    for axis, by_value in grid.get("with", {}).items():
        values = {_fmt(v) for v in grid["axes"].get(axis, [])}
        if axis not in grid["axes"] or not isinstance(by_value, dict):
            raise ValueError(f"{path}: 'with' names {axis!r}, which is not an axis")
        unknown = sorted(set(by_value) - values)
        if unknown:
            raise ValueError(f"{path}: 'with' {axis!r} gives flags for {unknown}, not values "
                             f"of that axis ({sorted(values)})")
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
        for axis, value in point.items():      # flags that follow an axis value ("with")
            flags.update(grid.get("with", {}).get(axis, {}).get(_fmt(value), {}))
        name = "_".join(f"{k}-{_fmt(v)}" for k, v in point.items())
        runs.append(Run(name=name, flags=flags, run_dir=os.path.join(sweep_dir, name)))
    return runs


Launch = Callable[[list, str], int]


def launch_logged(cmd: list, run_dir: str) -> int:
    """Runs ``cmd``, appending its output to ``<run_dir>/train.log``; returns the exit code."""
    with open(os.path.join(run_dir, "train.log"), "a") as out:
        return subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def progress_line(run: Run, code: int, durations: Sequence[float], done: int, total: int,
                  to_go: int) -> str:
    """One line after a run: how it ended, runs done and to go, and the time left."""
    outcome = (f"finished in {_duration(durations[-1])}" if code == 0 else
               f"FAILED (exit {code}) after {_duration(durations[-1])}, see "
               f"{run.run_dir}/train.log")
    mean = sum(durations) / len(durations)
    left = (f"about {_duration(mean * to_go)} left ({_duration(mean)} per run so far)" if to_go
            else "nothing left")
    return f"{run.name}: {outcome} | {done} of {total} done, {to_go} to go, {left}"


def run_all(runs: Sequence[Run], flagfile: Optional[str], log=print,
            launch: Launch = launch_logged, clock=time.monotonic) -> list[Run]:
    """Runs the unfinished runs one after another; returns those that failed.

    Finished runs (``metrics.json``) are kept and not repeated; see the module docstring."""
    for run in runs:
        run.check_record(flagfile)
    todo = [r for r in runs if not r.done]
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already done (kept)")
    failed, durations = [], []
    for i, run in enumerate(todo):
        cmd = run.command(flagfile, python=sys.executable)
        log(f"[{i + 1}/{len(todo)}] {shlex.join(cmd)}")
        run.write_record(flagfile)
        start = clock()
        code = launch(cmd, run.run_dir)
        durations.append(clock() - start)
        if code != 0:
            failed.append(run)
        log(progress_line(run, code, durations, sum(r.done for r in runs), len(runs),
                          len(todo) - i - 1))
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


def summarize(rows: list[dict]) -> list[dict]:
    """Rows of the same grid point (all axes but the seed) merged: means, ``<column>_ci`` (95 %
    t-interval half-widths) and ``n`` seeds."""
    return aggregate(rows, over=SEED_AXIS, values=VALUE_COLUMNS)


def _cell(v, ci=None) -> str:
    if v is None:
        return "-"
    if not isinstance(v, float):
        return str(v)
    return f"{v:.2f}" if ci is None or ci != ci else f"{v:.2f} ± {ci:.2f}"


def _write(rows: list[dict], columns: list[str], out_dir: str, stem: str, sort_by,
           intervals: Sequence[str] = ()) -> list[str]:
    csv_path = os.path.join(out_dir, f"{stem}.csv")
    fields = columns + [f"{c}_ci" for c in intervals]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(rows, key=lambda r: tuple(str(r.get(a)) for a in sort_by)):
        lines.append("| " + " | ".join(
            _cell(row.get(c), row.get(f"{c}_ci") if c in intervals else None)
            for c in columns) + " |")
    md_path = os.path.join(out_dir, f"{stem}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return [csv_path, md_path]


def write_tables(rows: list[dict], out_dir: str, axes: Sequence[str]) -> list[str]:
    """results.csv/.md, one row per run (the papers' layout: Head ... Ankle, Mean, Mean@0.1);
    with a seed axis also summary.csv/.md: the mean over seeds, the 95 % t-interval of Mean
    and Mean@0.1 (mean ± half-width) and n. Returns the paths, the summary's last."""
    os.makedirs(out_dir, exist_ok=True)
    paths = _write(rows, list(axes) + list(VALUE_COLUMNS), out_dir, "results", axes)
    if SEED_AXIS in axes:
        point = [a for a in axes if a != SEED_AXIS]
        paths += _write(summarize(rows), point + list(VALUE_COLUMNS) + ["n"], out_dir,
                        "summary", point, intervals=("Mean", "Mean@0.1"))
    return paths


def series_axes(axes: Sequence[str]) -> list[str]:
    """The axes that name a plot's lines: all but epsilon, the seed and the per-plot ones."""
    return [a for a in axes if a not in ("target_epsilon", SEED_AXIS, "strategy",
                                         "l2_norm_clip")] or ["method"]


def plot_pckh_vs_epsilon(rows: list[dict], out_dir: str,
                         series: Sequence[str] = ("method",)) -> list[str]:
    """PNG per (strategy, clip norm): PCKh@0.5 Mean against epsilon, one line per value of the
    ``series`` axes (e.g. method, or privacy_unit); with ``Mean_ci`` in the rows
    (``summarize``), 95 % interval bars (and a band for non-private)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

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
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        def line(r):
            return ", ".join(str(r.get(a, "-")) for a in series)
        lines = sorted({line(r) for r in private})
        for k, name in enumerate(lines):
            pts = sorted((float(r["target_epsilon"]), r["Mean"], r.get("Mean_ci") or 0.0)
                         for r in private if line(r) == name)
            # Side by side in log-x so the interval bars do not hide each other.
            shift = 1.0 + 0.05 * (k - (len(lines) - 1) / 2)
            ax.errorbar([p[0] * shift for p in pts], [p[1] for p in pts],
                        yerr=[p[2] if p[2] == p[2] else 0.0 for p in pts], marker="o",
                        capsize=3, label=name)
        for r in baseline:
            if r.get("strategy", "-") == strategy:
                ax.axhline(r["Mean"], color="gray", linestyle="--", label="non-private")
                ci = r.get("Mean_ci")
                if ci and ci == ci:
                    ax.axhspan(r["Mean"] - ci, r["Mean"] + ci, color="gray", alpha=0.15)
        ax.set_xscale("log")
        # Ticks at the budgets run, not log-scale minor labels that overlap.
        budgets = sorted({float(r["target_epsilon"]) for r in private})
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("epsilon")
        ax.set_ylabel("PCKh@0.5 Mean")
        n = max(r.get("n", 1) for r in private)
        where = ", ".join(s for s, v in ((f"strategy {strategy}", strategy), (f"C = {clip}", clip))
                          if v != "-")      # axes of the grid, else the base flagfile's
        seeds = f"mean of {n} seeds, 95 % interval" if n > 1 else ""
        ax.set_title(", ".join(t for t in (where, seeds) if t) or "PCKh@0.5 against epsilon")
        ax.grid(True, alpha=0.3)
        ax.legend()
        stem = "pckh_vs_epsilon" + ("" if (strategy, clip) == ("-", "-") else
                                    f"_{strategy}_C{clip}")
        path = os.path.join(out_dir, stem + ".png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def overlay_figure(runs: Sequence[Run], dataset: str, data_dir: str, out_path: str,
                   num_images: int = 4) -> str:
    """The same validation people with each finished run's predicted skeletons, one row per run
    (with a seed axis, the first seed's runs only)."""
    from tfdphpe.training.compare import overlay_figure as draw

    first_seed = min((r.flags[SEED_AXIS] for r in runs if SEED_AXIS in r.flags), default=None)
    shown = [(r.name.replace("_", "\n"), r.run_dir) for r in runs
             if r.done and r.flags.get(SEED_AXIS) == first_seed]
    if not shown:
        raise ValueError("no finished runs to draw")
    return draw(shown, dataset, data_dir, out_path, num_images)
