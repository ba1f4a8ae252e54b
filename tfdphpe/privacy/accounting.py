"""Privacy accounting over dp_accounting, and the ledger saved with every checkpoint (DESIGN 2.5).

One step of every DP method is the subsampled Gaussian mechanism: the clipped sum has
L2 sensitivity C under add-or-remove-one adjacency (one example per microbatch) and gets
N(0, sigma^2 C^2) noise; projection and the public term are post-processing / public.

Sampling:

* ``"poisson"`` (default): each example joins a step's batch independently with probability
  q = B / N. The claimed epsilon is that of PoissonSampled(q, Gaussian(sigma)) composed ``steps``
  times.
* ``"shuffle"``: fixed-size batches of a shuffled epoch. Amplification by Poisson subsampling is
  not proven for this; like TF-Privacy's privacy statement we report both the Poisson-assumed
  figure and the figure with each example used once per epoch (ceil(epochs) compositions of the
  Gaussian mechanism without amplification), and we *claim the latter*.

Revealed sampling (``sampling_revealed=True``): when the released update can reveal which examples
a step sampled (Feature DP whose unclipped public term is summed over the private batch itself),
amplification by subsampling no longer holds in the exponent. Each step is then the Gaussian
mechanism applied with probability q *with the coin visible*, whose Renyi divergence of order a is
exactly log(1 - q + q * exp(a (a - 1) / (2 sigma^2))) / (a - 1); we compose that (RDP only).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

import dp_accounting
import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant

SAMPLINGS = ("poisson", "shuffle")
ACCOUNTANTS = ("rdp", "pld")
METHODS = ("none", "dpsgd", "pdpsgd", "fdp", "fpdp")


class BudgetExceededError(RuntimeError):
    """Raised when a step would take the ledger past its target epsilon."""


# --------------------------------------------------------------------------- validation

def _check_common(num_examples: int, batch_size: int, delta: float, sampling: str,
                  accountant: str) -> None:
    if int(num_examples) != num_examples or num_examples < 1:
        raise ValueError(f"num_examples must be a positive integer, got {num_examples}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if batch_size > num_examples:
        raise ValueError(f"batch_size ({batch_size}) cannot exceed num_examples ({num_examples})")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def sampling_probability(num_examples: int, batch_size: int) -> float:
    """q = B / N."""
    return batch_size / num_examples


def num_steps(num_examples: int, batch_size: int, epochs: Optional[float] = None,
              steps: Optional[int] = None) -> int:
    """Steps of a run given exactly one of ``epochs`` (ceil(epochs * N / B)) or ``steps``."""
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        return int(steps)
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    return int(math.ceil(epochs * num_examples / batch_size))


# --------------------------------------------------------------------------- events and epsilon

def poisson_event(noise_multiplier: float, q: float, steps: int) -> dp_accounting.DpEvent:
    """``steps`` compositions of the Poisson-subsampled Gaussian mechanism."""
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier))
    return dp_accounting.SelfComposedDpEvent(step, int(steps))


def once_per_epoch_event(noise_multiplier: float, num_examples: int, batch_size: int,
                         steps: int) -> dp_accounting.DpEvent:
    """Each example used once per epoch, no amplification: ceil(epochs) Gaussian mechanisms."""
    epochs = int(math.ceil(steps * batch_size / num_examples))
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    return dp_accounting.SelfComposedDpEvent(gaussian, epochs)


def make_accountant(accountant: str = "rdp") -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if accountant == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def event_epsilon(event: dp_accounting.DpEvent, delta: float, accountant: str = "rdp") -> float:
    return float(make_accountant(accountant).compose(event).get_epsilon(delta))


def revealed_sampling_rdp(q: float, noise_multiplier: float, orders=None) -> np.ndarray:
    """RDP of one step of the Gaussian mechanism applied with probability q, the coin revealed."""
    if orders is None:
        orders = rdp_privacy_accountant.DEFAULT_RDP_ORDERS
    orders = np.asarray(orders, np.float64)
    if noise_multiplier == 0:
        return np.full_like(orders, np.inf)
    gaussian = orders * (orders - 1) / (2.0 * noise_multiplier ** 2)   # (a - 1) * Gaussian RDP
    if q >= 1:
        return gaussian / (orders - 1)
    return np.logaddexp(np.log1p(-q), np.log(q) + gaussian) / (orders - 1)


def revealed_sampling_epsilon(noise_multiplier: float, q: float, steps: int, delta: float) -> float:
    """Epsilon of ``steps`` revealed-sampling steps (RDP; dp_accounting's orders and conversion)."""
    orders = rdp_privacy_accountant.DEFAULT_RDP_ORDERS
    rdp = steps * revealed_sampling_rdp(q, noise_multiplier, orders)
    return float(rdp_privacy_accountant.compute_epsilon(orders, rdp, delta)[0])


def _claimed_epsilon(noise_multiplier, num_examples, batch_size, steps, sampling, delta, accountant,
                     sampling_revealed=False) -> float:
    if sampling == "poisson":
        q = sampling_probability(num_examples, batch_size)
        if sampling_revealed:
            if accountant != "rdp":
                raise ValueError("revealed-sampling accounting needs accountant='rdp'")
            return revealed_sampling_epsilon(noise_multiplier, q, steps, delta)
        return event_epsilon(poisson_event(noise_multiplier, q, steps), delta, accountant)
    # Once per epoch without amplification: revealing the batch changes nothing here.
    return event_epsilon(once_per_epoch_event(noise_multiplier, num_examples, batch_size, steps),
                         delta, accountant)


@dataclasses.dataclass(frozen=True)
class PrivacyReport:
    """Epsilon of a run, with the assumption it rests on."""

    epsilon: float                  # the claimed figure
    epsilon_poisson: float          # assuming Poisson sampling with q = B / N
    epsilon_once_per_epoch: Optional[float]   # shuffle only: no amplification
    claimed: str                    # "poisson" or "once_per_epoch"
    noise_multiplier: float
    delta: float
    steps: int
    epochs: float
    sampling_probability: float
    sampling: str
    accountant: str
    num_examples: int
    batch_size: int
    sampling_revealed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def statement(self) -> str:
        lines = [f"DP-SGD over {self.num_examples} examples, expected batch {self.batch_size} "
                 f"(q = {self.sampling_probability:.6g}), noise multiplier "
                 f"{self.noise_multiplier:.6g}, {self.steps} steps ({self.epochs:.4g} epochs), "
                 f"{self.accountant.upper()} accounting, add-or-remove-one-example adjacency, "
                 "all intermediate models released."]
        if self.sampling == "poisson":
            lines.append(f"Poisson sampling: (epsilon = {self.epsilon:.4g}, "
                         f"delta = {self.delta:.3g})-DP.")
            if self.sampling_revealed:
                lines.append("The update may reveal which examples each step sampled (same-batch "
                             "public term): accounted without amplification by subsampling.")
        else:
            lines.append(f"Shuffled fixed-size batches: epsilon assuming Poisson sampling "
                         f"{self.epsilon_poisson:.4g} (not claimed: amplification by shuffling is "
                         f"not proven to match it); each example once per epoch: "
                         f"{self.epsilon_once_per_epoch:.4g} (claimed), delta = {self.delta:.3g}.")
        return "\n".join(lines)


def privacy_report(num_examples: int, batch_size: int, noise_multiplier: float, delta: float,
                   epochs: Optional[float] = None, steps: Optional[int] = None,
                   sampling: str = "poisson", accountant: str = "rdp",
                   sampling_revealed: bool = False) -> PrivacyReport:
    """All the figures of a run (see the module docstring for what is claimed)."""
    _check_common(num_examples, batch_size, delta, sampling, accountant)
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    steps = num_steps(num_examples, batch_size, epochs, steps)
    q = sampling_probability(num_examples, batch_size)
    run = (noise_multiplier, num_examples, batch_size, steps)
    eps_poisson = _claimed_epsilon(*run, "poisson", delta, accountant, sampling_revealed)
    eps_epoch = None
    if sampling == "shuffle":
        eps_epoch = _claimed_epsilon(*run, "shuffle", delta, accountant)
    poisson = sampling == "poisson"
    return PrivacyReport(
        epsilon=eps_poisson if poisson else eps_epoch, epsilon_poisson=eps_poisson,
        epsilon_once_per_epoch=eps_epoch, claimed="poisson" if poisson else "once_per_epoch",
        noise_multiplier=float(noise_multiplier), delta=float(delta), steps=steps,
        epochs=steps * batch_size / num_examples, sampling_probability=q, sampling=sampling,
        accountant=accountant, num_examples=int(num_examples), batch_size=int(batch_size),
        sampling_revealed=bool(sampling_revealed))


def compute_epsilon(num_examples: int, batch_size: int, noise_multiplier: float, delta: float,
                    epochs: Optional[float] = None, steps: Optional[int] = None,
                    sampling: str = "poisson", accountant: str = "rdp",
                    sampling_revealed: bool = False) -> float:
    """The claimed epsilon of a run ("shuffle": the once-per-epoch figure; see privacy_report)."""
    return privacy_report(num_examples, batch_size, noise_multiplier, delta, epochs, steps,
                          sampling, accountant, sampling_revealed).epsilon


def calibrate_noise_multiplier(num_examples: int, batch_size: int, target_epsilon: float,
                               delta: float, epochs: Optional[float] = None,
                               steps: Optional[int] = None,
                               sampling: str = "poisson", accountant: str = "rdp",
                               tolerance: float = 1e-3, sampling_revealed: bool = False) -> float:
    """A sigma whose claimed epsilon is in [target * (1 - tolerance), target].

    Regula falsi (Illinois variant) on log(epsilon) over a bracket, stopping on the epsilon
    tolerance rather than on sigma: PLD epsilons are step functions of sigma (discretisation), on
    which Brent's method (``dp_accounting.calibrate_dp_mechanism``) needs some 20 slow evaluations.
    """
    _check_common(num_examples, batch_size, delta, sampling, accountant)
    if not target_epsilon > 0:
        raise ValueError(f"target_epsilon must be > 0, got {target_epsilon}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    steps = num_steps(num_examples, batch_size, epochs, steps)

    def gap(sigma: float) -> float:   # log(epsilon / target): decreasing in sigma
        eps = _claimed_epsilon(sigma, num_examples, batch_size, steps, sampling, delta, accountant,
                               sampling_revealed)
        return math.log(max(eps, 1e-300)) - math.log(target_epsilon)

    # Bracket: gap(low) > 0 >= gap(high). PLD is slow at small sigma and never looser than RDP, so
    # its bracket starts at the RDP answer.
    high, shrink = 1.0, 0.5
    if accountant == "pld" and not sampling_revealed:
        high = calibrate_noise_multiplier(num_examples, batch_size, target_epsilon, delta,
                                          steps=steps, sampling=sampling, accountant="rdp")
        shrink = 0.7
    g_high = gap(high)
    while g_high > 0:
        high *= 2.0
        if high > 1e6:
            raise ValueError(f"target_epsilon={target_epsilon} is out of reach (sigma > 1e6)")
        g_high = gap(high)
    low, g_low = high * shrink, gap(high * shrink)
    while g_low <= 0:
        high, g_high = low, g_low
        low *= shrink
        if low < 1e-4:
            return high   # even a tiny sigma meets the target (a huge budget)
        g_low = gap(low)
    floor = math.log(1.0 - tolerance)
    w_low, w_high, side = g_low, g_high, 0   # interpolation weights (Illinois halves a stale one)
    for _ in range(200):
        if g_high >= floor:
            return float(high)
        if math.isfinite(w_low):
            mid = high - w_high * (high - low) / (w_high - w_low)
            mid = min(max(mid, low + 1e-3 * (high - low)), high - 1e-3 * (high - low))
        else:
            mid = 0.5 * (low + high)
        g_mid = gap(mid)
        if g_mid > 0:
            low, g_low, w_low = mid, g_mid, g_mid
            if side == -1:
                w_high /= 2.0
            side = -1
        else:
            high, g_high, w_high = mid, g_mid, g_mid
            if side == 1:
                w_low /= 2.0
            side = 1
    raise RuntimeError("noise calibration did not converge")


# --------------------------------------------------------------------------- the ledger

@dataclasses.dataclass
class PrivacyLedger:
    """What a run has spent: enough to restate its guarantee at any step, and to stop in time.

    Save it with every checkpoint (``to_json``/``save``) and restore it on resume, so a resumed
    run continues its budget. Call ``record_step()`` *before* applying each step: it refuses
    (``BudgetExceededError``, nothing recorded) a step that would exceed ``target_epsilon``.
    """

    method: str
    noise_multiplier: float
    l2_norm_clip: float
    num_examples: int
    batch_size: int                  # expected batch size B; q = B / N
    delta: float
    target_epsilon: Optional[float] = None
    sampling: str = "poisson"
    accountant: str = "rdp"
    psi: Optional[str] = None        # description of the public view (fdp, fpdp)
    projection: Optional[str] = None  # description of S_pub / k / R (pdpsgd, fpdp)
    noise_key_secret: bool = True
    sampling_revealed: bool = False  # Feature DP with the public term from the private batch
    steps: int = 0
    version: int = 1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        _check_common(self.num_examples, self.batch_size, self.delta, self.sampling,
                      self.accountant)
        if self.method in ("fdp", "fpdp") and not self.psi:
            raise ValueError("Feature DP needs psi: a description of the public view psi(x)")
        if self.method != "none" and self.noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.method == "none" and self.target_epsilon is not None:
            raise ValueError("a non-private run (method 'none') has no epsilon budget")
        if self.target_epsilon is not None and not self.target_epsilon > 0:
            raise ValueError(f"target_epsilon must be > 0, got {self.target_epsilon}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.sampling_revealed and self.accountant != "rdp":
            raise ValueError("revealed-sampling accounting needs accountant='rdp'")
        self._max_steps_cache: dict = {}

    @classmethod
    def from_optimizer(cls, optimizer, num_examples: int, delta: float,
                       **kwargs) -> "PrivacyLedger":
        """A ledger whose sigma, C, B and method are read from a tfdphpe DP optimizer."""
        batch_size = optimizer.expected_batch_size
        given = kwargs.pop("batch_size", None)
        if batch_size is not None and given is not None and given != batch_size:
            raise ValueError(f"batch_size {given} differs from the optimizer's expected batch "
                             f"size {batch_size}")
        return cls(method=optimizer.method.value, noise_multiplier=optimizer.noise_multiplier,
                   l2_norm_clip=optimizer.l2_norm_clip, num_examples=num_examples,
                   batch_size=batch_size or given, delta=delta,
                   noise_key_secret=optimizer.noise_key_secret,
                   sampling_revealed=optimizer.sampling_revealed, **kwargs)

    @property
    def sampling_probability(self) -> float:
        return sampling_probability(self.num_examples, self.batch_size)

    @property
    def private(self) -> bool:
        return self.method != "none"

    def step_event(self) -> dp_accounting.DpEvent:
        """DpEvent of one step (Poisson-sampled Gaussian; NonPrivate for method "none").

        With ``sampling_revealed`` no dp_accounting event describes a step (its RDP is computed by
        ``revealed_sampling_rdp``), and this raises.
        """
        if not self.private:
            return dp_accounting.NonPrivateDpEvent()
        if self.sampling_revealed:
            raise ValueError("no DpEvent describes a revealed-sampling step; use epsilon()")
        gaussian = dp_accounting.GaussianDpEvent(self.noise_multiplier)
        return dp_accounting.PoissonSampledDpEvent(self.sampling_probability, gaussian)

    def epsilon(self, steps: Optional[int] = None) -> float:
        """Claimed epsilon after ``steps`` steps (default: the steps recorded so far)."""
        steps = self.steps if steps is None else int(steps)
        if not self.private:
            return math.inf
        if steps == 0:
            return 0.0
        return _claimed_epsilon(self.noise_multiplier, self.num_examples, self.batch_size, steps,
                                self.sampling, self.delta, self.accountant, self.sampling_revealed)

    def report(self, steps: Optional[int] = None) -> PrivacyReport:
        return privacy_report(self.num_examples, self.batch_size, self.noise_multiplier, self.delta,
                              steps=max(1, self.steps if steps is None else int(steps)),
                              sampling=self.sampling, accountant=self.accountant,
                              sampling_revealed=self.sampling_revealed)

    def max_steps(self) -> Optional[int]:
        """The most steps whose epsilon stays <= target_epsilon (None: no target)."""
        if self.target_epsilon is None:
            return None
        key = (self.target_epsilon, self.noise_multiplier, self.delta, self.sampling,
               self.accountant, self.num_examples, self.batch_size, self.sampling_revealed)
        if key not in self._max_steps_cache:
            self._max_steps_cache = {key: self._search_max_steps()}
        return self._max_steps_cache[key]

    def _search_max_steps(self) -> int:
        within = lambda s: self.epsilon(s) <= self.target_epsilon  # noqa: E731
        if not within(1):
            return 0
        low, high = 1, 2
        while within(high):
            low, high = high, high * 2
            if high > 1 << 40:
                return high
        while high - low > 1:     # epsilon grows with steps: bisection on the boundary
            mid = (low + high) // 2
            low, high = (mid, high) if within(mid) else (low, mid)
        return low

    def remaining_steps(self) -> Optional[int]:
        limit = self.max_steps()
        return None if limit is None else max(0, limit - self.steps)

    def can_step(self, n: int = 1) -> bool:
        limit = self.max_steps()
        return limit is None or self.steps + n <= limit

    def record_step(self, n: int = 1) -> int:
        """Records n steps, or raises BudgetExceededError without recording anything."""
        if not self.can_step(n):
            raise BudgetExceededError(
                f"{self.steps + n} steps would exceed target epsilon {self.target_epsilon} "
                f"(epsilon after {self.steps} steps: {self.epsilon():.4g}; at most "
                f"{self.max_steps()} steps fit); stop training")
        self.steps += n
        return self.steps

    def statement(self) -> str:
        """The privacy statement of the run so far, in words."""
        if not self.private:
            return "Non-private training (method 'none'): no differential privacy guarantee."
        head = {"dpsgd": "DP-SGD", "pdpsgd": "Projected DP-SGD (projection onto a public gradient "
                "subspace is post-processing and costs no privacy)", "fdp": "Feature DP",
                "fpdp": "Feature-Projective DP"}[self.method]
        lines = [f"{head}: clip norm C = {self.l2_norm_clip:g}, "
                 f"noise multiplier {self.noise_multiplier:.6g}.", self.report().statement()]
        if self.method in ("fdp", "fpdp"):
            lines.append(f"The guarantee is Feature DP: it protects the private part of each "
                         f"example beyond its public view psi = {self.psi}; psi(x) (including the "
                         "labels it carries) is treated as public and is not protected.")
        if self.projection:
            lines.append(f"Public subspace: {self.projection}.")
        if not self.noise_key_secret:
            lines.append("WARNING: the noise was seeded reproducibly; anyone who knows the seed "
                         "can remove it, and the guarantee then does not hold.")
        if self.target_epsilon is not None:
            lines.append(f"Target epsilon {self.target_epsilon:g}: at most {self.max_steps()} "
                         "steps.")
        return "\n".join(lines)

    def same_configuration(self, other: "PrivacyLedger") -> bool:
        """True if ``other`` accounts for the same run (every field but the step count)."""
        return self.to_dict() | {"steps": 0} == other.to_dict() | {"steps": 0}

    # serialisation
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PrivacyLedger":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ledger fields {sorted(unknown)}")
        if data.get("version", 1) != 1:
            raise ValueError(f"unsupported ledger version {data.get('version')}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "PrivacyLedger":
        return cls.from_dict(json.loads(text))

    def save(self, path: str) -> None:
        """Writes the ledger atomically (a temporary file renamed over ``path``)."""
        import tensorflow as tf  # gfile: works for local paths and GCS alike
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            f.write(self.to_json())
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)

    @classmethod
    def load(cls, path: str) -> "PrivacyLedger":
        import tensorflow as tf
        with tf.io.gfile.GFile(path, "r") as f:
            return cls.from_json(f.read())
