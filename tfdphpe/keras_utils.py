"""Small facts about Keras layers that both the models and the privacy engine need."""

from __future__ import annotations

from typing import Iterator

import tensorflow as tf


def is_batchnorm_like(layer: tf.keras.layers.Layer) -> bool:
    """True for a layer that normalises with batch statistics and keeps moving statistics.

    Keras' BatchNormalization and SyncBatchNormalization (siblings under BatchNormalizationBase,
    so one isinstance test misses the other), our own BatchNorm, and any custom layer that keeps
    ``moving_mean`` and ``moving_variance``.
    """
    if any("BatchNormalization" in cls.__name__ for cls in type(layer).__mro__):
        return True
    return hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance")


def updates_batch_statistics(layer: tf.keras.layers.Layer) -> bool:
    """True if a training call of ``layer`` would learn from (and mix) the batch's examples.

    A frozen one does not: ``frozen_stats`` (tfdphpe.models.freeze_batchnorm) or, for Keras'
    layers, ``trainable=False`` (Keras 2 then runs them in inference mode).
    """
    return (is_batchnorm_like(layer) and layer.trainable
            and not getattr(layer, "frozen_stats", False))


def leaf_layers(layer: tf.keras.layers.Layer) -> Iterator[tf.keras.layers.Layer]:
    """Every layer under ``layer`` that has no sublayers (``layer`` itself if it has none)."""
    children = list(layer._flatten_layers(include_self=False, recursive=False))  # pylint: disable=protected-access
    if not children:
        yield layer
    for child in children:
        yield from leaf_layers(child)
