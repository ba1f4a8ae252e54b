"""tfdphpe.keras_utils: which layers keep batch statistics, and which would learn them."""

import tensorflow as tf

from tfdphpe.keras_utils import is_batchnorm_like, leaf_layers, updates_batch_statistics
from tfdphpe.models.layers import BatchNorm

K = tf.keras.layers


class Moving(K.Layer):
    """A custom layer with moving statistics: BatchNorm-like by its weights."""

    def build(self, shape):
        self.moving_mean = self.add_weight("moving_mean", shape[-1:], trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape[-1:], trainable=False)


def test_batchnorm_like_layers_and_when_they_would_learn():
    sync = K.experimental.SyncBatchNormalization()
    assert not issubclass(type(sync), K.BatchNormalization)     # siblings, not parent and child
    moving = Moving()
    moving.build((None, 3))
    for layer in (K.BatchNormalization(), sync, BatchNorm(), moving):
        assert is_batchnorm_like(layer) and updates_batch_statistics(layer)
    assert not is_batchnorm_like(K.LayerNormalization()) and not is_batchnorm_like(K.Dense(2))
    frozen = BatchNorm(frozen_stats=True)
    off = K.BatchNormalization()
    off.trainable = False
    assert not updates_batch_statistics(frozen) and not updates_batch_statistics(off)


def test_leaf_layers_walks_nested_layers():
    inner = tf.keras.Sequential([K.Dense(2), K.Dense(3)])
    model = tf.keras.Sequential([tf.keras.Input((4,)), inner, K.Dense(1)])
    names = [type(layer).__name__ for layer in leaf_layers(model)]
    assert names.count("Dense") == 3 and set(names) <= {"Dense", "InputLayer"}
