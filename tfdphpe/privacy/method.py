"""The names every part of the engine shares: the privacy methods and the batch samplings.

One enum each, one spelling each; flags, configs, the ledger and the data sampler all take these
(and their ``.value`` strings). No TensorFlow here, so the accounting tools load fast.
"""

from __future__ import annotations

import enum


class Method(enum.Enum):
    """The privacy methods; the value is the name used in flags and in the ledger."""

    NONE = "none"
    DPSGD = "dpsgd"
    PDPSGD = "pdpsgd"
    FDP = "fdp"
    FPDP = "fpdp"

    @property
    def private(self) -> bool:
        return self is not Method.NONE

    @property
    def projected(self) -> bool:
        return self in (Method.PDPSGD, Method.FPDP)

    @property
    def feature_dp(self) -> bool:
        return self in (Method.FDP, Method.FPDP)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Sampling(enum.Enum):
    """How training batches are drawn; the epsilon a run may claim rests on it.

    POISSON: every unit joins every step independently with probability q (amplification by
    subsampling is proven for it). SHUFFLE: fixed-size batches of a shuffled pass (only when
    asked for; the claim is then the once-per-epoch figure, see accounting.py).
    """

    POISSON = "poisson"
    SHUFFLE = "shuffle"

    @classmethod
    def _missing_(cls, value):
        if value == "shuffled":      # the data sampler's older spelling
            return cls.SHUFFLE
        return None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(s.value for s in cls)
