"""The data set a user brings: a COCO-style keypoint JSON over any image folder.

The file has COCO's layout (``images``, ``annotations`` with ``bbox`` and ``keypoints`` as
``[x, y, v] * K``, ``categories`` with ``keypoints`` names and optionally a ``skeleton``). The joint
set is taken from the category's keypoint names: the COCO-17 or MPII-16 names select those sets
(so transfer from COCO pretraining works); any other list becomes a new joint set whose flip
pairs pair names that differ only in left/right (``left_x``/``right_x``, ``l_x``/``r_x``,
``lx``/``rx``...). Annotations may carry ``head_box`` [x1, y1, x2, y2] for PCKh.

Tests: tests/data/test_readers.py, tests/data/test_units.py.
"""

from __future__ import annotations

import re

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.coco import load_json, person_category, read_coco_style
from tfdphpe.data.records import AnnotationError, ReadResult

_UPPER_WORDS = ("head", "neck", "nose", "eye", "ear", "shoulder", "elbow", "wrist", "hand",
                "thorax", "chin", "mouth", "sho", "elb", "wri")
_SIDE_PATTERNS = (("left", "right"), ("l_", "r_"), ("l", "r"))


def _mirror_name(name: str) -> list[str]:
    out = []
    low = name.lower()
    for a, b in _SIDE_PATTERNS:
        for x, y in ((a, b), (b, a)):
            if len(a) > 1:
                if re.search(x, low):
                    out.append(re.sub(x, y, low, count=1))
            elif low.startswith(x):
                out.append(y + low[1:])
    return out


def joint_set_from_names(names, skeleton=(), name: str = "custom") -> joints_lib.JointSet:
    """A `JointSet` for keypoint names; known names give the MPII/COCO sets themselves."""
    names = tuple(str(n) for n in names)
    for known in (joints_lib.COCO, joints_lib.MPII):
        if names == known.names:
            return known
    lowered = [n.lower() for n in names]
    pairs = []
    for i, n in enumerate(names):
        for m in _mirror_name(n):
            if m in lowered:
                j = lowered.index(m)
                if i < j and (i, j) not in pairs:
                    pairs.append((i, j))
                break
    used = [j for p in pairs for j in p]
    if len(used) != len(set(used)):
        raise ValueError(f"ambiguous left/right names in {names}")
    skel = []
    for e in skeleton or ():
        a, b = int(e[0]) - 1, int(e[1]) - 1  # COCO skeletons are 1-based
        if not (0 <= a < len(names) and 0 <= b < len(names)):
            raise ValueError(f"skeleton edge {e} out of range for {len(names)} keypoints")
        skel.append((a, b))
    upper = tuple(i for i, n in enumerate(lowered) if any(w in n for w in _UPPER_WORDS))
    return joints_lib.JointSet(name=name, names=names, flip_pairs=tuple(pairs),
                               skeleton=tuple(skel), upper_body=upper)


def read_custom(annotation_file: str, image_dir: str, *, boxes: str = "gt",
                detection_file: str | None = None, score_threshold: float = 0.0,
                check_images: str = "header",
                joint_set: joints_lib.JointSet | str | None = None) -> ReadResult:
    """Reads a COCO-style keypoint JSON for any image folder.

    Args:
      joint_set: None to derive it from the category's keypoint names, or a `JointSet` / name
        ("coco", "mpii") to insist on one (the keypoint count must match).
      Other arguments as in `tfdphpe.data.read_coco`.
    """
    data = load_json(annotation_file)
    category = person_category(data, annotation_file)
    if joint_set is None:
        try:
            js = joint_set_from_names(category["keypoints"], category.get("skeleton", ()),
                                      name=str(category.get("name", "custom")))
        except ValueError as e:
            raise AnnotationError(f"{annotation_file}: category {category.get('name')!r}: {e}")
    elif isinstance(joint_set, str):
        js = joints_lib.get_joint_set(joint_set)
    else:
        js = joint_set
    return read_coco_style(annotation_file, image_dir, joint_set=js, boxes=boxes,
                           detection_file=detection_file, score_threshold=score_threshold,
                           check_images=check_images, head_box_field="head_box", source="custom")
