"""DESIGN 3b on 2 logical CPU devices: per-replica clipping, all-reduced sums, noise added once.

The check runs in a subprocess because logical devices must be configured before TensorFlow
initialises, which the other tests have already done in this process.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mirrored_strategy_step_equals_single_device_step():
    script = os.path.join(ROOT, "tests", "privacy", "distributed_check.py")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"dpsgd", "fpdp"}
    for method, figures in result.items():
        # Same seeded noise on both replicas, added to the all-reduced sum: the distributed update
        # equals the single-device one. Noise added per replica (and summed) would differ by
        # O(sigma C / B).
        assert figures["diff"] < 1e-5, (method, figures)
        assert figures["moved"] > 1e-2, (method, figures)
