"""build_dataset: the element contract, batching forms, determinism, mapping back."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tfdphpe.data import (AugmentConfig, BatchConfig, PipelineConfig, build_dataset,
                          read_coco, read_mpii_json)
from tfdphpe.data.transforms import apply_affine
from tests.data.conftest import COCO_DIR, MPII_DIR, SMALL_INPUT

CONTRACT = {"image": (64, 48, 3), "target_x": (16, 96), "target_y": (16, 128),
            "target_weight": (16,), "keypoints": (16, 2), "visible": (16,), "center": (2,),
            "scale": (2,), "rotation": (), "image_id": (), "head_box": (4,),
            "inverse_affine": (2, 3), "affine": (2, 3), "original_keypoints": (16, 2),
            "original_visible": (16,), "record_index": (), "box_score": ()}


@pytest.fixture(scope="module")
def mpii():
    return read_mpii_json(os.path.join(MPII_DIR, "test_mpii.json"), MPII_DIR)


def test_eval_element_contract_and_mapping_back(mpii):
    cfg = PipelineConfig(input_size=SMALL_INPUT)
    built = build_dataset(mpii, cfg)
    elements = list(built.dataset)
    assert len(elements) == 5 and built.sampling.method == "unbatched"
    for k, shape in CONTRACT.items():
        assert tuple(elements[0][k].shape) == shape, k
    assert "public_image" not in elements[0] and elements[0]["image_id"].dtype == tf.int64
    for i, (ex, rec) in enumerate(zip(elements, mpii.records)):
        assert int(ex["record_index"]) == i
        vis = ex["visible"].numpy() > 0
        back = apply_affine(ex["inverse_affine"], ex["keypoints"]).numpy()
        np.testing.assert_allclose(back[vis], rec.keypoints[vis], atol=1e-2)
        np.testing.assert_allclose(ex["original_keypoints"], rec.keypoints)
        # Plain evaluation crop: (aspect-fixed, padded 1.25) box, no rotation.
        np.testing.assert_allclose(ex["center"], rec.center)
        np.testing.assert_allclose(ex["scale"][1], rec.box_size[1] * 1.25 * 4 / 3, rtol=1e-5)
        np.testing.assert_array_equal(ex["target_weight"], ex["visible"])
    img = elements[0]["image"].numpy()
    assert -2.2 < img.min() and img.max() < 2.7  # ImageNet-normalised


def test_training_with_public_view_is_deterministic(mpii):
    cfg = PipelineConfig(input_size=SMALL_INPUT, augment=AugmentConfig.for_dataset("mpii"),
                         public_blur_sigma=2.0)
    # The same key (and seed for the augmentation) gives the same batches and crops.
    batching = BatchConfig("shuffled", batch_size=2, num_epochs=2, seed=4, sampling_key=(4, 4))
    a = [b for b in build_dataset(mpii, cfg, batching).dataset]
    b = [b for b in build_dataset(mpii, cfg, batching).dataset]
    assert len(a) == 4
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k].numpy(), y[k].numpy(), err_msg=k)
    x = a[0]
    assert x["public_image"].shape == (2, 64, 48, 3)
    assert np.std(x["public_image"].numpy()) < np.std(x["image"].numpy())
    assert x["mask"].numpy().tolist() == [1.0, 1.0]
    # Augmented crops still map back to the original joints.
    for i in range(2):
        vis = x["visible"][i].numpy() > 0
        back = apply_affine(x["inverse_affine"][i], x["keypoints"][i]).numpy()
        perm = np.arange(16) if not x["flipped"][i] else np.array([5, 4, 3, 2, 1, 0, 6, 7, 8, 9,
                                                                    15, 14, 13, 12, 11, 10])
        np.testing.assert_allclose(back[vis], x["original_keypoints"][i].numpy()[perm][vis],
                                   atol=2e-2)


def test_poisson_padded_and_variable_forms_agree(mpii):
    cfg = PipelineConfig(input_size=SMALL_INPUT, augment=AugmentConfig())
    padded = build_dataset(mpii, cfg, BatchConfig("poisson", batch_size=2, num_steps=6, seed=1,
                                                   sampling_key=(1, 1)))
    variable = build_dataset(mpii, cfg, BatchConfig("poisson_variable", batch_size=2,
                                                    num_steps=6, seed=1, sampling_key=(1, 1)))
    assert padded.sampling.is_poisson and padded.sampling.sampling_rate == pytest.approx(0.4)
    width = padded.sampling.max_batch_size
    spec = padded.dataset.element_spec
    assert spec["image"].shape == (None, 64, 48, 3) or spec["image"].shape[1:] == (64, 48, 3)
    sizes = []
    for p, v in zip(padded.dataset, variable.dataset):
        assert p["image"].shape[0] == width and p["mask"].shape == (width,)
        keep = p["mask"].numpy() > 0
        sizes.append(int(keep.sum()))
        assert v["image"].shape[0] == keep.sum() and int(p["step"]) == int(v["step"])
        np.testing.assert_array_equal(p["record_index"].numpy()[keep], v["record_index"])
        np.testing.assert_allclose(p["image"].numpy()[keep], v["image"].numpy())
        assert not p["image"].numpy()[~keep].any()  # padding slots are blank
    assert len(sizes) == 6 and len(set(sizes)) > 1  # sizes vary from step to step


def test_sequential_eval_batches_with_detections():
    dets = read_coco(os.path.join(COCO_DIR, "test_coco.json"), COCO_DIR, boxes="detections",
                     detection_file=os.path.join(COCO_DIR, "test_coco_det_AP_H_56.json"),
                     score_threshold=0.9)
    built = build_dataset(dets, PipelineConfig(input_size=SMALL_INPUT),
                          BatchConfig("sequential", batch_size=8))
    batches = list(built.dataset)
    n = len(dets)
    assert sum(int(b["mask"].numpy().sum()) for b in batches) == n
    assert all(b["image"].shape == (8, 64, 48, 3) for b in batches)
    scores = np.concatenate([b["box_score"].numpy()[b["mask"].numpy() > 0] for b in batches])
    np.testing.assert_allclose(scores, [r.box_score for r in dets.records], rtol=1e-6)
    assert batches[0]["target_x"].shape == (8, 17, 96)


def test_sampling_is_secret_unless_asked_to_be_reproducible(mpii):
    """Without a key every pipeline draws its own secret one: the same flags and seed give other
    batches. reproducible_sampling derives them from the seed, and says so."""
    cfg = PipelineConfig(input_size=SMALL_INPUT)

    def indices(batching):
        built = build_dataset(mpii, cfg, batching)
        return built.sampling, [b["record_index"].numpy()[b["mask"].numpy() > 0].tolist()
                                for b in built.dataset]

    batching = BatchConfig("poisson", batch_size=2, num_steps=30, seed=1)
    (info, a), (_, b) = indices(batching), indices(batching)
    assert a != b and info.key_secret and "NOT secret" not in info.describe()
    seeded = dataclasses.replace(batching, reproducible_sampling=True)
    (info, a), (_, b) = indices(seeded), indices(seeded)
    assert a == b and not info.key_secret and "NOT secret" in info.describe()
