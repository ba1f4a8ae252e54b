"""The one-run audit's statistics: an epsilon lower bound from canary guesses (Steinke, Nasr and
Jagielski 2023, "Privacy auditing with one (1) training run"); see the package docstring.

For an (epsilon, delta)-DP run the number W of correct guesses among r guesses about m canaries
is, for delta = 0, stochastically dominated by Binomial(r, e^eps / (1 + e^eps)); with delta > 0,
for f(v) = P[Binomial(r, p_eps) >= v],

    P[W >= v] <= f(v) + 2 m delta * max_{i = 1..v} (f(v - i) - f(v)) / i

We require 2 m delta < 1: then the right-hand side increases with epsilon, so the set of rejected
epsilons is an interval [0, bound) and the bound is one root. Several guess counts are each tested
at beta / (number of counts) (Bonferroni); they are fixed before the run, never chosen from the
scores.

Tests: tests/privacy/test_audit.py.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
from scipy import optimize, special, stats

DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _check_counts(num_guesses: int, num_correct: int, num_canaries: int) -> None:
    if not 0 <= num_correct <= num_guesses <= num_canaries:
        raise ValueError(f"need 0 <= correct ({num_correct}) <= guesses ({num_guesses}) <= "
                         f"canaries ({num_canaries})")


def p_value(num_guesses: int, num_correct: int, num_canaries: int, epsilon: float,
            delta: float = 0.0) -> float:
    """P[>= num_correct correct guesses] allowed by an (epsilon, delta)-DP run (module docstring)."""
    _check_counts(num_guesses, num_correct, num_canaries)
    r, v = int(num_guesses), int(num_correct)
    p = special.expit(epsilon)               # e^eps / (1 + e^eps): eps-DP randomized response
    tail = float(stats.binom.sf(v - 1, r, p))
    if delta == 0 or v == 0:
        return tail
    shifts = np.arange(1, v + 1)
    alpha = float(np.max((stats.binom.sf(v - shifts - 1, r, p) - tail) / shifts))
    return min(1.0, tail + 2.0 * num_canaries * delta * alpha)


def epsilon_lower_bound(num_guesses: int, num_correct: int, num_canaries: int,
                        delta: float = 0.0, beta: float = 0.05) -> float:
    """The largest epsilon whose (epsilon, delta) claim ``num_correct`` of ``num_guesses``
    rejects at significance ``beta`` (0 if none); a (1 - beta)-confidence lower bound."""
    _check_counts(num_guesses, num_correct, num_canaries)
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    if not 0 <= delta or 2 * num_canaries * delta >= 1:
        raise ValueError(f"need 0 <= delta and 2 * m * delta < 1 (m = {num_canaries}), got "
                         f"delta = {delta}: the bound is vacuous for so many canaries")

    def excess(eps):   # < 0 where the claim is rejected; increasing in eps
        return p_value(num_guesses, num_correct, num_canaries, eps, delta) - beta

    if excess(0.0) >= 0:
        return 0.0
    high = 1.0
    while excess(high) < 0:
        high *= 2.0
        if high > 1e3:     # cannot happen for r >= 1: f(v) -> 1 as eps grows
            return math.inf
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-6, rtol=1e-10))


@dataclasses.dataclass(frozen=True)
class Guesses:
    """One guess count and its outcome."""

    k_plus: int
    k_minus: int
    correct: int
    epsilon_lower_bound: float

    @property
    def guesses(self) -> int:
        return self.k_plus + self.k_minus


def guess_counts(num_canaries: int,
                 fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """(k+, k-) pairs guessing a fraction of the canaries, half at each end of the ranking."""
    counts = []
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"guess fractions must be in (0, 1], got {f}")
        r = min(num_canaries, max(2, int(round(f * num_canaries))))
        pair = (r - r // 2, r // 2)
        if pair not in counts:
            counts.append(pair)
    return counts


def draw_coins(num_canaries: int, seed: int) -> np.ndarray:
    """The secret coins: +1 (canary included) or -1, independent and fair."""
    return np.where(np.random.default_rng([seed, 1]).random(num_canaries) < 0.5, 1, -1)


def bound_from_scores(scores: np.ndarray, coins: np.ndarray, delta: float, beta: float = 0.05,
                      counts: Optional[Sequence[tuple[int, int]]] = None,
                      seed: int = 0) -> Guesses:
    """The best bound over ``counts`` (each tested at beta / len(counts)).

    Ties in the scores (e.g. the many exact zeros of a noiseless run) are broken at random, so
    the ranking carries no information but the scores'.
    """
    scores, coins = np.asarray(scores, np.float64), np.asarray(coins)
    m = len(scores)
    if coins.shape != scores.shape or not np.all(np.isin(coins, (-1, 1))):
        raise ValueError("coins must be +-1, one per score")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    counts = list(counts) if counts is not None else guess_counts(m)
    order = np.lexsort((np.random.default_rng([seed, 3]).random(m), scores))   # ascending
    level = beta / len(counts)
    best = None
    for k_plus, k_minus in counts:
        if k_plus + k_minus > m or min(k_plus, k_minus) < 0:
            raise ValueError(f"guess count ({k_plus}, {k_minus}) for {m} canaries")
        top, bottom = order[m - k_plus:], order[:k_minus]
        correct = int(np.sum(coins[top] == 1) + np.sum(coins[bottom] == -1))
        bound = epsilon_lower_bound(k_plus + k_minus, correct, m, delta, level)
        guess = Guesses(k_plus, k_minus, correct, bound)
        # Ties (e.g. every bound 0) go to the most guesses: the most telling accuracy to report.
        if best is None or (bound, guess.guesses) > (best.epsilon_lower_bound, best.guesses):
            best = guess
    return best
