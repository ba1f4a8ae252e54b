"""One still image: deterministic for a seed, annotations that cover the difficulties."""

import numpy as np

from tfdphpe.data.synthetic import (POSE_FAMILIES, SyntheticConfig, identity_params,
                                    render_example)

CFG = SyntheticConfig(image_size=(128, 160))


def test_deterministic_for_a_seed():
    a, ann_a = render_example(1, 0, 3, CFG)
    b, ann_b = render_example(1, 0, 3, CFG)
    c, _ = render_example(2, 0, 3, CFG)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ann_a["joints"], ann_b["joints"])
    assert not np.array_equal(a, c)
    assert identity_params(1, 5)["eye_size"] == identity_params(1, 5)["eye_size"]


def test_annotations_cover_the_difficulties():
    anns = [render_example(0, 0, i, CFG)[1] for i in range(60)]
    assert {a["pose"] for a in anns} == set(POSE_FAMILIES)
    inside = np.array([a["inside"] for a in anns])
    seen = np.array([a["seen"] for a in anns])
    assert (~inside).any()  # truncation at the border
    assert (inside & ~seen).sum() > 20  # occluded but annotated joints
    assert any(a["back_view"] for a in anns)
    coco_v = np.array([a["coco_v"] for a in anns])
    assert {0, 1, 2} <= set(coco_v.ravel())
    w, h = CFG.image_size[1], CFG.image_size[0]
    for a in anns:
        j = a["joints"][a["inside"]]
        assert (j[:, 0] >= 0).all() and (j[:, 0] <= w - 1).all() and (j[:, 1] <= h - 1).all()
