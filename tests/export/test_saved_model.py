"""SavedModel: signatures, assets, saved_model_cli, a TF Serving PredictRequest, bad input."""

import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import FIXTURES, PRIVACY
from tests.helpers import TINY_INPUT
from tfdphpe.data.joints import MPII
from tfdphpe.export import (PREDICT_IMAGES, SERVING_DEFAULT, PoseServingModule, crop_image,
                            crop_regions, crop_to_image, export_saved_model, keras_predict,
                            read_metadata, rest_request, version_dir)

H, W = TINY_INPUT
SAVED_MODEL_CLI = (shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
                   or shutil.which("saved_model_cli"))


def _jpeg(path=f"{FIXTURES}/coco/000000000785.jpg"):
    with open(path, "rb") as f:
        return f.read()


def test_layout_and_privacy_asset(exported):
    d = exported["saved_model"]
    assert os.path.isfile(os.path.join(d, "saved_model.pb"))
    assert os.path.isdir(os.path.join(d, "variables"))
    meta = read_metadata(d)
    assert meta["privacy"] == PRIVACY  # the run's statement, carried over unchanged
    assert meta["joint_names"] == list(MPII.names)
    assert meta["input_size"] == [H, W] and meta["split_ratio"] == 2.0
    assert set(meta["signatures"]) == {SERVING_DEFAULT, PREDICT_IMAGES}
    assert "Privacy:" in exported["stdout"] and "DP-SGD test statement" in exported["stdout"]


def test_serving_default_matches_keras(exported, loaded, crops):
    out = loaded.signatures[SERVING_DEFAULT](images=tf.constant(crops))
    keypoints, scores = keras_predict(exported["model"], crops)
    np.testing.assert_allclose(out["keypoints"].numpy(), keypoints, atol=1e-4)
    np.testing.assert_allclose(out["scores"].numpy(), scores, rtol=1e-4)
    assert out["keypoints"].shape == (len(crops), 16, 2)
    assert (out["keypoints"].numpy()[..., 0] <= W - 0.5).all()


def test_predict_images_returns_image_pixels(loaded):
    jpg = _jpeg()
    boxes = np.array([[280.0, 44.0, 500.0, 391.0], [38.0, 110.0, 213.0, 286.0]], np.float32)
    out = loaded.signatures[PREDICT_IMAGES](image_bytes=tf.constant([jpg, jpg]),
                                            boxes=tf.constant(boxes))
    # The same thing by hand: crop, run the crop signature, map back.
    image = tf.io.decode_jpeg(jpg, channels=3)
    regions = crop_regions(boxes, TINY_INPUT)
    crops = tf.stack([crop_image(image, r, TINY_INPUT) for r in regions])
    crops = tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)
    by_hand = loaded.signatures[SERVING_DEFAULT](images=crops)
    expected = crop_to_image(by_hand["keypoints"], regions, TINY_INPUT).numpy()
    # Rounding the crop to uint8 by hand may move an argmax by a bin: compare the bulk.
    close = np.linalg.norm(out["keypoints"].numpy() - expected, axis=-1) < 1e-3
    assert close.mean() > 0.8
    for (cx, cy, w, h), pts in zip(regions.numpy(), out["keypoints"].numpy()):
        # Inside the padded, aspect-fixed crop region (and not in crop pixels any more).
        assert (np.abs(pts[:, 0] - cx) <= w / 2 + 1).all()
        assert (np.abs(pts[:, 1] - cy) <= h / 2 + 1).all()


def test_png_input(loaded):
    png = tf.io.encode_png(tf.zeros([40, 30, 3], tf.uint8)).numpy()
    out = loaded.signatures[PREDICT_IMAGES](image_bytes=tf.constant([png]),
                                            boxes=tf.constant([[0.0, 0.0, 29.0, 39.0]]))
    assert out["keypoints"].shape == (1, 16, 2)


def test_empty_batch_gives_empty_results(loaded):
    out = loaded.signatures[SERVING_DEFAULT](images=tf.zeros([0, H, W, 3], tf.uint8))
    assert out["keypoints"].shape == (0, 16, 2) and out["scores"].shape == (0, 16)
    out = loaded.signatures[PREDICT_IMAGES](image_bytes=tf.zeros([0], tf.string),
                                            boxes=tf.zeros([0, 4]))
    assert out["keypoints"].shape == (0, 16, 2) and out["scores"].shape == (0, 16)


