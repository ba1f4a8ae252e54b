"""What a run writes: PoseTrack-style JSON (COCO results plus ``track_id`` and ``frame_id``) and
annotated frames.

The JSON holds ``images`` (one per frame), ``categories`` (the person with the model's joint
names and skeleton) and ``annotations`` in COCO's results layout (``image_id``,
``category_id``, ``keypoints`` as x, y, score triples, ``score``, ``bbox`` x, y, w, h) plus
``track_id`` and ``frame_id``: ``COCO.loadRes(doc["annotations"])`` reads it. ``image_id`` is
the frame index. Files are written under a temporary name and renamed when complete.

Tests: tests/inference/test_runner.py, tests/inference/test_pipeline.py.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from tfdphpe.evaluation.visualize import draw_poses
from tfdphpe.inference.pipeline import FramePoses


def frame_annotations(poses: FramePoses) -> list[dict[str, Any]]:
    """One COCO result per person of the frame, with its track id."""
    out = []
    for i in range(len(poses)):
        x1, y1, x2, y2 = (float(v) for v in poses.boxes[i])
        triples = np.concatenate([poses.keypoints[i], poses.scores[i][:, None]], axis=-1)
        out.append({"image_id": int(poses.frame_id), "frame_id": int(poses.frame_id),
                    "track_id": int(poses.track_ids[i]), "category_id": 1,
                    "keypoints": [round(float(v), 2) for v in triples.reshape(-1)],
                    "score": round(float(np.mean(poses.scores[i])), 4),
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]})
    return out


def frame_image(poses: FramePoses, width: int, height: int, name: str = "") -> dict[str, Any]:
    return {"id": int(poses.frame_id), "frame_id": int(poses.frame_id),
            "file_name": name or f"frame_{poses.frame_id:06d}", "width": int(width),
            "height": int(height), "timestamp": round(float(poses.timestamp), 4),
            "detected": bool(poses.detected)}


def document(images: list[dict], annotations: list[dict], metadata: dict[str, Any],
             info: dict[str, Any]) -> dict[str, Any]:
    """The whole JSON: model metadata (joints, privacy statement) with the per-frame results."""
    names = list(metadata.get("joint_names") or [])
    skeleton = [[int(a) + 1, int(b) + 1] for a, b in metadata.get("skeleton", [])]  # COCO: 1-based
    return {"info": dict(info, privacy=metadata.get("privacy")),
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": names, "skeleton": skeleton}],
            "images": images, "annotations": annotations}


def write_json_atomic(path: str, data: Any) -> str:
    """Writes ``data`` to ``path`` through a temporary file: the name appears only complete."""
    directory, name = os.path.split(os.fspath(path))
    partial = os.path.join(directory, f".{name}.partial")
    try:
        with open(partial, "w") as f:
            json.dump(data, f)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def annotate(image: np.ndarray, poses: FramePoses, metadata: dict[str, Any],
             score_threshold: float = 0.2, ids: bool = True) -> Image.Image:
    """The frame with each person's skeleton, box and track id drawn."""
    canvas = draw_poses(image, poses.keypoints, poses.scores, metadata.get("skeleton", []),
                        metadata.get("joint_names"), poses.boxes, score_threshold)
    if ids and len(poses):
        draw = ImageDraw.Draw(canvas)
        for track_id, box in zip(poses.track_ids, poses.boxes):
            draw.text((float(box[0]) + 3, float(box[1]) + 2), f"#{int(track_id)}",
                      fill=(255, 255, 0))
    return canvas
