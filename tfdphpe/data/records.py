"""The plain person record every reader produces, and the summary of what a reader skipped.

A record is one person to crop (top-down pose estimation). All coordinates are in the pixels of
the original image, 0-based, pixel centres at integer coordinates (MPII's 1-based MATLAB
coordinates are converted by the MPII readers).

The person box is stored *unpadded*: ``center`` and ``box_size`` (w, h) in pixels. The pipeline
applies the padding (default 1.25) and the aspect-ratio fix for the model input, so a record does
not depend on the input size:

* COCO: ``center`` = box centre, ``box_size`` = box (w, h) (HRNet/mmpose ``_xywh2cs``).
* MPII: ``center`` = objpos with y shifted by ``+15 * scale`` (then made 0-based), ``box_size`` =
  ``(200 * scale, 200 * scale)`` (HRNet/mmpose; ``scale`` is person height / 200).

Tests: tests/data/test_readers.py, tests/data/test_bad_input.py.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Sequence

import numpy as np

from tfdphpe.data.joints import JointSet

logger = logging.getLogger("tfdphpe.data")


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and the record."""


@dataclasses.dataclass
class PoseRecord:
    """One person in one image.

    Attributes:
      image_path: path of the image file ('' when the image comes as bytes, e.g. TFRecords).
      image_id: integer id of the image (COCO image id; for MPII the numeric file stem, or the
        annolist index for the official .mat).
      keypoints: ``[K, 2]`` float32, (x, y) in original image pixels; 0 where not annotated.
      visible: ``[K]`` float32, 1 = annotated (a target), 0 = missing/outside the image.
      center: ``[2]`` float32, centre of the person box.
      box_size: ``[2]`` float32, unpadded person box (w, h) in pixels.
      head_box: ``[4]`` float32, (x1, y1, x2, y2) for PCKh; zeros when unknown.
      image_size: (height, width) in pixels, or (0, 0) when not known.
      box_score: detection score (1.0 for ground-truth boxes).
      annotation_id: id of the annotation in its file (-1 when none), for matching results.
      identity: who the person is, globally, when the data set says so (synthetic data), else -1.
      video: the video the image is a frame of ('' when unknown): MPII's vididx, PoseTrack's
        vid_id, a user's image-to-video map.
      track_id: the person's track within its video (PoseTrack), else -1.
      frame_id: the frame's index within its video, else -1.
      fields: the record's scalar annotation and image fields, by name (``--unit_field``).
      source: the annotation file it was read from (for messages).
    """

    image_path: str
    image_id: int
    keypoints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    box_size: np.ndarray
    head_box: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.float32))
    image_size: tuple[int, int] = (0, 0)
    box_score: float = 1.0
    annotation_id: int = -1
    identity: int = -1
    video: str = ""
    track_id: int = -1
    frame_id: int = -1
    fields: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(-1, 2)
        self.visible = np.asarray(self.visible, np.float32).reshape(-1)
        self.center = np.asarray(self.center, np.float32).reshape(2)
        self.box_size = np.asarray(self.box_size, np.float32).reshape(2)
        self.head_box = np.asarray(self.head_box, np.float32).reshape(4)
        if self.keypoints.shape[0] != self.visible.shape[0]:
            raise ValueError(f"keypoints {self.keypoints.shape} and visible {self.visible.shape} "
                             f"disagree on the number of joints ({self.image_path})")

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[0])

    def where(self) -> str:
        """Where the record comes from, for messages: file, annotation and image."""
        return (f"{self.source or '<records>'}: annotation id {self.annotation_id} "
                f"(image {self.image_path or self.image_id})")


def scalar_fields(*objects: dict) -> dict:
    """The str/int/float entries of annotation dicts (later ones win), for ``--unit_field``."""
    out = {}
    for obj in objects:
        out.update({k: v for k, v in obj.items()
                    if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
    return out


@dataclasses.dataclass
class ReadSummary:
    """What a reader kept and what it skipped, by reason. Nothing is skipped without a count."""

    source: str
    kept: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    #: joints that were annotated but lie outside the image and were made invisible.
    joints_outside_image: int = 0
    #: up to a few example messages per reason, for the log.
    examples: dict = dataclasses.field(default_factory=dict)

    def skip(self, reason: str, message: str, warn: bool = True) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(message)
        if warn:
            logger.warning("%s: skipped (%s): %s", self.source, reason, message)

    @property
    def num_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def merge(self, other: "ReadSummary") -> None:
        self.kept += other.kept
        self.skipped.update(other.skipped)
        self.joints_outside_image += other.joints_outside_image
        for k, v in other.examples.items():
            self.examples.setdefault(k, []).extend(v[: max(0, 5 - len(self.examples.get(k, [])))])

    def describe(self) -> str:
        parts = [f"{self.source}: kept {self.kept} person record(s)"]
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{n} {r}"
                                                for r, n in sorted(self.skipped.items())))
        else:
            parts.append("skipped none")
        if self.joints_outside_image:
            parts.append(f"{self.joints_outside_image} joint(s) outside the image made invisible")
        return "; ".join(parts)

    def log(self) -> None:
        """One line per read: a warning when anything was skipped or changed, else info."""
        level = logging.WARNING if (self.skipped or self.joints_outside_image) else logging.INFO
        logger.log(level, "%s", self.describe())

    def to_dict(self) -> dict:
        return {"source": self.source, "kept": self.kept, "skipped": dict(self.skipped),
                "joints_outside_image": self.joints_outside_image}


