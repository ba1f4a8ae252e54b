"""The privacy ledger, the one store of its files, and the statement a run publishes.

``PrivacyLedger`` records what a run has spent: enough to restate its guarantee at any step and
to stop before a budget. ``LedgerStore`` is the only code that names, lists, writes and restores
``ledger-<step>.json`` files; the trainer and ``PrivacyLedgerCallback`` both use it, and
``published_statement`` is the one place the published statement (``privacy.json``, the model's
metadata) is assembled.

The protocol, whoever trains: record each step *before* it runs (``record_step`` refuses one that
would exceed the target), save the ledger beside every checkpoint (before the checkpoint, so a
checkpoint never exists without the ledger that accounts for it), and on resume restore the
ledger of the checkpoint's step, refusing a ledger written for another configuration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any, Optional

import dp_accounting

from tfdphpe.files import atomic_write
from tfdphpe.privacy.accounting import (BudgetExceededError, PrivacyReport, _check_common,
                                        _claimed_epsilon, group_privacy, plural, privacy_report,
                                        sampling_probability)
from tfdphpe.privacy.method import Method, Sampling

LEDGER_VERSION = 2
_HEADS = {"dpsgd": "DP-SGD", "pdpsgd": "Projected DP-SGD (projection onto a public gradient "
          "subspace is post-processing and costs no privacy)", "fdp": "Feature DP",
          "fpdp": "Feature-Projective DP"}


@dataclasses.dataclass
class PrivacyLedger:
    """What a run has spent: enough to restate its guarantee at any step, and to stop in time.

    Save it with every checkpoint (``LedgerStore``) and restore it on resume, so a resumed run
    continues its budget. Call ``record_step()`` *before* applying each step: it refuses
    (``BudgetExceededError``, nothing recorded) a step that would exceed ``target_epsilon``.

    ``num_examples`` is N and ``batch_size`` is B, both counted in privacy units (``privacy_unit``:
    an example unless the run protects whole images, videos or people); q = B / N.
    """

    method: str
    noise_multiplier: float
    l2_norm_clip: float
    num_examples: int                # N: privacy units in the private training set
    batch_size: int                  # B: expected units per step; q = B / N
    delta: float
    target_epsilon: Optional[float] = None
    sampling: str = "poisson"
    accountant: str = "rdp"
    psi: Optional[str] = None        # description of the public view (fdp, fpdp)
    projection: Optional[str] = None  # description of S_pub / k / R (pdpsgd, fpdp)
    noise_key_secret: bool = True
    sampling_revealed: bool = False  # accounted without amplification (coins or batch public)
    privacy_unit: str = "example"    # what one record protects
    unit_description: Optional[str] = None   # e.g. "one person crop (one person in one image)"
    examples_per_unit: Optional[int] = None  # k: examples a sampled unit contributes (None: 1)
    sampling_key_secret: bool = True  # the sampling coins came from a secret key
    skipped_updates: int = 0         # steps whose update was not finite and was not applied
    steps: int = 0
    version: int = LEDGER_VERSION

    def __post_init__(self):
        self.method = Method(self.method).value
        self.sampling = Sampling(self.sampling).value
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
        if self.steps < 0 or self.skipped_updates < 0:
            raise ValueError(f"steps and skipped_updates must be >= 0, got {self.steps}, "
                             f"{self.skipped_updates}")
        if self.sampling_revealed and self.accountant != "rdp":
            raise ValueError("revealed-sampling accounting needs accountant='rdp'")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.privacy_unit or ""):
            raise ValueError(f"privacy_unit must be a lower-case word (example, image, video, "
                             f"identity, ...), got {self.privacy_unit!r}")
        if self.examples_per_unit is not None and (
                int(self.examples_per_unit) != self.examples_per_unit
                or self.examples_per_unit < 1):
            raise ValueError(f"examples_per_unit must be an integer >= 1, got "
                             f"{self.examples_per_unit}")
        if (not self.sampling_key_secret and self.sampling == "poisson" and self.method != "none"
                and not self.sampling_revealed):
            raise ValueError("the sampling coins are not secret (sampling_key_secret=False): "
                             "amplification by subsampling does not hold; set "
                             "sampling_revealed=True so the epsilon is accounted without it")
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
        revealed = kwargs.pop("sampling_revealed", False) or optimizer.sampling_revealed
        return cls(method=optimizer.method.value, noise_multiplier=optimizer.noise_multiplier,
                   l2_norm_clip=optimizer.l2_norm_clip, num_examples=num_examples,
                   batch_size=batch_size or given, delta=delta,
                   noise_key_secret=optimizer.noise_key_secret, sampling_revealed=revealed,
                   **kwargs)

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
                              sampling_revealed=self.sampling_revealed, unit=self.privacy_unit)

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

    def record_skipped_update(self) -> None:
        """A recorded step whose update was not finite and was not applied (it still counts)."""
        self.skipped_updates += 1

    def group_epsilon(self, group_size: int) -> tuple[float, float]:
        """(epsilon, delta) this run gives a group of ``group_size`` units (group privacy)."""
        return group_privacy(self.epsilon(), self.delta, group_size)

    def statement(self) -> str:
        """The privacy statement of the run so far, in words."""
        if not self.private:
            return "Non-private training (method 'none'): no differential privacy guarantee."
        lines = [f"{_HEADS[self.method]}: clip norm C = {self.l2_norm_clip:g}, "
                 f"noise multiplier {self.noise_multiplier:.6g}.", self._unit_line(),
                 self.report().statement()]
        if self.method in ("fdp", "fpdp"):
            lines.append(f"The guarantee is Feature DP: it protects the private part of each "
                         f"{self.privacy_unit}'s examples beyond their public view psi = "
                         f"{self.psi}; psi(x) (including the labels it carries) is treated as "
                         "public and is not protected.")
        if self.projection:
            lines.append(f"Public subspace: {self.projection}.")
        if not self.noise_key_secret:
            lines.append("WARNING: the noise was seeded reproducibly; anyone who knows the seed "
                         "can remove it, and the guarantee then does not hold.")
        if not self.sampling_key_secret:
            lines.append("WARNING: the sampling coins follow from a seed (reproducible sampling): "
                         f"anyone who knows it knows which {plural(self.privacy_unit)} every "
                         "step used, so this epsilon is accounted without amplification by "
                         "subsampling.")
        if self.skipped_updates:
            lines.append(f"{self.skipped_updates} of the {self.steps} steps had a non-finite "
                         "update (from public quantities) and were not applied; they count in "
                         "epsilon all the same.")
        if self.target_epsilon is not None:
            lines.append(f"Target epsilon {self.target_epsilon:g}: at most {self.max_steps()} "
                         "steps.")
        return "\n".join(lines)

    def _unit_line(self) -> str:
        unit = self.privacy_unit
        what = f" ({self.unit_description})" if self.unit_description else ""
        if self.examples_per_unit:
            return (f"Privacy unit: one {unit}{what}. Neighbouring data sets differ by all the "
                    f"examples of one {unit}; a sampled {unit} contributes at most "
                    f"{self.examples_per_unit} of its examples, averaged into one record clipped "
                    "to C.")
        return (f"Privacy unit: one {unit}{what}. Anything with several {plural(unit)} (a "
                f"person in many frames, an image with several people) is protected only by "
                "group privacy: k of them get about k times epsilon.")

    def same_configuration(self, other: "PrivacyLedger") -> bool:
        """True if ``other`` accounts for the same run (every field but the step counts)."""
        counts = {"steps": 0, "skipped_updates": 0}
        return self.to_dict() | counts == other.to_dict() | counts

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
        data = dict(data)
        version = data.get("version", 1)
        if version == 1:
            # Version 1 drew its Poisson coins from (--seed, step): not secret. Read such a
            # ledger honestly: without amplification.
            private_poisson = data.get("method") != "none" and data.get("sampling",
                                                                        "poisson") == "poisson"
            data.update(version=LEDGER_VERSION, sampling_key_secret=not private_poisson,
                        sampling_revealed=data.get("sampling_revealed", False) or private_poisson)
        elif version != LEDGER_VERSION:
            raise ValueError(f"unsupported ledger version {version}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "PrivacyLedger":
        return cls.from_dict(json.loads(text))

    def save(self, path: str) -> None:
        """Writes the ledger atomically (temporary file, fsync, rename over ``path``)."""
        atomic_write(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> "PrivacyLedger":
        import tensorflow as tf  # gfile: local paths and remote ones alike
        with tf.io.gfile.GFile(path, "r") as f:
            return cls.from_json(f.read())


class LedgerStore:
    """The ``ledger-<step>.json`` files of one training phase.

    Args:
      directory: where ledgers are written.
      read_directory: where they are read on resume (default ``directory``): a non-chief worker
        writes its own copy but resumes from the chief's.
    """

    PATTERN = re.compile(r"^ledger-(\d+)\.json$")

    def __init__(self, directory: str, read_directory: Optional[str] = None):
        self.directory = directory
        self.read_directory = read_directory or directory

    def path(self, step: int, directory: Optional[str] = None) -> str:
        return os.path.join(directory or self.directory, f"ledger-{int(step)}.json")

    def steps(self, directory: Optional[str] = None) -> list[int]:
        """Steps that have a saved ledger, ascending."""
        import tensorflow as tf
        directory = directory or self.read_directory
        if not tf.io.gfile.isdir(directory):
            return []
        found = (self.PATTERN.match(name) for name in tf.io.gfile.listdir(directory))
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, ledger: PrivacyLedger) -> str:
        """Writes ``ledger-<ledger.steps>.json`` atomically; returns its path."""
        import tensorflow as tf
        tf.io.gfile.makedirs(self.directory)
        path = self.path(ledger.steps)
        ledger.save(path)
        return path

    def restore(self, step: int, like: Optional[PrivacyLedger] = None) -> PrivacyLedger:
        """The ledger of ``step``; refuses a missing one, a wrong step count, or (with ``like``)
        one written for another configuration."""
        import tensorflow as tf
        path = self.path(step, self.read_directory)
        if not tf.io.gfile.exists(path):
            raise RuntimeError(f"no privacy ledger for step {step} ({path}); refusing to resume "
                               "a run whose spent budget is unknown")
        ledger = PrivacyLedger.load(path)
        if ledger.steps != step:
            raise RuntimeError(f"{path} records {ledger.steps} steps, the checkpoint has {step}")
        if like is not None and not ledger.same_configuration(like):
            raise RuntimeError(f"{path} was written for another configuration (method, sigma, C, "
                               "B, N, unit, sampling, ...): resume with the same settings")
        return ledger

    def prune(self, keep: set[int]) -> None:
        """Removes the ledgers of steps not in ``keep`` (checkpoints the manager deleted)."""
        import tensorflow as tf
        for step in self.steps(self.directory):
            if step not in keep:
                tf.io.gfile.remove(self.path(step))


def published_statement(ledger: PrivacyLedger, **extra: Any) -> dict[str, Any]:
    """The privacy statement a run publishes (``privacy.json``, a model's metadata).

    The ledger's fields, its epsilon so far (None for a non-private run), the statement in words
    and the steps taken, plus ``extra`` (what the trainer knows: sampling used, joints, ...).
    Nothing in it lets anyone recompute the batches or the noise (no keys, no seeds of those).
    """
    report = dict(ledger.to_dict(), epsilon=ledger.epsilon() if ledger.private else None,
                  statement=ledger.statement(), steps_taken=ledger.steps)
    report.update(extra)
    return report