_EMPTY_BATCH_CHECK = """
import json, sys
import tensorflow as tf
sigs = tf.saved_model.load(sys.argv[1]).signatures
h, w = int(sys.argv[2]), int(sys.argv[3])
crops = sigs["serving_default"](images=tf.zeros([0, h, w, 3], tf.uint8))
images = sigs["predict_images"](image_bytes=tf.zeros([0], tf.string), boxes=tf.zeros([0, 4]))
one = sigs["serving_default"](images=tf.zeros([1, h, w, 3], tf.uint8))
print(json.dumps({name: [out["keypoints"].shape.as_list(), out["scores"].shape.as_list()]
                  for name, out in (("crops", crops), ("images", images), ("one", one))}))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_empty_batch_with_onednn_off_and_on(exported, onednn):
    # The graph rewrites differ with oneDNN (on by default on x86 CPUs with AVX-512 in TF 2.15):
    # an empty batch must give empty results with either, not by the machine's luck.
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _EMPTY_BATCH_CHECK, exported["saved_model"],
                             str(H), str(W)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    assert shapes == {"crops": [[0, 16, 2], [0, 16]], "images": [[0, 16, 2], [0, 16]],
                      "one": [[1, 16, 2], [1, 16]]}


@pytest.mark.parametrize("case,match", [
    ("float_images", "uint8"),
    ("wrong_size", r"shape \[N, 64, 48, 3\]"),
    ("undecodable", "Unknown image file format"),
    ("box_outside", "overlap the image"),
    ("count_mismatch", "one box per image"),
    ("boxes_rank", r"boxes \[N, 4\]"),
    ("boxes_size", r"boxes must be float32 \[N, 4\]"),
])
def test_bad_input_is_a_clear_error_and_the_model_keeps_serving(loaded, crops, case, match):
    crops_fn = loaded.signatures[SERVING_DEFAULT]
    images_fn = loaded.signatures[PREDICT_IMAGES]
    jpg = _jpeg()
    calls = {
        "float_images": lambda: crops_fn(images=tf.zeros([1, H, W, 3], tf.float32)),
        "wrong_size": lambda: crops_fn(images=tf.zeros([1, H + 1, W, 3], tf.uint8)),
        "undecodable": lambda: images_fn(image_bytes=tf.constant([b"not an image"]),
                                         boxes=tf.constant([[0.0, 0.0, 10.0, 10.0]])),
        "box_outside": lambda: images_fn(image_bytes=tf.constant([jpg]),
                                         boxes=tf.constant([[700.0, 10.0, 800.0, 90.0]])),
        "count_mismatch": lambda: images_fn(image_bytes=tf.constant([jpg, jpg]),
                                            boxes=tf.constant([[0.0, 0.0, 10.0, 10.0]])),
        "boxes_rank": lambda: images_fn(image_bytes=tf.constant([jpg]),
                                        boxes=tf.constant([0.0, 0.0, 10.0, 10.0])),
        "boxes_size": lambda: images_fn(image_bytes=tf.constant([jpg]),
                                        boxes=tf.constant([10.0])),
    }
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError), match=match):
        calls[case]()
    # The same loaded model still answers the next, valid request.
    assert crops_fn(images=tf.constant(crops[:1]))["keypoints"].shape == (1, 16, 2)


def test_saved_model_cli_show_all(exported):
    result = subprocess.run([SAVED_MODEL_CLI, "show", "--dir", exported["saved_model"], "--all"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    for needle in (f"signature_def['{SERVING_DEFAULT}']", f"signature_def['{PREDICT_IMAGES}']",
                   "dtype: DT_UINT8", f"shape: (-1, {H}, {W}, 3)", "dtype: DT_STRING",
                   "shape: (-1, 4)", "outputs['keypoints']", "shape: (-1, 16, 2)",
                   "outputs['scores']"):
        assert needle in text, needle


def test_saved_model_cli_run_both_signatures(exported, loaded, crops, tmp_path):
    np.save(tmp_path / "crops.npy", crops[:2])
    np.save(tmp_path / "bytes.npy", np.array([_jpeg()], dtype=object), allow_pickle=True)
    np.save(tmp_path / "boxes.npy", np.array([[280.0, 44.0, 500.0, 391.0]], np.float32))
    for signature, inputs, outdir in [
            (SERVING_DEFAULT, f"images={tmp_path / 'crops.npy'}", tmp_path / "out1"),
            (PREDICT_IMAGES, f"image_bytes={tmp_path / 'bytes.npy'};"
                             f"boxes={tmp_path / 'boxes.npy'}", tmp_path / "out2")]:
        result = subprocess.run(
            [SAVED_MODEL_CLI, "run", "--dir", exported["saved_model"], "--tag_set", "serve",
             "--signature_def", signature, "--inputs", inputs, "--outdir", str(outdir)],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(tmp_path / "out1" / "keypoints.npy")
    expected = loaded.signatures[SERVING_DEFAULT](images=tf.constant(crops[:2]))
    np.testing.assert_allclose(got, expected["keypoints"].numpy(), atol=1e-4)
    expected = loaded.signatures[PREDICT_IMAGES](
        image_bytes=tf.constant([_jpeg()]), boxes=tf.constant([[280.0, 44.0, 500.0, 391.0]]))
    np.testing.assert_allclose(np.load(tmp_path / "out2" / "keypoints.npy"),
                               expected["keypoints"].numpy(), atol=1e-3)


def _serve(loaded, request):
    """What TF Serving does with a PredictRequest: tensors in, signature run, tensors out."""
    from tensorflow_serving.apis import predict_pb2

    signature = loaded.signatures[request.model_spec.signature_name or SERVING_DEFAULT]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for k, v in signature(**inputs).items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
    return response


def test_tf_serving_predict_request(loaded, crops):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = SERVING_DEFAULT
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(crops[:3]))
    response = _serve(loaded, predict_pb2.PredictRequest.FromString(request.SerializeToString()))
    keypoints = tf.make_ndarray(response.outputs["keypoints"])
    expected = loaded.signatures[SERVING_DEFAULT](images=tf.constant(crops[:3]))
    np.testing.assert_allclose(keypoints, expected["keypoints"].numpy(), atol=1e-5)
    assert tf.make_ndarray(response.outputs["scores"]).shape == (3, 16)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = PREDICT_IMAGES
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([_jpeg()], dtype=tf.string))
    request.inputs["boxes"].CopyFrom(tf.make_tensor_proto(
        np.array([[280.0, 44.0, 500.0, 391.0]], np.float32)))
    response = _serve(loaded, predict_pb2.PredictRequest.FromString(request.SerializeToString()))
    assert tf.make_ndarray(response.outputs["keypoints"]).shape == (1, 16, 2)


def test_rest_request_body_in_row_format(loaded, crops):
    body = json.loads(json.dumps(rest_request(PREDICT_IMAGES, image_bytes=[_jpeg()],
                                              boxes=[[280.0, 44.0, 500.0, 391.0]])))
    assert body["signature_name"] == PREDICT_IMAGES
    instance = body["instances"][0]
    assert set(instance) == {"image_bytes", "boxes"} and set(instance["image_bytes"]) == {"b64"}
    # TF Serving's row format: decode b64, stack the rows per input name.
    out = loaded.signatures[PREDICT_IMAGES](
        image_bytes=tf.constant([base64.b64decode(i["image_bytes"]["b64"])
                                 for i in body["instances"]]),
        boxes=tf.constant([i["boxes"] for i in body["instances"]], tf.float32))
    assert out["keypoints"].shape == (1, 16, 2)
    single = rest_request(SERVING_DEFAULT, images=crops[:1])
    assert np.asarray(single["instances"]).shape == (1, H, W, 3)


def test_flip_test_averages_the_mirror_image(exported, crops):
    model = exported["model"]
    module = PoseServingModule(model, MPII, flip_test=True)
    out = module.predict_crops(tf.constant(crops[:2]))
    from tfdphpe.export import normalize_pixels
    x = normalize_pixels(crops[:2])
    a, b = model(x), model(tf.image.flip_left_right(x))
    lx, ly = module.codec.flip_average(a["x"], a["y"], b["x"], b["y"], MPII.flip_pairs)
    keypoints, _ = module.codec.decode(lx, ly)
    np.testing.assert_allclose(out["keypoints"].numpy(), keypoints.numpy(), atol=1e-5)


def test_export_refuses_to_overwrite_a_version(exported, tmp_path):
    with pytest.raises(FileExistsError):
        export_saved_model(exported["model"], exported["saved_model"])
    with pytest.raises(ValueError, match="method"):  # checked before anything is deleted
        export_saved_model(exported["model"], exported["saved_model"], privacy={"epsilon": 1.0},
                           overwrite=True)
    assert os.path.isfile(os.path.join(exported["saved_model"], "saved_model.pb"))
    assert version_dir(str(exported["root"] / "savedmodels"), "tiny").endswith(os.sep + "2")
    with pytest.raises(ValueError):
        version_dir(str(tmp_path), "bad name/")