@dataclasses.dataclass
class ReadResult:
    """Records plus the summary of the read; what `build_dataset` accepts besides a plain list."""

    records: list[PoseRecord]
    summary: ReadSummary
    joint_set: JointSet

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


def records_to_arrays(records: Sequence[PoseRecord]) -> dict[str, np.ndarray]:
    """Stacks records into column arrays (the form tf.data slices)."""
    if not records:
        raise ValueError("no records")
    k = records[0].num_joints
    for i, r in enumerate(records):
        if r.num_joints != k:
            raise ValueError(f"record {i} ({r.image_path}) has {r.num_joints} joints, "
                             f"record 0 has {k}: one data set, one joint set")
    return {
        "image_path": np.array([r.image_path for r in records], dtype=object),
        "image_id": np.array([r.image_id for r in records], np.int64),
        "record_index": np.arange(len(records), dtype=np.int64),
        "annotation_id": np.array([r.annotation_id for r in records], np.int64),
        "original_keypoints": np.stack([r.keypoints for r in records]).astype(np.float32),
        "original_visible": np.stack([r.visible for r in records]).astype(np.float32),
        "box_center": np.stack([r.center for r in records]).astype(np.float32),
        "box_size": np.stack([r.box_size for r in records]).astype(np.float32),
        "head_box": np.stack([r.head_box for r in records]).astype(np.float32),
        "box_score": np.array([r.box_score for r in records], np.float32),
    }


def invisible_outside_image(keypoints: np.ndarray, visible: np.ndarray,
                            image_size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Marks annotated joints outside [0, w-1] x [0, h-1] invisible; returns (visible, count).

    Unknown image size (0, 0) leaves visibility alone (the pipeline checks again after decoding).
    """
    h, w = image_size
    visible = visible.copy()
    if h <= 0 or w <= 0:
        return visible, 0
    x, y = keypoints[:, 0], keypoints[:, 1]
    # Half a pixel of slack: pixel centres are integers, so the image spans [-0.5, w - 0.5].
    outside = (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5) | ~np.isfinite(x + y)
    hit = (visible > 0) & outside
    visible[hit] = 0.0
    return visible, int(hit.sum())


def check_image(path: str, mode: str = "header") -> tuple[tuple[int, int], str | None]:
    """Checks an image file; returns ((height, width), None) or ((0, 0), reason).

    Args:
      mode: "exists" (stat only), "header" (PIL reads the header: catches missing, empty and
        non-image files; gives the size), "decode" (full decode: also catches truncated data).
    """
    import os
    if not os.path.isfile(path):
        return (0, 0), "missing_image"
    if mode == "exists":
        return (0, 0), None
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
            if mode == "decode":
                im.load()
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        logger.debug("cannot read %s: %s", path, e)
        return (0, 0), "corrupt_image"
    return (int(h), int(w)), None


def finish_record(record: PoseRecord, summary: ReadSummary, where: str,
                  require_visible: bool = True) -> PoseRecord | None:
    """Applies the shared rules: joints outside the image -> invisible; none visible -> skip."""
    vis, n_out = invisible_outside_image(record.keypoints, record.visible, record.image_size)
    summary.joints_outside_image += n_out
    record.visible = vis
    record.keypoints = np.where(vis[:, None] > 0, record.keypoints, 0.0).astype(np.float32)
    if require_visible and not np.any(vis > 0):
        summary.skip("no_visible_joints", where, warn=False)
        return None
    return record


class ImageChecker:
    """Checks each image file once (records share images) and counts bad files in a summary."""

    def __init__(self, summary: ReadSummary, mode: str = "header"):
        if mode not in ("exists", "header", "decode", "none"):
            raise ValueError(f"check_images must be none/exists/header/decode, got {mode!r}")
        self.summary = summary
        self.mode = mode
        self._cache: dict[str, tuple[tuple[int, int], str | None]] = {}

    def __call__(self, path: str) -> tuple[tuple[int, int], str | None]:
        """Returns ((h, w) or (0, 0), None) or ((0, 0), reason); warns once per bad file.

        The caller counts each person record it skips because of a bad file.
        """
        if self.mode == "none":
            return (0, 0), None
        if path not in self._cache:
            self._cache[path] = check_image(path, self.mode)
            if self._cache[path][1]:
                logger.warning("%s: %s %s; its person record(s) are skipped",
                               self.summary.source, self._cache[path][1].replace("_", " "), path)
        return self._cache[path]

