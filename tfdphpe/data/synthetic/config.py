"""Options of the synthetic generator and the split names its modules share."""

from __future__ import annotations

import dataclasses

SPLIT_NAMES = ("train", "val")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Rendering options.

    Attributes:
      image_size: (height, width) of every image; 256 x 320 keeps a 256 x 192 crop of a tall
        figure close to native resolution.
      num_identities: distinct people (face, body, clothes); images draw them at random.
      second_figure_prob, occluder_prob, truncation_prob, back_view_prob, tilt_prob: how often
        each difficulty appears.
      jpeg_quality: (low, high) JPEG quality range.
    """

    image_size: tuple[int, int] = (256, 320)
    num_identities: int = 200
    second_figure_prob: float = 0.35
    occluder_prob: float = 0.45
    truncation_prob: float = 0.2
    back_view_prob: float = 0.1
    tilt_prob: float = 0.12
    jpeg_quality: tuple[int, int] = (70, 95)
