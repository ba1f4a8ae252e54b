"""SavedModel export for TF Serving: uint8 crops or encoded images in, keypoints out.

Two signatures (see docs/deployment.md for the REST requests):

* ``serving_default``: ``images`` uint8 ``[N, H, W, 3]`` RGB person crops ->
  ``keypoints`` float32 ``[N, K, 2]`` (x, y in crop pixels), ``scores`` float32 ``[N, K]``.
* ``predict_images``: ``image_bytes`` string ``[N]`` (encoded JPEG/PNG/BMP/GIF) and ``boxes``
  float32 ``[N, 4]`` (x1, y1, x2, y2 in image pixels, one person per row; repeat the image bytes
  for several people) -> ``keypoints`` in original image pixels and ``scores``.

Normalisation, cropping (box x 1.25, fixed to the model aspect ratio) and SimCC decoding (flip
test optional) run inside the graph, so a client sends pixels and reads pixels. The deployment
metadata (privacy statement, joint names, input size, split ratio) is the asset ``privacy.json``.

Bad input never takes the server down: a wrong dtype or shape is refused by the signature, an
undecodable image, a box that misses its image or a count mismatch raise InvalidArgumentError
for that request, and an empty batch returns empty tensors without running the model: a frame in
which the detector found nobody is ordinary, and what kernels do on a zero-sized batch depends on
the machine (a oneDNN build rewrote FusedBatchNormV3 on an empty batch into a shape error).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Sequence

import tensorflow as tf

from tfdphpe.codecs import SimCCCodec
from tfdphpe.data.joints import MPII, JointSet
from tfdphpe.export.metadata import METADATA_FILENAME, deployment_metadata, write_metadata
from tfdphpe.export.preprocessing import (BOX_PADDING, check_box, crop_image, crop_regions,
                                          crop_to_image, normalize_pixels)

SERVING_DEFAULT = "serving_default"
PREDICT_IMAGES = "predict_images"


def model_geometry(model: tf.keras.Model) -> tuple[tuple[int, int], int, float]:
    """(input_size (H, W), num_joints K, split_ratio k) of a pose model."""
    shape = model.input_shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise ValueError(f"expected a pose model on [B, H, W, 3] images, got input {shape}")
    h, w = int(shape[1]), int(shape[2])
    out = model.output_shape
    if not isinstance(out, dict) or set(out) != {"x", "y"}:
        raise ValueError(f"expected SimCC outputs {{'x', 'y'}}, got {out}")
    num_joints, bins_x = int(out["x"][1]), int(out["x"][2])
    return (h, w), num_joints, bins_x / w


class PoseServingModule(tf.Module):
    """Wraps a Keras pose model with pixel-in, pixel-out serving functions.

    Args:
      model: Keras pose model (``build_pose_model``), normalised image -> SimCC logits.
      joint_set: joints the model predicts (flip pairs for the flip test).
      flip_test: average the logits of each crop and its mirror image (2x compute).
      box_padding: box enlargement before cropping in ``predict_images``.
    """

    def __init__(self, model: tf.keras.Model, joint_set: JointSet = MPII,
                 flip_test: bool = False, box_padding: float = BOX_PADDING, name=None):
        super().__init__(name=name)
        self.input_size, self.num_joints, split_ratio = model_geometry(model)
        if self.num_joints != joint_set.num_joints:
            raise ValueError(f"model predicts {self.num_joints} joints but joint set "
                             f"{joint_set.name!r} has {joint_set.num_joints}")
        # Track the variables, not the Keras model: saving a tracked Keras model traces every
        # layer's call function as well, which is slow and of no use to TF Serving.
        self._model = _Untracked(model)
        self.model_variables = list(model.variables)
        self.joint_set = joint_set
        self.flip_test = bool(flip_test)
        self.box_padding = float(box_padding)
        self.split_ratio = split_ratio
        self.codec = SimCCCodec(self.input_size, split_ratio)
        h, w = self.input_size
        self.predict_crops = tf.function(
            self._predict_crops,
            input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
        self.predict_images = tf.function(
            self._predict_images,
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                             tf.TensorSpec([None, 4], tf.float32, name="boxes")])

    def decode_normalised(self, images: tf.Tensor):
        """Normalised float crops ``[N, H, W, 3]`` -> (keypoints in crop pixels, scores)."""
        if self.flip_test:
            n = tf.shape(images)[0]
            both = tf.concat([images, tf.image.flip_left_right(images)], axis=0)
            out = self._model.obj(both, training=False)
            lx, ly = self.codec.flip_average(out["x"][:n], out["y"][:n], out["x"][n:],
                                             out["y"][n:], self.joint_set.flip_pairs)
        else:
            out = self._model.obj(images, training=False)
            lx, ly = out["x"], out["y"]
        return self.codec.decode(lx, ly)

    def _unless_empty(self, n: tf.Tensor, predict):
        """``predict()`` -> (keypoints, scores), or empty results when the batch is empty.

        The model never sees a zero-sized batch (``tf.cond`` runs one branch only).
        """
        k = self.num_joints

        def empty():
            return tf.zeros([0, k, 2], tf.float32), tf.zeros([0, k], tf.float32)

        return tf.cond(n > 0, predict, empty)

    def _predict_crops(self, images):
        h, w = self.input_size
        # A loaded signature checks dtype and rank but not static sizes: say so clearly here
        # rather than as a matrix-size error deep inside the model.
        size_ok = tf.debugging.assert_equal(
            tf.shape(images)[1:], tf.constant([h, w, 3]),
            message=f"images must be uint8 RGB crops of shape [N, {h}, {w}, 3]")
        with tf.control_dependencies([size_ok]):
            images = tf.identity(images)
        keypoints, scores = self._unless_empty(
            tf.shape(images)[0], lambda: self.decode_normalised(normalize_pixels(images)))
        return {"keypoints": tf.identity(keypoints, name="keypoints"),
                "scores": tf.identity(scores, name="scores")}

    def _predict_images(self, image_bytes, boxes):
        n = tf.shape(image_bytes)[0]
        # A loaded signature checks dtypes, not shapes, and the traced graph takes boxes' rank as
        # given: check the sizes at run time, before anything reads the boxes.
        checks = [
            tf.debugging.assert_equal(
                n, tf.shape(boxes)[0],
                message="predict_images needs one box per image: image_bytes [N] and boxes "
                        "[N, 4] must have the same N (repeat the image bytes for several people)"),
            tf.debugging.assert_equal(
                tf.size(boxes), 4 * n,
                message="boxes must be float32 [N, 4]: x1, y1, x2, y2 per person"),
        ]
        with tf.control_dependencies(checks):
            n, boxes = tf.identity(n), tf.identity(boxes)
        regions = crop_regions(boxes, self.input_size, self.box_padding)
        h, w = self.input_size

        def crop_one(args):
            index, data, box, region = args
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            with tf.control_dependencies([check_box(box, tf.shape(image), index)]):
                return crop_image(image, region, self.input_size)

        def predict():
            crops = tf.map_fn(crop_one, (tf.range(n), image_bytes, boxes, regions),
                              fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32))
            keypoints, scores = self.decode_normalised(normalize_pixels(crops))
            return crop_to_image(keypoints, regions, self.input_size), scores

        keypoints, scores = self._unless_empty(n, predict)
        return {"keypoints": tf.identity(keypoints, name="keypoints"),
                "scores": tf.identity(scores, name="scores")}

    def signatures(self) -> dict[str, Any]:
        return {SERVING_DEFAULT: self.predict_crops.get_concrete_function(),
                PREDICT_IMAGES: self.predict_images.get_concrete_function()}


class _Untracked:
    """Holds an object out of sight of tf.Module's automatic tracking."""

    def __init__(self, obj):
        self.obj = obj


