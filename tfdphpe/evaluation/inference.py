"""Runs a pose model over an evaluation pipeline and scores it (PCKh or COCO AP).

Predictions are decoded with the SimCC codec in crop pixels and mapped back to the original image
with each element's ``inverse_affine``; the flip test averages the logits of each crop and its
mirror. Scoring private validation data is outside the DP guarantee (docs/privacy.md).

Tests: tests/evaluation/test_files.py, tests/export/test_tflite.py, tests/training/test_trainer.py.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.codecs import SimCCCodec
from tfdphpe.evaluation.coco_ap import coco_keypoint_ap, to_coco_results
from tfdphpe.evaluation.pckh import pckh


@dataclasses.dataclass
class Predictions:
    """Keypoints in original image pixels, with what is needed to score them."""

    keypoints: np.ndarray          # [N, K, 2]
    scores: np.ndarray             # [N, K]
    ground_truth: np.ndarray       # [N, K, 2]
    visible: np.ndarray            # [N, K]
    head_boxes: np.ndarray         # [N, 4]
    image_ids: np.ndarray          # [N]
    box_scores: np.ndarray         # [N]


def make_predict_fn(model: Callable, codec: SimCCCodec, flip_pairs: Sequence[Sequence[int]],
                    flip_test: bool = True) -> Callable:
    """A ``tf.function``: normalised images [B,H,W,3] -> (crop keypoints [B,K,2], scores [B,K])."""

    @tf.function
    def predict(images):
        out = model(images, training=False)
        lx, ly = out["x"], out["y"]
        if flip_test:
            fout = model(tf.image.flip_left_right(images), training=False)
            lx, ly = codec.flip_average(lx, ly, fout["x"], fout["y"], flip_pairs)
        return codec.decode(lx, ly)

    return predict


def to_original(keypoints: tf.Tensor, inverse_affine: tf.Tensor) -> tf.Tensor:
    """Crop pixels [B,K,2] -> original pixels with per-example 2x3 inverse affines [B,2,3]."""
    ones = tf.ones_like(keypoints[..., :1])
    homogeneous = tf.concat([keypoints, ones], axis=-1)
    return tf.einsum("bij,bkj->bki", tf.cast(inverse_affine, tf.float32), homogeneous)


def predict_dataset(model: Callable, dataset: tf.data.Dataset, codec: SimCCCodec,
                    flip_pairs: Sequence[Sequence[int]], flip_test: bool = True,
                    log_every_s: float = 30.0,
                    predict_fn: Callable | None = None) -> Predictions:
    """Predicts every (unpadded) element of a batched evaluation dataset.

    ``predict_fn`` (normalised images -> crop keypoints [B,K,2], scores [B,K]) replaces the Keras
    model, e.g. to score an exported TFLite model on the very same crops.
    """
    predict = predict_fn or make_predict_fn(model, codec, flip_pairs, flip_test)
    parts: dict[str, list] = {k: [] for k in Predictions.__dataclass_fields__}
    last = time.time()
    for i, batch in enumerate(dataset):
        kp, sc = predict(batch["image"])
        kp = to_original(kp, batch["inverse_affine"]).numpy()
        keep = batch["mask"].numpy() > 0 if "mask" in batch else np.ones(len(kp), bool)
        parts["keypoints"].append(kp[keep])
        parts["scores"].append(sc.numpy()[keep])
        parts["ground_truth"].append(batch["original_keypoints"].numpy()[keep])
        parts["visible"].append(batch["original_visible"].numpy()[keep])
        parts["head_boxes"].append(batch["head_box"].numpy()[keep])
        parts["image_ids"].append(batch["image_id"].numpy()[keep])
        parts["box_scores"].append(batch["box_score"].numpy()[keep] if "box_score" in batch
                                   else np.ones(int(keep.sum())))
        if time.time() - last > log_every_s:
            print(f"  evaluated {sum(len(p) for p in parts['keypoints'])} people", flush=True)
            last = time.time()
    if not parts["keypoints"]:
        raise ValueError("the evaluation dataset is empty")
    return Predictions(**{k: np.concatenate(v) for k, v in parts.items()})


def score(predictions: Predictions, metric: str, coco_annotations=None) -> dict[str, float]:
    """``metric``: "pckh" (MPII-16 with head boxes) or "coco_ap" (needs the annotation file)."""
    if metric == "pckh":
        return pckh(predictions.keypoints, predictions.ground_truth, predictions.visible,
                    predictions.head_boxes).as_dict()
    if metric == "coco_ap":
        if coco_annotations is None:
            raise ValueError("coco_ap needs the COCO annotation file")
        results = to_coco_results(predictions.image_ids, predictions.keypoints,
                                  predictions.scores, box_scores=predictions.box_scores)
        return {f"COCO/{k}": v for k, v in coco_keypoint_ap(coco_annotations, results).items()}
    raise ValueError(f"unknown metric {metric!r}; expected 'pckh' or 'coco_ap'")
