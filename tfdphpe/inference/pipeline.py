"""Frames in, tracked and smoothed poses out: the one pipeline behind ``scripts/predict.py``, the
mobile bundle's reference runner and the benchmarks.

Per frame: detect people (every ``detect_every``-th frame, and after a person is lost), match
the detections to the tracks, carry the other tracks' boxes from their last keypoints, cut
every box's crop in one call, run the pose model on the batch, map the keypoints back, update
the tracks and smooth each track's keypoints over time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tfdphpe.export.preprocessing import BOX_PADDING, crop_regions, crop_to_image
from tfdphpe.inference.crops import RegionCropper
from tfdphpe.inference.detector import PersonDetector
from tfdphpe.inference.smoothing import OneEuroFilter
from tfdphpe.inference.ssd import box_iou
from tfdphpe.inference.tracking import Tracker, TrackerConfig


@dataclasses.dataclass
class FramePoses:
    """The people of one frame. ``keypoints`` ``[N, K, 2]`` and ``boxes`` ``[N, 4]`` are in
    frame pixels, ``scores`` ``[N, K]``; ``detected`` says whether the detector ran."""

    frame_id: int
    timestamp: float
    track_ids: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    detected: bool

    def __len__(self) -> int:
        return len(self.track_ids)


class CropPoseEstimator:
    """Boxes in a frame -> keypoints in frame pixels, through any model with ``predict_crops``
    (``tfdphpe.export`` predictors: SavedModel or TFLite) and the export crop geometry."""

    def __init__(self, predictor: Any, box_padding: float | None = None):
        self.predictor = predictor
        self.input_size = tuple(predictor.input_size)
        self.num_joints = int(predictor.num_joints)
        meta = getattr(predictor, "metadata", None) or {}
        self.box_padding = float(box_padding or meta.get("box_padding", BOX_PADDING))
        self._cropper = RegionCropper(self.input_size)

    def __call__(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):
            k = self.num_joints
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        regions = crop_regions(boxes, self.input_size, self.box_padding).numpy()
        keypoints, scores = self.predictor.predict_crops(self._cropper(frame, regions))
        return crop_to_image(keypoints, regions, self.input_size).numpy(), np.asarray(scores)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How often to detect, how to track and whether to smooth.

    Attributes:
      detect_every: run the detector on every n-th frame (1: every frame); between, boxes come
        from the previous frame's keypoints. A lost person triggers a detection at once.
      smooth: One-Euro filter on each track's keypoints.
      min_cutoff, beta: the filter's settings (``smoothing.OneEuroFilter``).
      tracker: matching and track-keeping thresholds.
      duplicate_iou: two tracks whose boxes overlap more than this are one person: the younger
        track ends.
    """

    detect_every: int = 5
    smooth: bool = True
    min_cutoff: float = 0.05
    beta: float = 80.0
    tracker: TrackerConfig = TrackerConfig()
    duplicate_iou: float = 0.7

    def __post_init__(self):
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")


