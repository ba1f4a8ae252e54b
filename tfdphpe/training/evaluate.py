"""Evaluation of a saved model on a data set's validation split (ties models, data, metrics)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.data.pipeline import PipelineConfig, build_dataset
from tfdphpe.data.sampling import BatchConfig
from tfdphpe.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from tfdphpe.evaluation.inference import predict_dataset, score
from tfdphpe.training.datasets import coco_annotation_file, load_split


def load_run_model(checkpoint: str):
    """(model, config dict or None) from a run directory or a ``.keras`` file."""
    path = os.path.join(checkpoint, "model.keras") if os.path.isdir(checkpoint) else checkpoint
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path}")
    model = tf.keras.models.load_model(path, compile=False)
    config = None
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            config = json.load(f)
    return model, config


def _model_pipeline(model, config) -> PipelineConfig:
    """The evaluation crops a saved model expects (its input size and SimCC codec)."""
    h, w = model.input_shape[1:3]
    split_ratio = model.get_layer("simcc_head").num_bins_x / w
    data = config["data"] if config else {}
    sigma = data.get("simcc_sigma", data.get("sigma", 6.0))   # "sigma": config.json before 0.2
    return PipelineConfig(input_size=(h, w), split_ratio=split_ratio, sigma=sigma)


def predict_records(model, records, joint_set, pipeline: PipelineConfig,
                    flip_test: bool = True, predict_fn=None):
    """Predictions (original image pixels) of ``model`` (or ``predict_fn``) for records."""
    ds = build_dataset(records, pipeline,
                       BatchConfig("sequential", batch_size=16, pad_final_batch=True),
                       joint_set=joint_set)
    return predict_dataset(model, ds.dataset, ds.codec, joint_set.flip_pairs, flip_test,
                           predict_fn=predict_fn)


def predict_run(checkpoint: str, records, joint_set, flip_test: bool = True):
    """Predictions of a saved run (directory or ``.keras`` file) for a list of records."""
    model, config = load_run_model(checkpoint)
    return predict_records(model, records, joint_set, _model_pipeline(model, config), flip_test)


def tflite_predict_fn(model_file: str, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD):
    """(predict_fn, input size) of a ``.tflite`` pose model for ``predict_dataset``.

    The evaluation pipeline yields normalised crops; they are mapped back to the uint8 pixels the
    TFLite model takes (its normalisation and decoding run inside it), so Keras and TFLite are
    scored on the same crops and differ only by the model format.
    """
    from tfdphpe.export.tflite import TFLitePoseEstimator  # pylint: disable=import-outside-toplevel

    estimator = TFLitePoseEstimator(model_file)
    mean_, std_ = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def predict(images):
        pixels = np.clip(np.round(np.asarray(images) * std_ + mean_), 0, 255).astype(np.uint8)
        keypoints, scores = estimator.predict(pixels)
        return tf.constant(keypoints), tf.constant(scores)

    return predict, estimator.input_size


def evaluate_tflite(model_file: str, dataset: str, data_dir: str, max_examples: int = 0,
                    sigma: float = 6.0) -> dict:
    """PCKh of an exported ``.tflite`` model on a data set's validation split (MPII format)."""
    predict, size = tflite_predict_fn(model_file)
    val = load_split(dataset, data_dir, "val", fmt="mpii")
    records = list(val.records)[:max_examples] if max_examples else val
    preds = predict_records(None, records, val.joint_set,
                            PipelineConfig(input_size=size, sigma=sigma), flip_test=False,
                            predict_fn=predict)
    return score(preds, "pckh")


def evaluate_checkpoint(checkpoint: str, dataset: str, data_dir: str, flip_test: bool = True,
                        max_examples: int = 0) -> dict:
    model, config = load_run_model(checkpoint)
    k = model.get_layer("simcc_head").num_joints
    fmt = "coco" if (dataset == "coco" or k == 17) else "mpii"
    val = load_split(dataset, data_dir, "val", fmt=fmt)
    records = list(val.records)[:max_examples] if max_examples else val
    if val.joint_set.num_joints != k:
        raise ValueError(f"the model predicts {k} joints, {dataset} has "
                         f"{val.joint_set.num_joints}")
    preds = predict_records(model, records, val.joint_set, _model_pipeline(model, config),
                            flip_test)
    if fmt == "mpii":
        return score(preds, "pckh")
    if max_examples:
        raise ValueError("--max_examples cannot be used with COCO AP")
    return score(preds, "coco_ap", coco_annotation_file(dataset, data_dir))
