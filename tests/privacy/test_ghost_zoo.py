"""Any Keras model on the ghost path (issue 21): a zoo of everyday models, each checked exactly.

For every model: the ghost clipped sum equals the vectorized one and a one-example-at-a-time
reference (zero noise, a padded example in the batch), and the projected update (pdpsgd, the
other method DPModel runs) equals the vectorized path's. Which rule computes each layer is
asserted too, so a layer silently falling back (or not) is caught.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.privacy.helpers import clip_np, flat
from tfdphpe import privacy
from tfdphpe.privacy import ghost, mechanisms

K = tf.keras.layers
MASK = np.array([1, 1, 0, 1], np.float32)      # example 2 is padding


class Scale(K.Layer):
    """A user's layer with its own weights and no rule: the per-layer fallback forms it."""

    def build(self, shape):
        self.w = self.add_weight("w", shape=shape[-1:], initializer="random_normal")
        self.b = self.add_weight("b", shape=shape[-1:], initializer="zeros")

    def call(self, x):
        return tf.tanh(x * self.w + self.b)


class Subclassed(tf.keras.Model):
    """A subclassed model: causal dilated Conv1D, a fallback layer, GroupNorm, Dense."""

    def __init__(self):
        super().__init__()
        self.conv = K.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu")
        self.scale = Scale()
        self.norm = K.GroupNormalization(groups=2)
        self.head = K.Dense(3)

    def call(self, x):
        return self.head(tf.reduce_mean(self.norm(self.scale(self.conv(x))), axis=1))


def cnn():
    """Sequential, fused activations everywhere (the Keras default style)."""
    return tf.keras.Sequential([
        K.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 2)),
        K.Conv2D(6, 3, strides=2, activation="gelu", groups=2),
        K.Flatten(), K.Dense(8, activation="gelu"), K.Dense(3)])


def transformer():
    """Functional: Embedding + MultiHeadAttention (its EinsumDense layers) + LayerNorm + MLP."""
    tokens = tf.keras.Input((6,), dtype="int32")
    x = K.Embedding(20, 8)(tokens)
    x = K.LayerNormalization()(x + K.MultiHeadAttention(2, 4)(x, x))
    x = K.LayerNormalization()(x + K.Dense(8)(K.Dense(16, activation="gelu")(x)))
    return tf.keras.Model(tokens, K.Dense(3)(K.GlobalAveragePooling1D()(x)))


def unet():
    """Conv2D down (depthwise x2, separable), Conv2DTranspose up, a skip, 1x1 out; Conv3D."""
    image = tf.keras.Input((8, 8, 2))
    d1 = K.Conv2D(4, 3, padding="same", activation="relu")(image)
    d2 = K.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(d1)
    d2 = K.SeparableConv2D(6, 3, padding="same", activation="relu")(d2)
    up = K.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(d2)
    x = K.Conv2D(3, 1)(K.Concatenate()([up, d1]))
    vol = K.Conv3D(2, (2, 3, 3), padding="valid")(tf.stack([x, x], axis=1))   # [B, 1, 6, 6, 2]
    return tf.keras.Model(image, K.Dense(3)(K.Flatten()(vol)))


def application(name):
    """A stock architecture at 32x32 from scratch; BatchNorm frozen (trainable=False)."""
    build = getattr(tf.keras.applications, name)
    model = build(weights=None, input_shape=(32, 32, 3), classes=3)
    for layer in model.layers:
        if isinstance(layer, K.BatchNormalization):
            layer.trainable = False
    return model


def subclassed():
    model = Subclassed()
    model(tf.zeros([1, 7, 3]))
    return model


ZOO = {
    "cnn": (cnn, (8, 8, 2), {"Conv2D": "ConvRule", "Dense": "DenseRule"}),
    "transformer": (transformer, None, {"Embedding": "EmbeddingRule",
                                        "EinsumDense": "EinsumDenseRule",
                                        "LayerNormalization": "LayerNormRule"}),
    "unet": (unet, (8, 8, 2), {"Conv2DTranspose": "ConvTransposeRule",
                               "SeparableConv2D": "SeparableConvRule",
                               "DepthwiseConv2D": "DepthwiseRule", "Conv3D": "ConvRule"}),
    "subclassed": (subclassed, (7, 3), {"Scale": "FallbackRule", "Conv1D": "ConvRule",
                                        "GroupNormalization": "GroupNormRule"}),
    "MobileNetV2": (lambda: application("MobileNetV2"), (32, 32, 3),
                    {"DepthwiseConv2D": "DepthwiseRule", "Conv2D": "ConvRule"}),
    "EfficientNetB0": (lambda: application("EfficientNetB0"), (32, 32, 3),
                       {"DepthwiseConv2D": "DepthwiseRule", "Conv2D": "ConvRule"}),
}


