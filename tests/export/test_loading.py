"""Finding the model, its privacy statement and config for export."""

import json
import shutil

import pytest

from tfdphpe.data.joints import COCO, MPII
from tfdphpe.export import PRESETS, fresh_model, load_checkpoint, resolve_joint_set


def test_run_directory(exported):
    source = load_checkpoint(str(exported["run_dir"]))
    assert source.joint_set == MPII
    assert source.privacy.endswith("privacy.json")
    assert source.config["joint_set"] == "mpii"
    assert source.model.output_shape["x"][1] == 16


def test_keras_file_in_checkpoints_finds_the_run_files(exported, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(exported["run_dir"] / "model.keras", run / "checkpoints" / "step_100.keras")
    shutil.copy(exported["run_dir"] / "privacy.json", run / "privacy.json")
    source = load_checkpoint(str(run / "checkpoints" / "step_100.keras"))
    assert source.privacy == str(run / "privacy.json")
    assert source.origin.endswith("step_100.keras")
    alone = tmp_path / "alone.keras"
    shutil.copy(exported["run_dir"] / "model.keras", alone)
    assert load_checkpoint(str(alone)).privacy is None  # -> exported as "no DP guarantee"


def test_bad_checkpoints_and_joint_sets(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match=".keras"):
        load_checkpoint(str(tmp_path / "model.h5"))
    with pytest.raises(ValueError, match="variant"):
        fresh_model("7m")
    with pytest.raises(ValueError, match="17 joints"):
        resolve_joint_set("coco", 16)
    assert resolve_joint_set(None, 17) == COCO
    with pytest.raises(ValueError, match="joint set"):
        resolve_joint_set(None, 5)


def test_presets():
    assert PRESETS["server"].input_size == (256, 192)
    mobile = PRESETS["mobile"]
    assert mobile.input_size[0] * mobile.input_size[1] < 256 * 192
    assert "PCKh" in mobile.note    # the measured accuracy cost travels with the preset


def test_joint_names_from_the_training_privacy_json(exported, tmp_path):
    # What tfdphpe.training writes: a nested config without joint_set, names in privacy.json.
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(exported["run_dir"] / "model.keras", run / "model.keras")
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "custom"}}))
    names = [f"j{i}" for i in range(15)] + ["left_wrist"]
    (run / "privacy.json").write_text(json.dumps({"method": "dpsgd", "joint_names": names}))
    source = load_checkpoint(str(run))
    assert source.joint_set.names == tuple(names) and source.joint_set.name == "custom"
    (run / "privacy.json").write_text(json.dumps({"method": "dpsgd",
                                                  "joint_names": list(MPII.names)}))
    assert load_checkpoint(str(run)).joint_set == MPII
