"""Annotations of a rendered figure: MPII joints and visibility, COCO keypoints (face points on
the head sphere), person box, head box and silhouette box."""

from __future__ import annotations

import numpy as np

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.synthetic.drawing import P
from tfdphpe.data.synthetic.kinematics import J

# Parts a joint may be seen on: the joint counts as visible if those parts cover it.
JOINT_PARTS = {
    "r_ankle": ("r_shin", "r_foot"), "r_knee": ("r_thigh", "r_shin"),
    "r_hip": ("r_thigh", "torso"), "l_hip": ("l_thigh", "torso"),
    "l_knee": ("l_thigh", "l_shin"), "l_ankle": ("l_shin", "l_foot"),
    "pelvis": ("torso", "r_thigh", "l_thigh"), "thorax": ("torso", "neck"),
    "upper_neck": ("neck", "head"), "head_top": ("head",),
    "r_wrist": ("r_forearm", "r_hand"), "r_elbow": ("r_upper_arm", "r_forearm"),
    "r_shoulder": ("r_upper_arm", "torso"), "l_shoulder": ("l_upper_arm", "torso"),
    "l_elbow": ("l_upper_arm", "l_forearm"), "l_wrist": ("l_forearm", "l_hand"),
}


def _covered(label, pt, parts) -> bool:
    """True when at least 30 % of the 5 x 5 window at ``pt`` shows one of ``parts``."""
    H, W = label.shape
    x, y = int(round(pt[0])), int(round(pt[1]))
    win = label[max(0, y - 2):min(H, y + 3), max(0, x - 2):min(W, x + 3)]
    lut = np.zeros(256, bool)
    lut[list(parts)] = True
    return win.size > 0 and lut[win].mean() >= 0.3


def annotate(label, j2, j3, head, ident, pose, back, cfg, part_offset: int = 0) -> dict:
    """The figure's annotation; ``part_offset`` names its parts in ``label`` (see `draw_figure`)."""
    H, W = cfg.image_size
    inside = ((j2[:, 0] >= 0) & (j2[:, 0] <= W - 1) & (j2[:, 1] >= 0) & (j2[:, 1] <= H - 1))
    seen = np.zeros(16, bool)
    for name, parts in JOINT_PARTS.items():
        j = J[name]
        if inside[j]:
            pt = j2[j]
            if name == "head_top":  # on the outline: test just inside the head
                pt = 0.85 * j2[j] + 0.15 * j2[J["upper_neck"]]
            seen[j] = _covered(label, pt, [P[p] + part_offset for p in parts])
    # COCO face points on the head sphere: nose, left/right eye, left/right ear.
    face_pts, normals_z = [], []
    for x, y in ((0.0, -0.12), (0.35, 0.12), (-0.35, 0.12), (0.98, 0.0), (-0.98, 0.0)):
        pt, nz = head.point(x, y)
        face_pts.append(pt)
        normals_z.append(nz)
    coco = np.zeros((17, 2))
    coco_v = np.zeros(17, int)
    for mpii_i, coco_i in joints_lib.MPII_TO_COCO.items():
        coco[coco_i] = j2[mpii_i]
        coco_v[coco_i] = 0 if not inside[mpii_i] else (2 if seen[mpii_i] else 1)
    for k, (pt, nz) in enumerate(zip(face_pts, normals_z)):
        thresh = 0.1 if k < 3 else -0.3
        in_img = 0 <= pt[0] <= W - 1 and 0 <= pt[1] <= H - 1
        coco[k] = pt
        if not in_img or nz < thresh:
            coco_v[k] = 0
        else:
            coco_v[k] = 2 if _covered(label, pt, [P["head"] + part_offset]) else 1
    coco[coco_v == 0] = 0.0
    # MPII person box: objpos near the body centre, scale = height / 200.
    lo, hi = j2.min(0), j2.max(0)
    extent = max(hi[1] - lo[1], hi[0] - lo[0]) * 1.12
    mpii_scale = extent / 200.0
    objpos = 0.5 * (lo + hi) - np.array([0.0, 15.0 * mpii_scale])
    head_box = np.concatenate([head.center2 - head.radius2, head.center2 + head.radius2])
    fig = np.isin(label, [v + part_offset for v in P.values()])
    ys, xs = np.nonzero(fig)
    if len(xs):
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1)]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    return {"joints": j2, "inside": inside, "seen": seen, "coco": coco, "coco_v": coco_v,
            "objpos": objpos, "scale": mpii_scale, "head_box": head_box, "bbox": bbox,
            "area": float(fig.sum()), "identity": ident["identity"], "pose": pose["family"],
            "back_view": bool(back)}
