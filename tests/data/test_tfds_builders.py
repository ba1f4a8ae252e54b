"""tensorflow-datasets builders: prepare shards from a manual dir, read them back."""

import os

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from tfdphpe.data import BatchConfig, PipelineConfig  # noqa: E402
from tfdphpe.data import tfds_builders  # noqa: E402
from tests.data.conftest import COCO_DIR, SMALL_INPUT  # noqa: E402


def _prepare(builder_cls, manual_dir, data_dir):
    builder = builder_cls(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_coco_keypoints_from_the_real_sample(tmp_path):
    manual = tmp_path / "manual"
    (manual / "annotations").mkdir(parents=True)
    os.symlink(os.path.join(COCO_DIR, "test_coco.json"),
               manual / "annotations" / "person_keypoints_val2017.json")
    os.symlink(COCO_DIR, manual / "val2017")
    builder = _prepare(tfds_builders.CocoKeypoints, manual, tmp_path / "tfds")
    assert builder.info.splits["validation"].num_examples == 4  # images
    persons = list(tfds_builders.person_dataset(builder, "validation"))
    assert len(persons) == 12  # the 12 persons the reader keeps
    built = tfds_builders.build_dataset_from_tfds(
        builder, "validation", PipelineConfig(input_size=SMALL_INPUT),
        BatchConfig("sequential", batch_size=5))
    batches = list(built.dataset)
    assert [int(b["mask"].numpy().sum()) for b in batches] == [5, 5, 2]
    assert batches[0]["image"].shape == (5, 64, 48, 3) and batches[0]["target_x"].shape[1] == 17
    with pytest.raises(ValueError, match="random access"):
        tfds_builders.build_dataset_from_tfds(builder, "validation", PipelineConfig(),
                                              BatchConfig("poisson", batch_size=2, num_steps=2))


def test_mpii_from_the_synthetic_set(synthetic_dir, tmp_path):
    builder = _prepare(tfds_builders.Mpii, synthetic_dir, tmp_path / "tfds")
    assert builder.info.splits["train"].num_examples == 12
    assert builder.info.splits["validation"].num_examples == 4
    built = tfds_builders.build_dataset_from_tfds(
        builder, "train", PipelineConfig(input_size=SMALL_INPUT),
        BatchConfig("shuffled", batch_size=4, num_steps=5, seed=0))
    batches = list(built.dataset)
    assert len(batches) == 5 and all(b["image"].shape == (4, 64, 48, 3) for b in batches)
    val = list(tfds_builders.person_dataset(builder, "validation"))
    assert np.all([v["head_box"].numpy().any() for v in val])
