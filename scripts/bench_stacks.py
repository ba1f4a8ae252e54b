r"""scripts/bench_privacy.py under two virtual environments (two stacks), figures side by side.

    python scripts/bench_stacks.py --old=.venv311 --new=.venv312

Runs bench_privacy.py once per venv, one after the other (never at the same time: they would
share the CPU), with the same flags (default: finetune, batch 16, none and dpsgd on both clipping
paths, timing only), and prints each entry's s/step and ratio to the non-private step on each
stack, and the ratio of the ratios (new / old: 1.00 = the DP overhead did not change). On a shared
machine read the ratios; absolute step times move with the load.
"""

import os
import re
import subprocess
import sys
import time

from absl import flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

flags.DEFINE_string("old", ".venv311", "Virtual environment of the old stack.")
flags.DEFINE_string("new", ".venv312", "Virtual environment of the new stack.")
flags.DEFINE_list("bench_flags", ["--batch_sizes=16", "--steps=2", "--memory=false",
                                  "--strategies=finetune", "--methods=none,dpsgd"],
                  "Flags passed to bench_privacy.py.")
FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
# bench_privacy.py's per-entry line: "<entry> <s/step> <ratio> ..." after "[strategy, batch b]".
_HEADER = re.compile(r"^\[(\w+), batch (\d+)\]")
_ROW = re.compile(r"^(\S+)\s+([0-9.]+)\s+([0-9.]+)\s")


def run_stack(venv: str) -> tuple[str, dict, float]:
    """(version line, {(strategy, batch, entry): (s/step, ratio)}, wall seconds) of one venv."""
    python = os.path.join(venv, "bin", "python")
    version = subprocess.run(
        [python, "-c", "import sys, tfdphpe, tensorflow as tf; "
         "print(f'Python {sys.version.split()[0]}, TF {tf.__version__}')"],
        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    start = time.perf_counter()
    out = subprocess.run([python, os.path.join(HERE, "bench_privacy.py"), *FLAGS.bench_flags],
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"bench_privacy.py failed in {venv}:\n{out.stdout}\n{out.stderr[-3000:]}")
    rows, where = {}, None
    for line in out.stdout.splitlines():
        if (header := _HEADER.match(line)):
            where = (header.group(1), int(header.group(2)))
        elif where and (row := _ROW.match(line)):
            rows[where + (row.group(1),)] = (float(row.group(2)), float(row.group(3)))
    return version, rows, wall


def main(argv):
    del argv
    results = {venv: run_stack(venv) for venv in (FLAGS.old, FLAGS.new)}
    (old_v, old, old_wall), (new_v, new, new_wall) = results[FLAGS.old], results[FLAGS.new]
    print(f"old: {FLAGS.old} ({old_v}), {old_wall:.0f} s; new: {FLAGS.new} ({new_v}), "
          f"{new_wall:.0f} s; bench_privacy.py {' '.join(FLAGS.bench_flags)}\n")
    print("| strategy | batch | entry | old s/step | old ratio | new s/step | new ratio | "
          "new/old ratio |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for key in old:
        if key not in new:
            continue
        (ot, o_ratio), (nt, n_ratio) = old[key], new[key]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {ot:.2f} | {o_ratio:.2f} | {nt:.2f} | "
              f"{n_ratio:.2f} | {n_ratio / o_ratio:.3f} |")


if __name__ == "__main__":
    _app.run(main)
