"""Run as a script (by test_distributed.py): MirroredStrategy on 2 logical CPUs equals one device.

Prints one JSON line {method: max abs difference of the updated weights}.
"""

import json
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import tfdphpe.privacy as privacy  # noqa: E402  (after the device configuration)

B = 8


def build():
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(5, activation="tanh"),
                                tf.keras.layers.Dense(2)])


def losses(model):
    def loss_fn(b):
        return tf.reduce_sum(tf.square(model(b["x"]) - b["y"]), axis=1)

    def public_loss_fn(b):
        return tf.reduce_sum(tf.square(model(0.5 * b["x"]) - b["y"]), axis=1)
    return loss_fn, public_loss_fn


def make_opt(method):
    # SGD with learning rate 1: new weights = old weights - gradient.
    return privacy.make_optimizer(method, 0.5, 1.0, 1.0, expected_batch_size=B, projection_dim=3,
                                  seed=7)


def step_fn(opt, model, method, public):
    loss_fn, public_loss_fn = losses(model)

    def step(batch, mask, public_batch):
        feature = opt.method.feature_dp
        grads = opt.dp_gradients(loss_fn, batch, model.trainable_variables,
                                 public_loss_fn=public_loss_fn if feature else None,
                                 batch_mask=mask, public_batch=public_batch if feature else None)
        opt.apply_gradients(zip(grads, model.trainable_variables))
    return step


def main():
    rng = np.random.default_rng(0)
    def data(n):
        return {"x": rng.normal(size=(n, 6)).astype(np.float32),
                "y": rng.normal(size=(n, 2)).astype(np.float32)}
    batch = data(B)
    mask = np.array([1, 1, 0, 1, 1, 1, 1, 0], np.float32)
    public = data(6)
    # Public views sampled apart from the private batch (Feature DP's public term).
    views = data(B)
    result = {}
    # One strategy for the whole check: collective instance keys are per strategy object.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for method in ("dpsgd", "fpdp"):
        model, opt = build(), make_opt(method)
        if opt.method.projected:
            opt.refresh_subspace(losses(model)[0], public, model.trainable_variables)
        tf.function(step_fn(opt, model, method, public))(batch, mask, views)
        want = [v.numpy() for v in model.trainable_variables]

        with strategy.scope():
            model, opt = build(), make_opt(method)
            # Optimizer variables (step counter, slots) are created before the distributed step.
            opt.create_variables(model.trainable_variables)
        if opt.method.projected:
            opt.refresh_subspace(losses(model)[0], public, model.trainable_variables)
        half = B // 2
        def shard(ctx):
            start = ctx.replica_id_in_sync_group * half
            rows = slice(start, start + half)
            return ({k: v[rows] for k, v in batch.items()}, mask[rows],
                    {k: v[rows] for k, v in views.items()})
        local = strategy.experimental_distribute_values_from_function(shard)
        step = step_fn(opt, model, method, public)
        tf.function(lambda values: strategy.run(step, args=values))(local)
        got = [v.numpy() for v in model.trainable_variables]
        start = [v.numpy() for v in build().trainable_variables]
        result[method] = {"diff": max(float(np.abs(w - g).max()) for w, g in zip(want, got)),
                          "moved": max(float(np.abs(w - s).max()) for w, s in zip(want, start))}
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
