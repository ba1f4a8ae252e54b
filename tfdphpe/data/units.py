"""Privacy units of person records: which records one guarantee protects together.

``--privacy_unit`` chooses what a neighbouring data set may differ by:

* ``example``: one record (one person crop);
* ``image``: every person in one image;
* ``video``: every frame of one video (MPII's ``vididx``, PoseTrack's ``vid_id``, a user's
  image-to-video map, or ``--unit_field``);
* ``identity``: one person in every image and video (the data set's global identity, or a
  PoseTrack track within its video, or ``--unit_field``, e.g. ``patient_id``).

For the claim to hold, every record of a person (or video) must carry the same key: a person
whose frames carry two keys is two units, each protected, but the pair only by group privacy.
A record without the key the unit needs is an error naming its file and annotation; nothing
falls back to example-level silently.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from tfdphpe.data.records import AnnotationError, PoseRecord

UNITS = ("example", "image", "video", "identity")


def image_key(record: PoseRecord) -> str:
    """The image a record is in (the file path identifies it; the id alone may repeat)."""
    return f"{record.image_path}#{record.image_id}"


def _field(record: PoseRecord, name: str, index: int, unit: str) -> str:
    value = record.fields.get(name)
    if value is None or value == "":
        raise AnnotationError(f"{record.where()} (record #{index}): no field {name!r} for "
                              f"--privacy_unit={unit} (--unit_field={name})")
    return f"{name}:{value}"


def unit_key(record: PoseRecord, index: int, unit: str, unit_field: str = "") -> str:
    """The unit key of one record (see the module docstring); raises AnnotationError if the
    record does not carry what the unit needs."""
    if unit == "example":
        return f"#{index}"
    if unit == "image":
        return image_key(record)
    if unit_field:
        return _field(record, unit_field, index, unit)
    if unit == "video":
        if not record.video:
            raise AnnotationError(
                f"{record.where()} (record #{index}): no video for --privacy_unit=video (MPII's "
                "annolist.vididx, PoseTrack's vid_id; for MPII JSON give --unit_map, for other "
                "files --unit_field)")
        return f"video:{record.video}"
    if unit == "identity":
        if record.identity >= 0:
            return f"identity:{record.identity}"
        if record.video and record.track_id >= 0:
            return f"video:{record.video}/track:{record.track_id}"
        raise AnnotationError(
            f"{record.where()} (record #{index}): no person identity for "
            "--privacy_unit=identity (an 'identity' field, or a PoseTrack vid_id + track_id; or "
            "name the field with --unit_field, e.g. patient_id)")
    raise ValueError(f"privacy unit must be one of {UNITS}, got {unit!r}")


def unit_keys(records: Sequence[PoseRecord], unit: str, unit_field: str = "") -> list[str]:
    return [unit_key(r, i, unit, unit_field) for i, r in enumerate(records)]


def unit_ids(keys: Sequence[str]) -> np.ndarray:
    """Keys -> integer unit ids 0 .. N_u - 1 (in order of first appearance)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(k, len(ids)) for k in keys], np.int64)


def group_sizes(keys: Sequence[str]) -> dict:
    """Examples per unit: the number of units and the median and largest group."""
    counts = np.bincount(unit_ids(keys)) if len(keys) else np.zeros(0, np.int64)
    return {"units": int(counts.size), "median": float(np.median(counts)) if counts.size else 0.0,
            "max": int(counts.max()) if counts.size else 0}


def available_groupings(records: Sequence[PoseRecord], unit_field: str = "") -> dict[str, dict]:
    """{unit: group sizes} for every unit larger than an example that the records support."""
    out = {}
    for unit in ("image", "video", "identity"):
        try:
            out[unit] = group_sizes(unit_keys(records, unit, unit_field if unit != "image"
                                              else ""))
        except AnnotationError:
            continue
    return out


def apply_video_map(records: Sequence[PoseRecord], path: str) -> None:
    """Sets each record's video from a JSON map {image file name: video id} (MPII JSON)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--unit_map: no such file {path}")
    with open(path) as f:
        try:
            mapping = json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(mapping, dict):
        raise AnnotationError(f"{path}: expected an object {{image file name: video id}}")
    for i, record in enumerate(records):
        name = os.path.basename(record.image_path)
        if name not in mapping:
            raise AnnotationError(f"{path}: no video for image {name!r} (record #{i}, "
                                  f"{record.where()})")
        record.video = str(mapping[name])
