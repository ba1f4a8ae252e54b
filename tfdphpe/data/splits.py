"""The projection set S_pub and the private rest (DESIGN 2.3, 4).

S_pub holds ``m`` person records (default 100) drawn by seed from the private training set and
*given up*: they are not protected. They are drawn whole images at a time, and, with privacy
units (a person, a video), whole units at a time: a group of records connected by a shared image
or a shared unit goes to one side only, so S_pub and the private set share no image and no unit
(a person's frames never land on both sides). The split is written as a JSON manifest next to the
run; a resumed run re-applies the manifest and gets the same split (and an error if the records
changed).
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


def _groups(records: list[PoseRecord], unit_keys: Sequence[str] | None) -> dict[str, list[int]]:
    """{group name: record indices}: records connected by an image or a unit (union-find)."""
    parent = list(range(len(records)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in ([_image_key(r) for r in records], unit_keys):
        first: dict[str, int] = {}
        for i, key in enumerate(keys or ()):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    groups: dict[str, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(_image_key(records[find(i)]), []).append(i)
    return groups


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
                 seed: int = 0, unit_keys: Sequence[str] | None = None) -> Split:
    """Draws S_pub (``num_public`` records from whole images and units) and returns the rest.

    Groups (records connected by a shared image or ``unit_keys`` entry) are visited in a seeded
    random order; a group's records all go to S_pub if they fit in the remaining budget,
    otherwise it is passed over (so S_pub has exactly ``num_public`` records whenever the groups
    allow it). Every other record is private.
    """
    records = _records(source)
    if num_public < 0:
        raise ValueError("num_public must be >= 0")
    if num_public >= len(records):
        raise ValueError(f"num_public={num_public} leaves no private records "
                         f"(only {len(records)} records)")
    if unit_keys is not None and len(unit_keys) != len(records):
        raise ValueError(f"{len(unit_keys)} unit keys for {len(records)} records")
    groups = _groups(records, unit_keys)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    chosen, count = [], 0
    for j in order:
        if count == num_public:
            break
        members = groups[keys[j]]
        if count + len(members) <= num_public:
            chosen.extend(members)
            count += len(members)
    if count != num_public:
        raise ValueError(f"could not draw exactly {num_public} public records from whole "
                         f"images{' and units' if unit_keys is not None else ''} (got {count}; "
                         "the groups are too large: lower --public_examples)")
    public_keys = {_image_key(records[i]) for i in chosen}
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
