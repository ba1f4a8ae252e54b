"""Means and t-intervals over seeds."""

import math

import pytest

from tfdphpe.evaluation.intervals import aggregate, mean_interval


def test_mean_interval_is_students_t():
    mean, half, n = mean_interval([1.0, 2.0, 3.0, 4.0])
    # sd = 1.291, t(0.975, 3) = 3.1824
    assert (mean, n) == (2.5, 4) and half == pytest.approx(3.1824 * 1.2910 / 2, rel=1e-4)
    assert math.isnan(mean_interval([5.0])[1])
    with pytest.raises(ValueError):
        mean_interval([])


def test_aggregate_groups_by_everything_but_the_seed():
    rows = [{"run": f"r{s}{m}", "method": m, "seed": s, "Mean": 10.0 * s + (m == "b"),
             "steps": None} for s in range(3) for m in ("a", "b")]
    out = {r["method"]: r for r in aggregate(rows, over="seed", values=("Mean", "steps"))}
    assert set(out) == {"a", "b"} and out["b"]["Mean"] == 11.0 and out["a"]["n"] == 3
    assert out["a"]["steps"] is None and "seed" not in out["a"] and "run" not in out["a"]
