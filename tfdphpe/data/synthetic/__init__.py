"""A synthetic pose data set: articulated, people-like figures in cluttered scenes.

The embedded default data set (no download): `write_synthetic_dataset` renders figures and
writes them in BOTH real formats, MPII (HRNet JSON + ``gt_valid.mat`` head boxes + the official
``.mat`` layout) and COCO (17 keypoints, face points following the head), so they flow through
the same readers as real data.

How a figure is made:

* A 3-D kinematic skeleton of the 16 MPII joints with per-identity proportions; joint angles
  drawn within anatomical limits from pose families (standing, walking, sitting, crouching, arms
  raised, bending); body yaw (10 % seen from behind), head yaw and nod; orthographic projection,
  global in-plane rotation, scale and position; some figures are cut by the image border.
* Limbs are shaded capsules (three tones toward a random light), clothes and skin coloured per
  identity, painted back to front by depth.
* The head carries a face-like pattern that differs per identity (skin tone, hair style and
  colour, eye size and colour, brows, nose, mouth, beard, glasses, a mole): the "sensitive"
  detail a Gaussian blur removes.
* Backgrounds: multi-octave colour noise, a floor, random shapes, stripes and limb-like clutter;
  occluders in front of the figure; in some images a second, unannotated figure (behind or in
  front); camera blur, noise and JPEG artefacts.
* Visibility: MPII ``joints_vis`` = inside the image (annotated, as in MPII, where occluded
  joints are annotated too) and ``is_visible`` = actually seen (not occluded, in frame). COCO
  ``v`` = 0 out of frame (or a face point turned away), 1 occluded, 2 visible.

Deterministic for a seed: image ``i`` of split ``s`` depends only on ``(seed, s, i)``.

Modules, one job each: ``config`` (`SyntheticConfig`), ``kinematics`` (identities, poses, the 3-D
skeleton and its placement in the image), ``drawing`` (figures, faces, backgrounds, occluders,
noise), ``annotation`` (joints, visibility, boxes), ``scene`` (one still image), ``video`` (the
video-like mode: people tracked over frames) and ``writers`` (the image and annotation files).
"""

from tfdphpe.data.synthetic.annotation import JOINT_PARTS
from tfdphpe.data.synthetic.config import (SPLIT_NAMES, SyntheticConfig, check_disjoint,
                                           identity_range)
from tfdphpe.data.synthetic.drawing import PARTS, HeadFrame, P, draw_figure
from tfdphpe.data.synthetic.kinematics import (DOWN, HAIR, POSE_FAMILIES, SKIN, J,
                                               identity_params, sample_pose, skeleton_3d)
from tfdphpe.data.synthetic.scene import render_example
from tfdphpe.data.synthetic.video import render_frame
from tfdphpe.data.synthetic.writers import write_synthetic_dataset

__all__ = ["DOWN", "HAIR", "J", "JOINT_PARTS", "P", "PARTS", "POSE_FAMILIES", "SKIN",
           "SPLIT_NAMES", "HeadFrame", "SyntheticConfig", "check_disjoint", "draw_figure",
           "identity_params", "identity_range", "render_example", "render_frame",
           "sample_pose", "skeleton_3d", "write_synthetic_dataset"]
