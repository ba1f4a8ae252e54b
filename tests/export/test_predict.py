"""scripts/predict.py and the predictors on the MPII and COCO fixture images."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.export.conftest import FIXTURES, run_script
from tfdphpe.data.joints import MPII
from tfdphpe.export import draw_poses, load_predictor


def _coco_boxes():
    with open(f"{FIXTURES}/coco/test_coco.json") as f:
        coco = json.load(f)
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    boxes = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(names[a["image_id"]], []).append([x, y, x + w, y + h])
    return boxes


def test_predict_script_on_mpii_images_with_the_saved_model(exported, tmp_path):
    # --detector=none: the whole image is the person (the detector's own tests: tests/inference)
    result = run_script("predict.py", f"--model={exported['saved_model']}",
                        f"--image={FIXTURES}/mpii", f"--output={tmp_path}",
                        "--score_threshold=0", "--detector=none")
    assert result.returncode == 0, result.stderr[-3000:]
    images = sorted(glob.glob(f"{FIXTURES}/mpii/*.jpg"))
    out = json.loads((tmp_path / "predictions.json").read_text())
    assert out["joint_names"] == list(MPII.names) and out["privacy"]["method"] == "dpsgd"
    assert set(out["predictions"]) == {os.path.basename(p) for p in images}
    for path in images:
        name = os.path.basename(path)
        drawn = Image.open(tmp_path / (os.path.splitext(name)[0] + "_pose.png"))
        width, height = Image.open(path).size
        assert drawn.size == (width, height)
        pred = out["predictions"][name]
        kp = np.array(pred["keypoints"])
        assert kp.shape == (1, 16, 2) and np.array(pred["scores"]).shape == (1, 16)
        # Whole image as the box: keypoints land inside the (aspect-fixed) region.
        assert (kp[..., 0] > -1).all() and (kp[..., 0] < width).all()


def test_predict_script_on_coco_images_with_tflite_and_boxes(exported, tmp_path):
    boxes = _coco_boxes()
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    result = run_script("predict.py", f"--model={exported['tflite']['int8']}",
                        f"--image={FIXTURES}/coco", f"--boxes={tmp_path / 'boxes.json'}",
                        f"--output={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out" / "predictions.json").read_text())
    for name, image_boxes in boxes.items():
        assert np.array(out["predictions"][name]["keypoints"]).shape == (len(image_boxes), 16, 2)
        assert (tmp_path / "out" / name.replace(".jpg", "_pose.png")).exists()


def test_saved_model_and_tflite_predictors_agree(exported):
    with open(f"{FIXTURES}/coco/000000000785.jpg", "rb") as f:
        data = f.read()
    box = [[280.0, 44.0, 500.0, 391.0]]
    _, kp_sm, sc_sm = load_predictor(exported["saved_model"]).predict(data, box)
    _, kp_tfl, sc_tfl = load_predictor(exported["tflite"]["float32"]).predict(data, box)
    # TFLite crops are rounded to uint8 first; the SavedModel crops stay float: allow a few
    # argmax moves (one crop pixel is ~ 9 image pixels here).
    dist = np.linalg.norm(kp_sm - kp_tfl, axis=-1)
    assert np.median(dist) < 1.0, dist


@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_predictor_bad_input(exported, kind):
    import tensorflow as tf

    path = exported["saved_model"] if kind == "saved_model" else exported["tflite"]["float32"]
    predictor = load_predictor(path)
    with open(f"{FIXTURES}/coco/000000000785.jpg", "rb") as f:
        data = f.read()
    boxes, kp, scores = predictor.predict(data, [])
    assert kp.shape == (0, 16, 2) and scores.shape == (0, 16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="overlap the image"):
        predictor.predict(data, [[5000.0, 0.0, 5100.0, 100.0]])
    with pytest.raises(tf.errors.InvalidArgumentError):
        predictor.predict(b"not an image", None)
    with pytest.raises(ValueError):
        load_predictor(str(exported["root"]))


def test_draw_poses_draws_joints_and_edges():
    image = np.zeros((100, 80, 3), np.uint8)
    kp = np.tile(np.linspace(10, 70, 16)[:, None], (1, 2))[None]
    drawn = np.asarray(draw_poses(image, kp, np.ones((1, 16)), MPII.skeleton, MPII.names,
                                  boxes=np.array([[5, 5, 75, 95]])))
    assert drawn.shape == (100, 80, 3) and drawn.any()
    hidden = np.asarray(draw_poses(image, kp, np.zeros((1, 16)), MPII.skeleton, MPII.names))
    assert not hidden.any()  # below the threshold: nothing drawn
