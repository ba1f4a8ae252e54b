"""Every script answers --helpfull with exit status 0 and documents each flag it defines."""

import glob
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(p for p in glob.glob(os.path.join(REPO, "scripts", "*.py"))
                 if not os.path.basename(p).startswith("_"))
_DEFINE = re.compile(r"""flags\.DEFINE_\w+\(\s*["'](\w+)["']""")
_ARGPARSE = re.compile(r"""add_argument\(\s*["']--(\w+)["']""")


def _defined_flags(path):
    source = open(path).read()
    names = set(_DEFINE.findall(source)) | set(_ARGPARSE.findall(source))
    if "define_config_flags(" in source:      # scripts/train.py: one flag per config field
        from absl import flags
        from tfdphpe.training.flags import define_config_flags
        names |= set(define_config_flags(flags.FlagValues()))
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_helpfull_exits_zero_and_lists_every_flag(script):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, script, "--helpfull"], capture_output=True,
                            text=True, env=env, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    names = _defined_flags(script)
    assert names, f"{script} defines no flags?"
    for name in names:
        # absl: "  --[no]name: help"; argparse: "  --name NAME  help" (or the help on the next line)
        match = re.search(rf"--(\[no\])?{name}\b[^\n]*?(:\s*|\s{{2,}}|\n\s+)(\S[^\n]*)",
                          result.stdout)
        assert match, f"{os.path.basename(script)} --helpfull does not document --{name}"


def test_help_request_detection():
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    try:
        import _app
    finally:
        sys.path.pop(0)
    assert _app.asked_for_help(["x", "--helpfull"]) and _app.asked_for_help(["x", "-help"])
    assert _app.asked_for_help(["x", "--run_dir=a", "--helpshort"])
    assert not _app.asked_for_help(["x", "--help=false"])
    assert not _app.asked_for_help(["x", "--", "--help"])
    assert not _app.asked_for_help(["x", "--helper=1"])
