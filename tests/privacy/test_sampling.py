"""The Poisson sampler of privacy units: secret keys, rates, at most k of a unit's own examples,
shards and resume. (The data package's batchings: tests/data/test_sampling.py.)"""

import numpy as np

from tfdphpe.privacy.sampling import (UnitIndex, check_key, poisson_index_batches,
                                      poisson_step_units, reproducible_sampling_key,
                                      secret_sampling_key, unit_step_indices)


def test_keys_secret_by_default_and_seeded_only_when_asked():
    assert secret_sampling_key() != secret_sampling_key()
    assert reproducible_sampling_key(3) == reproducible_sampling_key(3) != \
        reproducible_sampling_key(4)
    a = poisson_step_units(1000, 0.1, secret_sampling_key(), 0).numpy()
    b = poisson_step_units(1000, 0.1, secret_sampling_key(), 0).numpy()
    assert a.tolist() != b.tolist()
    assert check_key(np.array([1, -2])) == (1, -2)


def test_unit_sampling_takes_units_with_q_and_at_most_k_of_their_examples():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 7, size=60)                       # units of 1..6 examples
    ids = np.repeat(np.arange(60), sizes)
    ids = ids[rng.permutation(len(ids))]                      # a unit's examples anywhere
    index = UnitIndex(ids, examples_per_unit=2)
    q, steps = 0.2, 400
    counts = np.zeros(60)
    picks = np.zeros(len(ids))
    for t in range(steps):
        rows = unit_step_indices(index, q, (5, 6), t).numpy()
        units = poisson_step_units(60, q, (5, 6), t).numpy()
        assert rows.shape == (len(units), 2)
        for u, row in zip(units, rows):
            real = row[row >= 0]
            assert len(real) == min(2, sizes[u]) and (ids[real] == u).all()
            assert len(set(real)) == len(real)
            picks[real] += 1
        counts[units] += 1
    assert abs(counts.mean() / steps - q) < 0.01
    # Within a unit of s examples, each example is picked with probability min(2, s) / s.
    expected = q * np.minimum(2, sizes[ids]) / sizes[ids]
    assert np.abs(picks / steps - expected).mean() < 0.02


def test_units_never_span_shards_and_resume_keeps_the_sample():
    ids = np.repeat(np.arange(25), 3)
    index = UnitIndex(ids, examples_per_unit=2)

    def steps(num_shards=1, shard=0, start=0):
        ds = poisson_index_batches(index, 5, 12, (1, 2), max_units=10, start_step=start,
                                   num_shards=num_shards, shard_index=shard)
        return [b["index"].numpy() for b in ds]

    whole = steps()
    halves = [steps(2, s) for s in (0, 1)]
    for t, full in enumerate(whole):
        parts = [h[t][h[t] >= 0] for h in halves]
        for s, part in enumerate(parts):
            assert set(ids[part] % 2) <= {s}                    # a unit in one shard only
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.sort(full[full >= 0]))
    for a, b in zip(whole[5:], steps(start=5)):
        np.testing.assert_array_equal(a, b)
