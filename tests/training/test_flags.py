"""scripts/train.py's flags are generated from the config dataclasses: one name, one default."""

import dataclasses

import pytest
from absl import flags

from tfdphpe.training.config import SECTIONS, TrainConfig
from tfdphpe.training.flags import config_from_flags, define_config_flags


def _flags(*argv):
    values = flags.FlagValues()
    names = define_config_flags(values)
    values(["train.py", *argv])
    return values, names


def test_every_flag_is_a_field_with_the_same_default_and_help():
    values, names = _flags()
    fields = {f.name: f for section in SECTIONS.values() for f in dataclasses.fields(section)}
    assert sorted(names) == sorted(fields)                # one flag per field, nothing else
    assert len(names) == len(set(names))                  # no two sections share a name
    for name in names:
        field, flag = fields[name], values[name]
        default = field.default
        if isinstance(default, tuple):
            assert [int(v) for v in flag.default] == list(default), name
        else:
            assert flag.default == default, name
        assert flag.help.endswith(field.metadata["help"]) and field.metadata["help"], name
        if field.metadata["choices"] and isinstance(default, str):
            assert list(flag.parser.enum_values) == list(field.metadata["choices"]), name


def test_flags_build_the_default_config_by_keyword():
    values, _ = _flags()
    assert config_from_flags(values) == TrainConfig()


def test_flags_and_old_names_set_fields():
    values, _ = _flags("--input_size=128,96", "--public_view=2.5", "--method=fpdp",
                       "--privacy_unit=identity", "--examples_per_unit=3",
                       "--reproducible_sampling", "--lr_schedule=constant", "--simcc_sigma=4")
    cfg = config_from_flags(values)
    assert cfg.data.input_size == (128, 96) and cfg.privacy.public_view_sigma == 2.5
    assert (cfg.privacy.method, cfg.privacy.privacy_unit, cfg.privacy.examples_per_unit) == \
        ("fpdp", "identity", 3)
    assert cfg.privacy.reproducible_sampling and cfg.optim.lr_schedule == "constant"
    assert cfg.data.simcc_sigma == 4.0
    with pytest.raises(flags.IllegalFlagValueError):
        _flags("--privacy_unit=patient")


def test_old_config_json_still_loads():
    old = TrainConfig().to_dict()
    old["data"]["sigma"] = old["data"].pop("simcc_sigma")
    old["optim"]["schedule"] = old["optim"].pop("lr_schedule")
    assert TrainConfig.from_dict(old) == TrainConfig()
