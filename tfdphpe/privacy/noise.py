"""The Gaussian sum query that clips per-example records and noises their sum.

It is TF-Privacy's ``GaussianSumQuery`` with one addition: the noise can be drawn from a
counter-based (stateless) generator keyed by ``(noise_key, draw, chunk of variables)``. That
makes the noise

* identical on every replica of a ``tf.distribute`` strategy, so adding it on each replica to the
  all-reduced sum adds it exactly once to the global sum (DESIGN 3b);
* fresh at every draw: the counter is the optimizer's ``noise_draws`` variable, advanced at every
  call (not the step counter, which a second call within one step would reuse).

Clipping, the DpEvent and the stock (stateful) noise path are inherited unchanged, so the noise the
optimizer adds and the event the accountant reads come from the same object.

Privacy note: whoever knows the key and the step can recompute the noise. The key must stay secret
for the guarantee to hold; by default it is drawn from the operating system's entropy pool.

Tests: tests/privacy/test_optimizers.py (the keyed draw, its std, its DpEvent).
"""

from __future__ import annotations

import secrets
from typing import Optional

import dp_accounting
import tensorflow as tf
from tensorflow_privacy.privacy.dp_query import gaussian_query


def random_noise_key() -> tuple[int, int]:
    """A fresh secret key for the stateless noise generator (two 31-bit words)."""
    return secrets.randbits(31), secrets.randbits(31)


def noise_key_from_seed(seed: Optional[int]) -> tuple[int, int]:
    """The noise key for an integer seed (reproducible, NOT secret), or a random key for None."""
    if seed is None:
        return random_noise_key()
    seed = int(seed)
    # Fixed second word so that seed-derived keys never collide with step folding conventions.
    return seed & 0x7FFFFFFF, 0x5EED


class KeyedGaussianSumQuery(gaussian_query.GaussianSumQuery):
    """``GaussianSumQuery`` whose noise can be keyed by ``(key, step)`` (see module docstring)."""

    def __init__(self, l2_norm_clip: float, stddev: float):
        super().__init__(l2_norm_clip, stddev)

    @property
    def l2_norm_clip(self) -> float:
        return float(self._l2_norm_clip)

    @property
    def stddev(self) -> float:
        return float(self._stddev)

    @property
    def noise_multiplier(self) -> float:
        return 0.0 if self._l2_norm_clip == 0 else float(self._stddev) / float(self._l2_norm_clip)

    def dp_event(self) -> dp_accounting.DpEvent:
        """The DpEvent of one call to ``get_noised_result`` (one training step, before sampling)."""
        return dp_accounting.GaussianDpEvent(self.noise_multiplier)

    def get_noised_result(self, sample_state, global_state, noise_seed: Optional[tf.Tensor] = None):
        """Adds N(0, stddev^2) to every tensor of ``sample_state``.

        Args:
          sample_state: structure of summed clipped records.
          global_state: the query's global state (clip norm and stddev).
          noise_seed: ``None`` for TF-Privacy's stock stateful noise, or an int ``[2]`` tensor
            (see ``step_noise_seed``) for keyed noise that is the same on all replicas.
        """
        if noise_seed is None:
            return super().get_noised_result(sample_state, global_state)
        flat = tf.nest.flatten(sample_state)
        chained = _chained(flat)
        noised = []
        for index, chunk in enumerate(_noise_chunks(flat) if chained else
                                      [[i] for i in range(len(flat))]):
            # Chained: one draw per chunk of consecutive tensors, split per tensor (the same
            # distribution as one draw per tensor, in a few ops for many small variables).
            # Early: one draw per tensor, no split (its copies would double the noise held).
            values = [flat[i] for i in chunk]
            sizes = [tf.size(value) for value in values]
            seed = tf.random.experimental.stateless_fold_in(noise_seed, index)
            with tf.control_dependencies(noised[-1:] if chained else []):
                noise = tf.random.stateless_normal(tf.reshape(tf.add_n(sizes), [1]), seed=seed,
                                                   stddev=global_state.stddev, dtype=tf.float32)
            parts = tf.split(noise, tf.stack(sizes), num=len(values)) if len(values) > 1 \
                else [noise]
            noised += [value + tf.cast(tf.reshape(part, tf.shape(value)), value.dtype)
                       for value, part in zip(values, parts)]
        result = tf.nest.pack_sequence_as(sample_state, noised)
        # Same event as the stock path (gaussian_query.GaussianSumQuery.get_noised_result).
        event = dp_accounting.GaussianDpEvent(global_state.stddev / global_state.l2_norm_clip)
        return result, global_state, event


# Up to this many noise values (4 MiB in float32) are drawn one per variable with no dependency
# on the sums, so that inside tf.function the executor draws them while the forward and
# backward passes run: on a model whose step takes milliseconds that overlap is the difference
# (measured on bench_privacy --peer's MLP at batch 64: 1.98x a plain step against 2.20x
# chained), and the noise held early costs at most 4 MiB. Above it, each chunk's draw waits for
# the previous chunk's sum, so that no more than about the largest variable's worth of noise is
# alive beyond the sums (a draw of everything ahead cost the 5M-parameter pose model +5 % peak
# tensors at batch 16).
EARLY_NOISE_ELEMENTS = 2 ** 20


def _chained(flat: list) -> bool:
    sizes = [value.shape.num_elements() for value in flat]
    return any(size is None for size in sizes) or sum(sizes) > EARLY_NOISE_ELEMENTS


def _noise_chunks(flat: list) -> list[list[int]]:
    """Consecutive tensor indices grouped so that a chunk holds at most as many elements as the
    largest tensor (one chunk when a size is not static)."""
    sizes = [value.shape.num_elements() for value in flat]
    if any(size is None for size in sizes):
        return [list(range(len(flat)))]
    bound, chunks, total = max(sizes, default=0), [], 0
    for i, size in enumerate(sizes):
        if not chunks or total + size > bound:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += size
    return chunks


def step_noise_seed(noise_key, counter: tf.Tensor) -> tf.Tensor:
    """The stateless seed of one draw: ``noise_key`` (two ints or an int [2] tensor) folded with
    the draw counter."""
    key = tf.cast(tf.convert_to_tensor(noise_key), tf.int64)
    return tf.random.experimental.stateless_fold_in(key, tf.cast(counter, tf.int64))
