"""Poisson sampling of privacy units, with coins drawn from a secret key.

Amplification by subsampling (the reason a small q buys a small epsilon) holds only if nobody
who sees the released models knows which units each step used. The coins are therefore a
counter-based (stateless) function of a **secret sampling key** and the step: drawn from the
operating system's entropy pool (``secret_sampling_key``), never derived from a seed that is
written to a config, a flag file or a log. A resumed run must continue with the same key, so the
trainer keeps it in a file beside its checkpoints that stays with the private data
(``tfdphpe.training.checkpointing``); exports never read it.

``reproducible_sampling_key(seed)`` derives the key from a seed for experiments that must be
repeatable. Anyone who knows the seed can then recompute every batch, so there is no
amplification: the ledger accounts such runs as revealed sampling (``sampling_revealed``), which
needs far more noise for the same epsilon, and the statement says so.

A *unit* is what one record protects (an example, an image, a video, a person). Units are
sampled independently with probability q = B / N (B the expected number of units per step, N
the number of units). A sampled unit contributes at most ``examples_per_unit`` = k of its
examples; which k is decided by coins of that unit's own examples (one uniform per example per
step), never by looking at other units, so each unit's inclusion and content are independent of
every other unit's. With one example per unit and k = 1 this is ordinary example-level Poisson
sampling, and exactly the same coins.

Layout of a step (static shapes for the step function): slots of ``k`` examples per sampled unit,
unit-major, padded with index -1 (mask 0) to ``max_units`` units; a step that samples more units
than ``max_units`` is emitted as several chunks of whole units (``num_chunks`` > 1) that the
training step joins before noising, so nothing is dropped and the sampling stays exactly Poisson.

Shards (one per replica or worker): shard s owns the units u with u mod num_shards = s and keeps,
at each step, those of its units whose coin came up. The coins are the ones an unsharded run
draws, so the union of the shards' units is the Poisson sample of the whole set, and a unit never
spans two shards.
"""

from __future__ import annotations

import secrets
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

SamplingKey = tuple[int, int]
# Folded into the key so that the unit coins, the within-unit coins and any other stream drawn
# from the same key (e.g. the public views of Feature DP) never share a counter.
UNIT_STREAM, EXAMPLE_STREAM = 0x756E6974, 0x6578616D
PUBLIC_VIEW_STREAM = 0x70756276


def secret_sampling_key() -> SamplingKey:
    """A fresh secret key (two 31-bit words from the OS entropy pool)."""
    return secrets.randbits(31), secrets.randbits(31)


def reproducible_sampling_key(seed: int) -> SamplingKey:
    """A key derived from ``seed``: repeatable, and therefore NOT secret (module docstring)."""
    return int(seed) & 0x7FFFFFFF, 0x5A3E


def derived_key(key, stream: int) -> tf.Tensor:
    """An independent key for another stream of coins from the same secret key."""
    return tf.random.experimental.stateless_fold_in(_as_key(key), stream)


def _as_key(key) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(key), tf.int64)


def _step_seed(key, stream: int, step) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(derived_key(key, stream),
                                                    tf.cast(step, tf.int64))


def poisson_max_batch_size(num_units: int, sampling_rate: float,
                           overflow_probability: float = 1e-9) -> int:
    """Smallest m with P(Binomial(N, q) > m) < overflow_probability (at least 1)."""
    from scipy.stats import binom
    if not 0.0 < sampling_rate <= 1.0:
        raise ValueError(f"sampling rate must be in (0, 1], got {sampling_rate}")
    m = int(binom.isf(overflow_probability, num_units, sampling_rate))
    while m < num_units and binom.sf(m, num_units, sampling_rate) >= overflow_probability:
        m += 1
    return max(1, min(m, num_units))


def poisson_step_units(num_units: int, sampling_rate: float, key, step, num_shards: int = 1,
                       shard_index: int = 0) -> tf.Tensor:
    """Units (int64, ascending) sampled at ``step``: each independently with ``sampling_rate``.

    A pure function of (key, step). With ``num_shards``, only the sampled units u with
    u mod num_shards = shard_index.
    """
    u = tf.random.stateless_uniform([num_units], seed=_step_seed(key, UNIT_STREAM, step),
                                    dtype=tf.float32)
    taken = u < sampling_rate if sampling_rate < 1.0 else tf.ones([num_units], tf.bool)
    if num_shards > 1:
        owned = tf.range(num_units, dtype=tf.int64) % num_shards == shard_index
        taken = tf.logical_and(taken, owned)
    return tf.reshape(tf.where(taken), [-1])


