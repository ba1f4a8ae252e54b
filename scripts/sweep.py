r"""Runs an experiment grid, or prints its commands for a cluster, and collects the results.

    python scripts/sweep.py --grid=configs/synthetic_benchmark/grid.json --sweep_dir=runs/bench
    python scripts/sweep.py --grid=... --sweep_dir=... --print_commands   # one line per run
    python scripts/sweep.py --grid=... --sweep_dir=... --collect_only      # tables + plots

Resumes: finished runs (metrics.json present) are kept and not repeated; unfinished ones continue
with --resume. A progress line after each run says how many are left and about how long.
Writes <sweep_dir>/results.{csv,md} (one row per run), with a seed axis summary.{csv,md} (mean
and 95 % interval over seeds), pckh_vs_epsilon_*.png and overlays.png.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

import shlex

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from tfdphpe.training import sweep

F = flags.FLAGS
flags.DEFINE_string("grid", None, "Grid JSON (see tfdphpe/training/sweep.py).", required=True)
flags.DEFINE_string("sweep_dir", None, "Where the runs and results go.", required=True)
flags.DEFINE_bool("print_commands", False, "Print one train.py command per unfinished run.")
flags.DEFINE_bool("collect_only", False, "Only collect results of finished runs.")
flags.DEFINE_integer("overlay_images", 4, "Validation images in the overlay figure (0 = none).")


def main(argv):
    del argv
    grid = sweep.load_grid(F.grid)
    runs = sweep.expand(grid, F.sweep_dir)
    flagfile = grid.get("flagfile")
    if F.print_commands:
        for run in runs:
            if not run.done:
                print(shlex.join(run.command(flagfile)))
        return
    failed = [] if F.collect_only else sweep.run_all(runs, flagfile)
    rows = sweep.collect(runs)
    seeds = sweep.SEED_AXIS in grid["axes"]
    paths = sweep.write_tables(rows, F.sweep_dir, list(grid["axes"]))
    plots = sweep.plot_pckh_vs_epsilon(sweep.summarize(rows) if seeds else rows, F.sweep_dir,
                                       sweep.series_axes(list(grid["axes"])))
    print(open(paths[-1]).read())
    print(f"wrote {', '.join(paths)}, {len(plots)} plot(s)")
    if F.overlay_images and rows:
        fixed = grid.get("fixed", {})
        path = sweep.overlay_figure(runs, fixed.get("dataset", "synthetic"),
                                    fixed.get("data_dir", "data/synthetic/private"),
                                    f"{F.sweep_dir}/overlays.png", F.overlay_images)
        print(f"wrote {path}")
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {[r.name for r in failed]}")


if __name__ == "__main__":
    _app.run(main)
