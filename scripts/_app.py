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


# What TensorFlow and its libraries print that says nothing a user can act on: C++ start-up
# lines (oneDNN, CUDA probes on a machine without CUDA, CPU feature notes), the vectorizer's
# per-convolution loop notice (known and measured, docs/benchmarks.md), the checkpoint writer's
# sharding-callback notes, dp_accounting's "excluding this RDP order" notes at large q, the
# retracing note when a figure loads one model per run (one predict function each, by design).
_NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuda_platform",
          "cuda drivers", "cpu_feature_guard", "rebuild TensorFlow with the appropriate",
          "Unable to register cu", "TF-TRT", "uses a while_loop", "sharding callback",
          "AutoGraph could not", "failed to converge after", "Skipping full serialization",
          "make_predict_fn.<locals>.predict at")


def _noise(text: str) -> bool:
    low = text.lower()
    return any(n.lower() in low for n in _NOISE)


def quiet_start() -> None:
    """Imports TensorFlow with its start-up chatter kept out of the script's output.

    Call before anything imports TensorFlow. The C++ side prints before any setting can stop
    it, so stderr (file descriptor 2) goes to a temporary file during the import and the first
    device probe; afterwards every line that is not known chatter is printed again.
    """
    import os
    import tempfile
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tfdphpe  # noqa: F401  (compat first)
            import tensorflow as tf
            tf.config.list_physical_devices("GPU")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if not _noise(line):
                    print(line, file=sys.stderr)
    quiet_logs()


def quiet_logs() -> None:
    """Filters the known chatter from Python-side logs (TensorFlow's, absl's)."""
    import logging
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).addFilter(lambda record: not _noise(record.getMessage()))


def data_logs_at_warning() -> None:
    """Readers' per-file summaries only when something was skipped (they log a warning then)."""
    import logging
    logging.getLogger("tfdphpe.data").setLevel(logging.WARNING)
