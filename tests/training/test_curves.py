"""Training curves: losses from TensorBoard logs and validations from metrics.jsonl, stage
after stage on one step axis, written as CSV and PNG."""

import csv
import json
import os

import tensorflow as tf

from tfdphpe.training import curves


def _stage(path, losses, metrics):
    writer = tf.summary.create_file_writer(os.path.join(path, "tensorboard"))
    with writer.as_default():
        for step, loss in losses:
            tf.summary.scalar("train/loss", loss, step=step)
    writer.close()
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step, value in metrics:
            f.write(json.dumps({"step": step, "PCKh@0.5/Mean": value}) + "\n")


def test_stages_follow_each_other_on_one_step_axis(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _stage(a, [(10, 4.0), (20, 3.0)], [])
    _stage(b, [(5, 1.0), (10, 0.5)], [(10, 80.0)])
    rows = curves.stage_curves([("one", a), ("two", b)])
    assert [(r["stage"], r["global_step"]) for r in rows] == [
        ("one", 10), ("one", 20), ("two", 25), ("two", 30), ("two", 30)]
    assert rows[1]["loss"] == 3.0 and rows[3]["loss"] == 0.5
    assert rows[4]["PCKh@0.5/Mean"] == 80.0 and rows[4]["loss"] == ""

    csv_path, png_path = str(tmp_path / "c.csv"), str(tmp_path / "c.png")
    curves.write_curves(rows, csv_path, png_path, title="t")
    with open(csv_path) as f:
        written = list(csv.DictReader(f))
    assert len(written) == 5 and written[2]["global_step"] == "25"
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_validations_has_only_losses(tmp_path):
    _stage(str(tmp_path), [(1, 2.0)], [])
    os.remove(tmp_path / "metrics.jsonl")
    assert curves.read_metrics(str(tmp_path), "PCKh@0.5/Mean") == []
    rows = curves.stage_curves([("only", str(tmp_path))])
    assert [r["loss"] for r in rows] == [2.0]
