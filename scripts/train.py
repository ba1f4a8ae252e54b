r"""Trains a pose model, optionally with differential privacy.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/mpii_finetune.flags --target_epsilon=0.2
    python scripts/train.py --flagfile=configs/mpii_finetune.flags --privacy_unit=video

Every flag is a field of tfdphpe.training.config (same name, default and help):
`python scripts/train.py --helpfull` lists them; docs/training.md explains them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.training import train
from tfdphpe.training.flags import config_from_flags, define_config_flags

F = flags.FLAGS
define_config_flags(F)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags(F).validate()
    except ValueError as e:
        raise app.UsageError(str(e))
    os.makedirs(config.run.run_dir, exist_ok=True)
    F.append_flags_into_file(os.path.join(config.run.run_dir, "flags.txt"))
    metrics = train(config)
    print({k: v for k, v in metrics.items() if "Mean" in k or "AP" in k or k == "epsilon"})


if __name__ == "__main__":
    _app.quiet_tensorflow()
    _app.run(main)
