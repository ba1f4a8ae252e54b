"""Per-frame latency of the video pipeline beside MediaPipe's detector + BlazePose pipeline.

Both run on the same frames, interleaved frame by frame, on the same interpreter with one
thread. MediaPipe's graph is not run (mediapipe has no wheel for every Python we support);
its two models are, with what its graph does between them: the pose detector (the same file
and decoding as ours) when tracking is lost or on its schedule, a 256x256 crop around the
person, BlazePose full on it, and the next frame's box from BlazePose's alignment landmarks
(33: hip centre, 34: body scale point). Used by ``scripts/bench_tflite.py --pipeline``.

Tests: tests/inference/test_runner.py.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from tfdphpe.export.preprocessing import crop_regions, crop_to_image
from tfdphpe.export.runtime import interpreter
from tfdphpe.inference.crops import RegionCropper
from tfdphpe.inference.detector import MediaPipePoseDetector, alignment_box

BLAZEPOSE_SIZE = (256, 256)


class BlazePoseTracker:
    """MediaPipe's pose pipeline from its two models: detect, crop, landmarks, carry the box."""

    def __init__(self, landmark_model: str, detect_every: int, num_threads: int = 1):
        self.detector = MediaPipePoseDetector(num_threads=num_threads, max_people=1)
        self.interpreter = interpreter(landmark_model, num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._landmarks = max(self.interpreter.get_output_details(),
                              key=lambda d: int(d["shape"][-1]) if len(d["shape"]) == 2 else 0)
        self._cropper = RegionCropper(BLAZEPOSE_SIZE)
        self.detect_every, self._frame, self._box = detect_every, 0, None

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        if self._box is None or self._frame % self.detect_every == 0:
            found = self.detector.detect(frame)
            self._box = found.boxes[0] if len(found) else None
        self._frame += 1
        if self._box is None:
            return None
        regions = crop_regions(self._box[None], BLAZEPOSE_SIZE, 1.25).numpy()
        crop = self._cropper(frame, regions).astype(np.float32) / 255.0
        self.interpreter.set_tensor(self._input["index"], crop)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._landmarks["index"]).reshape(-1, 5)[:, :2]
        points = crop_to_image(raw[None], regions, BLAZEPOSE_SIZE).numpy()[0]
        self._box = alignment_box(points[33:34], points[34:35], 0.4)[0]
        return points


def per_frame_latency(runners: dict[str, Callable[[np.ndarray], object]],
                      frames: Sequence[np.ndarray]) -> dict[str, dict[str, float]]:
    """Runs every runner on each frame in turn (interleaved); per runner the mean, median and
    95th percentile wall ms per frame and the mean CPU ms (one thread: the calling thread)."""
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for frame in frames:
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            run(frame)
            wall[name].append(1e3 * (time.perf_counter() - t0))
            cpu[name].append(1e3 * (time.thread_time() - c0))
    return {name: {"mean_ms": float(np.mean(wall[name])),
                   "median_ms": float(np.median(wall[name])),
                   "p95_ms": float(np.percentile(wall[name], 95)),
                   "cpu_ms": float(np.mean(cpu[name]))} for name in runners}


class SteadyPose:
    """Runs a pose estimator (timed as is) but returns joints spread over the given box.

    An untrained model's joints are random, so boxes carried from them drift away and tracking
    never lasts to the next scheduled detection; a trained model's joints span the person. This
    stand-in keeps the carried box where it was, so the benchmark times the schedule it names.
    """

    def __init__(self, pose, margin: float = 0.15):
        self.pose, self.margin = pose, margin
        self.num_joints = pose.num_joints

    def __call__(self, frame, boxes):
        _, scores = self.pose(frame, boxes)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
        half = half / (1 + 2 * self.margin)          # box_from_keypoints adds the margin back
        t = np.linspace(-1, 1, self.num_joints)[None, :, None]
        keypoints = centre[:, None] + t * half[:, None]
        return keypoints.astype(np.float32), np.ones_like(scores)
