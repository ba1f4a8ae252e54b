"""Measures the training input pipeline (decode + augment + targets) on synthetic 256x192 crops,
and, for comparison, a plain training step of the TinyViT-5M pose model on the same batches.

    python scripts/bench_data.py --num_images=256 --batch_size=32 --steps=20

Prints examples/s of each and which of the two limits training (measured in one run).
"""

import os
import tempfile
import time

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "An existing synthetic data set (else one is rendered).")
flags.DEFINE_integer("num_images", 256, "Images to render when --data_dir is not given.")
flags.DEFINE_integer("batch_size", 32, "Expected batch size B.")
flags.DEFINE_integer("steps", 20, "Timed steps (after --warmup).")
flags.DEFINE_integer("warmup", 3, "Untimed steps.")
flags.DEFINE_enum("sampling", "poisson", ["poisson", "shuffle"], "Batching of the pipeline.")
flags.DEFINE_string("variant", "5m", "TinyViT variant of the model step.")
flags.DEFINE_bool("model", True, "Also time the model's training step.")


def bench_pipeline(records):
    from tfdphpe.data import AugmentConfig, BatchConfig, PipelineConfig, build_dataset
    cfg = PipelineConfig(input_size=(256, 192), augment=AugmentConfig.for_dataset("mpii"))
    batching = BatchConfig(FLAGS.sampling, batch_size=FLAGS.batch_size, num_epochs=None,
                           num_steps=FLAGS.warmup + FLAGS.steps, seed=0)
    built = build_dataset(records, cfg, batching)
    it = iter(built.dataset)
    for _ in range(FLAGS.warmup):
        batch = next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(FLAGS.steps):
        batch = next(it)
        n += int(batch["mask"].numpy().sum())
    return n / (time.perf_counter() - t0), batch, built.sampling


def bench_model(batch):
    import tensorflow as tf
    from tfdphpe import models
    if not hasattr(models, "build_pose_model"):
        return None
    model = models.build_pose_model(FLAGS.variant, input_size=(256, 192), num_joints=16)
    opt = tf.keras.optimizers.SGD(1e-3)
    keep = batch["mask"] > 0
    batch = {k: tf.boolean_mask(batch[k], keep) for k in ("image", "target_x", "target_y",
                                                          "target_weight")}

    @tf.function
    def step(b):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(models.simcc_kl_loss(model(b["image"], training=True), b))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(2):
        step(batch).numpy()
    steps = max(3, FLAGS.steps // 4)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(batch).numpy()
    return int(batch["image"].shape[0]) * steps / (time.perf_counter() - t0)


def main(argv):
    del argv
    from tfdphpe.data import read_mpii_json
    from tfdphpe.data.synthetic import write_synthetic_dataset
    data_dir = FLAGS.data_dir
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="bench_data_")
        info = write_synthetic_dataset(data_dir, FLAGS.num_images, 0, seed=0)
        print(f"synthetic: {FLAGS.num_images} images in {info['render_seconds']:.1f} s "
              f"({FLAGS.num_images / info['render_seconds']:.0f} images/s, 2 workers)")
    records = read_mpii_json(os.path.join(data_dir, "mpii", "train.json"),
                             os.path.join(data_dir, "images"))
    ex_per_s, batch, sampling = bench_pipeline(records)
    print(f"pipeline ({sampling.method}, B={FLAGS.batch_size}, 256x192, decode + augment + "
          f"targets): {ex_per_s:.1f} examples/s")
    if not FLAGS.model:
        return
    model_per_s = bench_model(batch)
    if model_per_s is None:
        print("model: tfdphpe.models.build_pose_model not available; skipped")
        return
    ratio = ex_per_s / model_per_s
    slower = "the model step" if ratio > 1 else "the input pipeline"
    print(f"model step (TinyViT-{FLAGS.variant}, plain SGD, training mode): "
          f"{model_per_s:.1f} examples/s")
    print(f"pipeline / model throughput = {ratio:.2f}: {slower} is the bottleneck")


if __name__ == "__main__":
    _app.run(main)
