"""`build_dataset`: person records -> tf.data pipeline of model-ready dicts, for train and eval.

An element (one person) has (DESIGN 3):

===================  =============  ====================================================
key                  shape / dtype  meaning
===================  =============  ====================================================
image                [H, W, 3] f32  crop, normalised ((x - ImageNet mean) / std, RGB)
public_image         [H, W, 3] f32  Gaussian-blurred crop (psi(x)); only with a blur sigma
target_x, target_y   [K, W*k] f32   SimCC targets (`tfdphpe.codecs.SimCCCodec`)
target_weight        [K] f32        0 for joints that are not annotated or outside the crop
keypoints, visible   [K, 2], [K]    in crop pixels (after flip: left/right swapped)
center, scale        [2], [2]       crop region in the original image; scale = its (w, h)
                                    in pixels (HRNet's scale * 200), padded, aspect-fixed
rotation             [] f32         degrees; flipped [] bool
affine               [2, 3]         original pixels -> crop pixels
inverse_affine       [2, 3]         crop pixels -> original pixels (map predictions back)
original_keypoints   [K, 2], [K]    and original_visible: ground truth in image pixels
head_box             [4] f32        x1, y1, x2, y2 (PCKh); zeros when unknown
image_id             [] int64       record_index, annotation_id: [] int64 too
box_score            [] f32         1 for ground-truth boxes, detector score otherwise
image_size           [2] int32      (h, w) of the original image
===================  =============  ====================================================

Batched forms add ``mask`` [B] (1 = real example, 0 = padding) and the scalars ``step``,
``chunk``, ``num_chunks`` (see `tfdphpe.data.sampling`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from tfdphpe.codecs.simcc import SimCCCodec
from tfdphpe.data import sampling as sampling_lib
from tfdphpe.data import transforms as T
from tfdphpe.data.joints import JointSet, get_joint_set
from tfdphpe.data.records import PoseRecord, ReadResult, ReadSummary, records_to_arrays

ELEMENT_KEYS = ("image", "public_image", "target_x", "target_y", "target_weight", "keypoints",
                "visible", "center", "scale", "rotation", "flipped", "affine", "inverse_affine",
                "original_keypoints", "original_visible", "head_box", "image_id", "record_index",
                "annotation_id", "box_score", "image_size")
BATCH_SCALARS = ("step", "chunk", "num_chunks")
_AUG_SEED_OFFSET = 0x5DEECE66D  # keeps augmentation seeds apart from sampling seeds


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (HRNet's top-down recipe); a factor of 0 switches a part off.

    Defaults are HRNet's COCO values; `for_dataset("mpii")` gives its MPII values (scale 0.25,
    rotation 30, no half-body).
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    scale_factor: float = 0.35
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    @classmethod
    def for_dataset(cls, name: str, **overrides) -> "AugmentConfig":
        base = {"mpii": dict(scale_factor=0.25, rotation_factor=30.0, half_body_prob=0.0),
                "coco": {}}.get(name.lower(), {})
        return cls(**(base | overrides))


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What each element looks like.

    Attributes:
      input_size: model input (H, W).
      split_ratio, sigma: SimCC codec parameters.
      padding: person box padding (HRNet/mmpose 1.25 for MPII and COCO).
      augment: training augmentation, or None (evaluation: plain crop).
      public_blur_sigma: adds ``public_image`` (Feature DP's psi(x)) when set, in crop pixels.
      mean, std: per-channel normalisation of [0, 255] RGB.
      num_parallel_calls: parallel decode/transform (-1 = AUTOTUNE).
      deterministic: keep element order (and results) independent of thread timing.
      prefetch: batches to prefetch (-1 = AUTOTUNE, 0 = none).
    """

    input_size: tuple[int, int] = (256, 192)
    split_ratio: float = 2.0
    sigma: float = 6.0
    padding: float = 1.25
    augment: AugmentConfig | None = None
    public_blur_sigma: float | None = None
    mean: tuple[float, float, float] = T.IMAGENET_MEAN
    std: tuple[float, float, float] = T.IMAGENET_STD
    num_parallel_calls: int = -1
    deterministic: bool = True
    prefetch: int = -1

    def codec(self) -> SimCCCodec:
        return SimCCCodec(self.input_size, self.split_ratio, self.sigma)


@dataclasses.dataclass
class PoseDataset:
    """A built pipeline and what it is made of; iterate ``.dataset``."""

    dataset: tf.data.Dataset
    sampling: sampling_lib.SamplingInfo
    joint_set: JointSet
    codec: SimCCCodec
    num_examples: int
    summary: ReadSummary | None = None

    def __iter__(self):
        return iter(self.dataset)


def element_ops(config: PipelineConfig, joint_set: JointSet) -> list[T.Op]:
    """The per-person transform chain after gathering a record (decode ... targets)."""
    ops = [T.decode_image(), T.invisible_outside_image(),
           T.box_to_center_scale(config.input_size, config.padding)]
    aug = config.augment
    if aug is not None:
        if aug.half_body_prob > 0:
            ops.append(T.random_half_body(joint_set, config.input_size, aug.half_body_prob,
                                          aug.half_body_min_joints, aug.half_body_padding))
        if aug.scale_factor > 0 or aug.rotation_factor > 0:
            ops.append(T.random_scale_rotation(aug.scale_factor, aug.rotation_factor,
                                               aug.rotation_prob))
        if aug.flip_prob > 0:
            ops.append(T.random_flip(aug.flip_prob))
    ops.append(T.affine_crop(config.input_size, joint_set))
    if aug is not None and max(aug.brightness, aug.contrast, aug.saturation, aug.hue) > 0:
        ops.append(T.random_color(aug.brightness, aug.contrast, aug.saturation, aug.hue))
    if config.public_blur_sigma:
        ops.append(T.public_view(config.public_blur_sigma))
    ops += [T.normalize(config.mean, config.std), T.encode_targets(config.codec()),
            T.select(ELEMENT_KEYS)]
    return ops