def export_saved_model(model: tf.keras.Model, export_dir: str, joint_set: JointSet = MPII,
                       privacy: Any = None, flip_test: bool = False,
                       box_padding: float = BOX_PADDING, overwrite: bool = False,
                       extra_metadata: dict | None = None) -> str:
    """Writes a servable SavedModel (both signatures and ``assets/privacy.json``).

    Args:
      model: Keras pose model.
      export_dir: the version directory, e.g. ``savedmodels/pose/1`` (see ``version_dir``).
      joint_set: joints of the model (names go into the metadata).
      privacy: the privacy statement (see ``metadata.privacy_statement``); None writes a
        statement that the model carries no DP guarantee.
      flip_test: bake the flip test into both signatures.
      box_padding: box enlargement for ``predict_images``.
      overwrite: replace an existing non-empty directory (TF Serving versions are meant to be
        immutable, so this is off by default).
      extra_metadata: more keys for ``privacy.json`` (e.g. the checkpoint it came from).

    Returns:
      ``export_dir``.
    """
    exists = tf.io.gfile.exists(export_dir) and tf.io.gfile.listdir(export_dir)
    if exists and not overwrite:
        raise FileExistsError(f"{export_dir} exists and is not empty; pick a new version or "
                              "pass overwrite=True")
    # Everything that can fail on bad arguments (model, privacy statement) before deleting.
    module = PoseServingModule(model, joint_set, flip_test, box_padding)
    meta = deployment_metadata(privacy, joint_set, module.input_size, module.split_ratio,
                               flip_test, box_padding,
                               extra=dict(extra_metadata or {}, signatures=signature_summary()))
    if exists:
        tf.io.gfile.rmtree(export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        module.metadata_file = tf.saved_model.Asset(
            write_metadata(meta, os.path.join(tmp, METADATA_FILENAME)))
        tf.saved_model.save(module, export_dir, signatures=module.signatures())
    return export_dir


def signature_summary() -> dict[str, Any]:
    """The signatures in words, for the metadata and the docs."""
    return {
        SERVING_DEFAULT: {"inputs": {"images": "uint8 [N, H, W, 3] RGB person crops"},
                          "outputs": {"keypoints": "float32 [N, K, 2] (x, y) crop pixels",
                                      "scores": "float32 [N, K] in [0, 1]"}},
        PREDICT_IMAGES: {"inputs": {"image_bytes": "string [N] encoded JPEG/PNG",
                                    "boxes": "float32 [N, 4] x1, y1, x2, y2 image pixels"},
                         "outputs": {"keypoints": "float32 [N, K, 2] (x, y) image pixels",
                                     "scores": "float32 [N, K] in [0, 1]"}},
    }


def version_dir(base_dir: str, name: str, version: int | None = None) -> str:
    """``base_dir/name/version`` (TF Serving's layout); version None = one above the highest."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"model name {name!r} must be letters, digits, '_', '-' or '.'")
    model_dir = os.path.join(base_dir, name)
    if version is None:
        existing = [int(d) for d in (tf.io.gfile.listdir(model_dir)
                                     if tf.io.gfile.isdir(model_dir) else [])
                    if d.strip("/").isdigit()]
        version = max(existing, default=0) + 1
    if int(version) < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    return os.path.join(model_dir, str(int(version)))


def load_signatures(export_dir: str) -> dict[str, Any]:
    """The serving signatures of a SavedModel, as TF Serving would run them."""
    return dict(tf.saved_model.load(export_dir).signatures)


def rest_request(signature_name: str, **inputs: Sequence[Any]) -> dict[str, Any]:
    """The JSON body of a TF Serving REST ``:predict`` call in the row ("instances") format.

    Bytes values become ``{"b64": ...}`` as TF Serving requires for binary strings.
    """
    import base64

    import numpy as np

    def encode(v):
        if isinstance(v, (bytes, bytearray)):
            return {"b64": base64.b64encode(bytes(v)).decode("ascii")}
        if isinstance(v, np.ndarray):
            return v.tolist()
        return v

    names = list(inputs)
    columns = [list(inputs[k]) for k in names]
    if len({len(c) for c in columns}) > 1:
        raise ValueError("all inputs need the same number of rows")
    if len(names) == 1:
        instances = [encode(v) for v in columns[0]]
    else:
        instances = [{k: encode(v) for k, v in zip(names, row)} for row in zip(*columns)]
    return {"signature_name": signature_name, "instances": instances}
