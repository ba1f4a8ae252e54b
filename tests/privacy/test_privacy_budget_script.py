"""scripts/privacy_budget.py: both directions, --json, and exit code 2 on invalid input."""

import json
import math
import os
import subprocess
import sys

import pytest

from tfdphpe.privacy import accounting

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "privacy_budget.py")
COMMON = ["--num_examples=5000", "--batch_size=50", "--delta=1e-5"]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_json_for_a_noise_multiplier_and_for_a_target_epsilon():
    out = _run(*COMMON, "--epochs=2", "--noise_multiplier=1.2", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["steps"] == 200 and record["sampling_probability"] == pytest.approx(0.01)
    assert record["delta"] == 1e-5 and record["noise_multiplier"] == 1.2
    want = accounting.compute_epsilon(5000, 50, 1.2, 1e-5, steps=200)
    assert record["epsilon"] == pytest.approx(want)
    out = _run(*COMMON, "--steps=200", "--target_epsilon=2.0")
    assert out.returncode == 0, out.stderr
    assert "noise_multiplier =" in out.stdout and "Poisson sampling" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["--steps=10", "--target_epsilon=0"], "target_epsilon"),
    (["--steps=10", "--noise_multiplier=1", "--delta=1.5"], "delta"),
    (["--steps=10", "--noise_multiplier=1", "--batch_size=6000"], "batch_size"),
    (["--steps=ten", "--noise_multiplier=1"], "steps"),
])
def test_invalid_input_exits_with_code_2_and_a_clear_message(args, message):
    out = _run(*COMMON, *args)
    assert out.returncode == 2
    assert "error" in out.stderr and message in out.stderr


def test_group_size_prints_what_a_group_of_units_gets():
    out = _run(*COMMON, "--steps=200", "--noise_multiplier=1.2", "--group_size=10", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    eps = accounting.compute_epsilon(5000, 50, 1.2, 1e-5, steps=200)
    assert record["group_epsilon"] == pytest.approx(10 * eps)
    assert record["group_delta"] == pytest.approx(min(1.0, 10 * math.exp(9 * eps) * 1e-5))
    out = _run(*COMMON, "--steps=200", "--noise_multiplier=1.2", "--group_size=10",
               "--unit=identity")
    assert "per identity" in out.stdout and "group of 10 identities" in out.stdout
    assert "over 5000 identities" in out.stdout
