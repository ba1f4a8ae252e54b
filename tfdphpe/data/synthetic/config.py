"""Options of the synthetic generator and the split names its modules share.

Tests: tests/data/synthetic/test_config.py, tests/data/synthetic/test_writers.py,
tests/data/synthetic/test_video.py.
"""

from __future__ import annotations

import dataclasses

SPLIT_NAMES = ("train", "val")
# Label-map part ids: person t of a frame uses ids 1..19 + 32 t, occluders 100+.
MAX_PEOPLE_PER_FRAME = 3
_LATER_OPTIONS = ("first_identity", "frames_per_video", "people_per_frame", "key_pose_every")


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
      first_identity: the global id of the first person (identities are ``first_identity``
        ... ``first_identity + num_identities - 1``): data sets meant to share nobody (public and
        private) get disjoint ranges.
      frames_per_video: 0 = still images (one annotated person each); > 0 = video-like mode:
        each video shows ``people_per_frame`` annotated people in that many frames over a fixed
        background, their poses moving smoothly between key poses drawn every
        ``key_pose_every`` frames.
    """

    image_size: tuple[int, int] = (256, 320)
    num_identities: int = 200
    second_figure_prob: float = 0.35
    occluder_prob: float = 0.45
    truncation_prob: float = 0.2
    back_view_prob: float = 0.1
    tilt_prob: float = 0.12
    jpeg_quality: tuple[int, int] = (70, 95)
    first_identity: int = 0
    frames_per_video: int = 0
    people_per_frame: int = 1
    key_pose_every: int = 12

    def __post_init__(self):
        if self.frames_per_video < 0 or self.key_pose_every < 1:
            raise ValueError("frames_per_video must be >= 0 and key_pose_every >= 1")
        if not 1 <= self.people_per_frame <= MAX_PEOPLE_PER_FRAME:
            raise ValueError(f"people_per_frame must be 1..{MAX_PEOPLE_PER_FRAME}, "
                             f"got {self.people_per_frame}")
        if self.first_identity < 0 or self.num_identities < self.people_per_frame:
            raise ValueError("first_identity must be >= 0 and num_identities >= people_per_frame")

    @property
    def video(self) -> bool:
        return self.frames_per_video > 0

    def summary(self) -> dict:
        """The options as written to info.json; options added after the first release are
        listed only when set, so still-image data sets stay byte-identical to older ones."""
        out = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in _LATER_OPTIONS and out[f.name] == f.default:
                del out[f.name]
        return out


def identity_range(info: dict) -> range:
    """The global person ids a data set may contain, from its ``info.json``."""
    first = info["config"].get("first_identity", 0)
    return range(first, first + info["num_identities"])


def check_disjoint(public: dict, private: dict) -> None:
    """Raises ``ValueError`` unless two data sets (their ``info.json``) have different seeds
    and disjoint identity ranges, i.e. share no person and no random stream."""
    a, b = identity_range(public), identity_range(private)
    if public["seed"] == private["seed"]:
        raise ValueError(f"public and private synthetic sets share the seed {public['seed']}")
    if a.start < b.stop and b.start < a.stop:
        raise ValueError(f"public identities {a.start}..{a.stop - 1} overlap the private ones "
                         f"{b.start}..{b.stop - 1}")