class UnitIndex:
    """Which examples make each unit: ``unit_ids[i]`` is example i's unit (0 .. N_u - 1).

    Args:
      unit_ids: one integer per example; every unit 0 .. max must hold at least one example.
      examples_per_unit: k, the most examples a sampled unit contributes per step (>= 1).
    """

    def __init__(self, unit_ids: Sequence[int], examples_per_unit: int = 1):
        unit_ids = np.asarray(unit_ids, np.int64).reshape(-1)
        if int(examples_per_unit) != examples_per_unit or examples_per_unit < 1:
            raise ValueError(f"examples_per_unit must be an integer >= 1, got {examples_per_unit}")
        if unit_ids.size == 0:
            raise ValueError("no examples")
        if unit_ids.min() < 0:
            raise ValueError("unit ids must be >= 0")
        counts = np.bincount(unit_ids)
        if (counts == 0).any():
            raise ValueError(f"unit ids must be 0 .. N_u - 1 without gaps; unit "
                             f"{int(np.flatnonzero(counts == 0)[0])} has no example")
        self.unit_ids = unit_ids
        self.examples_per_unit = int(examples_per_unit)
        self.sizes = counts
        # Examples sorted by unit (stable: by example index within a unit), and where each
        # unit's run starts in that order.
        self.order = np.argsort(unit_ids, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    @classmethod
    def one_per_example(cls, num_examples: int) -> "UnitIndex":
        return cls(np.arange(num_examples), 1)

    @property
    def num_units(self) -> int:
        return int(self.sizes.size)

    @property
    def num_examples(self) -> int:
        return int(self.unit_ids.size)

    @property
    def trivial(self) -> bool:
        """One example per unit: example-level sampling."""
        return bool(self.sizes.max() == 1)

    def group_sizes(self) -> dict:
        """Median and maximum examples per unit (for the statement and the logs)."""
        return {"units": self.num_units, "examples": self.num_examples,
                "median": float(np.median(self.sizes)), "max": int(self.sizes.max())}


def unit_step_indices(index: UnitIndex, sampling_rate: float, key, step, num_shards: int = 1,
                      shard_index: int = 0) -> tf.Tensor:
    """[U, k] example indices of step ``step`` (-1 pads a unit with fewer than k examples).

    Row r is the r-th sampled unit (ascending unit id). A unit with more than k examples
    contributes the k whose own coins (one uniform per example per step) are smallest.
    """
    k = index.examples_per_unit
    units = poisson_step_units(index.num_units, sampling_rate, key, step, num_shards,
                               shard_index)
    if index.trivial:
        examples = tf.gather(tf.constant(index.order), units)
        return tf.concat([examples[:, None],
                          -tf.ones([tf.shape(units)[0], k - 1], tf.int64)], axis=1)
    order = tf.constant(index.order)
    starts = tf.gather(tf.constant(index.starts), units)
    sizes = tf.gather(tf.constant(index.sizes), units)
    # Coins of every example at this step, in unit-sorted order.
    coins = tf.random.stateless_uniform([index.num_examples],
                                        seed=_step_seed(key, EXAMPLE_STREAM, step),
                                        dtype=tf.float32)
    coins = tf.gather(coins, order)
    width = int(index.sizes.max())
    offsets = tf.range(width, dtype=tf.int64)
    valid = offsets[None, :] < sizes[:, None]                     # [U, width]
    positions = tf.minimum(starts[:, None] + offsets[None, :], index.num_examples - 1)
    unit_coins = tf.where(valid, tf.gather(coins, positions), 2.0)  # pads sort last
    ranked = tf.argsort(unit_coins, axis=1, stable=True)[:, :k]
    chosen = tf.gather(positions, ranked, batch_dims=1)
    kept = tf.gather(valid, ranked, batch_dims=1)
    if width < k:
        pad = k - width
        chosen = tf.pad(chosen, [[0, 0], [0, pad]])
        kept = tf.pad(kept, [[0, 0], [0, pad]])
    examples = tf.gather(order, chosen)
    return tf.where(kept, examples, -tf.ones_like(examples))


def _chunks(rows: tf.Tensor, step, max_units: int) -> tf.data.Dataset:
    """[U, k] rows -> whole chunks of ``max_units`` units, flattened unit-major, padded with -1.

    An empty step still yields one all-padding chunk, so every step is visible downstream."""
    k = tf.shape(rows, out_type=tf.int64)[1]
    n = tf.shape(rows, out_type=tf.int64)[0]
    num_chunks = tf.maximum(tf.constant(1, tf.int64), (n + max_units - 1) // max_units)
    padded = tf.concat([rows, -tf.ones(tf.stack([num_chunks * max_units - n, k]), tf.int64)], 0)
    padded = tf.reshape(padded, tf.stack([num_chunks, max_units * k]))
    return tf.data.Dataset.from_tensor_slices({
        "index": padded,
        "mask": tf.cast(padded >= 0, tf.float32),
        "step": tf.fill([num_chunks], tf.cast(step, tf.int64)),
        "chunk": tf.range(num_chunks, dtype=tf.int64),
        "num_chunks": tf.fill([num_chunks], num_chunks),
    })


def poisson_index_batches(index: UnitIndex, batch_size: int, num_steps: int, key,
                          max_units: int, start_step: int = 0, num_shards: int = 1,
                          shard_index: int = 0) -> tf.data.Dataset:
    """Index batches of Poisson unit sampling, ``max_units * k`` wide, steps ``start_step..``."""
    q = min(1.0, batch_size / index.num_units)
    key = _as_key(key)
    steps = tf.data.Dataset.range(start_step, num_steps)
    return steps.flat_map(lambda t: _chunks(
        unit_step_indices(index, q, key, t, num_shards, shard_index), t, max_units))


def poisson_step_indices(num_examples: int, sampling_rate: float, key, step,
                         num_shards: int = 1, shard_index: int = 0) -> tf.Tensor:
    """Example-level Poisson sampling: the indices (ascending) of the examples of ``step``."""
    return poisson_step_units(num_examples, sampling_rate, key, step, num_shards, shard_index)


def check_key(key: Optional[Sequence[int]]) -> SamplingKey:
    """A sampling key as two int64 values (raises ValueError otherwise)."""
    try:
        a, b = (int(v) for v in key)
    except (TypeError, ValueError):
        raise ValueError(f"a sampling key is two integers, got {key!r}") from None
    if min(a, b) < -2 ** 63 or max(a, b) >= 2 ** 63:
        raise ValueError("a sampling key's integers must be int64 values")
    return a, b
