"""SSD post-processing for single-class detectors: anchors, box decoding, weighted NMS.

MediaPipe's detectors (BlazeFace, the BlazePose detector) are SSD networks whose raw outputs are
offsets from a fixed grid of anchors; MediaPipe decodes them in C++ calculators, which a TFLite
interpreter does not run. This module does the same arithmetic in numpy, written from the
calculators' documented options (strides, anchor offsets, scales), for any such model.

Coordinates are normalised to the detector input ([0, 1] on both axes, x first).

Tests: tests/inference/test_detector.py.
"""

from __future__ import annotations

import dataclasses
import numpy as np


@dataclasses.dataclass(frozen=True)
class SSDConfig:
    """What a MediaPipe-style SSD detector's outputs mean.

    Attributes:
      input_size: (H, W) of the detector input.
      strides: feature-map stride of each anchor layer; consecutive equal strides share a grid.
      anchors_per_layer: anchors per grid cell and layer (MediaPipe: one per aspect ratio plus
        one interpolated scale, so 2 for aspect ratio 1 alone).
      num_keypoints: keypoints after the 4 box values of each row.
      score_clip: raw scores are clipped to +-this before the sigmoid.
    """

    input_size: tuple[int, int]
    strides: tuple[int, ...]
    anchors_per_layer: int = 2
    num_keypoints: int = 4
    score_clip: float = 100.0


def anchor_centres(config: SSDConfig) -> np.ndarray:
    """``[N, 2]`` anchor centres (x, y), normalised, in the order the model emits its rows.

    Fixed-size anchors (width = height = 1), so a centre is all an anchor is: each group of
    layers with the same stride puts ``anchors_per_layer`` anchors per layer on every cell of a
    ``ceil(H / stride) x ceil(W / stride)`` grid, cell by cell, row by row.
    """
    h, w = config.input_size
    centres = []
    strides = list(config.strides)
    i = 0
    while i < len(strides):
        stride, layers = strides[i], 1
        while i + layers < len(strides) and strides[i + layers] == stride:
            layers += 1
        rows, cols = -(-h // stride), -(-w // stride)
        y, x = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                           indexing="ij")
        grid = np.stack([x, y], axis=-1).reshape(-1, 1, 2)
        per_cell = layers * config.anchors_per_layer
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        i += layers
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           config: SSDConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs ``[N, 4 + 2P]``, ``[N]`` -> boxes ``[N, 4]`` (x1, y1, x2, y2), keypoints
    ``[N, P, 2]`` (x, y), scores ``[N]``, all normalised.

    Each row holds the box centre offset (x, y) and size (w, h), then P keypoint offsets, in
    input pixels relative to the anchor centre.
    """
    h, w = config.input_size
    scale = np.array([w, h], np.float32)
    centre = raw_boxes[:, 0:2] / scale + anchors
    size = raw_boxes[:, 2:4] / scale
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=-1)
    p = config.num_keypoints
    keypoints = raw_boxes[:, 4:4 + 2 * p].reshape(-1, p, 2) / scale + anchors[:, None]
    logits = np.clip(raw_scores.reshape(-1), -config.score_clip, config.score_clip)
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # float32 exp overflows at 89
    return boxes, keypoints, scores.astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[N, M]`` of boxes ``[N, 4]`` and ``[M, 4]`` (x1, y1, x2, y2)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float, max_detections: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-maximum suppression that averages each cluster instead of dropping its members.

    Candidates are taken in decreasing score; the best one and every remaining candidate whose
    box overlaps it by more than ``iou_threshold`` form a cluster, whose boxes and keypoints are
    averaged with the scores as weights (MediaPipe's WEIGHTED algorithm: neighbouring anchors
    fire together on one person, and their mean is steadier than the best alone). The cluster
    keeps the best score.
    """
    order = np.argsort(-scores)
    out_boxes, out_keypoints, out_scores = [], [], []
    while order.size and (max_detections is None or len(out_scores) < max_detections):
        best = order[0]
        members = order[box_iou(boxes[best], boxes[order])[0] > iou_threshold]
        members = members if members.size else order[:1]
        weights = scores[members] / scores[members].sum()
        out_boxes.append(weights @ boxes[members])
        out_keypoints.append(np.tensordot(weights, keypoints[members], axes=1))
        out_scores.append(scores[best])
        order = np.setdiff1d(order, members, assume_unique=True)
        order = order[np.argsort(-scores[order])]
    p = keypoints.shape[1]
    return (np.asarray(out_boxes, np.float32).reshape(-1, 4),
            np.asarray(out_keypoints, np.float32).reshape(-1, p, 2),
            np.asarray(out_scores, np.float32).reshape(-1))


def select(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows scoring at least ``min_score``."""
    keep = scores >= min_score
    return boxes[keep], keypoints[keep], scores[keep]
