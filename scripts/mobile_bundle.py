r"""Writes the mobile bundle: pose .tflite + MediaPipe's pose detector + bundle.json.

    python scripts/mobile_bundle.py --tflite=savedmodels/pose/1/tflite/pose_int8.tflite \
        --output=bundles/pose_mobile

bundle.json holds the detector's decoding (anchors, thresholds, box from alignment points),
the pipeline settings (detection interval, tracking, smoothing) and the pose model's metadata
(joint names, skeleton, privacy statement, crop geometry): everything an app needs. The
reference runner is tfdphpe.inference.load_bundle(folder) (docs/deployment.md); run it on a
video with scripts/predict.py --model=<bundle folder>.
"""

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.inference import PipelineConfig, write_bundle

flags.DEFINE_string("tflite", None, "Pose model .tflite exported by scripts/export.py.")
flags.DEFINE_string("output", None, "Bundle folder to write.")
flags.DEFINE_integer("detect_every", 5, "Detector interval in frames (between: tracking).")
flags.DEFINE_bool("smooth", True, "One-Euro smoothing of keypoints.")
flags.DEFINE_float("min_detection_score", 0.5, "Detector score threshold.")
flags.DEFINE_integer("detector_tiles", 0, "Extra overlapping detector squares along the long "
                     "side (small people).")
flags.DEFINE_bool("overwrite", False, "Replace an existing bundle folder.")
flags.mark_flags_as_required(["tflite", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = PipelineConfig(detect_every=FLAGS.detect_every, smooth=FLAGS.smooth)
    out = write_bundle(FLAGS.tflite, FLAGS.output, config, FLAGS.min_detection_score,
                       tiles=FLAGS.detector_tiles, overwrite=FLAGS.overwrite)
    print(f"mobile bundle: {out}")


if __name__ == "__main__":
    _app.run(main)
