"""S_pub / private split: disjoint by image, exact size, reproducible from its manifest."""

import numpy as np
import pytest

from tfdphpe.data import PoseRecord, apply_manifest, read_manifest, split_public, write_manifest


def _records(num_images=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_images):
        for p in range(int(rng.integers(1, 4))):  # 1-3 persons per image
            out.append(PoseRecord(image_path=f"/imgs/{i:04d}.jpg", image_id=i,
                                  keypoints=np.zeros((16, 2)), visible=np.ones(16),
                                  center=[10.0 * p, 5.0], box_size=[50.0, 80.0],
                                  annotation_id=100 * i + p))
    return out


def test_split_is_disjoint_by_image_and_exact():
    records = _records()
    split = split_public(records, num_public=20, seed=3)
    assert len(split.public) == 20 and len(split.private) == len(records) - 20
    pub_imgs = {r.image_path for r in split.public}
    assert not pub_imgs & {r.image_path for r in split.private}
    # Whole images: every person of a public image is public.
    assert len([r for r in records if r.image_path in pub_imgs]) == 20
    other = split_public(records, num_public=20, seed=4)
    assert {r.image_path for r in other.public} != pub_imgs


def test_manifest_round_trip_and_mismatch(tmp_path):
    records = _records()
    split = split_public(records, num_public=15, seed=1)
    path = str(tmp_path / "run" / "s_pub_manifest.json")
    write_manifest(split, path)
    again = apply_manifest(records, path)
    assert [r.annotation_id for r in again.public] == [r.annotation_id for r in split.public]
    manifest = read_manifest(path)
    assert manifest["num_public"] == 15 and manifest["seed"] == 1
    with pytest.raises(ValueError, match="differ"):
        apply_manifest(_records(seed=1), path)


def test_too_many_public_records():
    with pytest.raises(ValueError):
        split_public(_records(3), num_public=100)
