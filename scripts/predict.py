r"""Runs an exported pose model on images and draws the skeletons.

    python scripts/predict.py --model=savedmodels/pose/1 --image=../shared/fixtures/mpii \
        --output=generated/predict
    python scripts/predict.py --model=savedmodels/pose/1/tflite/pose_int8.tflite \
        --image=photo.jpg --boxes=boxes.json --output=generated/predict

--boxes is a JSON object {"<image file name>": [[x1, y1, x2, y2], ...], ...} (or, for a single
image, just the list of boxes); images without boxes are used whole. Writes <name>_pose.png per
image and predictions.json (boxes, keypoints in image pixels, scores, joint names).
"""

import json
import os

import numpy as np
from absl import app, flags
from PIL import Image

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.export import draw_poses, load_predictor

flags.DEFINE_string("model", None, "SavedModel directory or .tflite file.")
flags.DEFINE_string("image", None, "An image file or a folder of images.")
flags.DEFINE_string("boxes", None, "JSON file with person boxes (x1, y1, x2, y2) per image.")
flags.DEFINE_string("output", None, "Output directory.")
flags.DEFINE_float("score_threshold", 0.2, "Joints below this score are not drawn.")
flags.DEFINE_integer("num_threads", 1, "TFLite interpreter threads.")
flags.mark_flags_as_required(["model", "image", "output"])
FLAGS = flags.FLAGS
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _images(path):
    if os.path.isdir(path):
        return sorted(os.path.join(path, f) for f in os.listdir(path)
                      if f.lower().endswith(_EXTENSIONS))
    if not os.path.isfile(path):
        raise app.UsageError(f"--image: no such file or folder {path!r}")
    return [path]


def _boxes(files):
    if not FLAGS.boxes:
        return {}
    with open(FLAGS.boxes) as f:
        boxes = json.load(f)
    if isinstance(boxes, list):
        if len(files) != 1:
            raise app.UsageError("--boxes is a list: give it with a single --image")
        return {os.path.basename(files[0]): boxes}
    return boxes


def main(argv):
    del argv
    predictor = load_predictor(FLAGS.model, FLAGS.num_threads)
    meta = predictor.metadata
    files = _images(FLAGS.image)
    boxes = _boxes(files)
    os.makedirs(FLAGS.output, exist_ok=True)
    results = {}
    for path in files:
        name = os.path.basename(path)
        with open(path, "rb") as f:
            data = f.read()
        used, keypoints, scores = predictor.predict(data, boxes.get(name))
        drawn = draw_poses(Image.open(path), keypoints, scores, meta.get("skeleton", []),
                           meta.get("joint_names"), used, FLAGS.score_threshold)
        drawn.save(os.path.join(FLAGS.output, os.path.splitext(name)[0] + "_pose.png"))
        results[name] = {"boxes": used.tolist(), "keypoints": np.round(keypoints, 2).tolist(),
                         "scores": np.round(scores, 4).tolist()}
        print(f"{name}: {len(used)} person(s), mean score {float(np.mean(scores)):.3f}"
              if len(used) else f"{name}: no boxes")
    out = {"model": FLAGS.model, "joint_names": meta.get("joint_names"),
           "privacy": meta.get("privacy"), "predictions": results}
    with open(os.path.join(FLAGS.output, "predictions.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {len(files)} image(s) and predictions.json to {FLAGS.output}")


if __name__ == "__main__":
    _app.run(main)
