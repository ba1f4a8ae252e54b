"""The sweep: a half-done grid resumes (finished runs kept, not repeated), a progress line per
run with the time left, tables and plots with 95 % intervals over seeds."""

import json
import os

import pytest

from tfdphpe.training import sweep

GRID = {"flagfile": "base.flags",
        "axes": {"method": ["none", "dpsgd"], "target_epsilon": [0.2, 7], "seed": [0, 1, 2]}}


def _finish(run, mean):
    os.makedirs(run.run_dir, exist_ok=True)
    with open(os.path.join(run.run_dir, "metrics.json"), "w") as f:
        json.dump({"PCKh@0.5/Mean": mean, "PCKh@0.1/Mean": mean / 4, "steps": 10,
                   "epsilon": run.flags.get("target_epsilon")}, f)


class FakeTrainer:
    """Stands in for scripts/train.py: 'trains' for 60 s of a fake clock, writes metrics."""

    def __init__(self, runs):
        self.by_dir = {r.run_dir: r for r in runs}
        self.launched, self.now = [], 0.0

    def clock(self):
        return self.now

    def __call__(self, cmd, run_dir):
        assert "--resume" in cmd and f"--run_dir={run_dir}" in cmd
        self.launched.append(run_dir)
        self.now += 60.0
        _finish(self.by_dir[run_dir], 50.0)
        return 0


def test_grid_with_seeds_expands_once_per_seed(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))
    # none ignores epsilon: 3 seeds; dpsgd: 2 epsilons x 3 seeds.
    assert len(runs) == 9 and len({r.name for r in runs}) == 9
    assert sum(r.flags["method"] == "none" for r in runs) == 3


@pytest.mark.parametrize("path", ["configs/synthetic_benchmark/public_model_grid.json",
                                  "configs/mpii_grid.json"])
def test_shipped_benchmark_grids_load_and_name_existing_flagfiles(path, tmp_path):
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    grid = sweep.load_grid(os.path.join(root, path))
    assert os.path.exists(os.path.join(root, grid["flagfile"]))
    runs = sweep.expand(grid, str(tmp_path))
    # 3 seeds x (none + 4 methods x 3 budgets): the benchmark the docs report.
    assert len(runs) == 39 and sum(r.flags["method"] == "none" for r in runs) == 3


def test_with_gives_flags_that_follow_an_axis_value(tmp_path):
    grid = {"axes": {"privacy_unit": ["example", "identity"], "target_epsilon": [1, 8]},
            "with": {"privacy_unit": {"example": {"batch_size": 64},
                                      "identity": {"batch_size": 16, "examples_per_unit": 4}}}}
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    runs = sweep.expand(sweep.load_grid(str(path)), str(tmp_path))
    assert len(runs) == 4
    for run in runs:
        want = 64 if run.flags["privacy_unit"] == "example" else 16
        assert run.flags["batch_size"] == want
        assert ("examples_per_unit" in run.flags) == (run.flags["privacy_unit"] == "identity")
        assert "batch_size" not in run.name       # named by the axes only
    for run in runs:
        _finish(run, 60.0 if run.flags["privacy_unit"] == "identity" else 70.0)
    series = sweep.series_axes(list(grid["axes"]))
    assert series == ["privacy_unit"]
    plots = sweep.plot_pckh_vs_epsilon(sweep.collect(runs), str(tmp_path), series)
    assert len(plots) == 1 and os.path.getsize(plots[0]) > 0     # one line per unit, no method
    grid["with"]["privacy_unit"]["video"] = {"batch_size": 8}
    path.write_text(json.dumps(grid))
    with pytest.raises(ValueError, match="video"):
        sweep.load_grid(str(path))


def test_half_done_grid_resumes_without_repeating_finished_runs(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))
    for run in runs[:4]:                       # finished before the interruption
        _finish(run, 40.0)
    trainer, lines = FakeTrainer(runs), []
    failed = sweep.run_all(runs, "base.flags", log=lines.append, launch=trainer,
                           clock=trainer.clock)
    assert failed == [] and trainer.launched == [r.run_dir for r in runs[4:]]
    assert lines[0] == "4 of 9 runs already done (kept)"
    # The first 4 runs were kept as they were.
    assert [json.load(open(os.path.join(r.run_dir, "metrics.json")))["PCKh@0.5/Mean"]
            for r in runs] == [40.0] * 4 + [50.0] * 5
    # Again: nothing left to launch.
    again = FakeTrainer(runs)
    sweep.run_all(runs, "base.flags", log=lines.append, launch=again, clock=again.clock)
    assert again.launched == [] and lines[-1] == "9 of 9 runs already done (kept)"


def test_progress_line_after_each_run_gives_the_time_left(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))[:3]
    trainer, lines = FakeTrainer(runs), []
    sweep.run_all(runs, None, log=lines.append, launch=trainer, clock=trainer.clock)
    progress = [line for line in lines[1:] if not line.startswith("[")]
    assert progress[0] == (f"{runs[0].name}: finished in 1m 00s | 1 of 3 done, 2 to go, about "
                           "2m 00s left (1m 00s per run so far)")
    assert progress[-1].endswith("3 of 3 done, 0 to go, nothing left")


def test_a_failed_run_is_reported_and_retried_next_time(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))[:2]
    lines = []
    failed = sweep.run_all(runs, None, log=lines.append, launch=lambda cmd, d: 3,
                           clock=lambda: 0.0)
    assert failed == runs and "FAILED (exit 3)" in lines[2]
    trainer = FakeTrainer(runs)
    sweep.run_all(runs, None, log=lines.append, launch=trainer, clock=trainer.clock)
    assert len(trainer.launched) == 2


def test_a_run_started_with_other_flags_is_refused(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))[:1]
    trainer = FakeTrainer(runs)
    sweep.run_all(runs, "base.flags", log=lambda s: None, launch=trainer, clock=trainer.clock)
    changed = sweep.expand(dict(GRID, fixed={"epochs": 5}), str(tmp_path))[:1]
    with pytest.raises(ValueError, match="other flags"):
        sweep.run_all(changed, "base.flags", log=lambda s: None, launch=trainer)


def test_tables_and_plot_show_the_mean_and_interval_over_seeds(tmp_path):
    runs = sweep.expand(GRID, str(tmp_path))
    for run in runs:
        _finish(run, {0: 60.0, 1: 62.0, 2: 64.0}[run.flags["seed"]])
    rows = sweep.collect(runs)
    paths = sweep.write_tables(rows, str(tmp_path), list(GRID["axes"]))
    assert [os.path.basename(p) for p in paths] == ["results.csv", "results.md",
                                                    "summary.csv", "summary.md"]
    summary = open(paths[-1]).read().splitlines()
    assert len(summary) == 2 + 3                # header, rule, none + dpsgd x 2 epsilons
    # mean 62, sd 2, n 3: half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.1547 = 4.97
    assert all("62.00 ± 4.97" in line and line.endswith("| 3 |") for line in summary[2:])
    plots = sweep.plot_pckh_vs_epsilon(sweep.summarize(rows), str(tmp_path))
    assert len(plots) == 1 and os.path.getsize(plots[0]) > 1000
