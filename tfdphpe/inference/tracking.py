"""People across frames: track ids, matching by box overlap and pose similarity, and the box
carried from one frame's keypoints to the next.

Between detections a person's box comes from the previous frame's keypoints (as MediaPipe's
pose tracking does): the pose model then follows the person without the detector. A track
whose pose becomes unsure (few confident joints) is dropped, which asks for a detection on the
next frame. Matching is a linear assignment (``scipy.optimize.linear_sum_assignment``) on the
larger of box IoU and keypoint similarity (OKS with one sigma for every joint).

Tests: tests/inference/test_pipeline.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment

from tfdphpe.inference.smoothing import OneEuroFilter
from tfdphpe.inference.ssd import box_iou


def keypoint_similarity(a: np.ndarray, a_scores: np.ndarray, b: np.ndarray,
                        b_scores: np.ndarray, b_boxes: np.ndarray, sigma: float = 0.1,
                        min_score: float = 0.2) -> np.ndarray:
    """OKS-like similarity ``[N, M]`` of poses ``a`` ``[N, K, 2]`` and ``b`` ``[M, K, 2]``.

    Mean over joints confident in both of exp(-d^2 / (2 (sigma * size)^2)), size = sqrt of the
    area of b's box; 0 where no joint is confident in both.
    """
    d2 = np.sum((a[:, None] - b[None]) ** 2, axis=-1)                     # [N, M, K]
    area = np.prod(np.clip(b_boxes[:, 2:] - b_boxes[:, :2], 1, None), axis=-1)
    sim = np.exp(-d2 / (2 * sigma ** 2 * area[None, :, None]))
    both = (a_scores[:, None] >= min_score) & (b_scores[None] >= min_score)
    count = both.sum(-1)
    return np.where(count > 0, (sim * both).sum(-1) / np.maximum(count, 1), 0.0)


def box_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.2,
                       margin: float = 0.15, min_joints: int = 3) -> np.ndarray | None:
    """The person box implied by confident joints ``[K, 2]``, or None if fewer than
    ``min_joints`` are confident.

    Joints are not the body's outline (no head top in COCO, no soles, no hands), so the joints'
    bounding box grows by ``margin`` of its size on every side, like an annotated box.
    """
    confident = keypoints[scores >= min_score]
    if len(confident) < min_joints:
        return None
    lo, hi = confident.min(0), confident.max(0)
    size = np.maximum(hi - lo, 0.1 * max(float(np.max(hi - lo)), 1.0))  # a line of joints
    return np.concatenate([lo - margin * size, hi + margin * size]).astype(np.float32)


@dataclasses.dataclass
class Track:
    """One person followed across frames."""

    track_id: int
    box: np.ndarray                        # the box to crop in the next frame
    keypoints: np.ndarray | None = None    # last pose (image pixels), before smoothing
    scores: np.ndarray | None = None
    smoother: OneEuroFilter | None = None
    lost: bool = False                     # the last pose was unsure: find the person again


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Matching and keeping tracks.

    Attributes:
      min_iou: a detection continues a track if their boxes overlap at least this much...
      min_oks: ...or if its pose is at least this similar to the track's last pose.
      min_pose_score: a track is kept while the mean score of its joints reaches this (below,
        the person is lost and the next frame runs the detector).
      keypoint_score: joints at or above this score shape the carried box.
      box_margin: see ``box_from_keypoints``.
    """

    min_iou: float = 0.3
    min_oks: float = 0.5
    min_pose_score: float = 0.2
    keypoint_score: float = 0.2
    box_margin: float = 0.15


class Tracker:
    """Gives track ids to people and carries their boxes from frame to frame."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), smoother_factory=None):
        self.config = config
        self.tracks: list[Track] = []
        self._next_id = 0
        self._smoother_factory = smoother_factory

    def carried_boxes(self) -> np.ndarray:
        return np.asarray([t.box for t in self.tracks], np.float32).reshape(-1, 4)

    def match(self, boxes: np.ndarray, keypoints: np.ndarray,
              scores: np.ndarray) -> list[tuple[int, int]]:
        """(detection index, track index) pairs: one-to-one, each similar enough."""
        if not len(boxes) or not self.tracks:
            return []
        iou = box_iou(boxes, self.carried_boxes())
        similarity = iou
        previous = [t for t in self.tracks if t.keypoints is not None]
        if len(previous) == len(self.tracks):
            oks = keypoint_similarity(keypoints, scores,
                                      np.stack([t.keypoints for t in self.tracks]),
                                      np.stack([t.scores for t in self.tracks]),
                                      self.carried_boxes(), min_score=self.config.keypoint_score)
            similarity = np.maximum(iou, oks)
        else:
            oks = np.zeros_like(iou)
        rows, cols = linear_sum_assignment(-similarity)
        return [(int(r), int(c)) for r, c in zip(rows, cols)
                if iou[r, c] >= self.config.min_iou or oks[r, c] >= self.config.min_oks]

    def start(self, box: np.ndarray) -> Track:
        smoother = self._smoother_factory() if self._smoother_factory else None
        track = Track(self._next_id, np.asarray(box, np.float32), smoother=smoother)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def observe(self, track: Track, keypoints: np.ndarray, scores: np.ndarray) -> bool:
        """Records a pose. True if it is sure enough to carry the box to the next frame; else
        the track is marked lost and keeps its box until a detection finds the person again."""
        cfg = self.config
        track.keypoints, track.scores = keypoints, scores
        box = box_from_keypoints(keypoints, scores, cfg.keypoint_score, cfg.box_margin)
        track.lost = box is None or float(np.mean(scores)) < cfg.min_pose_score
        if not track.lost:
            track.box = box
        return not track.lost

    def drop_lost(self, keep: list[Track] = ()) -> None:
        """Ends the lost tracks, except those in ``keep`` (matched to a detection just now)."""
        self.tracks = [t for t in self.tracks if not t.lost or t in keep]

    def reset(self) -> None:
        self.tracks.clear()
