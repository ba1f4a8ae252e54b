"""Latency of TFLite models, measured so that ratios hold on a shared machine.

Used by ``scripts/bench_tflite.py``; results are in docs/deployment.md and docs/benchmarks.md.

Tests: tests/export/test_tflite.py.
"""

from __future__ import annotations

import time

import numpy as np

from tfdphpe.export.runtime import interpreter


def measure_latency(models: dict[str, str | bytes], num_threads: int = 1, rounds: int = 20,
                    warmup: int = 2, seed: int = 0) -> dict[str, dict[str, float]]:
    """Single-image latency of several TFLite models, measured in interleaved rounds.

    Interleaving (model A, B, C, A, B, C, ...) spreads changes in machine load over all models
    alike, so their ratios stay meaningful on a shared machine. Returns per model the median
    and minimum wall time in ms and, with one thread (the interpreter then computes on the
    calling thread), the median CPU time in ms, which load on other cores barely affects.
    """
    rng = np.random.default_rng(seed)
    runs = {}
    for name, model in models.items():
        runner = interpreter(model, num_threads)
        runner.allocate_tensors()
        for detail in runner.get_input_details():
            if np.issubdtype(detail["dtype"], np.integer):
                data = rng.integers(0, 256, detail["shape"]).astype(detail["dtype"])
            else:
                data = rng.uniform(0, 1, detail["shape"]).astype(detail["dtype"])
            runner.set_tensor(detail["index"], data)
        for _ in range(warmup):
            runner.invoke()
        runs[name] = (runner, [], [])
    for _ in range(rounds):
        for runner, wall, cpu in runs.values():
            t0, c0 = time.perf_counter(), time.thread_time()
            runner.invoke()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return {name: {"median_ms": 1e3 * float(np.median(wall)), "min_ms": 1e3 * float(np.min(wall)),
                   "cpu_ms": 1e3 * float(np.median(cpu)) if num_threads == 1 else float("nan")}
            for name, (_, wall, cpu) in runs.items()}
