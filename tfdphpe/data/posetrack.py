"""PoseTrack-style video annotations: COCO's layout plus ``vid_id``, ``frame_id``, ``track_id``.

PoseTrack 2018/2021 ship one JSON per video (``images`` carry ``vid_id`` and ``frame_id``,
``annotations`` carry ``track_id``; the keypoint names are COCO's with ``head_bottom`` and
``head_top`` for the eyes). A data set is such a file or a folder of them; every image must say
which video it belongs to, since the video (and the track within it) is what ``--privacy_unit``
groups by. The joint set comes from the category's keypoint names (``read_custom``).

Tests: tests/data/test_units.py.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile

from tfdphpe.data.coco import load_json
from tfdphpe.data.custom import read_custom
from tfdphpe.data.records import AnnotationError, ReadResult, ReadSummary


def annotation_files(path: str) -> list[str]:
    """The per-video JSON files of ``path`` (a file, or a folder of ``*.json``)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.json")))
        if not files:
            raise FileNotFoundError(f"{path}: a PoseTrack annotation folder without *.json files")
        return files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PoseTrack annotations not found: {path}")
    return [path]


def read_posetrack(annotations: str, image_dir: str, *,
                   check_images: str = "header") -> ReadResult:
    """Reads a PoseTrack-style file or folder into person records with video, track and frame."""
    merged, summary, joint_set = [], None, None
    for path in annotation_files(annotations):
        result = read_custom(path, image_dir, check_images=check_images)
        if joint_set is None:
            joint_set, summary = result.joint_set, ReadSummary(source=f"posetrack:{annotations}")
        elif result.joint_set.names != joint_set.names:
            raise AnnotationError(f"{path}: keypoints {list(result.joint_set.names)} differ from "
                                  f"those of the other files {list(joint_set.names)}")
        for record in result.records:
            if not record.video:
                raise AnnotationError(f"{record.where()}: no 'vid_id' on its image: a "
                                      "PoseTrack-style file says which video each frame is of")
        merged.extend(result.records)
        summary.merge(result.summary)
    return ReadResult(records=merged, summary=summary, joint_set=joint_set)


def merged_annotations(annotations: str) -> str:
    """One COCO-layout file for COCO AP: ``annotations`` itself, or the folder's files merged
    into a file in the temporary directory (named by the content, so it is written once)."""
    files = annotation_files(annotations)
    if len(files) == 1:
        return files[0]
    data = {"images": [], "annotations": [], "categories": None}
    for path in files:
        part = load_json(path)
        data["images"].extend(part.get("images", []))
        data["annotations"].extend(part.get("annotations", []))
        data["categories"] = data["categories"] or part.get("categories")
    text = json.dumps(data)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = os.path.join(tempfile.gettempdir(), f"tfdphpe-posetrack-{digest}.json")
    if not os.path.exists(out):
        with open(out + ".tmp", "w") as f:
            f.write(text)
        os.replace(out + ".tmp", out)
    return out
