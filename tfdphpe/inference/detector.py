"""Person detectors: the ``PersonDetector`` interface and MediaPipe's pose detector behind it.

A top-down pose model needs a box per person. ``MediaPipePoseDetector`` runs the BlazePose
detector that ships inside this package (``assets/pose_detection.tflite``, Apache-2.0, from the
mediapipe 0.10.14 wheel: ``assets/NOTICE``) on our TFLite interpreter, so nothing is downloaded
at run time. Anything with ``detect(frame) -> Detections`` can replace it (a TF Serving
detector: ``serving_client.ServingDetector``; a COCO SSD you have; boxes from annotations).

The BlazePose detector finds a face and predicts four alignment points: the hip centre, a point
whose distance from it is the radius of a circle holding the whole body (and whose direction
is the body's axis), and the same pair for the upper body. MediaPipe crops a rotated square
from the first pair; our pose models take upright boxes, so ``alignment_box`` turns the pair
into the upright box that holds a body-shaped rectangle along that axis.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Protocol, runtime_checkable

import numpy as np

from tfdphpe.export.preprocessing import crop_to_image, whole_image_box
from tfdphpe.export.runtime import interpreter
from tfdphpe.inference import ssd
from tfdphpe.inference.crops import RegionCropper

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
POSE_DETECTOR_FILE = os.path.join(ASSETS, "pose_detection.tflite")

#: MediaPipe's pose detection graph (pose_detection_cpu): 224x224 input, anchors on strides
#: 8, 16, 32, 32, 32 (2254 rows), 4 alignment keypoints per row.
POSE_DETECTOR_SSD = ssd.SSDConfig(input_size=(224, 224), strides=(8, 16, 32, 32, 32))


@dataclasses.dataclass
class Detections:
    """People found in one frame: ``boxes`` ``[N, 4]`` (x1, y1, x2, y2) in frame pixels,
    ``scores`` ``[N]`` in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.scores)


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people: uint8 RGB frame ``[h, w, 3]`` -> ``Detections`` (possibly empty)."""

    def detect(self, frame: np.ndarray) -> Detections:
        ...


class WholeFrameDetector:
    """No detector: the whole frame is one person (the box whose padded crop is the frame)."""

    def detect(self, frame: np.ndarray) -> Detections:
        h, w = np.asarray(frame).shape[:2]
        return Detections(whole_image_box((h, w)).numpy()[None], np.ones(1))


def alignment_box(centre: np.ndarray, scale_point: np.ndarray,
                  width_ratio: float) -> np.ndarray:
    """Upright person boxes ``[N, 4]`` from alignment point pairs ``[N, 2]`` (frame pixels).

    The body is taken as a rectangle centred on ``centre`` (the hip centre), as long as the
    circle's diameter along the axis ``scale_point - centre`` and ``width_ratio`` times that
    across it; the box is the rectangle's upright bounding box, so a person lying down gets a
    wide box and a standing one a tall box.
    """
    axis = scale_point - centre
    radius = np.linalg.norm(axis, axis=-1, keepdims=True)
    u = np.abs(axis) / np.maximum(radius, 1e-6)
    half = radius * (u + width_ratio * u[:, ::-1])
    return np.concatenate([centre - half, centre + half], axis=-1).astype(np.float32)


class MediaPipePoseDetector:
    """MediaPipe's BlazePose detector on the TFLite interpreter, several people per frame.

    Args:
      model_path: the detector ``.tflite`` (default: the one in this package).
      num_threads: interpreter threads.
      min_score: detection threshold (MediaPipe's ``min_detection_confidence``, 0.5).
      iou_threshold: weighted NMS overlap of face boxes (MediaPipe: 0.3).
      max_people: keep at most this many (best first); None keeps all.
      width_ratio: body width / body length for ``alignment_box``. 0.4 gave the best recall
        of 0.3-0.8 on the COCO and MPII fixtures (docs/deployment.md); a handful of images, so
        it is a sensible value rather than a fitted one.
      tiles: 0 runs the detector once on the whole frame (MediaPipe's way: fast, made for one
        person near the camera). ``g`` > 0 also runs it on overlapping squares, ``g`` along the
        frame's long side, so that small people (a ward camera, a group) are seen at a larger
        scale; costs 1 + g x rows detector runs per detection frame.
    """

    def __init__(self, model_path: str | None = None, num_threads: int = 1,
                 min_score: float = 0.5, iou_threshold: float = 0.3,
                 max_people: int | None = None, width_ratio: float = 0.4, tiles: int = 0,
                 config: ssd.SSDConfig = POSE_DETECTOR_SSD):
        self.model_path = model_path or POSE_DETECTOR_FILE
        self.config = config
        self.min_score, self.iou_threshold = float(min_score), float(iou_threshold)
        self.max_people, self.width_ratio = max_people, float(width_ratio)
        self.tiles = int(tiles)
        self._interpreter = interpreter(self.model_path, num_threads)
        self._interpreter.allocate_tensors()
        (self._input,) = self._interpreter.get_input_details()
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._raw_boxes, self._raw_scores = outputs
        self._anchors = ssd.anchor_centres(config)
        if len(self._anchors) != int(self._raw_boxes["shape"][1]):
            raise ValueError(f"{self.model_path}: {self._raw_boxes['shape'][1]} output rows, "
                             f"but the SSD configuration makes {len(self._anchors)} anchors")
        self._cropper = RegionCropper(config.input_size)

    def detect(self, frame: np.ndarray) -> Detections:
        frame = np.asarray(frame)
        found = [self._detect_region(frame, region)
                 for region in detector_regions(frame.shape, self.tiles)]
        faces = np.concatenate([f[0] for f in found])
        points = np.concatenate([f[1] for f in found])
        scores = np.concatenate([f[2] for f in found])
        if len(found) > 1:   # one person seen in several tiles: merge as within one run
            faces, points, scores = ssd.weighted_nms(faces, points, scores, self.iou_threshold)
        order = np.argsort(-scores)[:self.max_people]
        points, scores = points[order], scores[order]
        return Detections(alignment_box(points[:, 0], points[:, 1], self.width_ratio), scores)

    def _detect_region(self, frame: np.ndarray, region: np.ndarray):
        """(face boxes [N, 4], alignment points [N, 4, 2], scores [N]) in frame pixels."""
        tensor = self._cropper(frame, region[None]).astype(np.float32) / 127.5 - 1.0
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._raw_boxes["index"])[0]
        raw_scores = self._interpreter.get_tensor(self._raw_scores["index"])[0]
        boxes, keypoints, scores = ssd.weighted_nms(
            *ssd.select(*ssd.decode(raw_boxes, raw_scores, self._anchors, self.config),
                        self.min_score), self.iou_threshold, self.max_people)
        faces = self._to_frame(boxes.reshape(-1, 2, 2), region).reshape(-1, 4)
        return faces, self._to_frame(keypoints, region), scores

    def _to_frame(self, points: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Normalised detector-input points ``[N, P, 2]`` -> frame pixels."""
        if not len(points):
            return np.zeros(points.shape, np.float32)
        h, w = self.config.input_size
        pixels = points * np.array([w, h], np.float32) - 0.5  # pixel centres at integers
        regions = np.repeat(region[None], len(points), axis=0)
        return crop_to_image(pixels, regions, self.config.input_size).numpy()


def letterbox_region(frame_shape) -> np.ndarray:
    """The square region (cx, cy, side, side) around the whole frame: the detector's input is
    the frame scaled to fit, centred, with black borders (aspect ratio kept)."""
    h, w = int(frame_shape[0]), int(frame_shape[1])
    side = float(max(h, w))
    return np.array([(w - 1) / 2.0, (h - 1) / 2.0, side, side], np.float32)


def detector_regions(frame_shape, tiles: int = 0, overlap: float = 1.3) -> list[np.ndarray]:
    """The whole frame, then (``tiles`` > 0) overlapping squares covering it.

    Squares of side ``overlap * long side / tiles``, ``tiles`` of them along the long side and
    as many rows as cover the short side, evenly spaced from edge to edge.
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    regions = [letterbox_region(frame_shape)]
    if tiles <= 0:
        return regions
    side = overlap * max(h, w) / tiles

    def centres(length):
        count = max(1, int(np.ceil(tiles * length / max(h, w))))
        if side >= length:
            return [(length - 1) / 2.0]
        return list(np.linspace(side / 2.0, length - side / 2.0, count))

    for cy in centres(h):
        for cx in centres(w):
            regions.append(np.array([cx, cy, side, side], np.float32))
    return regions
