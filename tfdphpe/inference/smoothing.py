"""Keypoint smoothing over time: the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A low-pass filter whose cut-off frequency rises with the speed of the signal: at rest the
cut-off is ``min_cutoff`` (jitter removed), in fast motion it grows by ``beta`` x speed (little
lag). Written here rather than taken from a package because it is a few lines and we need it
on arrays (all joints of a person at once), with speed measured in person heights per second
so that one setting suits near and far people, as MediaPipe's landmark smoothing does.

Tests: tests/inference/test_pipeline.py.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Smooths one array-valued signal (e.g. a person's keypoints ``[K, 2]``).

    Args:
      min_cutoff: cut-off frequency at rest, Hz. Lower: smoother, more lag when slow.
      beta: how fast the cut-off rises with speed (per unit of scaled speed).
      d_cutoff: cut-off frequency of the speed estimate, Hz.

    Defaults are MediaPipe's for pose landmarks (0.05 Hz, beta 80, 1 Hz), with speed in units
    of the ``scale`` given to each call (the person's box height): per second.
    """

    def __init__(self, min_cutoff: float = 0.05, beta: float = 80.0, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def __call__(self, value: np.ndarray, time: float, scale: float = 1.0) -> np.ndarray:
        """The smoothed ``value`` at ``time`` (seconds, increasing)."""
        value = np.asarray(value, np.float64)
        if self._value is None or self._time is None or time <= self._time:
            # First sample, or a timestamp that does not advance: nothing to filter against.
            self._value, self._speed, self._time = value, np.zeros_like(value), time
            return value.astype(np.float32)
        dt = time - self._time
        speed = (value - self._value) / dt / max(scale, 1e-6)
        self._speed = self._speed + _alpha(self.d_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, dt) * (value - self._value)
        self._time = time
        return self._value.astype(np.float32)
