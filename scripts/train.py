r"""Trains a pose model, optionally with differential privacy.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/mpii_finetune.flags --target_epsilon=0.2
    python scripts/train.py --flagfile=configs/mpii_finetune.flags --privacy_unit=video

Every flag is a field of tfdphpe.training.config (same name, default and help):
`python scripts/train.py --helpfull` lists them; docs/training.md explains them.
"""

import os

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from absl import app, flags  # noqa: E402

from tfdphpe.training import train  # noqa: E402
from tfdphpe.training.flags import config_from_flags, define_config_flags  # noqa: E402

F = flags.FLAGS
define_config_flags(F)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags(F).validate()
    except ValueError as e:
        raise app.UsageError(str(e))
    _app.data_logs_at_warning()
    os.makedirs(config.run.run_dir, exist_ok=True)
    F.append_flags_into_file(os.path.join(config.run.run_dir, "flags.txt"))
    metrics = train(config)
    print({k: v for k, v in metrics.items() if "Mean" in k or "AP" in k or k == "epsilon"})


if __name__ == "__main__":
    _app.run(main)
