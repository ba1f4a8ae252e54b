"""TFLite conversion (float32, float16, full-integer int8) and its check against Keras.

Every format has the same interface: input ``image`` uint8 ``[1, H, W, 3]`` (an RGB person crop),
outputs ``keypoints`` float32 ``[1, K, 2]`` (x, y in crop pixels) and ``scores`` float32
``[1, K]``. Normalisation and SimCC decoding are inside the model, and the deployment metadata
(privacy statement, joints, geometry) is embedded in the flatbuffer as ``privacy.json``
(``metadata.embed_metadata``). Running a converted file: ``runtime.py``; latency: ``latency.py``.

Speed (Python TFLite interpreter with XNNPACK, TinyViT-5M at 256x192, one thread; the
benchmark and the findings are in docs/deployment.md). The export graph differs from the Keras
graph in three places, all while tracing only (``export_numerics``), weights untouched:

* Exact GELU becomes TFLite's GELU op, which XNNPACK does not take in float. The float formats
  use the tanh form ``x * sigmoid(1.5958 * (x + 0.044715 x^3))`` (LOGISTIC, MUL: delegated),
  < 5e-4 from exact GELU. int8 keeps the GELU op: its int8 kernel is a lookup table of the exact
  function, faster than the decomposed form.
* LayerNorm became MEAN over channels and RSQRT, neither delegated, and slow and imprecise in
  int8. ``delegable_layer_norm`` computes it with a FULLY_CONNECTED channel mean, SQRT and DIV;
  in the int8 model it stays float32.
* In int8, attention (BATCH_MATMUL, SOFTMAX) stays float32 (faster than int8 here), and so does
  the decode tail: argmax bins / k need more than 256 levels and the scores' calibration range
  would clip them.

int8 calibration must use PUBLIC images only (DESIGN 4): the calibration ranges are computed from
them and end up in the file. ``convert_to_tflite`` records the source you name in the metadata.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.data.joints import MPII, JointSet
from tfdphpe.export.metadata import deployment_metadata, embed_metadata
from tfdphpe.export.preprocessing import normalize_pixels
from tfdphpe.export.runtime import interpreter
from tfdphpe.export.saved_model import PoseServingModule

TFLITE_FORMATS = ("float32", "float16", "int8")

#: Ops left in float32 inside the int8 model (see the module docstring).
INT8_FLOAT_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT",    # Keras LayerNorm (optimize=False)
                  "BATCH_MATMUL", "SOFTMAX",                # attention
                  "ARG_MAX", "REDUCE_MAX", "MINIMUM")       # SimCC decode
_DECODE_SCOPE = "simcc_decode"


def fast_gelu(x: tf.Tensor) -> tf.Tensor:
    """tanh-approximate GELU as x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x^3)).

    Same function as ``tf.nn.gelu(approximate=True)``, written so that the TFLite converter does
    not fuse it back into a GELU op (which XNNPACK does not run in float).
    """
    return x * tf.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))


_LAYER_NORM_SCOPE = "delegable_layer_norm"


def delegable_layer_norm(layer: tf.keras.layers.LayerNormalization, x: tf.Tensor) -> tf.Tensor:
    """LayerNorm over the last axis from ops XNNPACK delegates (TF 2.15).

    Keras' LayerNorm becomes MEAN (over channels) and RSQRT, which XNNPACK does not take: each
    of the 20 LayerNorms of TinyViT-5M splits the delegated graph. Channel means as a
    FULLY_CONNECTED with weights 1/C and ``d / sqrt(var + eps)`` compute the same function
    (float rounding aside) from delegated ops. In the int8 model this scope stays float.
    """
    if list(layer.axis) != [len(x.shape) - 1]:
        raise ValueError("delegable_layer_norm handles LayerNorm over the last axis only")
    with tf.name_scope(_LAYER_NORM_SCOPE):
        channels = int(x.shape[-1])
        average = tf.constant(np.full((channels, 1), 1.0 / channels, np.float32))
        flat = tf.reshape(x, [-1, channels])
        centred = flat - tf.matmul(flat, average)
        variance = tf.matmul(centred * centred, average)
        # The converter folds x / sqrt(v) into RSQRT, which XNNPACK does not take; the
        # (never active) floor keeps SQRT and DIV, which it does.
        y = centred / tf.maximum(tf.sqrt(variance + layer.epsilon), 1e-12)
        if layer.scale:
            y = y * layer.gamma
        if layer.center:
            y = y + layer.beta
        return tf.reshape(y, tf.shape(x))


def export_numerics(gelu=None, layer_norm=None):
    """Traces the TinyViT layers with other GELU / LayerNorm implementations (export graphs only).

    A thin alias of ``tfdphpe.models.layers.numerics`` (thread-local, read while tracing); the
    Keras model and its weights are untouched.
    """
    from tfdphpe.models.layers import numerics
    return numerics(gelu=gelu, layer_norm=layer_norm)


def tflite_function(model: tf.keras.Model, joint_set: JointSet = MPII, flip_test: bool = False,
                    gelu=None, layer_norm=None):
    """The concrete function converted to TFLite: uint8 crop [1, H, W, 3] -> keypoints, scores."""
    module = PoseServingModule(model, joint_set, flip_test)
    h, w = module.input_size

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.uint8, name="image")])
    def predict(image):
        x = normalize_pixels(image)
        if flip_test:
            out = model(tf.concat([x, tf.image.flip_left_right(x)], axis=0), training=False)
            lx, ly = module.codec.flip_average(out["x"][:1], out["y"][:1], out["x"][1:],
                                               out["y"][1:], joint_set.flip_pairs)
        else:
            out = model(x, training=False)
            lx, ly = out["x"], out["y"]
        with tf.name_scope(_DECODE_SCOPE):
            bins_x = tf.cast(tf.argmax(lx, axis=-1, output_type=tf.int32), tf.float32)
            bins_y = tf.cast(tf.argmax(ly, axis=-1, output_type=tf.int32), tf.float32)
            keypoints = tf.stack([bins_x, bins_y], axis=-1) * (1.0 / module.split_ratio)
            scores = tf.minimum(tf.reduce_max(tf.nn.softmax(lx, axis=-1), axis=-1),
                                tf.reduce_max(tf.nn.softmax(ly, axis=-1), axis=-1))
        return {"keypoints": keypoints, "scores": scores}

    with export_numerics(gelu, layer_norm):
        return predict.get_concrete_function(), module


def convert_to_tflite(model: tf.keras.Model, fmt: str = "float32", *,
                      joint_set: JointSet = MPII,
                      calibration_crops: Iterable[np.ndarray] | None = None,
                      calibration_source: str | None = None,
                      privacy: Any = None, flip_test: bool = False, optimize: bool = True,
                      extra_metadata: dict | None = None) -> bytes:
    """Converts a Keras pose model to a TFLite flatbuffer with embedded metadata.

    Args:
      model: Keras pose model.
      fmt: "float32", "float16" (weights in float16) or "int8" (full-integer weights and
        activations, uint8 input).
      joint_set: the model's joints (metadata, flip pairs).
      calibration_crops: int8 only: uint8 crops ``[H, W, 3]`` from PUBLIC images (DESIGN 4),
        e.g. ``calibration.public_calibration_crops``. 100-200 person crops are plenty.
      calibration_source: int8 only: where the crops come from, recorded in the metadata.
      privacy: privacy statement (see ``metadata.privacy_statement``).
      flip_test: run the crop and its mirror image (2x compute).
      optimize: apply the speed fixes of the module docstring; False gives the stock graph
        (exact GELU everywhere, everything int8), kept for the benchmark's comparison.
      extra_metadata: more metadata keys.

    Returns:
      The ``.tflite`` bytes.
    """
    if fmt not in TFLITE_FORMATS:
        raise ValueError(f"format must be one of {TFLITE_FORMATS}, got {fmt!r}")
    quantized = fmt == "int8"
    if quantized and calibration_crops is None:
        raise ValueError("int8 needs calibration_crops from PUBLIC images (DESIGN 4: calibration "
                         "data must never be private)")
    if quantized and not calibration_source:
        raise ValueError("int8 needs calibration_source: say which public data the calibration "
                         "crops come from (it is recorded in the model's metadata)")
    gelu = fast_gelu if (optimize and not quantized) else None
    layer_norm = delegable_layer_norm if optimize else None
    fn, module = tflite_function(model, joint_set, flip_test, gelu, layer_norm)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if quantized:
        tflite = _quantize_int8(converter, module.input_size, calibration_crops, optimize)
    else:
        tflite = converter.convert()
    extra = dict(extra_metadata or {})
    extra["tflite"] = {"format": fmt, "optimized_graph": bool(optimize),
                       "calibration_source": calibration_source if quantized else None,
                       "input": "image uint8 [1, H, W, 3] RGB crop",
                       "outputs": {"keypoints": "float32 [1, K, 2] crop pixels",
                                   "scores": "float32 [1, K]"}}
    meta = deployment_metadata(privacy, joint_set, module.input_size, module.split_ratio,
                               flip_test, extra=extra)
    return embed_metadata(tflite, meta)


def _quantize_int8(converter, input_size, crops, optimize: bool) -> bytes:
    from tensorflow.lite.python import convert as _lite_convert

    h, w = input_size

    def representative():
        count = 0
        for crop in crops:
            crop = np.asarray(crop)
            if crop.shape != (h, w, 3) or crop.dtype != np.uint8:
                raise ValueError(f"calibration crops must be uint8 [{h}, {w}, 3], got "
                                 f"{crop.dtype} {crop.shape}")
            count += 1
            yield [crop[None]]
        if count == 0:
            raise ValueError("calibration_crops is empty")

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    if not optimize:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        return converter.convert()
    # Calibrate once, then quantize with chosen ops left in float. The public TFLite API only
    # reaches this through tf.lite.experimental.QuantizationDebugger, which calibrates twice
    # more; this is the same call it makes (TF 2.15: tests/export pin it).
    converter._experimental_calibrate_only = True  # pylint: disable=protected-access
    calibrated = converter.convert()
    calibrated_interpreter = interpreter(calibrated)
    names = [t["name"] for t in calibrated_interpreter.get_tensor_details()]
    out_names = [d["name"] for d in calibrated_interpreter.get_output_details()]
    float_nodes = [n for n in names if _in_float_scope(n)] + out_names
    return _lite_convert.mlir_quantize(calibrated, fully_quantize=False,
                                       denylisted_ops=list(INT8_FLOAT_OPS),
                                       denylisted_nodes=float_nodes)


def _in_float_scope(tensor_name: str) -> bool:
    # A fused op's tensor name lists the TF ops it came from ("a;b;c"). The op itself is named
    # first or last; names in between are constants folded into it (e.g. a depthwise conv that
    # absorbed a BatchNorm whose name happens to follow a LayerNorm), which must stay int8.
    parts = tensor_name.split(";")
    return any(f"{scope}/" in part for scope in (_DECODE_SCOPE, _LAYER_NORM_SCOPE)
               for part in (parts[0], parts[-1]))


def keras_predict(model: tf.keras.Model, crops: np.ndarray, joint_set: JointSet = MPII,
                  flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The reference the TFLite formats are compared with: Keras on the same uint8 crops."""
    module = PoseServingModule(model, joint_set, flip_test)
    out = module._predict_crops(tf.convert_to_tensor(np.asarray(crops, np.uint8)))
    return out["keypoints"].numpy(), out["scores"].numpy()


def parity(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean / max keypoint distance (pixels) and mean |score difference| between two runs."""
    dist = np.linalg.norm(np.asarray(reference[0]) - np.asarray(candidate[0]), axis=-1)
    return {"mean_px": float(dist.mean()), "max_px": float(dist.max()),
            "score_abs_diff": float(np.abs(np.asarray(reference[1])
                                           - np.asarray(candidate[1])).mean())}
