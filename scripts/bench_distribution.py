r"""Time per example of a DP training step on R logical CPU replicas against one device.

    python scripts/bench_distribution.py                       # 5m, 256x192, batch 16, R=1,2
    python scripts/bench_distribution.py --batch_size=32 --clipping=vectorized --rounds=3

The step is the trainer's (tfdphpe.training.trainer): ``strategy.run`` of dp_gradients +
apply_gradients, each replica clipping its share of the global batch (B/R examples), the clipped
sums all-reduced and noised once. Logical CPU devices must be configured before TensorFlow starts,
so every replica count runs in its own subprocess; rounds alternate the subprocesses (R=1, R=2,
R=1, ...) so that drift on a shared machine hits both alike, and each subprocess reports the
median of its timed steps after two warm-up (tracing) steps. Printed: seconds per step and per
example, and the ratio of each R to R=1 (below 1: faster per example).
"""

import json
import subprocess
import sys
import time

import numpy as np
from absl import flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

flags.DEFINE_string("variant", "5m", "TinyViT variant.")
flags.DEFINE_list("input_size", ["256", "192"], "Input height,width.")
flags.DEFINE_integer("batch_size", 16, "Global batch (split evenly over the replicas).")
flags.DEFINE_list("replicas", ["1", "2"], "Replica counts to compare (the first is the base).")
flags.DEFINE_enum("method", "dpsgd", ["dpsgd", "pdpsgd"], "Privacy method of the step.")
flags.DEFINE_enum("clipping", "ghost", ["ghost", "vectorized"], "Per-example clipping path.")
flags.DEFINE_string("strategy", "finetune", "Training strategy (models.apply_strategy).")
flags.DEFINE_integer("steps", 3, "Timed steps per subprocess.")
flags.DEFINE_integer("rounds", 2, "Subprocesses per replica count (alternating).")
flags.DEFINE_integer("worker", 0, "Internal: run one timing subprocess with this many replicas.")
FLAGS = flags.FLAGS


def _worker(replicas: int) -> dict:
    from tfdphpe.training.distribution import make_distribution
    dist = make_distribution("mirrored" if replicas > 1 else "none", replicas)
    import tensorflow as tf
    from tfdphpe import privacy
    from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss

    tf.get_logger().setLevel("ERROR")
    h, w = (int(v) for v in FLAGS.input_size)
    b, k = FLAGS.batch_size, 16
    if b % replicas:
        raise ValueError(f"--batch_size={b} is not divisible by {replicas} replicas")
    with dist.strategy.scope():
        model = build_pose_model(FLAGS.variant, input_size=(h, w), num_joints=k)
        freeze_batchnorm(model)
        apply_strategy(model, FLAGS.strategy)
        opt = privacy.make_optimizer(FLAGS.method, 1.0, 1.0, 1e-4, optimizer="adam",
                                     expected_batch_size=b, projection_dim=8, seed=0,
                                     clipping=FLAGS.clipping)
        var_list = model.trainable_variables
        opt.create_variables(var_list)   # slots and counters mirrored, as the trainer does
    layers = model if FLAGS.clipping == "ghost" else None
    rng = np.random.default_rng(0)

    def soft(n, bins):
        return tf.nn.softmax(tf.constant(rng.normal(size=(n, k, bins)), tf.float32))

    def batch(n):
        return {"image": tf.constant(rng.normal(size=(n, h, w, 3)), tf.float32),
                "target_x": soft(n, 2 * w), "target_y": soft(n, 2 * h),
                "target_weight": tf.ones([n, k])}

    def loss_fn(x):
        return simcc_kl_loss(model(x["image"], training=True), x)

    if opt.method.projected:
        opt.refresh_subspace(loss_fn, batch(8), var_list, layers=layers)
    shards = dist.per_replica({r: batch(b // replicas) for r in range(replicas)})
    @tf.function
    def replica_fn(x):
        opt.apply_gradients(zip(opt.dp_gradients(loss_fn, x, var_list, layers=layers), var_list))

    @tf.function
    def step(x):
        dist.strategy.run(replica_fn, args=(x,))

    times = []
    for i in range(2 + FLAGS.steps):
        start = time.perf_counter()
        step(shards)
        float(tf.reduce_sum(var_list[0]))      # the update has landed
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"replicas": dist.num_replicas, "s_per_step": float(np.median(times))}


def main(argv):
    del argv
    if FLAGS.worker:
        print(json.dumps(_worker(FLAGS.worker)))
        return
    counts = [int(r) for r in FLAGS.replicas]
    args = [a for a in sys.argv[1:] if not a.startswith("--worker")]
    print(f"TinyViT-{FLAGS.variant} {FLAGS.input_size[0]}x{FLAGS.input_size[1]}, "
          f"{FLAGS.strategy}, {FLAGS.method}/{FLAGS.clipping}, global batch {FLAGS.batch_size}, "
          f"{FLAGS.rounds} rounds x {FLAGS.steps} steps per replica count", flush=True)
    results = {r: [] for r in counts}
    for round_index in range(FLAGS.rounds):
        for r in counts:
            out = subprocess.run([sys.executable, __file__, f"--worker={r}"] + args,
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"replicas={r}: worker failed (exit {out.returncode}):\n"
                         + "\n".join(out.stderr.strip().splitlines()[-5:]))
            got = json.loads(out.stdout.strip().splitlines()[-1])
            if got["replicas"] != r:
                sys.exit(f"asked for {r} replicas, the worker ran {got['replicas']}")
            results[r].append(got["s_per_step"])
            print(f"  round {round_index + 1}, {r} replica(s): {got['s_per_step']:.3f} s/step",
                  flush=True)
    base = float(np.median(results[counts[0]]))
    print("\n| replicas | s/step | ms/example | per-example time vs 1 replica |")
    print("|---|---|---|---|")
    for r in counts:
        t = float(np.median(results[r]))
        print(f"| {r} | {t:.3f} | {1000 * t / FLAGS.batch_size:.1f} | {t / base:.2f} |")


if __name__ == "__main__":
    _app.run(main)
