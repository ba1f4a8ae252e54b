"""From video to poses: person detection, tracking, smoothing, video I/O, the mobile bundle and
the TF Serving client (docs/deployment.md, "Video, detection and tracking").

    from tfdphpe.inference import PosePipeline, CropPoseEstimator, MediaPipePoseDetector
    from tfdphpe.export import load_predictor
    pipeline = PosePipeline(MediaPipePoseDetector(),
                            CropPoseEstimator(load_predictor("pose_int8.tflite")))
    for frame in VideoReader("clip.mp4"):
        poses = pipeline(frame.image, frame.timestamp)   # track ids, boxes, keypoints, scores
"""

from tfdphpe.inference.bundle import load_bundle, read_bundle, write_bundle
from tfdphpe.inference.detector import (Detections, MediaPipePoseDetector, PersonDetector,
                                        WholeFrameDetector, alignment_box)
from tfdphpe.inference.pipeline import (CropPoseEstimator, FramePoses, PipelineConfig,
                                        PosePipeline)
from tfdphpe.inference.runner import run_images, run_video
from tfdphpe.inference.smoothing import OneEuroFilter
from tfdphpe.inference.tracking import Tracker, TrackerConfig, box_from_keypoints
from tfdphpe.inference.video import (Frame, ImageReader, VideoError, VideoReader, VideoWriter,
                                     camera_reader)

__all__ = [
    "CropPoseEstimator", "Detections", "Frame", "FramePoses", "ImageReader",
    "MediaPipePoseDetector", "OneEuroFilter", "PersonDetector", "PipelineConfig", "PosePipeline",
    "Tracker", "TrackerConfig", "VideoError", "VideoReader", "VideoWriter", "WholeFrameDetector", "alignment_box",
    "box_from_keypoints", "camera_reader", "load_bundle", "read_bundle", "run_images",
    "run_video", "write_bundle",
]
