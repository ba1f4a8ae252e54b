"""Poisson sampling: independent per example and step with q = B / N; empty batches; chunks."""

import numpy as np
import pytest

from tfdphpe.data import sampling as S


def _steps(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_poisson_inclusion_is_bernoulli_q_independently():
    n, b, steps = 200, 10, 600
    q = b / n
    sel = np.zeros((steps, n), bool)
    for t in range(steps):
        sel[t, S.poisson_step_indices(n, q, key=(3, 0), step=t).numpy()] = True
    sizes = sel.sum(1)
    # Batch size ~ Binomial(N, q): mean B, variance N q (1 - q) (not a fixed B).
    assert abs(sizes.mean() - b) < 0.5
    assert abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.2
    # Every example joins with probability q.
    per_example = sel.mean(0)
    assert abs(per_example.mean() - q) < 0.005 and per_example.std() < 0.03
    # No dependence between examples within a step, nor between consecutive steps.
    x = sel.astype(float) - q
    pair_cov = (x.T @ x / steps)[np.triu_indices(n, 1)]
    assert abs(pair_cov.mean()) < 2e-4
    lag_cov = (x[1:] * x[:-1]).mean()
    assert abs(lag_cov) < 2e-3


def test_empty_batches_are_emitted_not_dropped():
    ds, info = S.index_batches(S.BatchConfig("poisson", batch_size=1, num_steps=60, seed=1), 20)
    batches = _steps(ds)
    assert [b["step"] for b in batches] == list(range(60))
    sizes = np.array([b["mask"].sum() for b in batches])
    assert (sizes == 0).sum() > 10  # P(empty) = 0.95^20 = 0.36
    assert info.is_poisson and info.sampling_rate == pytest.approx(0.05)
    assert "Poisson" in info.describe()


def test_overflowing_step_is_split_into_chunks_not_truncated():
    cfg = S.BatchConfig("poisson", batch_size=8, num_steps=20, sampling_key=(0, 1),
                        max_batch_size=5)
    ds, info = S.index_batches(cfg, 16)
    batches = _steps(ds)
    assert info.max_batch_size == 5 and info.overflow_probability > 0.1
    by_step = {}
    for b in batches:
        assert b["index"].shape == (5,)
        by_step.setdefault(b["step"], []).append(b)
    assert sorted(by_step) == list(range(20))
    assert any(len(v) > 1 for v in by_step.values())
    for t, chunks in by_step.items():
        assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
        assert all(c["num_chunks"] == len(chunks) for c in chunks)
        got = np.concatenate([c["index"][c["mask"] > 0] for c in chunks])
        np.testing.assert_array_equal(got, S.poisson_step_indices(16, 0.5, (0, 1), t).numpy())


def test_resume_reproduces_steps():
    cfg = S.BatchConfig("poisson", batch_size=4, num_steps=12, sampling_key=(9, 9))
    full = _steps(S.index_batches(cfg, 30)[0])
    resumed = _steps(S.index_batches(S.BatchConfig("poisson", batch_size=4, num_steps=12,
                                                   sampling_key=(9, 9), start_step=7), 30)[0])
    for a, b in zip(full[7:], resumed):
        np.testing.assert_array_equal(a["index"], b["index"])
    shuffled = S.BatchConfig("shuffled", batch_size=4, num_epochs=3, sampling_key=(2, 2))
    full = _steps(S.index_batches(shuffled, 10)[0])
    resumed = _steps(S.index_batches(S.BatchConfig("shuffled", batch_size=4, num_epochs=3,
                                                   sampling_key=(2, 2), start_step=3), 10)[0])
    assert len(full) == 6 and len(resumed) == 3
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a["index"], b["index"])


def test_shuffled_fixed_size_each_example_once_per_epoch():
    ds, info = S.index_batches(S.BatchConfig("shuffled", batch_size=3, num_epochs=2, seed=0), 10)
    batches = _steps(ds)
    assert len(batches) == 6 and all(b["index"].shape == (3,) for b in batches)
    epoch0 = np.concatenate([b["index"] for b in batches[:3]])
    assert len(set(epoch0)) == 9
    assert not info.is_poisson and "assumption" in info.describe()


def test_sequential_pads_the_last_batch():
    ds, _ = S.index_batches(S.BatchConfig("sequential", batch_size=4), 10)
    batches = _steps(ds)
    np.testing.assert_array_equal(batches[-1]["index"], [8, 9, -1, -1])
    np.testing.assert_array_equal(batches[-1]["mask"], [1, 1, 0, 0])


def test_max_batch_size_bound():
    m = S.poisson_max_batch_size(22000, 64 / 22000, 1e-9)
    from scipy.stats import binom
    assert binom.sf(m, 22000, 64 / 22000) < 1e-9 <= binom.sf(m - 1, 22000, 64 / 22000)


def test_config_validation():
    with pytest.raises(ValueError, match="num_steps"):
        S.BatchConfig("poisson", batch_size=4)
    with pytest.raises(ValueError, match="method"):
        S.BatchConfig("random", batch_size=4)


def test_shards_are_disjoint_and_their_union_is_the_unsharded_poisson_sample():
    n, b, steps, shards = 37, 6, 40, 3
    whole = _steps(S.index_batches(S.BatchConfig("poisson", batch_size=b, num_steps=steps,
                                                 sampling_key=(4, 4)), n)[0])
    parts = []
    for s in range(shards):
        ds, info = S.index_batches(S.BatchConfig("poisson", batch_size=b, num_steps=steps,
                                                 sampling_key=(4, 4), num_shards=shards,
                                                 shard_index=s), n)
        parts.append(_steps(ds))
        # Global q and steps; the width is sized for the shard's 13 examples, not all 37.
        assert info.sampling_rate == pytest.approx(b / n) and info.num_steps == steps
        assert info.num_shards == shards and "3 disjoint shards" in info.describe()
        assert info.max_batch_size < S.poisson_max_batch_size(n, b / n)
    for t in range(steps):
        want = np.concatenate([c["index"][c["mask"] > 0] for c in whole if c["step"] == t])
        got = [np.concatenate([c["index"][c["mask"] > 0] for c in p if c["step"] == t])
               for p in parts]
        for s, indices in enumerate(got):
            assert (indices % shards == s).all()          # each shard only its own examples
        np.testing.assert_array_equal(np.sort(np.concatenate(got)), want)


def test_shuffled_shards_split_each_global_batch():
    cfg = dict(batch_size=4, num_epochs=1, sampling_key=(2, 2))
    whole = _steps(S.index_batches(S.BatchConfig("shuffled", **cfg), 10)[0])
    halves = [_steps(S.index_batches(S.BatchConfig("shuffled", num_shards=2, shard_index=s,
                                                   **cfg), 10)[0]) for s in (0, 1)]
    for w, a, b in zip(whole, *halves):
        np.testing.assert_array_equal(np.concatenate([a["index"], b["index"]]), w["index"])
    with pytest.raises(ValueError, match="equal shards"):
        S.BatchConfig("shuffled", batch_size=5, num_shards=2)
    with pytest.raises(ValueError, match="not sharded"):
        S.BatchConfig("sequential", batch_size=4, num_shards=2)
    with pytest.raises(ValueError, match="shard_index"):
        S.BatchConfig("poisson", batch_size=4, num_steps=2, num_shards=2, shard_index=2)
