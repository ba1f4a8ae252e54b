"""Run by test_distributed.py as one of two workers (TF_CONFIG in the environment).

MultiWorkerMirroredStrategy over 127.0.0.1, one CPU replica per worker: the same checks as
distributed_check.py (against a one-device update computed in this process), then 3 noisy SGD
steps with a secret (unseeded) noise key, then (given a data JSON argument) 3 steps of the
trainer with --distribution=multi_worker. Prints one JSON line: the checks, digests of the
weights, the key the optimizer used and whether this worker's own random key differed from it.
"""

import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_check as dc  # noqa: E402


def noisy_training(strategy):
    batch, mask, _, _, _ = dc.inputs()
    with strategy.scope():
        model = dc.build()
        opt = dc.make_opt("dpsgd", "ghost", dc.SIGMA, seed=None, learning_rate=0.5)
        opt.create_variables(model.trainable_variables)
    start = dc.flat(model.get_weights())
    own_key = opt._noise_key                # what this process drew from the OS
    used_key = [int(k) for k in opt.noise_key.numpy()]
    replica = strategy.cluster_resolver.task_id
    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: dc.shard((batch, mask), ctx.replica_id_in_sync_group,
                             strategy.num_replicas_in_sync))
    grads = dc.gradient_fn(opt, model)

    def step(values):
        g = grads(values[0], values[1], None, None)
        opt.apply_gradients(zip(g, model.trainable_variables))

    train = tf.function(lambda values: strategy.run(step, args=(values,)))
    for _ in range(3):
        train(local)
    weights = dc.flat(model.get_weights())
    return {"weights": hashlib.sha256(weights.tobytes()).hexdigest(),
            "noise_key": used_key, "own_keys_differ": list(own_key) != used_key,
            "moved": float(np.abs(weights - start).max()), "task": replica}


def trainer_run(data_json):
    """A Trainer with --distribution=multi_worker (created first: it creates the strategy)."""
    from tests.helpers import TINY_INPUT, TRAIN_TINY
    from tfdphpe.training import (DataConfig, ModelConfig, OptimConfig, PrivacyConfig, RunConfig,
                                  TrainConfig, Trainer)
    dirs = json.loads(open(data_json).read())
    config = TrainConfig(
        data=DataConfig("synthetic", dirs["private"], "synthetic", dirs["public"], TINY_INPUT),
        model=ModelConfig(variant=TRAIN_TINY, strategy="scratch"),
        privacy=PrivacyConfig("dpsgd", l2_norm_clip=0.5, target_epsilon=None,
                              noise_multiplier=1.0, delta=1e-3, clipping="ghost"),
        optim=OptimConfig("adam", learning_rate=1e-3),
        run=RunConfig(dirs["run_dir"], epochs=0, max_steps=3, batch_size=8, checkpoint_every=2,
                      eval_every=1000, flip_test=False, log_every=1,
                      distribution="multi_worker"))
    return Trainer(config, log=lambda line: None)


def main(data_json=None):
    trainer = trainer_run(data_json) if data_json else None
    strategy = (trainer.dist.strategy if trainer is not None
                else tf.distribute.MultiWorkerMirroredStrategy())
    checks = {f"{m}/{c}": dc.figures(strategy, m, c)
              for m, c in (("dpsgd", "ghost"), ("fpdp", "vectorized"))}
    out = {"replicas": strategy.num_replicas_in_sync, "checks": checks}
    out.update(noisy_training(strategy))
    if trainer is not None:
        metrics = trainer.train()
        weights = dc.flat(trainer.model.get_weights())
        out["trainer"] = {"steps": metrics["steps"], "chief": trainer.dist.is_chief,
                          "weights": hashlib.sha256(weights.tobytes()).hexdigest()}
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