class PosePipeline:
    """``pipeline(frame, timestamp)`` -> ``FramePoses``, frame after frame of one video.

    Args:
      detector: a ``PersonDetector``.
      pose: boxes -> keypoints (``CropPoseEstimator``).
      config: ``PipelineConfig``.
    """

    def __init__(self, detector: PersonDetector, pose: CropPoseEstimator,
                 config: PipelineConfig = PipelineConfig()):
        self.detector, self.pose, self.config = detector, pose, config
        factory = ((lambda: OneEuroFilter(config.min_cutoff, config.beta)) if config.smooth
                   else None)
        self.tracker = Tracker(config.tracker, factory)
        self._frame_id = 0
        self._redetect = True
        self.detector_runs = 0

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self.tracker.reset()
        self._frame_id, self._redetect = 0, True

    def __call__(self, frame: np.ndarray, timestamp: float | None = None) -> FramePoses:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 RGB [h, w, 3], got {frame.dtype} "
                             f"{frame.shape}")
        frame_id = self._frame_id
        self._frame_id += 1
        timestamp = float(frame_id if timestamp is None else timestamp)
        detect = self._redetect or frame_id % self.config.detect_every == 0
        if detect:
            self.detector_runs += 1
            people = self._detection_frame(frame)
        else:
            people = self._tracking_frame(frame, list(self.tracker.tracks))
        # Nobody left to follow, or someone lost: look again on the next frame.
        self._redetect = not self.tracker.tracks or any(t.lost for t in self.tracker.tracks)
        return self._result(frame_id, timestamp, people, detect)

    def still(self, image: np.ndarray, boxes: np.ndarray | None = None) -> FramePoses:
        """One photo on its own: the given boxes (or the detector's), no tracking, no
        smoothing. Person ids are 0..N-1 in box order."""
        if boxes is None:
            self.detector_runs += 1
            boxes = self.detector.detect(np.asarray(image)).boxes
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        keypoints, scores = self.pose(np.asarray(image), boxes)
        return FramePoses(0, 0.0, np.arange(len(boxes)), boxes, keypoints, scores,
                          detected=True)

    def _detection_frame(self, frame):
        """Pose on every detection; detections continue tracks or start new ones. A detected
        person is reported even when the pose is unsure (the detector saw them)."""
        detections = self.detector.detect(frame)
        keypoints, scores = self.pose(frame, detections.boxes)
        pairs = self.tracker.match(detections.boxes, keypoints, scores)
        matched = {d: self.tracker.tracks[t] for d, t in pairs}
        unmatched = [t for i, t in enumerate(self.tracker.tracks)
                     if i not in {t for _, t in pairs}]
        people = []
        for d in range(len(detections)):
            track = matched.get(d) or self.tracker.start(detections.boxes[d])
            track.box = detections.boxes[d]
            self.tracker.observe(track, keypoints[d], scores[d])
            people.append((track, detections.boxes[d], keypoints[d], scores[d]))
        self.tracker.drop_lost(keep=[p[0] for p in people])
        # Tracks the detector missed go on from their keypoints while the pose model is sure;
        # one that has drifted onto a detected person is the same person twice: dropped.
        carried = [t for t in unmatched if t in self.tracker.tracks]
        return self._without_duplicates(people + self._tracking_frame(frame, carried))

    def _tracking_frame(self, frame, tracks):
        """Pose in the carried boxes; a person whose pose is unsure is not reported."""
        if not tracks:
            return []
        boxes = np.stack([t.box for t in tracks])
        keypoints, scores = self.pose(frame, boxes)
        return [(t, b, k, s) for t, b, k, s in zip(tracks, boxes, keypoints, scores)
                if self.tracker.observe(t, k, s)]

    def _without_duplicates(self, people):
        kept = []
        for person in sorted(people, key=lambda p: p[0].track_id):    # older tracks first
            if kept and box_iou(person[1], np.stack([k[1] for k in kept])).max() > \
                    self.config.duplicate_iou:
                self.tracker.tracks.remove(person[0])
            else:
                kept.append(person)
        return kept

    def _result(self, frame_id, timestamp, people, detected) -> FramePoses:
        k = self.pose.num_joints
        ids, boxes, keypoints, scores = [], [], [], []
        for track, box, kp, sc in people:
            if track.smoother is not None:
                kp = track.smoother(kp, timestamp, scale=float(box[3] - box[1]))
            ids.append(track.track_id)
            boxes.append(box)
            keypoints.append(kp)
            scores.append(sc)
        return FramePoses(frame_id, timestamp, np.asarray(ids, np.int64),
                          np.asarray(boxes, np.float32).reshape(-1, 4),
                          np.asarray(keypoints, np.float32).reshape(-1, k, 2),
                          np.asarray(scores, np.float32).reshape(-1, k), detected)
