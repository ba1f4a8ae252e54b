"""COCO person keypoints (and any COCO-style keypoint JSON) -> person records, via pycocotools.

Training uses ground-truth boxes; validation uses either ground-truth boxes or a detection-results
file (COCO results format, e.g. ``COCO_val2017_detections_AP_H_56_person.json``) filtered by a
score threshold. Conventions follow HRNet's ``lib/dataset/coco.py``: boxes are clipped to the
image, crowd and zero-keypoint annotations are skipped (and counted), a keypoint with ``v > 0``
(labelled, visible or occluded) is a target.

Tests: tests/data/test_readers.py, tests/data/test_bad_input.py, tests/data/test_units.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import numpy as np

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.records import (AnnotationError, ImageChecker, PoseRecord, ReadResult,
                                  ReadSummary, finish_record, scalar_fields)


def load_json(path: str) -> Any:
    """Reads a JSON file; a missing or unparsable file is an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from e


def _number_list(value, length: int | None, path: str, where: str, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: {where}: field {field!r} must be a list of numbers, "
                              f"got {value!r:.80}") from None
    if length is not None and arr.size != length:
        raise AnnotationError(f"{path}: {where}: field {field!r} must have {length} numbers, "
                              f"got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise AnnotationError(f"{path}: {where}: field {field!r} has non-finite values")
    return arr


def person_category(data: dict, path: str) -> dict:
    """The keypoint category: the one named 'person', else the only one with keypoints."""
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise AnnotationError(f"{path}: 'categories' must be a non-empty list")
    with_kpts = [c for c in cats if isinstance(c, dict) and c.get("keypoints")]
    named = [c for c in with_kpts if c.get("name") == "person"]
    if named:
        return named[0]
    if len(with_kpts) == 1:
        return with_kpts[0]
    raise AnnotationError(f"{path}: no category named 'person' with 'keypoints' (found "
                          f"{[c.get('name') for c in cats if isinstance(c, dict)]})")


def validate_coco_keypoints(data: Any, path: str, num_joints: int) -> None:
    """Checks the fields the readers use; raises `AnnotationError` naming file and record."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: top level must be an object with images/annotations")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: missing list {key!r}")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        where = f"image #{i} (id={img.get('id') if isinstance(img, dict) else '?'})"
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise AnnotationError(f"{path}: {where}: needs 'id' and 'file_name'")
        image_ids.add(img["id"])
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise AnnotationError(f"{path}: annotation #{i}: not an object")
        where = f"annotation #{i} (id={ann.get('id')}, image_id={ann.get('image_id')})"
        for key in ("id", "image_id", "category_id"):
            if key not in ann:
                raise AnnotationError(f"{path}: {where}: missing field {key!r}")
        if ann["image_id"] not in image_ids:
            raise AnnotationError(f"{path}: {where}: image_id not in 'images'")
        if "bbox" not in ann:
            raise AnnotationError(f"{path}: {where}: missing field 'bbox'")
        _number_list(ann["bbox"], 4, path, where, "bbox")
        if "keypoints" in ann:
            _number_list(ann["keypoints"], 3 * num_joints, path, where, "keypoints")


def _quiet_coco(data: dict):
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def clean_box(bbox, width: float, height: float) -> np.ndarray | None:
    """HRNet's box cleaning: clip (x, y, w, h) to the image; None when nothing is left."""
    x, y, w, h = [float(v) for v in bbox]
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = x1 + max(0.0, w - 1.0)
    y2 = y1 + max(0.0, h - 1.0)
    if width > 0:
        x2 = min(width - 1.0, x2)
    if height > 0:
        y2 = min(height - 1.0, y2)
    if w <= 0 or h <= 0 or x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], np.float32)


def box_center_size(box_xywh) -> tuple[np.ndarray, np.ndarray]:
    x, y, w, h = [float(v) for v in box_xywh]
    return np.array([x + 0.5 * w, y + 0.5 * h], np.float32), np.array([w, h], np.float32)


def _unit_info(image: dict, ann: dict, path: str) -> dict:
    """What a record knows about its privacy units: identity, video (PoseTrack's vid_id),
    track, frame, and every scalar field of the image and the annotation."""
    video = image.get("vid_id", ann.get("vid_id", ""))
    return {"identity": int(ann.get("identity", -1)), "video": "" if video is None else str(video),
            "track_id": int(ann.get("track_id", -1)), "frame_id": int(image.get("frame_id", -1)),
            "fields": scalar_fields(image, ann), "source": path}


def read_coco_style(annotation_file: str, image_dir: str, *, joint_set: joints_lib.JointSet,
                    boxes: str = "gt", detection_file: str | None = None,
                    score_threshold: float = 0.0, check_images: str = "header",
                    head_box_field: str | None = None, source: str = "coco") -> ReadResult:
    """Shared reader for COCO and COCO-style files (see `read_coco` and `read_custom`)."""
    if boxes not in ("gt", "detections"):
        raise ValueError(f"boxes must be 'gt' or 'detections', got {boxes!r}")
    data = load_json(annotation_file)
    category = person_category(data, annotation_file)
    k = len(category["keypoints"])
    if k != joint_set.num_joints:
        raise AnnotationError(f"{annotation_file}: category {category.get('name')!r} has {k} "
                              f"keypoints, joint set {joint_set.name!r} has {joint_set.num_joints}")
    validate_coco_keypoints(data, annotation_file, k)
    reader = _Reader(annotation_file, image_dir, _quiet_coco(data), category, check_images,
                     ReadSummary(source=f"{source}:{annotation_file}"))
    if boxes == "gt":
        records = reader.ground_truth(head_box_field)
    else:
        if detection_file is None:
            raise ValueError("boxes='detections' needs detection_file")
        records = reader.detections(detection_file, score_threshold)
    reader.summary.kept = len(records)
    reader.summary.log()
    return ReadResult(records=records, summary=reader.summary, joint_set=joint_set)


