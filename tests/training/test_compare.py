"""Side-by-side comparisons: the PCKh table rows and the overlay picture (a ground-truth row and
one row per model, the first validation people)."""

from PIL import Image

from tests.helpers import TINY, TINY_INPUT
from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset
from tfdphpe.evaluation.pckh import GROUPS
from tfdphpe.models import build_pose_model
from tfdphpe.training.compare import comparison_table, overlay_figure


def _metrics(mean):
    out = {f"PCKh@0.5/{g}": mean for g in list(GROUPS) + ["Mean"]}
    out["PCKh@0.1/Mean"] = mean / 4
    return out


def test_table_has_one_row_per_model_with_its_privacy():
    table = comparison_table([("public", _metrics(80.0), "public data only"),
                              ("DP", _metrics(70.5), "DP, epsilon 1.00")]).splitlines()
    assert len(table) == 4 and table[0].startswith("| model | Head")
    assert table[3] == ("| DP | " + " | ".join(["70.50"] * (len(GROUPS) + 1)) +
                        " | 17.62 | DP, epsilon 1.00 |")


def test_overlay_has_a_ground_truth_row_and_a_row_per_model(tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(str(data), 0, 3, seed=5, cfg=SyntheticConfig(image_size=(96, 80)),
                            num_workers=1)
    model = build_pose_model(TINY, input_size=TINY_INPUT, num_joints=16)
    path = str(tmp_path / "m.keras")
    model.save(path)
    out = overlay_figure([("a", path), ("b", path)], "synthetic", str(data),
                         str(tmp_path / "o.png"), num_images=2)
    with Image.open(out) as picture:
        one_row = Image.open(overlay_figure([("a", path)], "synthetic", str(data),
                                            str(tmp_path / "p.png"), num_images=2))
        assert picture.height > one_row.height        # three rows against two
        assert picture.width == one_row.width         # two people per row in both
