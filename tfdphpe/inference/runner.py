"""Runs the pipeline over a video (or camera) and writes the annotated video and the JSON; runs
it over still images and writes one drawing each. ``scripts/predict.py`` is a thin shell around
these two functions.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable

import numpy as np

from tfdphpe.export.predictor import load_predictor
from tfdphpe.inference import results
from tfdphpe.inference.bundle import BUNDLE_FILE, load_bundle, read_bundle
from tfdphpe.inference.detector import MediaPipePoseDetector, WholeFrameDetector
from tfdphpe.inference.pipeline import CropPoseEstimator, PipelineConfig, PosePipeline
from tfdphpe.inference.video import Frame, VideoWriter


def build_pipeline(model: str, detector: str = "mediapipe", num_threads: int = 1,
                   config: PipelineConfig = PipelineConfig(),
                   **detector_options: Any) -> tuple[PosePipeline, dict[str, Any]]:
    """(pipeline, pose model metadata) for a SavedModel directory, a ``.tflite`` file or a
    mobile bundle folder (whose own detector settings then apply).

    ``detector``: "mediapipe" (``MediaPipePoseDetector(**detector_options)``) or "none" (the
    whole frame is one person).
    """
    if os.path.isfile(os.path.join(model, BUNDLE_FILE)):
        pipeline = load_bundle(model, num_threads, **_changed(config))
        return pipeline, read_bundle(model)["pose"]["metadata"]
    predictor = load_predictor(model, num_threads)
    if detector == "none":
        people = WholeFrameDetector()
    elif detector == "mediapipe":
        people = MediaPipePoseDetector(num_threads=num_threads, **detector_options)
    else:
        raise ValueError(f"detector must be 'mediapipe' or 'none', got {detector!r}")
    return PosePipeline(people, CropPoseEstimator(predictor), config), predictor.metadata


def _changed(config: PipelineConfig) -> dict[str, Any]:
    """The settings of ``config`` that differ from the defaults (they override a bundle's)."""
    default = PipelineConfig()
    return {f: getattr(config, f) for f in ("detect_every", "smooth")
            if getattr(config, f) != getattr(default, f)}


def run_video(pipeline: PosePipeline, frames: Iterable[Frame], output_dir: str, name: str,
              metadata: dict[str, Any], fps: float, total: int | None = None,
              write_video: bool = True, score_threshold: float = 0.2,
              max_frames: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Every frame through ``pipeline``; writes ``<name>_pose.mp4`` and ``<name>_pose.json``.

    Both files appear under their names only when the whole video went through; an error
    (a frame that does not decode) leaves neither. Returns a summary (frames, people, frames/s).
    """
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    os.makedirs(output_dir, exist_ok=True)
    video_path = os.path.join(output_dir, f"{name}_pose.mp4")
    images, annotations = [], []
    writer = VideoWriter(video_path, fps) if write_video else None
    bar = tqdm(total=min(total or 0, max_frames or total or 0) or None, unit="frame",
               disable=not progress, desc=name)
    start = time.perf_counter()
    try:
        for frame in frames:
            if max_frames is not None and frame.index >= max_frames:
                break
            poses = pipeline(frame.image, frame.timestamp)
            h, w = frame.image.shape[:2]
            images.append(results.frame_image(poses, w, h, f"{name}#{frame.index}"))
            annotations += results.frame_annotations(poses)
            if writer is not None:
                writer.write(np.asarray(results.annotate(frame.image, poses, metadata,
                                                         score_threshold)))
            bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is not None:
        writer.close()
    seconds = time.perf_counter() - start
    info = {"source": name, "fps": fps, "frames": len(images),
            "detector_runs": pipeline.detector_runs,
            "detect_every": pipeline.config.detect_every, "smooth": pipeline.config.smooth}
    results.write_json_atomic(os.path.join(output_dir, f"{name}_pose.json"),
                              results.document(images, annotations, metadata, info))
    return {"frames": len(images), "people": len(annotations), "seconds": seconds,
            "frames_per_second": len(images) / max(seconds, 1e-9),
            "detector_runs": pipeline.detector_runs,
            "video": video_path if write_video else None}


def run_images(pipeline: PosePipeline, frames: Iterable[Frame], output_dir: str,
               metadata: dict[str, Any], boxes: dict[str, list] | None = None,
               score_threshold: float = 0.2, model: str = "") -> dict[str, Any]:
    """Each image on its own (detector, or the boxes given for its file name; no tracking);
    writes ``<image>_pose.png`` per image and ``predictions.json``."""
    os.makedirs(output_dir, exist_ok=True)
    predictions = {}
    for frame in frames:
        given = (boxes or {}).get(frame.name)
        poses = pipeline.still(frame.image, given)
        stem = os.path.splitext(frame.name)[0]
        results.annotate(frame.image, poses, metadata, score_threshold, ids=False).save(
            os.path.join(output_dir, f"{stem}_pose.png"))
        predictions[frame.name] = {"boxes": np.round(poses.boxes, 2).tolist(),
                                   "keypoints": np.round(poses.keypoints, 2).tolist(),
                                   "scores": np.round(poses.scores, 4).tolist(),
                                   "detected": given is None}
    out = {"model": model, "joint_names": metadata.get("joint_names"),
           "privacy": metadata.get("privacy"), "predictions": predictions}
    results.write_json_atomic(os.path.join(output_dir, "predictions.json"), out)
    return out
