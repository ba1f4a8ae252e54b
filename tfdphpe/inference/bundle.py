"""The mobile bundle: detector + pose model + everything an app needs to run them, in one folder,
and the reference runner that does exactly what the app does.

Layout::

    bundle/
      bundle.json              detector decoding, pipeline settings, the pose model's metadata
                               (joint names, skeleton, privacy statement, crop geometry)
      pose.tflite              the pose model (uint8 crop in, keypoints + scores out)
      pose_detection.tflite    MediaPipe's pose detector, with its LICENSE and NOTICE

``load_bundle(folder)`` builds the reference runner from these files alone: the same
``PosePipeline`` as the server, on the TFLite interpreter, one thread.

Tests: tests/inference/test_runner.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

from tfdphpe.export.metadata import read_tflite_metadata
from tfdphpe.export.predictor import TFLitePredictor
from tfdphpe.inference import detector as detector_lib
from tfdphpe.inference.pipeline import CropPoseEstimator, PipelineConfig, PosePipeline
from tfdphpe.inference.results import write_json_atomic
from tfdphpe.inference.tracking import TrackerConfig

BUNDLE_FILE = "bundle.json"
POSE_FILE = "pose.tflite"
DETECTOR_FILES = ("pose_detection.tflite", "LICENSE", "NOTICE")
FORMAT_VERSION = 1


def write_bundle(pose_tflite: str, output_dir: str,
                 pipeline: PipelineConfig = PipelineConfig(), min_score: float = 0.5,
                 iou_threshold: float = 0.3, width_ratio: float = 0.4, tiles: int = 0,
                 overwrite: bool = False) -> str:
    """Writes the bundle folder for a pose ``.tflite`` exported by tfdphpe; returns its path.

    The folder is assembled next to ``output_dir`` and renamed into place when complete.
    """
    meta = read_tflite_metadata(pose_tflite)
    if meta is None:
        raise ValueError(f"{pose_tflite} carries no tfdphpe metadata: export it with "
                         "scripts/export.py")
    if os.path.exists(output_dir) and not overwrite:
        raise FileExistsError(f"{output_dir} exists; pass overwrite=True to replace it")
    partial = output_dir.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    shutil.copyfile(pose_tflite, os.path.join(partial, POSE_FILE))
    for name in DETECTOR_FILES:
        target = name if name.endswith(".tflite") else f"pose_detection.{name}"
        shutil.copyfile(os.path.join(detector_lib.ASSETS, name), os.path.join(partial, target))
    ssd = detector_lib.POSE_DETECTOR_SSD
    description = {
        "format_version": FORMAT_VERSION,
        "pose": {"model": POSE_FILE, "metadata": meta},
        "detector": {"model": DETECTOR_FILES[0], "input_size": list(ssd.input_size),
                     "input": "RGB float32 [1, H, W, 3] in [-1, 1], frame letterboxed (black)",
                     "strides": list(ssd.strides), "anchors_per_layer": ssd.anchors_per_layer,
                     "num_keypoints": ssd.num_keypoints, "min_score": min_score,
                     "iou_threshold": iou_threshold, "width_ratio": width_ratio,
                     "tiles": tiles, "alignment_keypoints": [0, 1]},
        "pipeline": dataclasses.asdict(pipeline),
    }
    write_json_atomic(os.path.join(partial, BUNDLE_FILE), description)
    if os.path.exists(output_dir):
        shutil.rmtree(output_dir)
    os.replace(partial, output_dir)
    return output_dir


def read_bundle(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, BUNDLE_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{folder} is not a mobile bundle (no {BUNDLE_FILE})")
    with open(path) as f:
        return json.load(f)


def load_bundle(folder: str, num_threads: int = 1, **overrides: Any) -> PosePipeline:
    """The reference runner: a ``PosePipeline`` built from the bundle's files and settings.

    ``overrides`` replace pipeline settings (e.g. ``detect_every=1``).
    """
    description = read_bundle(folder)
    d = description["detector"]
    config = detector_lib.ssd.SSDConfig(tuple(d["input_size"]), tuple(d["strides"]),
                                        d["anchors_per_layer"], d["num_keypoints"])
    detector = detector_lib.MediaPipePoseDetector(
        os.path.join(folder, d["model"]), num_threads, d["min_score"], d["iou_threshold"],
        width_ratio=d["width_ratio"], tiles=d["tiles"], config=config)
    settings = dict(description["pipeline"], **overrides)
    settings["tracker"] = TrackerConfig(**settings["tracker"])
    pose = CropPoseEstimator(TFLitePredictor(os.path.join(folder, description["pose"]["model"]),
                                             num_threads))
    return PosePipeline(detector, pose, PipelineConfig(**settings))
