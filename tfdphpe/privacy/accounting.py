"""Privacy accounting over dp_accounting (DESIGN 2.5); the ledger is in ``ledger.py``.

One step of every DP method is the subsampled Gaussian mechanism: the clipped sum has
L2 sensitivity C under add-or-remove-one-unit adjacency (one record per privacy unit: an example,
or all of a person's or video's examples averaged into one record) and gets N(0, sigma^2 C^2)
noise; projection and the public term are post-processing / public. N and B below count units.

Sampling:

* ``"poisson"`` (default): each example joins a step's batch independently with probability
  q = B / N. The claimed epsilon is that of PoissonSampled(q, Gaussian(sigma)) composed ``steps``
  times.
* ``"shuffle"``: fixed-size batches of a shuffled epoch. Amplification by Poisson subsampling is
  not proven for this; like TF-Privacy's privacy statement we report both the Poisson-assumed
  figure and the figure with each example used once per epoch (ceil(epochs) compositions of the
  Gaussian mechanism without amplification), and we *claim the latter*.

Revealed sampling (``sampling_revealed=True``): when the released update can reveal which units
a step sampled (Feature DP whose unclipped public term is summed over the private batch itself),
or the sampling coins can be recomputed (they follow from a seed rather than a secret key),
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
    num_examples: int               # N: the number of privacy units
    batch_size: int                 # B: expected units per step
    sampling_revealed: bool = False
    unit: str = "example"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def statement(self) -> str:
        units = plural(self.unit)
        lines = [f"DP-SGD over {self.num_examples} {units}, expected batch {self.batch_size} "
                 f"{units} (q = {self.sampling_probability:.6g}), noise multiplier "
                 f"{self.noise_multiplier:.6g}, {self.steps} steps ({self.epochs:.4g} epochs), "
                 f"{self.accountant.upper()} accounting, add-or-remove-one-{self.unit} adjacency, "
                 "all intermediate models released."]
        if self.sampling == "poisson":
            lines.append(f"Poisson sampling: (epsilon = {self.epsilon:.4g}, "
                         f"delta = {self.delta:.3g})-DP.")
            if self.sampling_revealed:
                lines.append(f"Which {units} each step sampled is treated as public (the coins "
                             "follow from a seed, or the public term uses the private batch): "
                             "accounted without amplification by subsampling.")
        else:
            lines.append(f"Shuffled fixed-size batches: epsilon assuming Poisson sampling "
                         f"{self.epsilon_poisson:.4g} (not claimed: amplification by shuffling is "
                         f"not proven to match it); each example once per epoch: "
                         f"{self.epsilon_once_per_epoch:.4g} (claimed), delta = {self.delta:.3g}.")
        return "\n".join(lines)


def privacy_report(num_examples: int, batch_size: int, noise_multiplier: float, delta: float,
                   epochs: Optional[float] = None, steps: Optional[int] = None,
                   sampling: str = "poisson", accountant: str = "rdp",
                   sampling_revealed: bool = False, unit: str = "example") -> PrivacyReport:
    """All the figures of a run (see the module docstring for what is claimed); N and B count
    privacy units (``unit``)."""
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
        sampling_revealed=bool(sampling_revealed), unit=unit)


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




# --------------------------------------------------------------------------- group privacy

def plural(unit: str) -> str:
    """'example' -> 'examples', 'identity' -> 'identities' (for statements)."""
    if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou"):
        return unit[:-1] + "ies"
    return unit + "s"


def group_privacy(epsilon: float, delta: float, group_size: int) -> tuple[float, float]:
    """(epsilon, delta) that an (epsilon, delta)-DP guarantee gives a group of ``group_size``.

    The standard group-privacy bound (Dwork and Roth, Theorem 2.2 and its approximate-DP form):
    k records that change together are (k epsilon, k e^((k-1) epsilon) delta)-DP. It is what an
    example-level guarantee says about a person or video with k examples: usually nothing worth
    the name, which is why a run should protect the unit itself (``privacy_unit``).
    """
    k = int(group_size)
    if k != group_size or k < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size}")
    if k == 1:
        return float(epsilon), float(delta)
    log_delta = math.log(k) + (k - 1) * epsilon + math.log(delta) if delta > 0 else -math.inf
    return float(k * epsilon), float(min(1.0, math.exp(min(log_delta, 0.0))))
