"""The TF Serving client: request bodies run through the SavedModels' own signatures (what TF
Serving does with the row format), no server binary needed."""

import base64

import numpy as np
import pytest
import tensorflow as tf

from tests.inference.conftest import panned_photo
from tfdphpe.inference import PipelineConfig, PosePipeline
from tfdphpe.inference.serving_client import (ServingDetector, ServingPoseEstimator,
                                              grpc_request)


class _Detector(tf.Module):
    """A stand-in detector SavedModel with the TF Object Detection API signature."""

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8,
                                                name="input_tensor")])
    def detect(self, input_tensor):
        del input_tensor
        return {"detection_boxes": tf.constant([[[0.1, 0.35, 0.95, 0.75], [0, 0, 0.1, 0.1],
                                                 [0.2, 0.2, 0.3, 0.3]]]),
                "detection_scores": tf.constant([[0.9, 0.8, 0.2]]),
                "detection_classes": tf.constant([[1.0, 3.0, 1.0]])}


def _serving(signatures):
    """A transport that does what TF Serving does with a REST row-format body."""
    calls = []

    def post(url, body):
        signature = signatures[url.split("/v1/models/")[1].split(":")[0]][body["signature_name"]]
        specs = signature.structured_input_signature[1]
        rows = body["instances"]
        columns = {name: [r[name] if isinstance(r, dict) else r for r in rows] for name in specs}
        inputs = {}
        for name, spec in specs.items():       # names and dtypes must match the signature
            values = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v
                      for v in columns[name]]
            inputs[name] = tf.constant(values, spec.dtype)
        out = signature(**inputs)
        calls.append((url, body["signature_name"], len(rows)))
        n = len(rows)
        return {"predictions": [{k: v.numpy()[i].tolist() for k, v in out.items()}
                                for i in range(n)]}

    return post, calls


@pytest.fixture(scope="module")
def servers(pose_models, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("detector") / "1")
    module = _Detector()
    tf.saved_model.save(module, path, signatures={"serving_default": module.detect})
    return {"detector": tf.saved_model.load(path).signatures,
            "pose": tf.saved_model.load(pose_models["saved_model"]).signatures}


def test_frame_to_the_detector_and_boxes_to_predict_images(servers):
    transport, calls = _serving(servers)
    detector = ServingDetector("http://localhost:8501", "detector", transport)
    pose = ServingPoseEstimator("http://localhost:8501", "pose", 16, transport)
    pipeline = PosePipeline(detector, pose, PipelineConfig(detect_every=1))
    frame = panned_photo(1)[0]
    poses = pipeline(frame, 0.0)
    assert len(poses) == 1            # person class, score >= 0.5 only
    h, w = frame.shape[:2]
    np.testing.assert_allclose(poses.boxes[0], [0.35 * w, 0.1 * h, 0.75 * w, 0.95 * h],
                               rtol=1e-5)
    assert poses.keypoints.shape == (1, 16, 2)
    assert calls == [("http://localhost:8501/v1/models/detector:predict", "serving_default", 1),
                     ("http://localhost:8501/v1/models/pose:predict", "predict_images", 1)]
    empty_keypoints, _ = pose(frame, np.zeros((0, 4)))
    assert empty_keypoints.shape == (0, 16, 2) and len(calls) == 2   # no request for nobody


def test_grpc_request_runs_through_the_signature(servers):
    frame = panned_photo(1)[0]
    request = grpc_request("pose", frame, [[100, 20, 300, 340], [10, 10, 90, 200]])
    signature = servers["pose"][request.model_spec.signature_name]
    out = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    assert out["keypoints"].shape == (2, 16, 2)
