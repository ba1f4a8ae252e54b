"""Running exported ``.tflite`` files: the interpreter, the pose runner and op inspection.

The interpreter is LiteRT's where ai-edge-litert is installed, else ``tf.lite``'s
(``tfdphpe.compat``). Conversion lives in ``tflite.py``, latency measurement in ``latency.py``.

Tests: tests/export/test_tflite.py.
"""

from __future__ import annotations

import os

import numpy as np

from tfdphpe import compat
from tfdphpe.export.metadata import read_tflite_metadata


def interpreter(model: str | bytes, num_threads: int | None = None):
    """An interpreter for a ``.tflite`` file or its bytes (tensors not yet allocated)."""
    if isinstance(model, (bytes, bytearray)):
        return compat.tflite_interpreter(model_content=bytes(model), num_threads=num_threads)
    return compat.tflite_interpreter(model_path=os.fspath(model), num_threads=num_threads)


def op_counts(model: str | bytes) -> dict[tuple[str, str], int]:
    """(op name, dtype of its first input) -> count: which ops run in int8 and which in float."""
    runner = interpreter(model)
    counts: dict[tuple[str, str], int] = {}
    for op in runner._get_ops_details():  # pylint: disable=protected-access
        first = [i for i in op["inputs"] if i >= 0][:1]
        details = runner._get_tensor_details  # pylint: disable=protected-access
        dtype = details(first[0], 0)["dtype"].__name__ if first else "-"
        key = (op["op_name"], dtype)
        counts[key] = counts.get(key, 0) + 1
    return counts


class TFLitePoseEstimator:
    """Runs an exported ``.tflite`` pose model on uint8 crops.

    Args:
      model: path to a ``.tflite`` file, or its bytes.
      num_threads: interpreter threads (XNNPACK).
    """

    def __init__(self, model: str | bytes, num_threads: int = 1):
        self.interpreter = interpreter(model, num_threads)
        self.interpreter.allocate_tensors()
        self.metadata = read_tflite_metadata(model)
        (self._input,) = self.interpreter.get_input_details()
        shape = tuple(int(s) for s in self._input["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ValueError(f"not a tfdphpe pose model: input shape {shape}")
        self.input_size = (shape[1], shape[2])
        outputs = {len(d["shape"]): d for d in self.interpreter.get_output_details()}
        if set(outputs) != {2, 3}:
            raise ValueError("not a tfdphpe pose model: expected keypoints [1, K, 2] and "
                             "scores [1, K] outputs")
        self._keypoints, self._scores = outputs[3], outputs[2]
        self.num_joints = int(self._scores["shape"][1])

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 crops ``[N, H, W, 3]`` -> (keypoints ``[N, K, 2]`` crop pixels, scores ``[N, K]``).

        Raises ValueError for another dtype or crop size; an empty batch gives empty arrays.
        """
        crops = np.asarray(crops)
        h, w = self.input_size
        if crops.dtype != np.uint8:
            raise ValueError(f"crops must be uint8 RGB, got {crops.dtype}")
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3):
            raise ValueError(f"crops must have shape [N, {h}, {w}, 3], got {crops.shape}")
        keypoints = np.zeros((len(crops), self.num_joints, 2), np.float32)
        scores = np.zeros((len(crops), self.num_joints), np.float32)
        for i, crop in enumerate(crops):
            self.interpreter.set_tensor(self._input["index"], crop[None])
            self.interpreter.invoke()
            keypoints[i] = self.interpreter.get_tensor(self._keypoints["index"])[0]
            scores[i] = self.interpreter.get_tensor(self._scores["index"])[0]
        return keypoints, scores


def normalized_crop_predict_fn(model_file: str, mean, std):
    """(predict_fn, input size) of a ``.tflite`` pose model on *normalised* crops.

    The evaluation pipeline yields normalised crops; they are mapped back to the uint8 pixels the
    TFLite model takes (its normalisation and decoding run inside it), so Keras and TFLite are
    scored on the same crops and differ only by the model format. ``predict_fn(images)`` returns
    (keypoints [N, K, 2], scores [N, K]) as tensors.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    estimator = TFLitePoseEstimator(model_file)
    mean_, std_ = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def predict(images):
        pixels = np.clip(np.round(np.asarray(images) * std_ + mean_), 0, 255).astype(np.uint8)
        keypoints, scores = estimator.predict(pixels)
        return tf.constant(keypoints), tf.constant(scores)

    return predict, estimator.input_size