class _Reader:
    """One COCO-style file's person records, by ground-truth boxes or by detections."""

    def __init__(self, annotation_file, image_dir, coco, category, check_images, summary):
        self.path, self.image_dir, self.coco = annotation_file, image_dir, coco
        self.category, self.k = category, len(category["keypoints"])
        self.summary = summary
        self.checker = ImageChecker(summary, check_images)

    def image_info(self, img_id):
        img = self.coco.imgs[img_id]
        path = os.path.join(self.image_dir, img["file_name"])
        size, bad = self.checker(path)
        return path, (int(img.get("height") or size[0]), int(img.get("width") or size[1])), bad

    def ground_truth(self, head_box_field) -> list[PoseRecord]:
        records = []
        for img_id in sorted(self.coco.getImgIds()):
            ann_ids = self.coco.getAnnIds(imgIds=img_id, catIds=[self.category["id"]],
                                          iscrowd=None)
            if not ann_ids:
                continue
            path, size, bad = self.image_info(img_id)
            for ann in self.coco.loadAnns(ann_ids):
                rec = self._person(img_id, ann, path, size, bad, head_box_field)
                if rec is not None:
                    records.append(rec)
        return records

    def _person(self, img_id, ann, path, size, bad, head_box_field) -> PoseRecord | None:
        where = f"{self.path}: annotation id={ann['id']} (image {path})"
        if bad:
            self.summary.skip(bad, where, warn=False)
            return None
        if ann.get("iscrowd", 0):
            self.summary.skip("crowd", where, warn=False)
            return None
        kp = np.asarray(ann.get("keypoints", [0] * 3 * self.k), np.float32).reshape(self.k, 3)
        if not np.any(kp[:, 2] > 0):
            self.summary.skip("no_keypoints", where, warn=False)
            return None
        h, w = size
        box = clean_box(ann["bbox"], w, h)
        if box is None or float(ann.get("area", 1.0)) <= 0:
            self.summary.skip("invalid_box", where, warn=False)
            return None
        center, box_size = box_center_size(box)
        head_box = np.zeros(4, np.float32)
        if head_box_field and head_box_field in ann:
            head_box = _number_list(ann[head_box_field], 4, self.path, where,
                                    head_box_field).astype(np.float32)
        rec = PoseRecord(image_path=path, image_id=int(img_id), keypoints=kp[:, :2],
                         visible=(kp[:, 2] > 0).astype(np.float32), center=center,
                         box_size=box_size, head_box=head_box, image_size=size,
                         annotation_id=int(ann["id"]),
                         **_unit_info(self.coco.imgs[img_id], ann, self.path))
        return finish_record(rec, self.summary, where)

    def detections(self, detection_file, score_threshold) -> list[PoseRecord]:
        dets = load_json(detection_file)
        if not isinstance(dets, list):
            raise AnnotationError(f"{detection_file}: expected a list of detections")
        records = []
        for i, det in enumerate(dets):
            where = f"{detection_file}: detection #{i}"
            if not isinstance(det, dict) or not {"image_id", "bbox", "score"} <= set(det):
                raise AnnotationError(f"{where}: needs image_id, bbox and score")
            bbox = _number_list(det["bbox"], 4, detection_file, f"detection #{i}", "bbox")
            if det.get("category_id", self.category["id"]) != self.category["id"]:
                self.summary.skip("not_person", where, warn=False)
                continue
            if float(det["score"]) < score_threshold:
                self.summary.skip("below_score_threshold", where, warn=False)
                continue
            if det["image_id"] not in self.coco.imgs:
                raise AnnotationError(f"{where}: image_id {det['image_id']} is not in "
                                      f"{self.path}")
            path, size, bad = self.image_info(det["image_id"])
            if bad:
                self.summary.skip(bad, where, warn=False)
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:
                self.summary.skip("invalid_box", where, warn=False)
                continue
            center, box_size = box_center_size(bbox)
            records.append(PoseRecord(
                image_path=path, image_id=int(det["image_id"]),
                keypoints=np.zeros((self.k, 2), np.float32), visible=np.zeros(self.k, np.float32),
                center=center, box_size=box_size, image_size=size,
                box_score=float(det["score"])))
        return records


def read_coco(annotation_file: str, image_dir: str, *, boxes: str = "gt",
              detection_file: str | None = None, score_threshold: float = 0.0,
              check_images: str = "header") -> ReadResult:
    """Reads COCO person keypoints (17 joints) into person records.

    Args:
      annotation_file: ``person_keypoints_{train,val}2017.json`` or a file in that layout.
      image_dir: folder the ``file_name`` entries are relative to (e.g. ``val2017/``).
      boxes: "gt" (ground-truth boxes, with keypoints) or "detections" (boxes from
        ``detection_file``; records then carry no keypoints and are not skipped for that).
      score_threshold: detections scoring below it are skipped (and counted).
      check_images: "header" (default), "decode", "exists" or "none"; see `check_image`.
    """
    return read_coco_style(annotation_file, image_dir, joint_set=joints_lib.COCO, boxes=boxes,
                           detection_file=detection_file, score_threshold=score_threshold,
                           check_images=check_images, source="coco")
