"""Joint sets: names, flip pairs, skeleton edges and the COCO -> MPII map.

The single source of truth for joint order, used by data, evaluation, export and drawing.

Tests: tests/data/test_transforms.py (flip pairs), tests/evaluation/test_pckh.py.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class JointSet:
    """A named, ordered set of body joints.

    Attributes:
      name: short identifier ("mpii", "coco").
      names: joint names in index order.
      flip_pairs: (left, right) index pairs swapped by a horizontal flip.
      skeleton: index pairs joined by a line when drawing.
      upper_body: indices used by half-body augmentation as the upper half.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint_name: str) -> int:
        try:
            return self.names.index(joint_name)
        except ValueError:
            raise KeyError(f"joint {joint_name!r} is not in the {self.name} joint set "
                           f"({', '.join(self.names)})") from None

    def flip_permutation(self) -> list[int]:
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


MPII = JointSet(
    name="mpii",
    names=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
           "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
           "l_elbow", "l_wrist"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
              (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15)),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
)

COCO = JointSet(
    name="coco",
    names=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
           "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
              (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
              (3, 5), (4, 6)),
    upper_body=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
)

#: MPII index -> COCO index for the joints both sets share (DESIGN 2.6). MPII pelvis, thorax,
#: upper neck and head top have no COCO counterpart.
MPII_TO_COCO: dict[int, int] = {0: 16, 1: 14, 2: 12, 3: 11, 4: 13, 5: 15, 10: 10, 11: 8,
                                12: 6, 13: 5, 14: 7, 15: 9}

JOINT_SETS: dict[str, JointSet] = {"mpii": MPII, "coco": COCO}


def get_joint_set(name: str) -> JointSet:
    try:
        return JOINT_SETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown joint set {name!r}; expected one of {sorted(JOINT_SETS)}")

#: Per-keypoint OKS constants of COCO (pycocotools ``COCOeval.kpt_oks_sigmas``), in COCO order.
COCO_SIGMAS: tuple[float, ...] = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                                  0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)

#: MPII joint names as written in ``gt_valid.mat`` (``dataset_joints``), in MPII order.
MPII_MAT_NAMES: tuple[str, ...] = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                                   "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