def _unpack(source, joint_set) -> tuple[list[PoseRecord], JointSet, ReadSummary | None]:
    if isinstance(source, ReadResult):
        return list(source.records), joint_set_or(joint_set, source.joint_set), source.summary
    records = list(source)
    if joint_set is None:
        k = records[0].num_joints if records else 0
        joint_set = {16: "mpii", 17: "coco"}.get(k)
        if joint_set is None:
            raise ValueError(f"pass joint_set for records with {k} joints")
    return records, joint_set_or(joint_set, None), None


def joint_set_or(joint_set, default) -> JointSet:
    if joint_set is None:
        return default
    return get_joint_set(joint_set) if isinstance(joint_set, str) else joint_set


def _column_tensors(records: Sequence[PoseRecord]) -> dict[str, tf.Tensor]:
    arrays = records_to_arrays(records)
    arrays["image_path"] = arrays["image_path"].astype(str).astype(bytes)
    return {k: tf.constant(v) for k, v in arrays.items()}


def build_dataset(source: ReadResult | Sequence[PoseRecord], config: PipelineConfig,
                  batching: sampling_lib.BatchConfig | None = None,
                  joint_set: JointSet | str | None = None) -> PoseDataset:
    """Builds the tf.data pipeline.

    Args:
      source: a reader's `ReadResult` or a list of `PoseRecord`.
      config: what an element looks like (crop size, augmentation, public view...).
      batching: how elements are grouped; None = single elements in record order (one pass).
        Private DP training: ``BatchConfig("poisson", batch_size=B, num_steps=T)``; evaluation:
        ``BatchConfig("sequential", batch_size=B)``.
      joint_set: needed only for plain record lists of unusual joint counts.

    Returns:
      A `PoseDataset`: ``.dataset`` yields element dicts (see the module docstring), batched
      per ``batching``; ``.sampling`` reports the sampling used (for the privacy statement).
    """
    records, joint_set, summary = _unpack(source, joint_set)
    if not records:
        raise ValueError("no records to build a dataset from")
    batching = batching or sampling_lib.BatchConfig(sampling_lib.UNBATCHED, batch_size=1,
                                                    num_epochs=1)
    columns = _column_tensors(records)
    n = len(records)
    transform = T.compose(element_ops(config, joint_set))
    aug_seed = tf.constant(batching.seed + _AUG_SEED_OFFSET, tf.int64)

    def load(index, position):
        ex = {k: tf.gather(v, index) for k, v in columns.items()}
        ex["seed"] = tf.stack([aug_seed, tf.cast(position, tf.int64)])
        return transform(ex)

    opts = dict(num_parallel_calls=config.num_parallel_calls,
                deterministic=config.deterministic)

    if batching.method == sampling_lib.UNBATCHED:
        ds = tf.data.Dataset.range(n).repeat(batching.num_epochs or 1).skip(batching.start_step)
        if batching.num_steps is not None:
            ds = ds.take(batching.num_steps - batching.start_step)
        ds = ds.enumerate(start=batching.start_step).map(
            lambda pos, i: load(i, pos), **opts)
        info = sampling_lib.SamplingInfo(sampling_lib.UNBATCHED, n, 1, 1.0 / n,
                                         batching.num_steps, 1, 0.0)
    else:
        index_ds, info = sampling_lib.index_batches(batching, n)
        width = info.max_batch_size
        blank = _blank_element(load, columns)

        def per_slot(b):
            size = tf.shape(b["index"])[0]
            # The augmentation of an example depends on (seed, step, example) only, not on its
            # slot: chunked or sharded (one pipeline per replica), a step sees the same crops.
            return {"index": b["index"], "mask": b["mask"],
                    "position": b["step"] * n + b["index"],
                    "step": tf.fill([size], b["step"]), "chunk": tf.fill([size], b["chunk"]),
                    "num_chunks": tf.fill([size], b["num_chunks"])}

        def load_or_blank(s):
            ex = tf.cond(s["mask"] > 0, lambda: load(tf.maximum(s["index"], 0), s["position"]),
                         lambda: blank)
            return ex | {"mask": s["mask"], "step": s["step"], "chunk": s["chunk"],
                         "num_chunks": s["num_chunks"]}

        ds = index_ds.map(per_slot).unbatch().map(load_or_blank, **opts)
        ds = ds.batch(width, drop_remainder=False)
        ds = ds.map(lambda b: b | {k: b[k][0] for k in BATCH_SCALARS})
        if batching.method == sampling_lib.POISSON_VARIABLE:
            ds = ds.map(_drop_padding)
    if config.prefetch:
        ds = ds.prefetch(config.prefetch)
    return PoseDataset(dataset=ds, sampling=info, joint_set=joint_set, codec=config.codec(),
                       num_examples=n, summary=summary)


def _blank_element(load, columns) -> dict:
    """Zeros shaped like one element (for padding slots), from a trace of ``load``."""
    fn = tf.function(load).get_concrete_function(tf.TensorSpec([], tf.int64),
                                                 tf.TensorSpec([], tf.int64))
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), fn.structured_outputs)
    for name, s in spec.items():
        if not s.shape.is_fully_defined():
            raise ValueError(f"element field {name!r} has no static shape ({s.shape})")
    return {k: tf.zeros(s.shape, s.dtype) for k, s in spec.items()}


def _drop_padding(batch: dict) -> dict:
    keep = batch["mask"] > 0
    return {k: (v if k in BATCH_SCALARS else tf.boolean_mask(v, keep)) for k, v in batch.items()}
