"""How examples are grouped into steps: Poisson sampling for DP (default), shuffled fixed-size
batches (only on request), sequential batches for evaluation.

Each function here yields *index batches* (which records a step uses); `pipeline.build_dataset`
turns them into image batches. The Poisson sampler itself is a privacy mechanism and lives in
`tfdphpe.privacy.sampling` (coins from a secret key, units, chunks, shards); this module
configures it for a data set and adds the non-private batchings.

Poisson sampling (DESIGN 4): at every step each of the N privacy units joins the batch
independently with probability ``q = B / N``; batch sizes vary (Binomial(N, q)) and may be 0.
With one example per unit (the default) a unit is an example. The coins come from a **secret
sampling key** (``BatchConfig.sampling_key``; a fresh one from the OS entropy pool when not
given): anyone who could recompute the batches would void amplification by subsampling. Steps
are independent of each other and of the data; the indices of step ``t`` depend only on
``(key, t)``, so a run resumed with the same key sees exactly the batches it would have seen.
``reproducible_sampling=True`` derives the key from ``seed`` instead, for experiments: the
sampling is then not secret and must be accounted as revealed (``SamplingInfo.key_secret``).

For static shapes the selected units are padded to ``max_batch_size`` units of ``k`` example
slots each, with a 0/1 mask; if a step ever selects more units it is emitted as several chunks
(``num_chunks > 1``) that the training step must add up before noising: nothing is dropped.

Sharding (several replicas or workers, ``num_shards > 1``): shard s owns the units u with
u mod num_shards = s and takes, at each step, those of its units whose coin came up (the same
coins an unsharded run draws), so the union of the shards' batches is the Poisson sample of the
whole set and a unit never spans two shards. Each unit's inclusion is an independent Bernoulli(q)
event whichever shard evaluates it, which is the definition. The accountant's q = B / N and step
count are the global ones; the optimizer divides the all-reduced sum by the global B. Shuffled
batches are split into ``num_shards`` equal parts of one global batch (B must divide evenly).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf

from tfdphpe.privacy import sampling as dp_sampling
from tfdphpe.privacy.sampling import (UnitIndex, poisson_max_batch_size,  # noqa: F401 (re-export)
                                      poisson_step_indices, reproducible_sampling_key,
                                      secret_sampling_key)

POISSON = "poisson"
POISSON_VARIABLE = "poisson_variable"
SHUFFLED = "shuffled"
SEQUENTIAL = "sequential"
UNBATCHED = "unbatched"
METHODS = (POISSON, POISSON_VARIABLE, SHUFFLED, SEQUENTIAL, UNBATCHED)


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """How `build_dataset` groups examples.

    Attributes:
      method: "poisson" (default; fixed-size padded batches of ``max_batch_size`` units with a
        0/1 ``mask``), "poisson_variable" (the same steps as variable-size batches: only the
        selected examples, possibly none), "shuffled" (fixed-size batches from a fresh shuffle
        each epoch, remainder dropped; only when asked for), "sequential" (in order, for
        evaluation), or "unbatched" (single examples in order).
      batch_size: expected batch size B in units (Poisson: q = B / N), or the batch size.
      num_steps: number of steps (required for Poisson; optional cap otherwise).
      num_epochs: shuffled: epochs (None = repeat forever); sequential and unbatched: passes
        (default 1). Poisson ignores it: see `steps_for_epochs`.
      seed: seed of the augmentation (and of the sampling only with ``reproducible_sampling``).
      sampling_key: the secret key of the Poisson and shuffle coins (two ints). None: a fresh key
        from the OS entropy pool (then a second pipeline gets other batches; pass the key to
        share it, e.g. across replicas or on resume). Never log it or write it to a config.
      reproducible_sampling: derive the key from ``seed`` (batches repeat across runs and anyone
        who knows the seed knows them: not secret; the ledger must account revealed sampling).
      units: which examples form each privacy unit (``tfdphpe.privacy.sampling.UnitIndex``);
        None: every example is its own unit. Poisson only.
      start_step: first step to produce (resume); steps before it are skipped exactly.
      max_batch_size: Poisson chunk size in units; default: the smallest number of units a step
        exceeds with probability < ``overflow_probability``.
      overflow_probability: see ``max_batch_size``.
      pad_final_batch: sequential: pad the last batch to ``batch_size`` (mask 0) for static shapes.
      num_shards, shard_index: Poisson and shuffled only: this pipeline yields shard
        ``shard_index`` of ``num_shards`` of every step (one per replica; see the module
        docstring). ``batch_size`` stays the global expected batch size.
    """

    method: str = POISSON
    batch_size: int = 32
    num_steps: int | None = None
    num_epochs: int | None = None
    seed: int = 0
    sampling_key: Optional[tuple[int, int]] = None
    reproducible_sampling: bool = False
    units: Optional[UnitIndex] = None
    start_step: int = 0
    max_batch_size: int | None = None
    overflow_probability: float = 1e-9
    pad_final_batch: bool = True
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size}")
        if self.method in (POISSON, POISSON_VARIABLE) and not self.num_steps:
            raise ValueError("Poisson sampling needs num_steps")
        if self.start_step < 0:
            raise ValueError("start_step must be >= 0")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index must be in [0, num_shards), got {self.shard_index} of "
                             f"{self.num_shards}")
        if self.sampling_key is not None:
            if self.reproducible_sampling:
                raise ValueError("give sampling_key or reproducible_sampling, not both")
            dp_sampling.check_key(self.sampling_key)
        if self.units is not None and self.method != POISSON:
            raise ValueError(f"privacy units need padded Poisson batches (method 'poisson'), "
                             f"not {self.method!r}")
        if self.num_shards > 1:
            if self.method not in (POISSON, POISSON_VARIABLE, SHUFFLED):
                raise ValueError(f"{self.method!r} batches are not sharded (only Poisson and "
                                 "shuffled training batches are)")
            if self.method == SHUFFLED and self.batch_size % self.num_shards:
                raise ValueError(f"shuffled batches of {self.batch_size} cannot be split into "
                                 f"{self.num_shards} equal shards")

    def key(self) -> tuple[tuple[int, int], bool]:
        """(the sampling key, whether it is secret): given, from the seed, or freshly drawn."""
        if self.reproducible_sampling:
            return reproducible_sampling_key(self.seed), False
        if self.sampling_key is not None:
            return dp_sampling.check_key(self.sampling_key), True
        return secret_sampling_key(), True


@dataclasses.dataclass(frozen=True)
class SamplingInfo:
    """What the pipeline did, for the privacy ledger and statement.

    ``num_units``, ``batch_size`` (expected units per step) and ``sampling_rate`` (q = B / N_u)
    count privacy units; ``num_examples`` counts records. ``key_secret`` is False when the coins
    follow from a seed (``reproducible_sampling``): amplification by subsampling then does not
    hold. ``max_batch_size`` is the padded width of a chunk in example slots
    (``max_units * examples_per_unit``).
    """

    method: str
    num_examples: int
    batch_size: int
    sampling_rate: float
    num_steps: int | None
    max_batch_size: int
    overflow_probability: float
    num_shards: int = 1
    num_units: int | None = None
    examples_per_unit: int = 1
    key_secret: bool = True

    @property
    def is_poisson(self) -> bool:
        return self.method in (POISSON, POISSON_VARIABLE)

    @property
    def units(self) -> int:
        return self.num_examples if self.num_units is None else self.num_units

    def describe(self) -> str:
        shards = (f"; the units are split into {self.num_shards} disjoint shards, one per "
                  "replica, each sampling its own with the same q (their union is the Poisson "
                  "sample)" if self.num_shards > 1 else "")
        what = "examples" if self.num_units is None else "units"
        if self.num_units is not None:
            shards = (f"; a sampled unit gives at most {self.examples_per_unit} of its examples "
                      f"({self.num_examples} examples in all)" + shards)
        coins = ("" if self.key_secret else "; the coins follow from a seed (reproducible, NOT "
                 "secret: no amplification by subsampling)")
        if self.is_poisson:
            return (f"Poisson sampling: each of the {self.units} {what} joins each step "
                    f"independently with probability q = {self.batch_size}/{self.units} = "
                    f"{self.sampling_rate:.6g} (batch sizes vary, empty batches possible); "
                    f"{self.num_steps} steps{shards}{coins}")
        if self.method == SHUFFLED:
            return (f"shuffled fixed-size batches of {self.batch_size} from {self.num_examples} "
                    f"examples (sampling without replacement, each example once per epoch): an "
                    f"epsilon computed for Poisson subsampling with q = {self.sampling_rate:.6g} "
                    f"rests on that assumption, not on how the batches were drawn")
        return f"{self.method} batches of {self.batch_size} over {self.num_examples} examples"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"description": self.describe()}


def steps_for_epochs(num_examples: int, batch_size: int, epochs: float) -> int:
    """Poisson steps that make ``epochs`` expected passes: round(epochs * N / B)."""
    return max(1, int(round(epochs * num_examples / batch_size)))


def shuffled_index_batches(num_examples: int, batch_size: int, key,
                           num_epochs: int | None, start_step: int = 0, num_shards: int = 1,
                           shard_index: int = 0) -> tf.data.Dataset:
    """Fixed-size batches from a stateless shuffle per epoch (remainder dropped); with
    ``num_shards``, part ``shard_index`` of each batch."""
    if batch_size > num_examples:
        raise ValueError(f"batch_size {batch_size} > number of examples {num_examples}")
    per_epoch = num_examples // batch_size
    part = batch_size // num_shards

    def epoch_batches(epoch):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int64), seed=tf.random.experimental.stateless_fold_in(
                tf.cast(key, tf.int64), -1 - epoch))
        perm = tf.reshape(perm[: per_epoch * batch_size], [per_epoch, batch_size])
        perm = perm[:, shard_index * part:(shard_index + 1) * part]
        steps = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices({
            "index": perm, "mask": tf.ones([per_epoch, part]), "step": steps,
            "chunk": tf.zeros([per_epoch], tf.int64), "num_chunks": tf.ones([per_epoch], tf.int64)})

    epochs = tf.data.Dataset.range(start_step // per_epoch,
                                   num_epochs if num_epochs is not None else 2**62)
    return epochs.flat_map(epoch_batches).skip(start_step % per_epoch)


def sequential_index_batches(num_examples: int, batch_size: int, pad_final_batch: bool,
                             num_epochs: int = 1) -> tf.data.Dataset:
    """Batches in record order; the last one padded with mask 0 (or shorter)."""
    num_batches = math.ceil(num_examples / batch_size)
    total = num_batches * batch_size if pad_final_batch else num_examples
    idx = tf.range(total, dtype=tf.int64)
    idx = tf.where(idx < num_examples, idx, -1)
    ds = tf.data.Dataset.from_tensor_slices({"index": idx, "mask": tf.cast(idx >= 0, tf.float32)})
    ds = ds.batch(batch_size).enumerate().map(lambda t, b: b | {
        "step": t, "chunk": tf.constant(0, tf.int64), "num_chunks": tf.constant(1, tf.int64)})
    return ds.repeat(num_epochs)


def index_batches(config: BatchConfig, num_examples: int) -> tuple[tf.data.Dataset, SamplingInfo]:
    """The index-batch dataset for ``config`` over ``num_examples`` records, and its report."""
    if num_examples <= 0:
        raise ValueError("no examples to sample from")
    m = config.method
    units = config.units
    if units is not None and units.num_examples != num_examples:
        raise ValueError(f"the unit index covers {units.num_examples} examples, the data set has "
                         f"{num_examples}")
    poisson = m in (POISSON, POISSON_VARIABLE)
    if poisson and units is None:
        units = UnitIndex.one_per_example(num_examples)
    population = units.num_units if poisson else num_examples
    q = min(1.0, config.batch_size / population)
    width = config.batch_size
    shards = config.num_shards
    # A shard owns ceil(N / shards) units at most: its padded width follows from that count.
    owned = -(-population // shards)
    key, secret = config.key()
    overflow = 0.0
    if poisson:
        max_units = config.max_batch_size or poisson_max_batch_size(owned, q,
                                                                    config.overflow_probability)
        ds = dp_sampling.poisson_index_batches(units, config.batch_size, config.num_steps, key,
                                               max_units, config.start_step, shards,
                                               config.shard_index)
        width = max_units * units.examples_per_unit
        if max_units < owned:
            from scipy.stats import binom
            overflow = float(binom.sf(max_units, owned, q))
    elif m == SHUFFLED:
        width = config.batch_size // shards
        ds = shuffled_index_batches(num_examples, config.batch_size, key, config.num_epochs,
                                    config.start_step, shards, config.shard_index)
    else:
        ds = sequential_index_batches(num_examples, config.batch_size, config.pad_final_batch,
                                      config.num_epochs or 1)
        if config.start_step:
            ds = ds.skip(config.start_step)
    if config.num_steps is not None and not poisson:
        ds = ds.take(config.num_steps - config.start_step)
    grouped = poisson and config.units is not None
    info = SamplingInfo(method=m, num_examples=num_examples, batch_size=config.batch_size,
                        sampling_rate=q, num_steps=config.num_steps, max_batch_size=width,
                        overflow_probability=overflow, num_shards=shards,
                        num_units=units.num_units if grouped else None,
                        examples_per_unit=units.examples_per_unit if grouped else 1,
                        key_secret=secret if m in (POISSON, POISSON_VARIABLE, SHUFFLED) else True)
    return ds, info
