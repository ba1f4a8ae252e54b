r"""Poses from images, videos or a camera: finds the people, tracks them, draws the skeletons.

    python scripts/predict.py --model=savedmodels/pose/1 --video=clip.mp4 --output=out/
    python scripts/predict.py --model=pose_int8.tflite --image=../shared/fixtures/mpii \
        --output=out/
    python scripts/predict.py --model=bundle/ --camera=0 --output=out/ --max_frames=300

--model: a SavedModel directory, a .tflite file or a mobile bundle (scripts/mobile_bundle.py).
Videos and cameras: <name>_pose.mp4 (annotated) and <name>_pose.json (COCO results with track_id
and frame_id, PoseTrack-style; docs/deployment.md). Images: <name>_pose.png each and
predictions.json; --boxes {"<file name>": [[x1, y1, x2, y2], ...]} replaces the detector for
the images it names. Outputs appear only when complete.
"""

import json
import os

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from absl import app, flags  # noqa: E402


from tfdphpe.inference import (ImageReader, PipelineConfig, VideoError, VideoReader,
                               camera_reader, run_images, run_video)
from tfdphpe.inference.runner import build_pipeline

flags.DEFINE_string("model", None, "SavedModel directory, .tflite file or mobile bundle folder.")
flags.DEFINE_string("image", None, "An image file or a folder of images.")
flags.DEFINE_string("video", None, "A video file (any format FFmpeg reads).")
flags.DEFINE_integer("camera", None, "Camera index: /dev/video<N> (Linux).")
flags.DEFINE_string("boxes", None, "Images only: JSON file of person boxes (x1, y1, x2, y2) per "
                    "image file name (or a plain list for one image); replaces the detector.")
flags.DEFINE_string("output", None, "Output directory.")
flags.DEFINE_enum("detector", "mediapipe", ["mediapipe", "none"], "Person detector: MediaPipe's "
                  "pose detector (in the package), or none (the whole frame is one person).")
flags.DEFINE_integer("detect_every", 5, "Run the detector on every N-th frame; between, boxes "
                     "follow the previous frame's keypoints (a lost person re-detects at once).")
flags.DEFINE_bool("smooth", True, "One-Euro filter on each track's keypoints over time.")
flags.DEFINE_integer("detector_tiles", 0, "Also detect on N overlapping squares along the long "
                     "side (small people; N x rows more detector runs per detection).")
flags.DEFINE_float("min_detection_score", 0.5, "Detector score threshold.")
flags.DEFINE_integer("max_people", 0, "Keep at most this many detections per frame (0: all).")
flags.DEFINE_float("score_threshold", 0.2, "Joints below this score are not drawn.")
flags.DEFINE_integer("num_threads", 1, "TFLite interpreter threads.")
flags.DEFINE_integer("max_frames", None, "Stop after this many frames (cameras: required).")
flags.DEFINE_bool("write_video", True, "Write the annotated video (the JSON is always written).")
flags.DEFINE_bool("progress", True, "Show a progress bar with frames/s.")
flags.mark_flags_as_required(["model", "output"])
FLAGS = flags.FLAGS


def _boxes(files):
    if not FLAGS.boxes:
        return None
    with open(FLAGS.boxes) as f:
        boxes = json.load(f)
    if isinstance(boxes, list):
        if len(files) != 1:
            raise app.UsageError("--boxes is a list: give it with a single --image")
        return {os.path.basename(files[0]): boxes}
    return boxes


def main(argv):
    del argv
    sources = [FLAGS.image, FLAGS.video, FLAGS.camera]
    if sum(s is not None for s in sources) != 1:
        raise app.UsageError("give exactly one of --image, --video, --camera")
    if FLAGS.camera is not None and not FLAGS.max_frames:
        raise app.UsageError("--camera needs --max_frames (a camera has no end)")
    config = PipelineConfig(detect_every=FLAGS.detect_every, smooth=FLAGS.smooth)
    pipeline, meta = build_pipeline(
        FLAGS.model, FLAGS.detector, FLAGS.num_threads, config, tiles=FLAGS.detector_tiles,
        min_score=FLAGS.min_detection_score, max_people=FLAGS.max_people or None)
    try:
        if FLAGS.image is not None:
            images = ImageReader(FLAGS.image)
            out = run_images(pipeline, images, FLAGS.output, meta, _boxes(images.files),
                             FLAGS.score_threshold, FLAGS.model)
            for name, p in out["predictions"].items():
                print(f"{name}: {len(p['boxes'])} person(s)")
            print(f"wrote {len(images.files)} image(s) and predictions.json to {FLAGS.output}")
            return
        reader = (VideoReader(FLAGS.video) if FLAGS.video is not None
                  else camera_reader(FLAGS.camera))
        name = (os.path.splitext(os.path.basename(FLAGS.video))[0] if FLAGS.video
                else f"camera{FLAGS.camera}")
        summary = run_video(pipeline, reader, FLAGS.output, name, meta, reader.fps,
                            reader.declared_frames, FLAGS.write_video, FLAGS.score_threshold,
                            FLAGS.max_frames, FLAGS.progress)
    except VideoError as e:
        raise SystemExit(f"error: {e}")
    print(f"{name}: {summary['frames']} frames, {summary['people']} person-frames, "
          f"{summary['frames_per_second']:.1f} frames/s, detector on "
          f"{summary['detector_runs']} frames; wrote {name}_pose.json"
          + (f" and {name}_pose.mp4" if FLAGS.write_video else "") + f" to {FLAGS.output}")


if __name__ == "__main__":
    _app.run(main)
