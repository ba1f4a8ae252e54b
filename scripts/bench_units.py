r"""Cost of unit-level DP: a unit-level step against an example-level step on as many examples.

    python scripts/bench_units.py --examples=64 --examples_per_unit=4 --input_size=128,96
    python scripts/bench_units.py --examples=16,64 --examples_per_unit=4 --clipping=ghost,vectorized

The TinyViT-5M pose model (finetune strategy, BatchNorm frozen), dpsgd, zero noise. For B examples
per step: "example" is B records of one example each; "unit" is B / k records of k examples each
(the same B examples, each unit's record their mean gradient, clipped as one). Both run
dp_gradients + apply_gradients in one tf.function; rounds interleave; the ratio unit / example
is measured in one run. Peak live tensors (--memory): each entry in a fresh subprocess with the
BFC allocator, two steps.
"""

import json
import os
import subprocess
import sys
import time

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tfdphpe import privacy  # noqa: E402
from tfdphpe.models import (apply_strategy, build_pose_model, freeze_batchnorm,  # noqa: E402
                            simcc_kl_loss)

flags.DEFINE_list("examples", ["64"], "Examples per step (one comparison each).")
flags.DEFINE_integer("examples_per_unit", 4, "k: examples per unit in the unit-level step.")
flags.DEFINE_list("clipping", ["ghost"], "Clipping paths to compare.")
flags.DEFINE_list("input_size", ["128", "96"], "Input height,width.")
flags.DEFINE_integer("rounds", 5, "Timed rounds after one traced step.")
flags.DEFINE_bool("memory", True, "Also measure peak live tensors per entry (subprocesses).")
flags.DEFINE_string("worker", None, "Internal: 'level:clipping:examples' for memory.")
F = flags.FLAGS


def _step(level: str, clipping: str, b: int):
    h, w = (int(v) for v in F.input_size)
    tf.keras.utils.set_random_seed(0)
    model = build_pose_model("5m", input_size=(h, w), num_joints=16)
    freeze_batchnorm(model)
    apply_strategy(model, "finetune")
    rng = np.random.default_rng(0)
    soft = lambda bins: tf.nn.softmax(tf.constant(rng.normal(size=(b, 16, bins)), tf.float32))  # noqa: E731
    batch = {"image": tf.constant(rng.normal(size=(b, h, w, 3)), tf.float32),
             "target_x": soft(2 * w), "target_y": soft(2 * h), "target_weight": tf.ones([b, 16])}
    k = F.examples_per_unit if level == "unit" else None
    records = b // (k or 1)
    opt = privacy.make_optimizer("dpsgd", 1.0, 0.0, 1e-4, optimizer="adam",
                                 expected_batch_size=records, clipping=clipping)
    var_list = model.trainable_variables
    layers = model if clipping == "ghost" else None

    @tf.function
    def step(batch):
        loss_fn = lambda x: simcc_kl_loss(model(x["image"], training=True), x)  # noqa: E731
        grads = opt.dp_gradients(loss_fn, batch, var_list, layers=layers,
                                 examples_per_unit=k)
        opt.apply_gradients(zip(grads, var_list))

    return lambda: step(batch)


def _peak(spec: str) -> float:
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
    args = [a for a in sys.argv[1:] if not a.startswith("--worker")]
    out = subprocess.run([sys.executable, __file__, f"--worker={spec}"] + args,
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main(argv):
    del argv
    if F.worker:
        level, clipping, b = F.worker.split(":")
        step = _step(level, clipping, int(b))
        tf.config.experimental.reset_memory_stats("CPU:0")
        step()
        step()
        print(json.dumps({"peak_mb": tf.config.experimental.get_memory_info("CPU:0")["peak"]
                          / 2**20}))
        return
    print("| examples/step | clipping | example s/step | unit s/step | time unit/example | "
          "tensors unit/example |\n|---|---|---|---|---|---|")
    for b in (int(v) for v in F.examples):
        for clipping in F.clipping:
            entries = {level: _step(level, clipping, b) for level in ("example", "unit")}
            for fn in entries.values():
                fn()
            times = {level: [] for level in entries}
            for _ in range(F.rounds):
                for level, fn in entries.items():
                    start = time.perf_counter()
                    fn()
                    times[level].append(time.perf_counter() - start)
            t = {level: float(np.median(v)) for level, v in times.items()}
            mem = float("nan")
            if F.memory:
                mem = _peak(f"unit:{clipping}:{b}") / _peak(f"example:{clipping}:{b}")
            print(f"| {b} (k={F.examples_per_unit}) | {clipping} | {t['example']:.3f} | "
                  f"{t['unit']:.3f} | {t['unit'] / t['example']:.2f} | {mem:.2f} |", flush=True)


if __name__ == "__main__":
    _app.run(main)
