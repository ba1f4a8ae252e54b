"""Empirical privacy audit in one training run: an epsilon lower bound from canaries.

The claimed (epsilon, delta) is an upper bound proven on paper. This module measures a *lower*
bound, after Steinke, Nasr and Jagielski (2023, "Privacy auditing with one (1) training run"):

1. m canaries, each included in the training set by a secret fair coin S_i in {-1, +1};
2. one training run of the real optimizer, sampler and accountant;
3. a score per canary (larger = "looks included"); the auditor guesses +1 for the k+ highest
   scores, -1 for the k- lowest and abstains on the rest: r = k+ + k- guesses, v correct;
4. for an (epsilon, delta)-DP run the number of correct guesses is (for delta = 0 exactly,
   for delta > 0 up to the paper's delta term) no more likely to be large than for
   Binomial(r, e^eps / (1 + e^eps)). The lower bound is the largest epsilon whose claim the
   observed v rejects at significance ``beta`` (``epsilon_lower_bound``).

With delta > 0 the tail is the paper's approximate-DP bound: for W the number of correct guesses
and f(v) = P[Binomial(r, p_eps) >= v],

    P[W >= v] <= f(v) + 2 m delta * max_{i = 1..v} (f(v - i) - f(v)) / i

(m counts every canary, guessed or not). We require 2 m delta < 1: then the right-hand side
increases with epsilon (each term f(v) + 2 m delta (f(v - i) - f(v)) / i has derivative
r * pmf(v - 1) * (1 - 2 m delta / i) + 2 m delta * r * pmf(v - i - 1) / i > 0 in p), so the set of
rejected epsilons is an interval [0, bound) and the bound is one root.

Several guess counts (k+, k-) may be tried; each is tested at beta / (number of counts)
(Bonferroni), so the maximum over them is still a (1 - beta)-confidence bound. The counts are
fixed before the run (``guess_fractions``), never chosen from the scores.

Two kinds of canaries (docs/privacy.md, "Empirical audit"):

* white-box (``WhiteBoxAudit``): canary j is an example whose loss is
  ``scale * C * u_j``, u the weight vector of one extra ``Dense(1, use_bias=False)`` layer on a
  one-hot input that only canaries carry. Its gradient is the Dirac vector scale * C * e_j (norm
  scale * C >= C, so the clip brings it back to exactly C * e_j); it goes through the same
  loss_fn / batch / mask / Poisson path as the real examples, so clipping (either path), noise,
  sampling and accounting are all the real ones. Score: the step sum of the update's component
  along e_j, read from the released weights (u_0 - u_T, SGD) and from the noised sum before any
  projection (``add_noise``'s output).
* black-box (``BlackBoxAudit``): canaries are ordinary (e.g. mislabelled) examples; score: the
  drop of the canary's loss from the initial to the final model.

Projected methods release V V^T (noised sum). V comes from public gradients, which have no
component on the canary coordinates, so a Dirac canary and the noise on its coordinate are
erased from the release: the released-update bound is 0 by construction and says nothing. The
guarantee is proven for the noised sum before projection (projection is post-processing), so
for pdpsgd/fpdp the audited figure is the bound from that sum (``AuditResult.audited``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import tensorflow as tf
from scipy import optimize, special, stats

from tfdphpe.privacy import accounting, optimizers
from tfdphpe.privacy.sampling import (PUBLIC_VIEW_STREAM, derived_key, poisson_step_indices,
                                      reproducible_sampling_key)

DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
CANARY_INPUT = "audit_canary"       # white-box: scale * C * one-hot row, zero for real examples
IS_CANARY = "audit_is_canary"       # white-box: 1.0 for canary rows


# --------------------------------------------------------------------------- the bound
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


# --------------------------------------------------------------------------- a one-run audit
@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """One audited run.

    Attributes:
      method: "dpsgd", "pdpsgd", "fdp" or "fpdp".
      clipping: "vectorized" or "ghost".
      target_epsilon: the claim; sigma is calibrated to it (RDP, Poisson, ``steps`` steps).
      delta: the claim's delta (also the audit's).
      num_canaries: m.
      batch_size: expected batch B over n real examples + m canaries: q = B / (n + m).
      steps: training steps.
      l2_norm_clip: C.
      learning_rate: plain SGD (the released score is then linear in the noised sums).
      projection_dim, refresh_every: pdpsgd/fpdp: k directions of V, refreshed every R steps.
      canary_scale: white-box: the canary's raw gradient norm in units of C (>= 1; the clip
        brings it back to C; above 10 it also exposes a clip bound 10x too loose).
      beta: significance of the bound (confidence 1 - beta).
      guess_fractions: fractions of m to guess (see ``guess_counts``), fixed in advance.
      seed: coins, sampling, noise and tie-breaking (the noise and sampling keys are then *not*
        secret: fine for an audit, where the auditor never reads them).
    """

    method: str = "dpsgd"
    clipping: str = "vectorized"
    target_epsilon: float = 1.0
    delta: float = 1e-5
    num_canaries: int = 256
    batch_size: int = 32
    steps: int = 40
    l2_norm_clip: float = 1.0
    learning_rate: float = 0.1
    projection_dim: int = 4
    refresh_every: int = 10
    canary_scale: float = 100.0
    beta: float = 0.05
    guess_fractions: tuple = DEFAULT_GUESS_FRACTIONS
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("dpsgd", "pdpsgd", "fdp", "fpdp"):
            raise ValueError(f"method must be dpsgd, pdpsgd, fdp or fpdp, got {self.method!r}")
        if self.num_canaries < 2:
            raise ValueError("num_canaries must be >= 2")
        if self.canary_scale < 1:
            raise ValueError("canary_scale must be >= 1 (a canary below C is not clipped)")
        if 2 * self.num_canaries * self.delta >= 1:
            raise ValueError("2 * num_canaries * delta must be < 1")

    @property
    def projected(self) -> bool:
        return self.method in ("pdpsgd", "fpdp")

    @property
    def feature_dp(self) -> bool:
        return self.method in ("fdp", "fpdp")


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """What one audit measured, beside what was claimed."""

    kind: str                       # "white-box" or "black-box"
    config: AuditConfig
    claimed_epsilon: float
    noise_multiplier: float
    sampling_rate: float
    num_real: int
    num_included: int
    released: Guesses               # scores from the released model
    noised_sum: Optional[Guesses]   # white-box: scores from the noised sum before projection
    seconds: float

    @property
    def audited(self) -> Guesses:
        """The figure held against the claim: for projected methods, the pre-projection sum."""
        if self.config.projected and self.noised_sum is not None:
            return self.noised_sum
        return self.released

    @property
    def epsilon_lower_bound(self) -> float:
        return self.audited.epsilon_lower_bound

    def row(self) -> dict[str, Any]:
        a, c = self.audited, self.config
        return {"kind": self.kind, "method": c.method, "clipping": c.clipping,
               "claimed_eps": self.claimed_epsilon, "delta": c.delta,
               "sigma": self.noise_multiplier, "q": self.sampling_rate, "steps": c.steps,
               "m": c.num_canaries, "r": a.guesses, "correct": a.correct,
               "bound": a.epsilon_lower_bound,
               "released_bound": self.released.epsilon_lower_bound, "seconds": self.seconds}


Sampler = Callable[[int, float, Any, Any], Any]   # (num_examples, q, key, step) -> indices


def _take(data: dict, index: np.ndarray) -> dict:
    return {k: v[index] for k, v in data.items()}


def _concat(parts: Sequence[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _rows(data: Any) -> int:
    return int(len(next(iter(data.values()))))


class CanaryAudit:
    """The shared run: coins, training set, calibration, the training loop, the bound.

    Subclasses say what a canary is (``_canary_rows``), how a row's loss is computed
    (``loss``) and how canaries are scored. Two methods are the seams tests use to inject a
    defect on purpose: ``make_optimizer`` and ``step_indices``.

    Args:
      config: the run (``AuditConfig``).
      model: the Keras model that ``loss_fn`` runs.
      loss_fn: batch -> per-example losses [B] on the private input.
      data: the real training examples: dict of numpy arrays with leading dimension n.
      public_loss_fn: fdp/fpdp: batch -> per-example losses on the public view psi(x).
      public_data: pdpsgd/fpdp: S_pub, the public examples V is computed from (same keys).
      sampler: (num_examples, q, key, step) -> indices of one Poisson step; default the
        trainer's own ``tfdphpe.privacy.sampling.poisson_step_indices`` (so the audit exercises
        the sampling that training uses rather than a copy of it), keyed from the seed.
    """

    kind = "audit"

    def __init__(self, config: AuditConfig, model, loss_fn, data: dict,
                 public_loss_fn=None, public_data: Optional[dict] = None,
                 sampler: Optional[Sampler] = None):
        if config.feature_dp and public_loss_fn is None:
            raise ValueError(f"{config.method} needs public_loss_fn")
        if config.projected and public_data is None:
            raise ValueError(f"{config.method} needs public_data (S_pub)")
        self.config = config
        self.model = model
        self.user_loss_fn = loss_fn
        self.user_public_loss_fn = public_loss_fn
        self.data = {k: np.asarray(v) for k, v in data.items()}
        self.public_data = public_data
        self.sampler = sampler or poisson_step_indices
        self.sampling_key = reproducible_sampling_key(config.seed)
        self.num_real = _rows(self.data)
        self.coins = draw_coins(config.num_canaries, config.seed)
        self.train_set: dict = {}
        self.canary_rows = np.zeros([0], np.int64)   # rows of train_set holding canaries

    # ----------------------------------------------------------------- what subclasses say
    @property
    def var_list(self) -> list:
        return list(self.model.trainable_variables)

    @property
    def layers(self):
        """What ghost clipping records: the Keras object owning var_list."""
        return self.model

    def loss(self, batch):
        return self.user_loss_fn(batch)

    def public_loss(self, batch):
        return self.user_public_loss_fn(batch)

    def _canary_rows(self, included: np.ndarray) -> dict:
        raise NotImplementedError

    def _before_training(self) -> None:
        pass

    def scores(self) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(scores from the released model, scores from the noised sum or None), after a run."""
        raise NotImplementedError

    # ----------------------------------------------------------------- the seams
    def make_optimizer(self, noise_multiplier: float, l2_norm_clip: Optional[float] = None):
        """The optimizer of the run; C defaults to the config's (tests override this)."""
        c = self.config
        return optimizers.make_optimizer(
            c.method, l2_norm_clip=l2_norm_clip or c.l2_norm_clip,
            noise_multiplier=noise_multiplier,
            learning_rate=c.learning_rate, optimizer="sgd",
            expected_batch_size=c.batch_size, projection_dim=c.projection_dim,
            refresh_every=c.refresh_every, seed=c.seed + 2, clipping=c.clipping)

    def step_indices(self, step: int) -> np.ndarray:
        """Rows of ``train_set`` in step ``step``: Poisson, probability q each, by the sampler."""
        n = _rows(self.train_set)
        return np.asarray(self.sampler(n, self.sampling_rate, self.sampling_key, step))

    def public_view_indices(self, step: int) -> np.ndarray:
        """fdp/fpdp: rows whose public views make the public term: an independent Poisson draw."""
        n = _rows(self.train_set)
        key = derived_key(self.sampling_key, PUBLIC_VIEW_STREAM)
        return np.asarray(self.sampler(n, self.sampling_rate, key, step))

    # ----------------------------------------------------------------- the run
    @property
    def nominal_examples(self) -> int:
        """n + m: the data set size the claim is computed for (q = B / (n + m))."""
        return self.num_real + self.config.num_canaries

    @property
    def sampling_rate(self) -> float:
        return self.config.batch_size / self.nominal_examples

    def claim(self) -> tuple[float, float]:
        """(sigma calibrated to the target, the claimed epsilon), from the real accountant."""
        c = self.config
        n = self.nominal_examples
        sigma = accounting.calibrate_noise_multiplier(n, c.batch_size, c.target_epsilon, c.delta,
                                                   steps=c.steps)
        return sigma, accounting.compute_epsilon(n, c.batch_size, sigma, c.delta, steps=c.steps)

    def run(self, log: Callable[[str], None] = lambda line: None) -> AuditResult:
        t0 = time.time()
        c = self.config
        included = self.coins == 1
        canaries = self._canary_rows(included)
        self.train_set = _concat([self._real_rows(), canaries])
        self.canary_rows = self.num_real + np.arange(_rows(canaries))
        sigma, claimed = self.claim()
        opt = self.make_optimizer(sigma)
        self._before_training()
        log(f"scored the canaries before training ({time.time() - t0:.1f} s so far)")
        log(f"{self.kind} {c.method}/{c.clipping}: claimed epsilon {claimed:.3f} "
            f"(sigma {sigma:.4f}, q {self.sampling_rate:.4g}, {c.steps} steps, "
            f"{int(included.sum())} of {c.num_canaries} canaries in)")
        self._train(opt, log)
        released, noised = self.scores()
        guess = lambda s: bound_from_scores(s, self.coins, c.delta, c.beta,  # noqa: E731
                                            guess_counts(c.num_canaries, c.guess_fractions),
                                            c.seed)
        return AuditResult(
            kind=self.kind, config=c, claimed_epsilon=float(claimed),
            noise_multiplier=float(sigma), sampling_rate=self.sampling_rate,
            num_real=self.num_real, num_included=int(included.sum()),
            released=guess(released), noised_sum=None if noised is None else guess(noised),
            seconds=time.time() - t0)

    def _real_rows(self) -> dict:
        return self.data

    def _public_rows(self) -> dict:
        return self.public_data

    def _padded(self, index: np.ndarray, width: int) -> tuple[dict, np.ndarray]:
        mask = np.zeros([width], np.float32)
        mask[:len(index)] = 1.0
        full = np.zeros([width], np.int64)
        full[:len(index)] = index
        return _take(self.train_set, full), mask

    def _train(self, opt, log) -> None:
        c = self.config
        loss_fn = self.loss    # one object: refresh_subspace caches its trace per loss_fn
        var_list = self.var_list
        layers = self.layers if c.clipping == "ghost" else None
        steps = [self.step_indices(t) for t in range(c.steps)]
        views = [self.public_view_indices(t) for t in range(c.steps)] if c.feature_dp else None
        # One static width for every step (the largest Poisson batch drawn): one trace, no
        # example dropped, so the sampling stays exactly what the sampler drew.
        width = max([1] + [len(s) for s in steps] + [len(v) for v in views or []])

        @tf.function
        def step(batch, mask, public_batch, public_mask):
            kwargs = {}
            if c.feature_dp:
                kwargs = dict(public_loss_fn=self.public_loss, public_batch=public_batch,
                              public_batch_mask=public_mask)
            grads = opt.dp_gradients(loss_fn, batch, var_list, batch_mask=mask, layers=layers,
                                     **kwargs)
            opt.apply_gradients(zip(grads, var_list))

        public = self._public_rows() if c.projected else None
        start = time.time()
        for t in range(c.steps):
            if c.projected and opt.subspace_due():
                opt.refresh_subspace(loss_fn, public, var_list, layers=layers)
            batch, mask = self._padded(steps[t], width)
            public_batch, public_mask = (self._padded(views[t], width) if c.feature_dp
                                         else (None, None))
            step(batch, mask, public_batch, public_mask)
            if (t + 1) % max(1, c.steps // 5) == 0 or t + 1 == c.steps:
                log(f"  step {t + 1}/{c.steps} ({time.time() - start:.1f} s)")


class WhiteBoxAudit(CanaryAudit):
    """Dirac gradient canaries (module docstring): one extra weight per canary.

    The audited parameter vector is the model's trainable weights plus u (m numbers, a
    ``Dense(1, use_bias=False)`` layer that only canary rows reach). A canary row's loss is
    u . (scale * C * e_j) = scale * C * u_j; a real row's loss is ``loss_fn``'s. Real and public
    rows carry a zero canary input, so they never move u (nor does V span it).
    """

    kind = "white-box"

    def __init__(self, config: AuditConfig, model, loss_fn, data: dict, **kwargs):
        super().__init__(config, model, loss_fn, data, **kwargs)
        m = config.num_canaries
        self.canary = tf.keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                            name="audit_canaries")
        self.canary.build((None, m))
        self._layers = _AuditedModel(model, self.canary)
        self._noised = tf.Variable(tf.zeros([m, 1]), trainable=False, name="audit_noised_sum")
        self._u0: Optional[np.ndarray] = None

    @property
    def var_list(self) -> list:
        return list(self.model.trainable_variables) + [self.canary.kernel]

    @property
    def layers(self):
        return self._layers

    def loss(self, batch):
        real = self.user_loss_fn(batch)
        canary = self.canary(batch[CANARY_INPUT])[:, 0]
        return tf.where(batch[IS_CANARY] > 0, canary, real)

    def public_loss(self, batch):
        # psi(canary) carries nothing: a canary's whole record is its private part.
        public = self.user_public_loss_fn(batch)
        return tf.where(batch[IS_CANARY] > 0, tf.zeros_like(public), public)

    def _with_canary_keys(self, rows: dict, canary_input: np.ndarray, is_canary: float) -> dict:
        n = _rows(rows)
        return dict(rows, **{CANARY_INPUT: canary_input.astype(np.float32),
                             IS_CANARY: np.full([n], is_canary, np.float32)})

    def _real_rows(self) -> dict:
        n, m = self.num_real, self.config.num_canaries
        return self._with_canary_keys(self.data, np.zeros([n, m]), 0.0)

    def _public_rows(self) -> dict:
        public = {k: np.asarray(v) for k, v in self.public_data.items()}
        return self._with_canary_keys(public, np.zeros([_rows(public), self.config.num_canaries]),
                                      0.0)

    def _canary_rows(self, included: np.ndarray) -> dict:
        # An excluded canary is simply absent (its record would be zero under either adjacency).
        ids = np.flatnonzero(included)
        c = self.config
        one_hot = np.zeros([len(ids), c.num_canaries])
        one_hot[np.arange(len(ids)), ids] = c.canary_scale * c.l2_norm_clip
        filler = _take(self.data, np.zeros([len(ids)], np.int64))   # never reaches the loss
        return self._with_canary_keys(filler, one_hot, 1.0)

    def make_optimizer(self, noise_multiplier: float, l2_norm_clip: Optional[float] = None):
        return self._tap(super().make_optimizer(noise_multiplier, l2_norm_clip))

    def _tap(self, opt):
        """Also accumulates the noised sum's canary coordinates, before any projection.

        Wraps ``add_noise`` on this optimizer instance only: it returns the same tensors, so
        the update is unchanged (a test checks the released and tapped scores agree for dpsgd).
        """
        add_noise, accumulator, index = opt.add_noise, self._noised, len(self.var_list) - 1

        def tapped(clipped_sum):
            noised = add_noise(clipped_sum)
            accumulator.assign_add(noised[index])
            return noised

        opt.add_noise = tapped
        return opt

    def _before_training(self) -> None:
        self._u0 = self.canary.kernel.numpy()[:, 0].astype(np.float64)
        self._noised.assign(np.zeros_like(self._noised.numpy()))

    def scores(self):
        u = self.canary.kernel.numpy()[:, 0].astype(np.float64)
        return self._u0 - u, self._noised.numpy()[:, 0].astype(np.float64)


