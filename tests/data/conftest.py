"""Shared fixtures for the data tests: the real samples and a tiny synthetic data set."""

import os

import pytest

# ../shared/fixtures beside the clone (CI's layout), wherever the clone is.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.environ.get("TFDPHPE_FIXTURES",
                          os.path.join(os.path.dirname(_REPO), "shared", "fixtures"))
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
