"""The command line of a training run, generated from the config dataclasses.

Each field of ``DataConfig``, ``ModelConfig``, ``PrivacyConfig``, ``OptimConfig`` and
``RunConfig`` becomes one absl flag with the field's name, default, help text and choices, so a
flag cannot drift from the setting it sets. Library code never reads the process's flags: the
script passes its ``FlagValues`` in.
"""

from __future__ import annotations

import dataclasses
import typing

from absl import flags

from tfdphpe.training.config import SECTIONS, TrainConfig


def _kind(section, field: dataclasses.Field) -> type:
    hint = typing.get_type_hints(section)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return tuple
    if args:          # Optional[x] / Union[str, TinyViTConfig]: the first plain type
        hint = next((a for a in args if a in (bool, int, float, str)), str)
    return hint


def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Defines one flag per config field in ``flag_values``; returns their names."""
    names = []
    for section in SECTIONS.values():
        for field in dataclasses.fields(section):
            meta, default = field.metadata, field.default
            help_text, choices = meta["help"], meta.get("choices")
            kind = _kind(section, field)
            args = (field.name, default, help_text)
            if choices and kind is str:
                flags.DEFINE_enum(field.name, default, list(choices), help_text,
                                  flag_values=flag_values)
            elif kind is bool:
                flags.DEFINE_bool(*args, flag_values=flag_values)
            elif kind is int:
                flags.DEFINE_integer(*args, flag_values=flag_values)
            elif kind is float:
                flags.DEFINE_float(*args, flag_values=flag_values)
            elif kind is tuple:
                flags.DEFINE_list(field.name, [str(v) for v in default], help_text,
                                  flag_values=flag_values)
            else:
                flags.DEFINE_string(*args, flag_values=flag_values)
            if meta.get("alias"):
                flags.DEFINE_alias(meta["alias"], field.name, flag_values=flag_values)
            names.append(field.name)
    return names


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The TrainConfig the flags describe (not yet validated), built by keyword."""
    parts = {}
    for part, section in SECTIONS.items():
        values = {}
        for field in dataclasses.fields(section):
            value = flag_values[field.name].value
            if _kind(section, field) is tuple:
                value = tuple(int(v) for v in value)
            values[field.name] = value
        parts[part] = section(**values)
    return TrainConfig(**parts)
