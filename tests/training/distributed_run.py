"""Run as a script by test_distributed_training.py: the trainer on 2 logical CPUs vs 1 device.

argv: data JSON {"private": dir, "public": dir} and an output folder. Trains dpsgd with zero noise
and plain SGD (so rounding is not amplified) for 4 steps three ways: mirrored on 2 logical CPU
replicas; mirrored for 2 steps, then resumed to 4; on one device. (Both clipping paths in replica
context are checked step by step in tests/privacy/distributed_check.py.) Prints one JSON line with the
largest weight differences and what the runs wrote.
"""

import dataclasses
import json
import os
import sys

import numpy as np


def main(data_json, out):
    from tests.helpers import TINY_INPUT, TRAIN_TINY
    from tfdphpe.training import (DataConfig, ModelConfig, OptimConfig, PrivacyConfig, RunConfig,
                                  TrainConfig, Trainer)
    dirs = json.loads(open(data_json).read())

    def config(name, distribution, max_steps, resume=False):
        return TrainConfig(
            data=DataConfig("synthetic", dirs["private"], "synthetic", dirs["public"], TINY_INPUT),
            model=ModelConfig(variant=TRAIN_TINY, strategy="scratch"),
            # Seeded coins: the three runs must draw the same batches to be compared.
            privacy=PrivacyConfig("dpsgd", l2_norm_clip=0.5, target_epsilon=None,
                                  noise_multiplier=0.0, delta=1e-3, clipping="ghost",
                                  reproducible_sampling=True),
            optim=OptimConfig("sgd", learning_rate=0.5, lr_schedule="constant", momentum=0.0),
            run=RunConfig(os.path.join(out, name), epochs=0, max_steps=max_steps, batch_size=8,
                          checkpoint_every=2, eval_every=1000, flip_test=False, resume=resume,
                          log_every=1, distribution=distribution,
                          cpu_replicas=2 if distribution == "mirrored" else 0))

    logs = {}

    def run(cfg):
        lines = []
        trainer = Trainer(cfg, log=lines.append)
        metrics = trainer.train()
        logs[os.path.basename(cfg.run.run_dir)] = lines
        return trainer, metrics

    trainer, mirrored = run(config("mirrored", "mirrored", 4))
    replicas = trainer.dist.num_replicas
    run(config("resumed", "mirrored", 2))
    import tensorflow as tf
    two_steps = tf.keras.models.load_model(os.path.join(out, "resumed", "model.keras"),
                                           compile=False).get_weights()
    _, resumed = run(config("resumed", "mirrored", 4, resume=True))
    _, single = run(config("single", "none", 4))

    weights = {name: tf.keras.models.load_model(os.path.join(out, name, "model.keras"),
                                                compile=False).get_weights()
               for name in ("mirrored", "resumed", "single")}

    def rel(a, b):
        num = np.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b)))
        den = np.sqrt(sum(float(np.sum(y ** 2)) for y in b))
        return num / den

    report = json.loads(open(os.path.join(out, "mirrored", "privacy.json")).read())
    print(json.dumps({
        "replicas": replicas,
        "mirrored_vs_single": rel(weights["mirrored"], weights["single"]),
        "resumed_vs_mirrored": rel(weights["resumed"], weights["mirrored"]),
        "moved_in_steps_3_4": rel(two_steps, weights["mirrored"]),
        "steps": [mirrored["steps"], resumed["steps"], single["steps"]],
        "report_replicas": report["replicas"], "report_steps": report["steps_taken"],
        "report_batch_size": report["batch_size"], "report_num_examples": report["num_examples"],
        "resumed_log": [l for l in logs["resumed"] if l.startswith("resumed at step")],
        "distribution_log": [l for l in logs["mirrored"] if l.startswith("distribution")],
        "sampling_log": [l for l in logs["mirrored"] if l.startswith("sampling")],
    }))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