class _AuditedModel(tf.keras.layers.Layer):
    """Owns the model and the canary layer, so ghost clipping finds both (never called)."""

    def __init__(self, model, canary, **kwargs):
        super().__init__(name="audited_model", **kwargs)
        self.model, self.canary = model, canary

    def get_config(self):
        raise NotImplementedError("an audit's container is not serialised")


class BlackBoxAudit(CanaryAudit):
    """Canary examples (e.g. mislabelled people); score = loss drop, initial to final model.

    Args (beyond ``CanaryAudit``'s):
      canaries: m candidate canary examples (same keys as ``data``).
      public_view_keys: fdp/fpdp: {private key: public key}, e.g. {"image": "public_image"}.
        Feature DP protects only the private part of an example, so an excluded canary stays in
        the data set with its private part replaced by its public view (then its record is 0 and
        its public term the same in both worlds): the adjacency the claim is made for.
      score_batch_size: examples per loss evaluation when scoring.
    """

    kind = "black-box"

    def __init__(self, config: AuditConfig, model, loss_fn, data: dict, canaries: dict,
                 public_view_keys: Optional[dict] = None, score_batch_size: int = 64, **kwargs):
        super().__init__(config, model, loss_fn, data, **kwargs)
        self.canaries = {k: np.asarray(v) for k, v in canaries.items()}
        if _rows(self.canaries) != config.num_canaries:
            raise ValueError(f"{_rows(self.canaries)} canaries given, config says "
                             f"{config.num_canaries}")
        if config.feature_dp and not public_view_keys:
            raise ValueError("fdp/fpdp black-box audits need public_view_keys")
        self.public_view_keys = dict(public_view_keys or {})
        self.score_batch_size = int(score_batch_size)
        self._before: Optional[np.ndarray] = None

    def _canary_rows(self, included: np.ndarray) -> dict:
        if not self.config.feature_dp:
            return _take(self.canaries, np.flatnonzero(included))
        rows = dict(self.canaries)
        for private, public in self.public_view_keys.items():
            rows[private] = np.where(
                included.reshape([-1] + [1] * (rows[private].ndim - 1)),
                rows[private], rows[public])
        return rows

    def canary_losses(self) -> np.ndarray:
        out = []
        for i in range(0, self.config.num_canaries, self.score_batch_size):
            chunk = _take(self.canaries, np.arange(i, min(i + self.score_batch_size,
                                                         self.config.num_canaries)))
            out.append(np.asarray(self.user_loss_fn(chunk), np.float64))
        return np.concatenate(out)

    def _before_training(self) -> None:
        self._before = self.canary_losses()

    def scores(self):
        return self._before - self.canary_losses(), None
