"""absl's ``app.run`` for our scripts, with help that exits 0.

absl (every release up to 2.x) ends ``--help``, ``--helpshort``, ``--helpfull`` and ``--helpxml``
with exit status 1, as if asking for help were an error; shells, CI steps and wrappers that
check the status then fail. ``run`` keeps everything else of ``app.run`` and turns only that exit
into 0.
"""

import sys

from absl import app

_HELP = ("help", "helpshort", "helpfull", "helpxml", "?")


def asked_for_help(argv) -> bool:
    """True if ``argv`` holds a help flag (before any ``--``) that is not set to false."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name, _, value = arg.lstrip("-").partition("=")
        if name in _HELP and value.lower() not in ("false", "0"):
            return True
    return False


def run(main, **kwargs) -> None:
    """``absl.app.run(main, **kwargs)``; a help request exits 0 after printing the help."""
    try:
        app.run(main, **kwargs)
    except SystemExit as stop:
        if stop.code == 1 and asked_for_help(sys.argv):
            sys.exit(0)
        raise


# Lines TensorFlow's Python side logs that say nothing a user can act on: the vectorizer's
# per-convolution loop notice (known and measured, docs/benchmarks.md), the checkpoint writer's
# sharding-callback notes, and AutoGraph's "could not transform" hints for our own lambdas.
_NOISE = ("uses a while_loop", "sharding callback", "ShardingCallback", "AutoGraph could not",
          "Skipping full serialization of Keras layer")


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up and bookkeeping chatter out of a script's progress output.

    The C++ side is silenced by TF_CPP_MIN_LOG_LEVEL=2 (each script sets it before importing
    TensorFlow); warnings that matter (ours, and TensorFlow's real ones) still show.
    """
    import logging
    logger = logging.getLogger("tensorflow")
    logger.addFilter(lambda record: not any(n in record.getMessage() for n in _NOISE))
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(lambda record: not any(n in record.getMessage() for n in _NOISE))
