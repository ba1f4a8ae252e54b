"""Small models, batches and one-example-at-a-time references for the privacy tests."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

BATCH = 6


def small_model(seed: int = 0) -> tf.keras.Model:
    """Conv + Dense with one frozen layer: exercises conv per-example grads and trainable-only."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((5, 5, 2))
    x = tf.keras.layers.Conv2D(3, 3, activation="tanh", name="conv")(inputs)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(4, name="frozen")(x)
    outputs = tf.keras.layers.Dense(3, name="head")(tf.nn.tanh(x))
    model = tf.keras.Model(inputs, outputs)
    model.get_layer("frozen").trainable = False
    return model


def make_batch(n: int = BATCH, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 5, 5, 2)).astype(np.float32) * 2.0
    return {"image": tf.constant(image),
            "public_image": tf.constant(0.5 * image + 0.1),   # stands in for a blurred view psi(x)
            "target": tf.constant(rng.normal(size=(n, 3)).astype(np.float32))}


def losses(model):
    """(loss on the private image, loss on the public view), both per example [B]."""
    def loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["image"]) - batch["target"]), axis=1)

    def public_loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["public_image"]) - batch["target"]), axis=1)

    return loss_fn, public_loss_fn


def take(batch: dict, i: int) -> dict:
    return {k: v[i:i + 1] for k, v in batch.items()}


def example_grad(fn, example, var_list) -> list[np.ndarray]:
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fn(example))
    grads = tape.gradient(loss, var_list, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [g.numpy().astype(np.float64) for g in grads]


def flat(arrays) -> np.ndarray:
    return np.concatenate([np.reshape(a, -1) for a in arrays])


def clip_np(vec: np.ndarray, c: float) -> np.ndarray:
    norm = np.linalg.norm(vec)
    return vec * min(1.0, c / norm) if norm > 0 else vec


def reference_update(model, batch, var_list, c, expected_batch_size, feature_dp=False,
                     basis=None, mask=None, public_batch=None) -> np.ndarray:
    """The update computed one example at a time, flattened over var_list (float64).

    Clip each per-example private term (Feature DP: grad l(x) - grad l(psi(x))), sum, project with
    basis (k x p, rows orthonormal) if given, add the unclipped public sum (Feature DP: over
    public_batch, or over the same batch if None), divide by the expected batch size.
    """
    loss_fn, public_loss_fn = losses(model)
    n = int(batch["image"].shape[0])
    private = np.zeros(sum(int(v.shape.num_elements()) for v in var_list))
    public = np.zeros_like(private)
    for i in range(n):
        if mask is not None and not mask[i]:
            continue
        g = flat(example_grad(loss_fn, take(batch, i), var_list))
        if feature_dp:
            p = flat(example_grad(public_loss_fn, take(batch, i), var_list))
            if public_batch is None:
                public += p
            g = g - p
        private += clip_np(g, c)
    if feature_dp and public_batch is not None:
        for j in range(int(public_batch["image"].shape[0])):
            public += flat(example_grad(public_loss_fn, take(public_batch, j), var_list))
    if basis is not None:
        private = basis.T @ (basis @ private)
    return (private + public) / expected_batch_size


def basis_matrix(basis_vars) -> np.ndarray:
    """k x p matrix of the stored basis."""
    return np.stack([flat([b[j].numpy().astype(np.float64) for b in basis_vars])
                     for j in range(int(basis_vars[0].shape[0]))])
