"""Shared fixtures for the data tests: the real samples and a tiny synthetic data set."""

import os

import pytest

FIXTURES = os.environ.get("TFDPHPE_FIXTURES", "/work/shared/fixtures")
MPII_DIR = os.path.join(FIXTURES, "mpii")
COCO_DIR = os.path.join(FIXTURES, "coco")
SMALL_INPUT = (64, 48)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A tiny synthetic data set (small images, one process), written once per session."""
    from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset
    out = str(tmp_path_factory.mktemp("synthetic"))
    write_synthetic_dataset(out, num_train=12, num_val=4, seed=5,
                            cfg=SyntheticConfig(image_size=(128, 160)), num_workers=1)
    return out