def _batch(shape, n=4, seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 20, size=(n, 6)).astype(np.int32) if shape is None
         else rng.normal(size=(n, *shape)).astype(np.float32))
    return {"x": tf.constant(x), "y": tf.constant(rng.normal(size=(n, 3)).astype(np.float32))}


def _loss_fn(model):
    def loss_fn(batch):
        out = model(batch["x"], training=False)
        return tf.reduce_sum(tf.square(out - batch["y"]), axis=1)
    return loss_fn


def _reference(loss_fn, batch, var_list, clip):
    total = 0.0
    for i in np.flatnonzero(MASK):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(loss_fn({k: v[i:i + 1] for k, v in batch.items()}))
        grads = tape.gradient(loss, var_list, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        total = total + clip_np(flat([tf.convert_to_tensor(g).numpy().astype(np.float64)
                                      for g in grads]), clip)
    return total


def _rel(a, b):
    return np.linalg.norm(flat(a) - b) / np.linalg.norm(b)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_ghost_equals_vectorized_and_one_at_a_time(name):
    build, shape, expected_rules = ZOO[name]
    tf.keras.utils.set_random_seed(0)
    model = build()
    batch = _batch(shape)
    loss_fn = _loss_fn(model)
    var_list = model.trainable_variables
    rules = ghost.rules_in_use(model, var_list)
    by_class = {}
    for layer in model._flatten_layers():       # pylint: disable=protected-access
        if layer.name in rules:
            by_class.setdefault(type(layer).__name__, set()).add(rules[layer.name])
    for cls, rule in expected_rules.items():
        assert by_class.get(cls) == {rule}, (cls, by_class.get(cls))
    if name != "subclassed":
        assert "FallbackRule" not in set(rules.values()), rules
    mask = tf.constant(MASK)
    vectorized = mechanisms.clipped_sum(1e9, loss_fn, batch, var_list, batch_mask=mask)
    norms = np.sqrt(np.sum([np.sum(np.square(g.numpy())) for g in vectorized]))
    clip = 0.3 * float(norms)           # a clip that binds for some examples
    want = _reference(loss_fn, batch, var_list, clip)
    vectorized = mechanisms.clipped_sum(clip, loss_fn, batch, var_list, batch_mask=mask)
    assert _rel(vectorized, want) < 1e-5
    step = tf.function(lambda b, m: ghost.ghost_clipped_sum(clip, loss_fn, b, var_list, model,
                                                            batch_mask=m))
    got = step(batch, mask)
    assert _rel(got, want) < 1e-5, _rel(got, want)
    # pdpsgd: on the stock architectures, the head and the last blocks (a fine-tuning setting;
    # their per-example gradients for the subspace would dominate the test's time otherwise).
    big = name in ("MobileNetV2", "EfficientNetB0")
    _projected_updates_agree(model, loss_fn, batch, mask, clip, var_list[-12:] if big else None)


def _projected_updates_agree(model, loss_fn, batch, mask, clip, var_list=None):
    """pdpsgd: the subspace from ghost per-example gradients and the update agree too."""
    var_list = var_list or model.trainable_variables
    updates = []
    for clipping in ("vectorized", "ghost"):
        opt = privacy.make_optimizer("pdpsgd", clip, 0.0, 0.1, expected_batch_size=3,
                                     projection_dim=3, seed=0, clipping=clipping)
        layers = model if clipping == "ghost" else None
        opt.refresh_subspace(loss_fn, batch, var_list, layers=layers)
        updates.append(opt.dp_gradients(loss_fn, batch, var_list, batch_mask=mask,
                                        layers=layers))
    assert _rel(updates[1], flat([u.numpy() for u in updates[0]])) < 1e-4
