"""The public projection set S_pub and the private rest (DESIGN 2.3, 4).

S_pub holds ``m`` person records (default 100) drawn by seed from the private training set,
whole images at a time, so S_pub and the private set share no image. The split is written as a
JSON manifest next to the run; a resumed run re-applies the manifest and gets the same split
(and an error if the records changed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Sequence

import numpy as np

from tfdphpe.data.records import PoseRecord, ReadResult, ReadSummary

MANIFEST_VERSION = 1


@dataclasses.dataclass
class Split:
    public: list[PoseRecord]
    private: list[PoseRecord]
    manifest: dict


def _image_key(r: PoseRecord) -> str:
    # The file path identifies the image; the id alone may repeat across folders.
    return f"{r.image_path}#{r.image_id}"


def records_fingerprint(records: Sequence[PoseRecord]) -> str:
    """A hash of what identifies each record (image, annotation, box), in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{_image_key(r)}|{r.annotation_id}|{r.center.round(2).tolist()}|"
                 f"{r.box_size.round(2).tolist()}\n".encode())
    return h.hexdigest()


def _records(source) -> list[PoseRecord]:
    return list(source.records) if isinstance(source, ReadResult) else list(source)


def split_public(source: ReadResult | Sequence[PoseRecord], num_public: int = 100,
                 seed: int = 0) -> Split:
    """Draws S_pub (``num_public`` records from whole images) and returns it with the rest.

    Images are visited in a seeded random order; an image's records all go to S_pub if they
    fit in the remaining budget, otherwise the image is passed over (so S_pub has exactly
    ``num_public`` records whenever the images allow it). Every other record is private.
    """
    records = _records(source)
    if num_public < 0:
        raise ValueError("num_public must be >= 0")
    if num_public >= len(records):
        raise ValueError(f"num_public={num_public} leaves no private records "
                         f"(only {len(records)} records)")
    by_image: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_image.setdefault(_image_key(r), []).append(i)
    keys = sorted(by_image)
    order = np.random.default_rng(seed).permutation(len(keys))
    chosen, count = [], 0
    for j in order:
        if count == num_public:
            break
        members = by_image[keys[j]]
        if count + len(members) <= num_public:
            chosen.append(keys[j])
            count += len(members)
    if count != num_public:
        raise ValueError(f"could not draw exactly {num_public} public records from whole "
                         f"images (got {count})")
    public_keys = set(chosen)
    manifest = {
        "version": MANIFEST_VERSION,
        "seed": int(seed),
        "num_public": int(num_public),
        "num_private": len(records) - num_public,
        "num_records": len(records),
        "records_sha256": records_fingerprint(records),
        "public_images": sorted(public_keys),
        "public_record_indices": [i for i, r in enumerate(records)
                                  if _image_key(r) in public_keys],
    }
    return _apply(records, manifest)


def _apply(records: list[PoseRecord], manifest: dict) -> Split:
    public_keys = set(manifest["public_images"])
    public = [r for r in records if _image_key(r) in public_keys]
    private = [r for r in records if _image_key(r) not in public_keys]
    assert not ({_image_key(r) for r in public} & {_image_key(r) for r in private})
    return Split(public=public, private=private, manifest=manifest)


def write_manifest(split: Split, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(split.manifest, f, indent=1)


def read_manifest(path: str) -> dict:
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: unsupported manifest version {manifest.get('version')}")
    return manifest


def apply_manifest(source: ReadResult | Sequence[PoseRecord], manifest: dict | str) -> Split:
    """Re-creates a split from its manifest; the records must be the ones it was made from."""
    path = manifest if isinstance(manifest, str) else "<manifest>"
    if isinstance(manifest, str):
        manifest = read_manifest(manifest)
    records = _records(source)
    if records_fingerprint(records) != manifest["records_sha256"]:
        raise ValueError(f"{path}: the records differ from those the split was drawn from "
                         f"({len(records)} records now, {manifest['num_records']} then)")
    return _apply(records, manifest)


def as_read_result(records: list[PoseRecord], like: ReadResult, part: str) -> ReadResult:
    """Wraps split records as a `ReadResult` with the source's joint set."""
    summary = ReadSummary(source=f"{like.summary.source}[{part}]", kept=len(records))
    return ReadResult(records=records, summary=summary, joint_set=like.joint_set)
