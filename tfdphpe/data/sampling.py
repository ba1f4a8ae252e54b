"""How examples are grouped into steps: Poisson sampling for DP (default), shuffled fixed-size
batches (only on request), sequential batches for evaluation.

Each function here yields *index batches* (which records a step uses); `pipeline.build_dataset`
turns them into image batches. Everything is stateless-random: the indices of step ``t`` depend
only on ``(seed, t)``, so a resumed run sees exactly the batches it would have seen.

Poisson sampling (DESIGN 4): at every step each of the N examples joins the batch independently
with probability ``q = B / N``; batch sizes vary (Binomial(N, q)) and may be 0. The draw is one
uniform number per example per step (``u_i < q``), so steps are independent of each other and
of the data. For static shapes the selected indices are padded to ``max_batch_size`` with a 0/1
mask; if a step ever selects more than ``max_batch_size`` examples it is emitted as several
chunks (``num_chunks > 1``) that the training step must add up before noising: nothing is
dropped, so the sampling stays exactly Poisson.

Sharding (several replicas or workers, ``num_shards > 1``): shard s owns the examples i with
i mod num_shards = s and takes, at each step, those of its examples whose coin came up. The coins
are the same ones an unsharded run draws (one uniform per example per step from (seed, step)), so
the union of the shards' batches *is* the Poisson sample of the whole set, and even the same one
as on one device. That it is Poisson sampling does not rest on sharing the coins: each example's
inclusion is an independent Bernoulli(q) event whichever shard evaluates it, so any partition of
the examples into disjoint shards, each sampled by its own independent coins with the global q,
gives a batch that includes every example independently with probability q: the definition.
The accountant's q = B / N and step count are the global ones; a shard's expected batch is about
B / num_shards, and the optimizer divides the all-reduced sum by the global B. Shuffled batches
are split into ``num_shards`` equal parts of one global batch (B must divide evenly).
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

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
      method: "poisson" (default; fixed-size padded batches of ``max_batch_size`` with a 0/1
        ``mask``), "poisson_variable" (the same steps as variable-size batches: only the selected
        examples, possibly none), "shuffled" (fixed-size batches from a fresh shuffle each epoch,
        remainder dropped; only when asked for), "sequential" (in order, for evaluation), or
        "unbatched" (single examples in order).
      batch_size: expected batch size B (Poisson: q = B / N), or the batch size.
      num_steps: number of steps (required for Poisson; optional cap otherwise).
      num_epochs: shuffled: epochs (None = repeat forever); sequential and unbatched: passes
        (default 1). Poisson ignores it: see `steps_for_epochs`.
      seed: seed of the sampling and of the augmentation.
      start_step: first step to produce (resume); steps before it are skipped exactly.
      max_batch_size: Poisson chunk size; default: the smallest size a step exceeds with
        probability < ``overflow_probability``.
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
        if self.num_shards > 1:
            if self.method not in (POISSON, POISSON_VARIABLE, SHUFFLED):
                raise ValueError(f"{self.method!r} batches are not sharded (only Poisson and "
                                 "shuffled training batches are)")
            if self.method == SHUFFLED and self.batch_size % self.num_shards:
                raise ValueError(f"shuffled batches of {self.batch_size} cannot be split into "
                                 f"{self.num_shards} equal shards")


@dataclasses.dataclass(frozen=True)
class SamplingInfo:
    """What the pipeline did, for the privacy ledger and statement."""

    method: str
    num_examples: int
    batch_size: int
    sampling_rate: float
    num_steps: int | None
    max_batch_size: int
    overflow_probability: float
    num_shards: int = 1

    @property
    def is_poisson(self) -> bool:
        return self.method in (POISSON, POISSON_VARIABLE)

    def describe(self) -> str:
        shards = (f"; the examples are split into {self.num_shards} disjoint shards, one per "
                  "replica, each sampling its own with the same q (their union is the Poisson "
                  "sample)" if self.num_shards > 1 else "")
        if self.is_poisson:
            return (f"Poisson sampling: each of the {self.num_examples} examples joins each step "
                    f"independently with probability q = {self.batch_size}/{self.num_examples} = "
                    f"{self.sampling_rate:.6g} (batch sizes vary, empty batches possible); "
                    f"{self.num_steps} steps{shards}")
        if self.method == SHUFFLED:
            return (f"shuffled fixed-size batches of {self.batch_size} from {self.num_examples} "
                    f"examples (sampling without replacement, each example once per epoch): an "
                    f"epsilon computed for Poisson subsampling with q = {self.sampling_rate:.6g} "
                    f"rests on that assumption, not on how the batches were drawn")
        return f"{self.method} batches of {self.batch_size} over {self.num_examples} examples"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"description": self.describe()}


def poisson_max_batch_size(num_examples: int, sampling_rate: float,
                           overflow_probability: float = 1e-9) -> int:
    """Smallest m with P(Binomial(N, q) > m) < overflow_probability (at least 1)."""
    from scipy.stats import binom
    if not 0.0 < sampling_rate <= 1.0:
        raise ValueError(f"sampling rate must be in (0, 1], got {sampling_rate}")
    m = int(binom.isf(overflow_probability, num_examples, sampling_rate))
    while m < num_examples and binom.sf(m, num_examples, sampling_rate) >= overflow_probability:
        m += 1
    return max(1, min(m, num_examples))


def steps_for_epochs(num_examples: int, batch_size: int, epochs: float) -> int:
    """Poisson steps that make ``epochs`` expected passes: round(epochs * N / B)."""
    return max(1, int(round(epochs * num_examples / batch_size)))


def _step_seed(seed: int, step) -> tf.Tensor:
    step = tf.cast(step, tf.int64)
    return tf.stack([tf.constant(seed, tf.int64), step])


def poisson_step_indices(num_examples: int, sampling_rate: float, seed: int, step,
                         num_shards: int = 1, shard_index: int = 0) -> tf.Tensor:
    """Indices (int64, ascending) of the examples sampled at ``step``: each independently with
    probability ``sampling_rate``. A pure function of (seed, step). With ``num_shards``, only
    the sampled examples i with i mod num_shards = shard_index."""
    u = tf.random.stateless_uniform([num_examples], seed=_step_seed(seed, step), dtype=tf.float32)
    taken = u < sampling_rate if sampling_rate < 1.0 else tf.ones([num_examples], tf.bool)
    if num_shards > 1:
        owned = tf.range(num_examples, dtype=tf.int64) % num_shards == shard_index
        taken = tf.logical_and(taken, owned)
    return tf.reshape(tf.where(taken), [-1])


def _chunks(indices: tf.Tensor, step, chunk_size: int) -> tf.data.Dataset:
    """Pads ``indices`` to whole chunks (-1, mask 0) and yields one dict per chunk.

    An empty step still yields one all-padding chunk, so every step is visible downstream."""
    n = tf.shape(indices, out_type=tf.int64)[0]
    num_chunks = tf.maximum(tf.constant(1, tf.int64), (n + chunk_size - 1) // chunk_size)
    padded = tf.concat([indices, -tf.ones([num_chunks * chunk_size - n], tf.int64)], 0)
    padded = tf.reshape(padded, [num_chunks, chunk_size])
    return tf.data.Dataset.from_tensor_slices({
        "index": padded,
        "mask": tf.cast(padded >= 0, tf.float32),
        "step": tf.fill([num_chunks], tf.cast(step, tf.int64)),
        "chunk": tf.range(num_chunks, dtype=tf.int64),
        "num_chunks": tf.fill([num_chunks], num_chunks),
    })


def poisson_index_batches(num_examples: int, batch_size: int, num_steps: int, seed: int,
                          max_batch_size: int, start_step: int = 0, num_shards: int = 1,
                          shard_index: int = 0) -> tf.data.Dataset:
    """Index batches of Poisson sampling, ``max_batch_size`` wide, steps ``start_step..``."""
    q = batch_size / num_examples
    steps = tf.data.Dataset.range(start_step, num_steps)
    return steps.flat_map(lambda t: _chunks(
        poisson_step_indices(num_examples, q, seed, t, num_shards, shard_index), t,
        max_batch_size))


def shuffled_index_batches(num_examples: int, batch_size: int, seed: int,
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
            tf.range(num_examples, dtype=tf.int64), seed=_step_seed(seed, -1 - epoch))
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
    q = min(1.0, config.batch_size / num_examples)
    width = config.batch_size
    shards = config.num_shards
    # A shard owns ceil(N / shards) examples at most: its padded width follows from that count.
    owned = -(-num_examples // shards)
    if m in (POISSON, POISSON_VARIABLE):
        width = config.max_batch_size or poisson_max_batch_size(owned, q,
                                                                 config.overflow_probability)
        ds = poisson_index_batches(num_examples, config.batch_size, config.num_steps, config.seed,
                                   width, config.start_step, shards, config.shard_index)
    elif m == SHUFFLED:
        width = config.batch_size // shards
        ds = shuffled_index_batches(num_examples, config.batch_size, config.seed,
                                    config.num_epochs, config.start_step, shards,
                                    config.shard_index)
    else:
        ds = sequential_index_batches(num_examples, config.batch_size, config.pad_final_batch,
                                      config.num_epochs or 1)
        if config.start_step:
            ds = ds.skip(config.start_step)
    if config.num_steps is not None and m not in (POISSON, POISSON_VARIABLE):
        ds = ds.take(config.num_steps - config.start_step)
    overflow = 0.0
    if m in (POISSON, POISSON_VARIABLE) and width < owned:
        from scipy.stats import binom
        overflow = float(binom.sf(width, owned, q))
    info = SamplingInfo(method=m, num_examples=num_examples, batch_size=config.batch_size,
                        sampling_rate=q, num_steps=config.num_steps, max_batch_size=width,
                        overflow_probability=overflow, num_shards=shards)
    return ds, info
