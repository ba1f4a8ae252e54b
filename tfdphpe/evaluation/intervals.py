"""Means over repeated runs (seeds) with Student-t confidence intervals."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided t-interval, n); the half-width is nan for n < 2."""
    from scipy import stats
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = sum(xs) / n
    if n < 2:
        return mean, float("nan"), n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n), n


def aggregate(rows: Sequence[dict], over: str, values: Sequence[str],
              confidence: float = 0.95) -> list[dict]:
    """Rows grouped by every key except ``over`` and ``values``: each value column becomes its
    mean, plus ``<column>_ci`` (the interval's half-width) and ``n`` (rows in the group)."""
    groups: dict = {}
    for row in rows:
        key = tuple(sorted((k, str(v)) for k, v in row.items()
                           if k != over and k not in values and k != "run"))
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        agg = {k: v for k, v in members[0].items() if k != over and k not in values
               and k != "run"}
        for col in values:
            got = [r[col] for r in members if r.get(col) is not None]
            agg[col], agg[f"{col}_ci"] = (mean_interval(got, confidence)[:2] if got
                                          else (None, None))
        agg["n"] = len(members)
        out.append(agg)
    return out
