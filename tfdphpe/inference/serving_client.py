"""The video pipeline against TF Serving: a detector served there, and the pose model's
``predict_images`` signature (the frame's bytes and one box per person).

``ServingDetector`` speaks the TF Object Detection API's serving signature (``input_tensor``
uint8 ``[1, H, W, 3]`` -> ``detection_boxes`` (y1, x1, y2, x2, normalised), ``detection_scores``,
``detection_classes``), which the COCO detectors of the TF2 detection model zoo export.
``ServingPoseEstimator`` plugs into ``PosePipeline`` as its pose model, so tracking and smoothing
run in the client as on the phone. Requests are REST (``:predict``, row format) through a
``transport`` (default: an HTTP POST with the standard library); gRPC request protos are built
by ``grpc_request`` for clients that use tensorflow-serving-api.
"""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any, Callable

import numpy as np

from tfdphpe.export.saved_model import PREDICT_IMAGES, SERVING_DEFAULT, rest_request
from tfdphpe.inference.detector import Detections

Transport = Callable[[str, dict], dict]


def http_transport(timeout: float = 30.0) -> Transport:
    """POSTs a JSON body and returns the JSON answer (raises on HTTP errors)."""

    def post(url: str, body: dict) -> dict:
        request = urllib.request.Request(url, json.dumps(body).encode("utf-8"),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return json.load(answer)

    return post


def predict_url(server: str, model: str, version: int | None = None) -> str:
    """``http://host:8501/v1/models/<model>[/versions/<v>]:predict``."""
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"{server.rstrip('/')}/v1/models/{model}{versioned}:predict"


def encode_frame(frame: np.ndarray, quality: int = 95) -> bytes:
    """A frame as JPEG bytes (what ``predict_images`` decodes)."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


class ServingDetector:
    """A ``PersonDetector`` served by TF Serving (TF Object Detection API signature)."""

    def __init__(self, server: str, model: str, transport: Transport | None = None,
                 min_score: float = 0.5, person_class: int = 1,
                 input_name: str = "input_tensor"):
        self.url = predict_url(server, model)
        self.transport = transport or http_transport()
        self.min_score, self.person_class, self.input_name = min_score, person_class, input_name

    def request(self, frame: np.ndarray) -> dict[str, Any]:
        return rest_request(SERVING_DEFAULT, **{self.input_name: [np.asarray(frame, np.uint8)]})

    def detect(self, frame: np.ndarray) -> Detections:
        (answer,) = self.transport(self.url, self.request(frame))["predictions"]
        h, w = np.asarray(frame).shape[:2]
        boxes = np.asarray(answer["detection_boxes"], np.float32).reshape(-1, 4)
        scores = np.asarray(answer["detection_scores"], np.float32).reshape(-1)
        classes = np.asarray(answer["detection_classes"]).reshape(-1).astype(int)
        keep = (classes == self.person_class) & (scores >= self.min_score)
        y1, x1, y2, x2 = (boxes[keep] * np.array([h, w, h, w], np.float32)).T
        return Detections(np.stack([x1, y1, x2, y2], axis=-1), scores[keep])


class ServingPoseEstimator:
    """Frame + boxes -> keypoints in frame pixels, through the pose model's ``predict_images``
    on TF Serving. The frame travels once per box (the signature takes one box per row)."""

    def __init__(self, server: str, model: str, num_joints: int,
                 transport: Transport | None = None, version: int | None = None):
        self.url = predict_url(server, model, version)
        self.transport = transport or http_transport()
        self.num_joints = int(num_joints)

    def request(self, frame: np.ndarray, boxes: np.ndarray) -> dict[str, Any]:
        data = encode_frame(frame)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        return rest_request(PREDICT_IMAGES, image_bytes=[data] * len(boxes),
                            boxes=[b.tolist() for b in boxes])

    def __call__(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.num_joints
        if not len(boxes):      # nobody: no request
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        rows = self.transport(self.url, self.request(frame, boxes))["predictions"]
        return (np.asarray([r["keypoints"] for r in rows], np.float32).reshape(-1, k, 2),
                np.asarray([r["scores"] for r in rows], np.float32).reshape(-1, k))


def grpc_request(model: str, frame: np.ndarray, boxes: np.ndarray):
    """The gRPC ``PredictRequest`` for ``predict_images`` (needs tensorflow-serving-api)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel

    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = PREDICT_IMAGES
    request.inputs["image_bytes"].CopyFrom(
        tf.make_tensor_proto([encode_frame(frame)] * len(boxes), dtype=tf.string))
    request.inputs["boxes"].CopyFrom(tf.make_tensor_proto(boxes))
    return request
