"""Run as a script (by test_distributed.py): a DP step on 2 replicas against one device.

MirroredStrategy on 2 logical CPUs. For every method (dpsgd, pdpsgd, fdp, fpdp) and both clipping
paths (vectorized, ghost):

* ``diff_zero_noise``: zero noise, the 2-replica update (each replica clips its half of the
  batch, sums all-reduced) against the 1-device update of the whole batch;
* ``diff_seeded``: the same with seeded noise (sigma 1): the noise is added once, with the same
  value, on both replicas;
* ``noise_std_ratio``: a batch that is all padding gives the noise alone; the std of the global
  update over 40 draws (200 for the projected methods), divided by sigma * C / B (1 if the global sum is noised once; sqrt(2) if
  each replica noised its own sum);
* ``replicas_agree``: both replicas return the same global update.

Prints one JSON line {method/clipping: figures}. The pieces are shared with multi_worker_check.py.
"""

import json
import sys

import numpy as np
import tensorflow as tf

B = 8            # global batch; each of 2 replicas gets B/2 rows
CLIP, SIGMA = 0.5, 1.0
METHODS = ("dpsgd", "pdpsgd", "fdp", "fpdp")
CLIPPINGS = ("vectorized", "ghost")


def build():
    """Conv + Dense (both have ghost rules), seeded: the same weights in every process."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4, 4, 2))
    x = tf.keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = tf.keras.layers.Flatten()(tf.nn.tanh(x))
    x = tf.keras.layers.Dense(5, name="hidden")(x)
    outputs = tf.keras.layers.Dense(2, name="head")(tf.nn.tanh(x))
    return tf.keras.Model(inputs, outputs)


def losses(model):
    def loss_fn(b):
        return tf.reduce_sum(tf.square(model(b["x"]) - b["y"]), axis=1)

    def public_loss_fn(b):
        return tf.reduce_sum(tf.square(model(0.5 * b["x"]) - b["y"]), axis=1)
    return loss_fn, public_loss_fn


def data(n, seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 4, 4, 2)).astype(np.float32) * 2,
            "y": rng.normal(size=(n, 2)).astype(np.float32)}


def make_opt(method, clipping, sigma, seed=7, learning_rate=1.0):
    import tfdphpe.privacy as privacy
    # SGD with learning rate 1: new weights = old weights - update.
    return privacy.make_optimizer(method, CLIP, sigma, learning_rate, expected_batch_size=B,
                                  projection_dim=3, seed=seed, clipping=clipping)


def gradient_fn(opt, model):
    loss_fn, public_loss_fn = losses(model)
    feature = opt.method.feature_dp

    def grads(batch, mask, views, views_mask):
        return opt.dp_gradients(loss_fn, batch, model.trainable_variables,
                                public_loss_fn=public_loss_fn if feature else None,
                                batch_mask=mask, public_batch=views if feature else None,
                                public_batch_mask=views_mask if feature else None,
                                layers=model if opt.clipping == "ghost" else None)
    return grads


def create(opt, model):
    opt.create_variables(model.trainable_variables)


def refresh(opt, model, public):
    """V from the public batch; outside the strategy's scope, as the trainer does."""
    if opt.method.projected:
        opt.refresh_subspace(losses(model)[0], public, model.trainable_variables,
                             layers=model if opt.clipping == "ghost" else None)


def inputs():
    batch = data(B, 1)
    mask = np.array([1, 1, 0, 1, 1, 1, 1, 0], np.float32)
    views = data(B, 2)            # public views sampled apart from the private batch
    views_mask = np.array([1, 0, 1, 1, 1, 1, 0, 1], np.float32)
    return batch, mask, views, views_mask, data(6, 3)


def flat(tensors):
    return np.concatenate([np.ravel(np.asarray(t)) for t in tensors])


def shard(values, replica, replicas):
    """Rows of replica ``replica`` of ``replicas`` (the even split of a global batch)."""
    rows = slice(replica * B // replicas, (replica + 1) * B // replicas)
    return tf.nest.map_structure(lambda v: tf.constant(v[rows]), values)


def one_device_update(method, clipping, sigma):
    batch, mask, views, views_mask, public = inputs()
    model, opt = build(), make_opt(method, clipping, sigma)
    create(opt, model)
    refresh(opt, model, public)
    return flat(tf.function(gradient_fn(opt, model))(batch, mask, views, views_mask))


def distributed_updates(strategy, method, clipping, sigma, draws=1, all_padding=False):
    """[draws] of the global update on every local replica: list (draws) of lists (replicas)."""
    batch, mask, views, views_mask, public = inputs()
    if all_padding:
        mask = np.zeros_like(mask)
        views_mask = np.zeros_like(views_mask)
    with strategy.scope():
        model, opt = build(), make_opt(method, clipping, sigma)
        create(opt, model)
    refresh(opt, model, public)
    replicas = strategy.num_replicas_in_sync
    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: shard((batch, mask, views, views_mask), ctx.replica_id_in_sync_group,
                          replicas))
    grads = gradient_fn(opt, model)
    step = tf.function(lambda values: strategy.run(grads, args=values))
    out = []
    for _ in range(draws):
        per_replica = step(local)
        out.append([flat([strategy.experimental_local_results(g)[r] for g in per_replica])
                    for r in range(len(strategy.extended.worker_devices))])
    return out


def figures(strategy, method, clipping):
    zero = distributed_updates(strategy, method, clipping, 0.0)[0]
    seeded = distributed_updates(strategy, method, clipping, SIGMA)[0]
    # Projected noise lives in k = 3 directions: more draws for the same accuracy of its std.
    draws = 200 if method in ("pdpsgd", "fpdp") else 40
    noise = distributed_updates(strategy, method, clipping, SIGMA, draws=draws, all_padding=True)
    want_zero = one_device_update(method, clipping, 0.0)
    want_seeded = one_device_update(method, clipping, SIGMA)
    draws = np.stack([d[0] for d in noise])
    ratio = float(np.std(draws) / (SIGMA * CLIP / B))
    if method in ("pdpsgd", "fpdp"):
        # V V^T of isotropic noise: per coordinate std sigma C / B * sqrt(k / p) on average.
        ratio *= float(np.sqrt(draws.shape[1] / 3))
    agree = all(np.array_equal(r, rows[0]) for rows in [zero, seeded] + noise for r in rows)
    return {"diff_zero_noise": float(np.abs(zero[0] - want_zero).max()),
            "scale": float(np.abs(want_zero).max()),
            "diff_seeded": float(np.abs(seeded[0] - want_seeded).max()),
            "noise_std_ratio": ratio, "replicas_agree": bool(agree)}


def main():
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    # One strategy for the whole check: collective instance keys are per strategy object.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {f"{m}/{c}": figures(strategy, m, c) for m in METHODS for c in CLIPPINGS}
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
