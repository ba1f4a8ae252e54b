r"""Throughput of the whole video pipeline in one process: decode (PyAV) -> detect (every N-th
frame) -> crop -> pose (TFLite, 1 thread) -> track -> smooth -> draw -> encode -> JSON.

    python scripts/bench_video.py --models=pose_int8_128x96.tflite,pose_int8_256x192.tflite

A clip of one person (a pan over a COCO fixture photo, 480x352) is encoded first. Untrained
models are fine (latency does not depend on the weights): SteadyPose times the model but keeps
the tracked box on the person, as a trained model's joints would (tfdphpe.inference.latency).
Each model runs twice, alternating, and the better run counts (a shared machine's load varies).
"""

import os
import tempfile

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe import compat
from tfdphpe.export import load_predictor
from tfdphpe.inference import (CropPoseEstimator, ImageReader, MediaPipePoseDetector,
                               PipelineConfig, PosePipeline, VideoReader, VideoWriter, run_video)
from tfdphpe.inference.latency import SteadyPose

flags.DEFINE_list("models", None, "Pose .tflite files (exported by scripts/export.py).")
flags.DEFINE_integer("frames", 300, "Frames in the test clip.")
flags.DEFINE_integer("detect_every", 5, "Detector interval.")
flags.DEFINE_integer("rounds", 2, "Runs per model (alternating); the best counts.")
flags.mark_flag_as_required("models")
FLAGS = flags.FLAGS


def make_clip(path):
    photo = next(iter(ImageReader("../shared/fixtures/coco/000000000785.jpg"))).image
    with VideoWriter(path, 30.0) as writer:
        for t in range(FLAGS.frames):
            x = (4 * t) % 320 if (4 * t) % 320 < 160 else 320 - (4 * t) % 320
            writer.write(photo[40:392, x:x + 480])


def main(argv):
    del argv
    tmp = tempfile.mkdtemp()
    clip = os.path.join(tmp, "clip.mp4")
    make_clip(clip)
    best = {}
    for _ in range(FLAGS.rounds):
        for model in FLAGS.models:
            pose = SteadyPose(CropPoseEstimator(load_predictor(model)))
            pipeline = PosePipeline(MediaPipePoseDetector(), pose,
                                    PipelineConfig(detect_every=FLAGS.detect_every))
            reader = VideoReader(clip)
            summary = run_video(pipeline, reader, tmp, "bench", {"skeleton": []}, reader.fps,
                                progress=False)
            if summary["frames_per_second"] > best.get(model, {}).get("frames_per_second", 0):
                best[model] = summary
    load = os.getloadavg()[0]
    print(f"\nFull video pipeline, {FLAGS.frames} frames 480x352, one person, detect every "
          f"{FLAGS.detect_every}, {compat.tflite_runtime_name()} 1 thread, best of "
          f"{FLAGS.rounds}; load average {load:.1f} on {os.cpu_count()} cores.")
    print("| pose model | input | frames/s | detector runs |")
    print("|---|---|---:|---:|")
    for model, s in best.items():
        size = "x".join(str(v) for v in load_predictor(model).input_size)
        print(f"| {os.path.basename(model)} | {size} | {s['frames_per_second']:.1f} | "
              f"{s['detector_runs']} |")


if __name__ == "__main__":
    _app.run(main)
