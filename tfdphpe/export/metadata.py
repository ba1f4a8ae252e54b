"""The deployment metadata that travels with every export: privacy statement, joints, geometry.

A SavedModel carries it as the asset ``assets/privacy.json``; a TFLite file carries the same JSON
inside the flatbuffer (metadata entry ``privacy.json``, ``embed_metadata``). ``read_metadata``
reads either.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfdphpe.data.joints import JointSet
from tfdphpe.export.preprocessing import BOX_PADDING, IMAGENET_MEAN, IMAGENET_STD

METADATA_FILENAME = "privacy.json"
FORMAT_VERSION = 1

#: What an export without a training ledger says about itself.
NO_DP_STATEMENT: dict[str, Any] = {
    "method": "none",
    "statement": "No differential privacy guarantee: this model was not trained with a DP "
                 "method, or its privacy ledger was not supplied at export time.",
}


def privacy_statement(privacy: Any = None) -> dict[str, Any]:
    """Normalises what the caller has into a JSON-serialisable statement dict.

    Args:
      privacy: None (no DP guarantee), a dict (e.g. a ledger's ``to_dict()``), a path to a
        ``privacy.json`` written by training, or a ``tfdphpe.privacy.PrivacyLedger`` (its
        ``published()`` statement: the same one training writes).

    Raises:
      ValueError: the statement does not say which method produced it, or is not JSON.
    """
    if privacy is None:
        return dict(NO_DP_STATEMENT)
    if isinstance(privacy, (str, os.PathLike)):
        with tf.io.gfile.GFile(os.fspath(privacy), "r") as f:
            try:
                privacy = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"privacy statement {os.fspath(privacy)!r} is not JSON: {e}")
    elif not isinstance(privacy, Mapping) and hasattr(privacy, "published"):
        privacy = privacy.published()     # a ledger: the one place a statement is assembled
    if not isinstance(privacy, Mapping):
        raise ValueError(f"privacy statement must be a JSON object, got {type(privacy).__name__}")
    privacy = dict(privacy)
    if "method" not in privacy:
        raise ValueError("privacy statement must say its 'method' ('none', 'dpsgd', 'pdpsgd', "
                         f"'fdp', 'fpdp'); got keys {sorted(privacy)}")
    try:
        json.dumps(privacy)
    except TypeError as e:
        raise ValueError(f"privacy statement is not JSON-serialisable: {e}") from None
    return privacy


def deployment_metadata(privacy: Any, joint_set: JointSet, input_size: Sequence[int],
                        split_ratio: float, flip_test: bool = False,
                        box_padding: float = BOX_PADDING,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``privacy.json`` written next to an exported model."""
    meta = {
        "format_version": FORMAT_VERSION,
        "privacy": privacy_statement(privacy),
        "joint_set": joint_set.name,
        "joint_names": list(joint_set.names),
        "flip_pairs": [list(p) for p in joint_set.flip_pairs],
        "skeleton": [list(e) for e in joint_set.skeleton],
        "input_size": [int(input_size[0]), int(input_size[1])],
        "split_ratio": float(split_ratio),
        "flip_test": bool(flip_test),
        "box_padding": float(box_padding),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "input": "RGB uint8 0..255"},
    }
    if extra:
        meta.update(extra)
    return meta


def write_metadata(meta: Mapping[str, Any], path: str) -> str:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(meta, indent=1, sort_keys=True))
    return path


def read_metadata(path: str) -> dict[str, Any]:
    """Deployment metadata of a SavedModel directory, a ``.tflite`` file or a ``privacy.json``."""
    path = os.fspath(path)
    if path.endswith(".tflite"):
        meta = read_tflite_metadata(path)
        if meta is None:
            raise ValueError(f"{path} carries no tfdphpe metadata")
        return meta
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, "assets", METADATA_FILENAME)
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def embed_metadata(tflite: bytes, meta: dict) -> bytes:
    """Adds ``meta`` as JSON to the flatbuffer's metadata list, under ``privacy.json``."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name = METADATA_FILENAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or [])
                      if m.name not in (METADATA_FILENAME, METADATA_FILENAME.encode())] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_tflite_metadata(model: str | bytes) -> dict | None:
    """The embedded ``privacy.json`` of a ``.tflite`` file or bytes (None if absent)."""
    from tensorflow.lite.python import schema_py_generated as schema_fb

    if isinstance(model, (str, os.PathLike)):
        with tf.io.gfile.GFile(os.fspath(model), "rb") as f:
            model = f.read()
    root = schema_fb.Model.GetRootAsModel(bytearray(model), 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name().decode("utf-8") == METADATA_FILENAME:
            return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None
