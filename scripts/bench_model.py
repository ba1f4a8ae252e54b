r"""Forward and forward+backward throughput of the pose model on this machine.

    python scripts/bench_model.py --variant=5m --batch_size=8 --steps=5

Prints images/s with and without XLA (jit_compile) and the XLA/plain ratio, measured in one run.
BatchNorm is frozen as in DP training; every variable trains (the `full` strategy).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

import time

import tfdphpe  # noqa: F401  (first: tfdphpe.compat must run before TensorFlow)
import tensorflow as tf
from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.codecs import SimCCCodec
from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss

flags.DEFINE_string("variant", "5m", "TinyViT variant.")
flags.DEFINE_integer("batch_size", 8, "Images per step.")
flags.DEFINE_integer("steps", 5, "Timed steps (after one warm-up step).")
flags.DEFINE_list("input_size", ["256", "192"], "Input height,width.")
FLAGS = flags.FLAGS


def _time(fn, steps):
    fn()  # trace / compile
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main(argv):
    del argv
    h, w = (int(v) for v in FLAGS.input_size)
    model = build_pose_model(FLAGS.variant, input_size=(h, w))
    freeze_batchnorm(model)
    apply_strategy(model, "full")
    codec = SimCCCodec((h, w))
    b = FLAGS.batch_size
    images = tf.random.normal([b, h, w, 3])
    targets = codec.encode(tf.random.uniform([b, 16, 2], 0, min(h, w) - 1), tf.ones([b, 16]))
    variables = model.trainable_variables
    rows = []
    for jit in (False, True):
        forward = tf.function(lambda: model(images, training=False), jit_compile=jit)

        def train_step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(simcc_kl_loss(model(images, training=True), targets))
            return tape.gradient(loss, variables)

        backward = tf.function(train_step, jit_compile=jit)
        t_fwd, t_bwd = _time(forward, FLAGS.steps), _time(backward, FLAGS.steps)
        rows.append((jit, b / t_fwd, b / t_bwd))
    print(f"TinyViT-{FLAGS.variant} + SimCC, {h}x{w}, batch {b}, {FLAGS.steps} steps, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
    print(f"{'XLA':>5} | {'forward img/s':>14} | {'fwd+bwd img/s':>14}")
    for jit, f, fb in rows:
        print(f"{str(jit):>5} | {f:14.2f} | {fb:14.2f}")
    print(f"XLA / plain throughput: forward {rows[1][1] / rows[0][1]:.2f}x, "
          f"fwd+bwd {rows[1][2] / rows[0][2]:.2f}x")


if __name__ == "__main__":
    _app.run(main)
