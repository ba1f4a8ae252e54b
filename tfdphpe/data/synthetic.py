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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfdphpe.data import joints as joints_lib

J = {n: i for i, n in enumerate(joints_lib.MPII.names)}

# Part ids in the label map (main figure 1..19; other figure +32; occluders 100+).
PARTS = ("torso", "neck", "head", "r_upper_arm", "r_forearm", "r_hand", "l_upper_arm",
         "l_forearm", "l_hand", "r_thigh", "r_shin", "r_foot", "l_thigh", "l_shin", "l_foot")
P = {n: i + 1 for i, n in enumerate(PARTS)}
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
SPLIT_NAMES = ("train", "val")
POSE_FAMILIES = ("standing", "walking", "sitting", "crouching", "arms_raised", "bending")
SKIN = ((255, 224, 189), (234, 192, 134), (198, 134, 66), (141, 85, 36), (92, 51, 23),
        (255, 205, 148), (224, 172, 105), (170, 110, 70))
HAIR = ((20, 20, 20), (70, 45, 25), (140, 90, 40), (220, 190, 120), (160, 160, 160),
        (120, 30, 20), (240, 240, 230))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Rendering options.

    Attributes:
      image_size: (height, width) of every image; 256 x 320 keeps a 256 x 192 crop of a tall
        figure close to native resolution.
      num_identities: distinct people (face, body, clothes); images draw them at random.
      second_figure_prob, occluder_prob, truncation_prob, back_view_prob, tilt_prob: how often
        each difficulty appears.
      jpeg_quality: (low, high) JPEG quality range.
    """

    image_size: tuple[int, int] = (256, 320)
    num_identities: int = 200
    second_figure_prob: float = 0.35
    occluder_prob: float = 0.45
    truncation_prob: float = 0.2
    back_view_prob: float = 0.1
    tilt_prob: float = 0.12
    jpeg_quality: tuple[int, int] = (70, 95)


# --------------------------------------------------------------------------- rotations
def _rx(deg):
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg):
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(deg):
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _axis_rot(axis, deg):
    axis = axis / (np.linalg.norm(axis) + 1e-9)
    t = math.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


DOWN = np.array([0.0, 1.0, 0.0])


# --------------------------------------------------------------------------- identities
def identity_params(seed: int, identity: int) -> dict:
    """Body proportions, clothes and face of one person; a pure function of (seed, identity)."""
    rng = np.random.default_rng([seed, 7919, identity])
    u = rng.uniform
    skin = np.array(SKIN[rng.integers(len(SKIN))]) + rng.integers(-12, 13, 3)
    shirt = rng.integers(0, 256, 3)
    pants = rng.integers(0, 200, 3)
    return {
        "identity": identity,
        "head": u(0.115, 0.145), "neck": u(0.035, 0.055), "torso": u(0.27, 0.33),
        "shoulder": u(0.09, 0.125), "hip": u(0.06, 0.085),
        "upper_arm": u(0.15, 0.19), "forearm": u(0.13, 0.17),
        "thigh": u(0.22, 0.27), "shin": u(0.21, 0.26),
        "girth": u(0.8, 1.3),
        "skin": np.clip(skin, 0, 255), "shirt": shirt, "pants": pants,
        "shoes": rng.integers(0, 120, 3), "long_sleeves": rng.random() < 0.6,
        "shorts": rng.random() < 0.25,
        "hair": np.array(HAIR[rng.integers(len(HAIR))]), "hair_style": int(rng.integers(4)),
        "eye_size": u(0.09, 0.16), "eye_gap": u(0.28, 0.42), "eye_color":
            rng.integers(0, 140, 3), "brow": u(0.0, 0.06), "nose": int(rng.integers(3)),
        "mouth_width": u(0.2, 0.45), "mouth_color": np.array([u(120, 200), u(40, 90),
                                                              u(50, 100)]).astype(int),
        "beard": rng.random() < 0.2, "glasses": rng.random() < 0.25,
        "mole": (u(-0.4, 0.4), u(-0.4, 0.1)) if rng.random() < 0.3 else None,
    }


# --------------------------------------------------------------------------- poses
def sample_pose(rng: np.random.Generator) -> dict:
    """Joint angles (degrees) of one pose family; arm angles are relative to the torso."""
    u = rng.uniform
    family = POSE_FAMILIES[rng.choice(len(POSE_FAMILIES), p=(0.22, 0.22, 0.16, 0.1, 0.16, 0.14))]
    a = {"family": family, "bend": u(-5, 12), "side": u(-6, 6), "twist": u(-15, 15),
         "neck_bend": u(-15, 20), "head_yaw": u(-40, 40), "head_roll": u(-15, 15)}
    for side in ("r", "l"):
        a[f"{side}_hip_flex"] = u(-8, 12)
        a[f"{side}_hip_abd"] = u(0, 12)
        a[f"{side}_knee"] = u(0, 15)
        a[f"{side}_sh_flex"] = u(-15, 30)
        a[f"{side}_sh_abd"] = u(5, 35)
        a[f"{side}_elbow"] = u(0, 60)
        a[f"{side}_twist"] = u(-60, 60)
    if family == "walking":
        stride = u(15, 38)
        front, back = ("r", "l") if rng.random() < 0.5 else ("l", "r")
        a[f"{front}_hip_flex"], a[f"{back}_hip_flex"] = stride, -0.7 * stride
        a[f"{front}_knee"], a[f"{back}_knee"] = u(0, 20), u(15, 50)
        a[f"{front}_sh_flex"], a[f"{back}_sh_flex"] = -0.8 * stride, 0.8 * stride
        for s in "rl":
            a[f"{s}_sh_abd"], a[f"{s}_elbow"] = u(3, 15), u(10, 50)
    elif family == "sitting":
        for s in "rl":
            a[f"{s}_hip_flex"], a[f"{s}_knee"] = u(70, 105), u(65, 115)
            a[f"{s}_hip_abd"] = u(3, 30)
            a[f"{s}_sh_flex"], a[f"{s}_elbow"] = u(5, 60), u(20, 110)
        a["bend"] = u(-10, 25)
    elif family == "crouching":
        for s in "rl":
            a[f"{s}_hip_flex"], a[f"{s}_knee"] = u(85, 125), u(100, 145)
            a[f"{s}_hip_abd"] = u(10, 35)
            a[f"{s}_sh_flex"], a[f"{s}_elbow"] = u(20, 90), u(10, 100)
        a["bend"] = u(15, 50)
    elif family == "arms_raised":
        sides = ("r", "l") if rng.random() < 0.6 else (("r",) if rng.random() < 0.5 else ("l",))
        for s in sides:
            if rng.random() < 0.5:
                a[f"{s}_sh_abd"], a[f"{s}_sh_flex"] = u(70, 175), u(-10, 40)
            else:
                a[f"{s}_sh_flex"], a[f"{s}_sh_abd"] = u(90, 180), u(0, 40)
            a[f"{s}_elbow"] = u(0, 90)
    elif family == "bending":
        a["bend"] = u(35, 95)
        for s in "rl":
            a[f"{s}_knee"] = u(0, 35)
            a[f"{s}_hip_flex"] = u(-5, 15)
            a[f"{s}_sh_flex"] = -a["bend"] + u(-25, 60)
            a[f"{s}_sh_abd"], a[f"{s}_elbow"] = u(0, 25), u(0, 60)
    lim = {"hip_flex": (-30, 125), "hip_abd": (-10, 45), "knee": (0, 150), "sh_flex": (-100, 180),
           "sh_abd": (-10, 180), "elbow": (0, 150)}
    for s in "rl":
        for k, (lo, hi) in lim.items():
            a[f"{s}_{k}"] = float(np.clip(a[f"{s}_{k}"], lo, hi))
    return a


def skeleton_3d(ident: dict, pose: dict) -> tuple[np.ndarray, np.ndarray]:
    """16 MPII joints in body units (height ~1), pelvis at the origin, facing +z (camera),
    y down; returns (joints [16, 3], head forward unit vector)."""
    p = np.zeros((16, 3))
    r_torso = _rz(pose["side"]) @ _rx(pose["bend"]) @ _ry(pose["twist"])
    p[J["thorax"]] = r_torso @ np.array([0.0, -ident["torso"], 0.0])
    r_neck = r_torso @ _rx(pose["neck_bend"]) @ _rz(pose["head_roll"])
    p[J["upper_neck"]] = p[J["thorax"]] + r_neck @ np.array([0.0, -ident["neck"], 0.0])
    p[J["head_top"]] = p[J["upper_neck"]] + r_neck @ np.array([0.0, -ident["head"], 0.0])
    head_forward = r_neck @ _ry(pose["head_yaw"]) @ np.array([0.0, 0.0, 1.0])
    # Person's right is on the image left when facing the camera.
    for side, sign in (("r", -1.0), ("l", 1.0)):
        hip = np.array([sign * ident["hip"], 0.0, 0.0])
        p[J[f"{side}_hip"]] = hip
        thigh = _rz(-sign * pose[f"{side}_hip_abd"]) @ _rx(pose[f"{side}_hip_flex"]) @ DOWN
        shin = (_rz(-sign * pose[f"{side}_hip_abd"])
                @ _rx(pose[f"{side}_hip_flex"] - pose[f"{side}_knee"]) @ DOWN)
        p[J[f"{side}_knee"]] = hip + ident["thigh"] * thigh
        p[J[f"{side}_ankle"]] = p[J[f"{side}_knee"]] + ident["shin"] * shin
        sh = p[J["thorax"]] + r_torso @ np.array([sign * ident["shoulder"], 0.02, 0.0])
        p[J[f"{side}_shoulder"]] = sh
        r_arm = _rz(-sign * pose[f"{side}_sh_abd"])
        upper = r_torso @ r_arm @ _rx(pose[f"{side}_sh_flex"]) @ DOWN
        fore = r_torso @ r_arm @ _rx(pose[f"{side}_sh_flex"] + pose[f"{side}_elbow"]) @ DOWN
        fore = _axis_rot(upper, sign * pose[f"{side}_twist"]) @ fore
        p[J[f"{side}_elbow"]] = sh + ident["upper_arm"] * upper
        p[J[f"{side}_wrist"]] = p[J[f"{side}_elbow"]] + ident["forearm"] * fore
    return p, head_forward


# --------------------------------------------------------------------------- drawing
def _shade(color, f):
    return tuple(min(255, max(0, int(v * f))) for v in color)


def _capsule(draws, a, b, ra, rb, color, part, light):
    """A shaded capsule from a to b (2-D), radii ra, rb; draws on (rgb, label)."""
    rgb, lab = draws
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    dx, dy = bx - ax, by - ay
    norm = math.hypot(dx, dy) + 1e-6
    nx, ny = -dy / norm, dx / norm
    toward = 1.0 if nx * light[0] + ny * light[1] >= 0 else -1.0
    for k, (f, w, off) in enumerate(((0.62, 1.0, 0.0), (0.85, 0.72, 0.18), (1.12, 0.35, 0.42))):
        sh = toward * off * 0.5 * (ra + rb)
        pax, pay, pbx, pby = ax + nx * sh, ay + ny * sh, bx + nx * sh, by + ny * sh
        r1, r2 = ra * w, rb * w
        poly = [(pax + nx * r1, pay + ny * r1), (pbx + nx * r2, pby + ny * r2),
                (pbx - nx * r2, pby - ny * r2), (pax - nx * r1, pay - ny * r1)]
        shapes = (poly, [pax - r1, pay - r1, pax + r1, pay + r1],
                  [pbx - r2, pby - r2, pbx + r2, pby + r2])
        c = _shade(color, f)
        rgb.polygon(shapes[0], fill=c)
        rgb.ellipse(shapes[1], fill=c)
        rgb.ellipse(shapes[2], fill=c)
        if k == 0 and lab is not None:
            lab.polygon(shapes[0], fill=part)
            lab.ellipse(shapes[1], fill=part)
            lab.ellipse(shapes[2], fill=part)


def _ellipse_poly(c, ax1, ax2, n=20):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [tuple(c + math.cos(v) * ax1 + math.sin(v) * ax2) for v in t]


class HeadFrame:
    """The head as a sphere in 3-D (camera frame before the in-plane roll) and its projection.

    ``point(x, y)`` gives the image position of the surface point at (x toward the person's
    left, y up) in head radii, and the z (toward the camera) of its normal.
    """

    def __init__(self, neck3, top3, forward3, transform):
        self.c3 = 0.5 * (neck3 + top3)
        self.radius3 = 0.5 * float(np.linalg.norm(top3 - neck3)) + 1e-9
        self.up3 = (top3 - neck3) / (2 * self.radius3)
        f = forward3 - np.dot(forward3, self.up3) * self.up3
        self.f3 = f / (np.linalg.norm(f) + 1e-9)
        self.left3 = np.cross(self.f3, self.up3)
        self.scale, self.rot2, self.shift = transform
        self.center2 = self.project(self.c3)
        self.radius2 = self.radius3 * self.scale

    def project(self, p3):
        return (p3[:2] @ self.rot2.T) * self.scale + self.shift

    def point(self, x, y, width=0.82):
        z = math.sqrt(max(0.0, 1 - x * x - y * y))
        n = x * self.left3 + y * self.up3 + z * self.f3
        p3 = self.c3 + self.radius3 * (x * width * self.left3 + y * self.up3 + z * self.f3)
        return self.project(p3), float(n[2])

    @property
    def facing(self) -> bool:
        return bool(self.f3[2] > -0.2)


def _draw_head(draws, ident, head: HeadFrame, part, light):
    """Head ellipse, hair and an identity-specific face, drawn by the head's orientation."""
    rgb, lab = draws
    skin = ident["skin"]
    center, radius = head.center2, head.radius2
    up2 = head.project(head.c3 + head.up3) - center
    up2 = up2 / (np.linalg.norm(up2) + 1e-9)
    right2 = np.array([-up2[1], up2[0]])
    outline = _ellipse_poly(center, right2 * radius * 0.84, up2 * radius)
    rgb.polygon(outline, fill=_shade(skin, 0.75))
    inner = _ellipse_poly(center + 0.12 * radius * light, right2 * radius * 0.6, up2 * radius * 0.8)
    rgb.polygon(inner, fill=_shade(skin, 0.95))
    if lab is not None:
        lab.polygon(outline, fill=part)
    hair = tuple(int(v) for v in ident["hair"])
    style = ident["hair_style"]
    if not head.facing:  # seen from behind: hair (or the hat) covers the head
        rgb.polygon(_ellipse_poly(center, right2 * radius * 0.86, up2 * radius * 1.02),
                    fill=hair if style != 3 else tuple(int(v) for v in ident["shirt"]))
        return

    def face(x, y):
        return head.point(x, y)[0]

    def shown(x, y, thresh=0.1):
        return head.point(x, y)[1] > thresh

    if style != 2:  # 2 = bald
        t = np.linspace(-0.1, np.pi + 0.1, 14)
        top = [tuple(center + right2 * radius * 0.88 * math.cos(v) + up2 * radius * 1.04
                     * math.sin(v)) for v in t]
        low = 0.55 if style == 1 else 0.3
        brim = [tuple(face(x, low)) for x in np.linspace(-0.8, 0.8, 6)]
        if np.dot(brim[-1] - np.asarray(brim[0]), right2) > 0:
            brim = brim[::-1]
        rgb.polygon(top + brim, fill=hair if style != 3 else tuple(int(v) for v in ident["shirt"]))
        if style == 1:  # long hair down the sides
            for sx in (-1, 1):
                rgb.polygon([tuple(center + right2 * radius * 0.86 * sx),
                             tuple(center + right2 * radius * 0.92 * sx - up2 * radius * 0.9),
                             tuple(center + right2 * radius * 0.55 * sx - up2 * radius * 0.8)],
                            fill=hair)
    eye_r = max(0.8, ident["eye_size"] * radius)
    eye_col = tuple(int(v) for v in ident["eye_color"])
    gap = ident["eye_gap"]
    for sx in (-1, 1):
        if not shown(sx * gap, 0.12):
            continue
        e = face(sx * gap, 0.12)
        rgb.ellipse([e[0] - eye_r * 1.3, e[1] - eye_r, e[0] + eye_r * 1.3, e[1] + eye_r],
                    fill=(245, 245, 245))
        rgb.ellipse([e[0] - eye_r * 0.6, e[1] - eye_r * 0.6, e[0] + eye_r * 0.6,
                     e[1] + eye_r * 0.6], fill=eye_col)
        if ident["brow"] > 0.01:
            b1, b2 = face(sx * (gap - 0.15), 0.3), face(sx * (gap + 0.15), 0.28)
            rgb.line([tuple(b1), tuple(b2)], fill=hair,
                     width=max(1, int(ident["brow"] * radius * 2)))
        if ident["glasses"]:
            g = eye_r * 2.0
            rgb.ellipse([e[0] - g, e[1] - g, e[0] + g, e[1] + g], outline=(30, 30, 30))
    if not shown(0.0, -0.12):
        return
    if ident["glasses"]:
        rgb.line([tuple(face(-0.15, 0.12)), tuple(face(0.15, 0.12))], fill=(30, 30, 30))
    nose_tip = face(0.0, -0.12)
    if ident["nose"] == 0:
        rgb.line([tuple(face(0.0, 0.08)), tuple(nose_tip)], fill=_shade(skin, 0.55), width=1)
    else:
        w = 0.08 if ident["nose"] == 1 else 0.14
        rgb.polygon([tuple(face(0.0, 0.08)), tuple(face(-w, -0.14)), tuple(face(w, -0.14))],
                    fill=_shade(skin, 0.65))
    mw = ident["mouth_width"] / 2
    m1, m2, m3 = face(-mw, -0.4), face(0.0, -0.46), face(mw, -0.4)
    rgb.line([tuple(m1), tuple(m2), tuple(m3)], fill=tuple(int(v) for v in ident["mouth_color"]),
             width=max(1, int(radius * 0.08)))
    if ident["beard"]:
        rgb.polygon([tuple(face(x, y)) for x, y in ((-0.7, -0.3), (-0.4, -0.75), (0.0, -0.9),
                                                    (0.4, -0.75), (0.7, -0.3), (0.3, -0.55),
                                                    (-0.3, -0.55))], fill=hair)
    if ident["mole"] is not None and shown(*ident["mole"]):
        m = face(*ident["mole"])
        rgb.ellipse([m[0] - 1.2, m[1] - 1.2, m[0] + 1.2, m[1] + 1.2], fill=(60, 35, 25))


def _figure_parts(ident, j2, depth, unit):
    """Limb capsules (name, joint a, joint b, radius a, radius b, colour) and their depths."""
    g = ident["girth"] * unit
    sleeve = ident["shirt"] if ident["long_sleeves"] else ident["skin"]
    leg = ident["skin"] if ident["shorts"] else ident["pants"]
    parts = []
    for s in "rl":
        parts += [
            (f"{s}_upper_arm", j2[J[f"{s}_shoulder"]], j2[J[f"{s}_elbow"]], 0.035 * g, 0.03 * g,
             ident["shirt"], (depth[J[f"{s}_shoulder"]] + depth[J[f"{s}_elbow"]]) / 2),
            (f"{s}_forearm", j2[J[f"{s}_elbow"]], j2[J[f"{s}_wrist"]], 0.028 * g, 0.023 * g,
             sleeve, (depth[J[f"{s}_elbow"]] + depth[J[f"{s}_wrist"]]) / 2),
            (f"{s}_thigh", j2[J[f"{s}_hip"]], j2[J[f"{s}_knee"]], 0.05 * g, 0.038 * g,
             ident["pants"], (depth[J[f"{s}_hip"]] + depth[J[f"{s}_knee"]]) / 2),
            (f"{s}_shin", j2[J[f"{s}_knee"]], j2[J[f"{s}_ankle"]], 0.036 * g, 0.028 * g, leg,
             (depth[J[f"{s}_knee"]] + depth[J[f"{s}_ankle"]]) / 2),
        ]
    return parts


def draw_figure(draws, ident, j3, head_fwd, transform, light, part_offset=0):
    """Draws one figure; j3 [16, 3] body units; ``transform`` maps (x, y) units to pixels.

    Returns 2-D joints [16, 2] and the `HeadFrame`."""
    scale, rot2, shift = transform
    j2 = (j3[:, :2] @ rot2.T) * scale + shift
    depth = j3[:, 2]
    unit = scale
    items = []
    for name, a, b, ra, rb, col, z in _figure_parts(ident, j2, depth, unit):
        items.append((z, "capsule", (name, a, b, ra, rb, col)))
        if name.endswith("forearm"):
            s = name[0]
            items.append((z + 1e-3, "hand", (f"{s}_hand", j2[J[f"{s}_wrist"]], 0.03 * unit)))
        if name.endswith("shin"):
            s = name[0]
            items.append((z + 1e-3, "foot", (f"{s}_foot", j2[J[f"{s}_ankle"]], 0.035 * unit)))
    torso_z = float(np.mean(depth[[J["pelvis"], J["thorax"], J["r_hip"], J["l_hip"]]]))
    items.append((torso_z, "torso", None))
    neck_z = float(depth[J["upper_neck"]])
    items.append((neck_z + 0.01, "neck", None))
    items.append((neck_z + 0.02, "head", None))
    head = HeadFrame(j3[J["upper_neck"]], j3[J["head_top"]], head_fwd, transform)
    for z, kind, data in sorted(items, key=lambda t: t[0]):
        if kind == "capsule":
            name, a, b, ra, rb, col = data
            _capsule(draws, a, b, ra, rb, col, P[name] + part_offset, light)
        elif kind in ("hand", "foot"):
            name, c, r = data
            col = ident["skin"] if kind == "hand" else ident["shoes"]
            _capsule(draws, c, c + (c - j2[J["thorax"]]) * 0.02, r, r * 0.8, col,
                     P[name] + part_offset, light)
        elif kind == "torso":
            sh_r, sh_l = j2[J["r_shoulder"]], j2[J["l_shoulder"]]
            hp_r, hp_l = j2[J["r_hip"]], j2[J["l_hip"]]
            g = 0.03 * ident["girth"] * unit
            out_r = sh_r - sh_l
            out_r = out_r / (np.linalg.norm(out_r) + 1e-6)
            poly = [tuple(sh_r + out_r * g), tuple(sh_l - out_r * g), tuple(hp_l - out_r * g),
                    tuple(hp_r + out_r * g)]
            draws[0].polygon(poly, fill=_shade(ident["shirt"], 0.7))
            c = np.mean([sh_r, sh_l, hp_r, hp_l], axis=0) + light * g
            inner = [tuple(c + 0.7 * (np.array(q) - c)) for q in poly]
            draws[0].polygon(inner, fill=_shade(ident["shirt"], 0.95))
            belt = [tuple(hp_r + out_r * g), tuple(hp_l - out_r * g),
                    tuple(hp_l - out_r * g + (j2[J["thorax"]] - j2[J["pelvis"]]) * 0.12),
                    tuple(hp_r + out_r * g + (j2[J["thorax"]] - j2[J["pelvis"]]) * 0.12)]
            draws[0].polygon(belt, fill=_shade(ident["pants"], 0.8))
            if draws[1] is not None:
                draws[1].polygon(poly, fill=P["torso"] + part_offset)
        elif kind == "neck":
            _capsule(draws, j2[J["thorax"]], j2[J["upper_neck"]], 0.025 * unit, 0.022 * unit,
                     ident["skin"], P["neck"] + part_offset, light)
        else:
            _draw_head(draws, ident, head, P["head"] + part_offset, light)
    return j2, head


# --------------------------------------------------------------------------- scene
def _muted(rng) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, 3))
    m, k = (r + g + b) / 3.0, rng.uniform(0.3, 1.0)
    return tuple(min(255, max(0, int(m + k * (v - m)))) for v in (r, g, b))


def _background(rng, height, width) -> Image.Image:
    u = rng.uniform
    # Colour noise in three octaves, summed at quarter resolution and upsampled once.
    qh, qw = max(4, height // 4), max(4, width // 4)
    base = np.zeros((qh, qw, 3), np.float32)
    for cells, amp in ((3, 1.0), (9, 0.45), (28, 0.2)):
        small = rng.uniform(0, 255, (cells, max(2, cells * width // height), 3)).astype(np.uint8)
        base += amp * np.asarray(Image.fromarray(small).resize((qw, qh), Image.BILINEAR),
                                 np.float32)
    base /= 1.65
    gray = base.mean(-1, keepdims=True)
    base = gray + rng.uniform(0.25, 0.75) * (base - gray)  # natural scenes are not that vivid
    if rng.random() < 0.6:  # a floor
        horizon = int(qh * u(0.45, 0.8))
        floor = np.array(rng.integers(30, 220, 3), np.float32)
        base[horizon:] = 0.35 * base[horizon:] + 0.65 * floor
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((width, height),
                                                                         Image.BICUBIC)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 26))):
        col = _muted(rng)
        x, y = u(-20, width), u(-20, height)
        w, h = u(8, width * 0.45), u(8, height * 0.45)
        kind = rng.integers(6)
        if kind == 0:
            d.rectangle([x, y, x + w, y + h], fill=col)
        elif kind == 1:
            d.ellipse([x, y, x + w, y + h], fill=col)
        elif kind == 2:
            pts = [(x + u(0, w), y + u(0, h)) for _ in range(int(rng.integers(3, 7)))]
            d.polygon(pts, fill=col)
        elif kind == 3:  # stripes
            step = u(3, 9)
            col2 = tuple(int(v) for v in rng.integers(0, 256, 3))
            d.rectangle([x, y, x + w, y + h], fill=col2)
            vertical = rng.random() < 0.5
            for k in range(int((w if vertical else h) / step)):
                if vertical:
                    d.line([(x + k * step, y), (x + k * step, y + h)], fill=col, width=2)
                else:
                    d.line([(x, y + k * step), (x + w, y + k * step)], fill=col, width=2)
        elif kind == 4:  # limb-like clutter
            a = np.array([x, y])
            b = a + rng.normal(0, 30, 2)
            _capsule((d, None), a, b, u(3, 9), u(3, 9), col, 0, np.array([0.0, -1.0]))
        else:
            d.line([(x, y), (x + u(-w, w), y + u(-h, h))], fill=col, width=int(rng.integers(1, 6)))
    return img


def _occluder(draws, rng, near, size, occluder_id):
    u = rng.uniform
    col = tuple(int(v) for v in rng.integers(0, 256, 3))
    c = np.asarray(near) + rng.normal(0, size * 0.3, 2)
    w, h = size * u(0.5, 1.3), size * u(0.5, 1.3)
    box = [c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2]
    kind = rng.integers(3)
    for k, dr in enumerate(draws):
        if dr is None:
            continue
        fill = col if k == 0 else occluder_id
        if kind == 0:
            dr.rectangle(box, fill=fill)
        elif kind == 1:
            dr.ellipse(box, fill=fill)
        else:
            pts = [(c[0] + u(-w, w) / 2, c[1] + u(-h, h) / 2) for _ in range(5)]
            dr.polygon(pts, fill=fill)
    if kind == 0 and rng.random() < 0.5:  # stripes on boxes
        col2 = tuple(int(v) for v in rng.integers(0, 256, 3))
        for yy in np.arange(box[1], box[3], 4.0):
            draws[0].line([(box[0], yy), (box[2], yy)], fill=col2)


def _placement(rng, j3, cfg: SyntheticConfig, height_frac, truncate):
    """(scale, rot2, shift) putting the figure in the image; maybe across a border."""
    H, W = cfg.image_size
    roll = rng.normal(0, 8)
    if rng.random() < cfg.tilt_prob:
        roll = rng.uniform(-100, 100)
    t = math.radians(roll)
    rot2 = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    ext = j3[:, 1].max() - j3[:, 1].min() + 0.12  # + head
    scale = height_frac * H / max(ext, 0.35)
    pts = (j3[:, :2] @ rot2.T) * scale
    lo, hi = pts.min(0) - 0.08 * scale, pts.max(0) + 0.08 * scale
    span = hi - lo
    shift = np.zeros(2)
    for ax, size in ((0, W), (1, H)):
        if span[ax] < size:
            shift[ax] = rng.uniform(-lo[ax], size - hi[ax])
        else:
            shift[ax] = rng.uniform(size - hi[ax], -lo[ax])
    if truncate:
        ax = rng.integers(2)
        size = (W, H)[ax]
        cut = rng.uniform(0.15, 0.45) * span[ax]
        shift[ax] = (-lo[ax] - cut) if rng.random() < 0.5 else (size - hi[ax] + cut)
    return scale, rot2, shift


def render_example(seed: int, split: int, index: int,
                   cfg: SyntheticConfig = SyntheticConfig()) -> tuple[np.ndarray, dict]:
    """Renders one image; returns (uint8 [H, W, 3], annotation dict of the main figure)."""
    rng = np.random.default_rng([seed, split, index])
    H, W = cfg.image_size
    img = _background(rng, H, W)
    label = Image.new("L", (W, H), 0)
    draws = (ImageDraw.Draw(img), ImageDraw.Draw(label))
    light = rng.normal(0, 1, 2)
    light /= np.linalg.norm(light) + 1e-9
    identity = int(rng.integers(cfg.num_identities))
    ident = identity_params(seed, identity)
    pose = sample_pose(rng)
    back = rng.random() < cfg.back_view_prob
    yaw = rng.uniform(-70, 70) + (180.0 if back else 0.0)
    j3, head_fwd = skeleton_3d(ident, pose)
    ry = _ry(yaw)
    j3 = j3 @ ry.T
    head_fwd = ry @ head_fwd
    scale, rot2, shift = _placement(rng, j3, cfg, rng.uniform(0.45, 0.92),
                                    rng.random() < cfg.truncation_prob)

    other = None
    if rng.random() < cfg.second_figure_prob:
        o_ident = identity_params(seed, int(rng.integers(cfg.num_identities)))
        o_pose = sample_pose(rng)
        o_j3, o_fwd = skeleton_3d(o_ident, o_pose)
        o_ry = _ry(rng.uniform(-80, 80))
        o_j3, o_fwd = o_j3 @ o_ry.T, o_ry @ o_fwd
        o_scale = scale * rng.uniform(0.6, 1.2)
        o_shift = shift + rng.normal(0, 1, 2) * np.array([0.35 * W, 0.1 * H])
        other = (o_ident, o_j3, o_fwd, (o_scale, rot2, o_shift), rng.random() < 0.4)
    if other is not None and not other[4]:  # behind the main figure
        draw_figure((draws[0], None), other[0], other[1], other[2], other[3], light)
    j2, head = draw_figure(draws, ident, j3, head_fwd, (scale, rot2, shift), light)
    if other is not None and other[4]:  # in front: occludes
        draw_figure(draws, other[0], other[1], other[2], other[3], light, part_offset=32)
    if rng.random() < cfg.occluder_prob:
        for k in range(int(rng.integers(1, 3))):
            near = j2[int(rng.integers(16))]
            _occluder(draws, rng, near, scale * rng.uniform(0.12, 0.35), 100 + k)

    # Post-processing: lighting (a lookup table), camera blur, sensor noise.
    gain, bias = rng.uniform(0.7, 1.25), rng.uniform(-25, 25)
    img = img.point([min(255, max(0, int(v * gain + bias))) for v in range(256)] * 3)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    arr = np.asarray(img, np.float32) + rng.uniform(0.2, 1.0) * _noise_patch(rng, H, W)
    image = np.clip(arr, 0, 255).astype(np.uint8)
    ann = _annotate(np.asarray(label), j2, j3, head, ident, pose, back, cfg)
    ann["jpeg_quality"] = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return image, ann


_NOISE: dict = {}


def _noise_patch(rng, height, width) -> np.ndarray:
    """Sensor noise: a random window of a fixed bank of Gaussian noise (std 7), far cheaper
    than drawing every pixel anew; the window offset comes from ``rng``."""
    key = (height, width)
    if key not in _NOISE:
        _NOISE[key] = 7.0 * np.random.default_rng(12345).standard_normal(
            (height + 64, width + 64, 3), dtype=np.float32)
    oy, ox = rng.integers(0, 65, 2)
    return _NOISE[key][oy:oy + height, ox:ox + width]


def _covered(label, pt, parts) -> bool:
    """True when at least 30 % of the 5 x 5 window at ``pt`` shows one of ``parts``."""
    H, W = label.shape
    x, y = int(round(pt[0])), int(round(pt[1]))
    win = label[max(0, y - 2):min(H, y + 3), max(0, x - 2):min(W, x + 3)]
    lut = np.zeros(256, bool)
    lut[list(parts)] = True
    return win.size > 0 and lut[win].mean() >= 0.3


def _annotate(label, j2, j3, head, ident, pose, back, cfg) -> dict:
    H, W = cfg.image_size
    inside = ((j2[:, 0] >= 0) & (j2[:, 0] <= W - 1) & (j2[:, 1] >= 0) & (j2[:, 1] <= H - 1))
    seen = np.zeros(16, bool)
    for name, parts in JOINT_PARTS.items():
        j = J[name]
        if inside[j]:
            pt = j2[j]
            if name == "head_top":  # on the outline: test just inside the head
                pt = 0.85 * j2[j] + 0.15 * j2[J["upper_neck"]]
            seen[j] = _covered(label, pt, [P[p] for p in parts])
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
            coco_v[k] = 2 if _covered(label, pt, [P["head"]]) else 1
    coco[coco_v == 0] = 0.0
    # MPII person box: objpos near the body centre, scale = height / 200.
    lo, hi = j2.min(0), j2.max(0)
    extent = max(hi[1] - lo[1], hi[0] - lo[0]) * 1.12
    mpii_scale = extent / 200.0
    objpos = 0.5 * (lo + hi) - np.array([0.0, 15.0 * mpii_scale])
    head_box = np.concatenate([head.center2 - head.radius2, head.center2 + head.radius2])
    fig = np.isin(label, list(P.values()))
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


# --------------------------------------------------------------------------- writing
def _render_to_file(args):
    seed, split, index, out_dir, cfg = args
    image, ann = render_example(seed, split, index, cfg)
    name = f"{SPLIT_NAMES[split]}_{index:06d}.jpg"
    Image.fromarray(image).save(os.path.join(out_dir, "images", name), quality=ann["jpeg_quality"])
    ann["file_name"] = name
    return ann


def _mpii_entries(anns) -> list[dict]:
    out = []
    for a in anns:
        joints = np.where(a["inside"][:, None], a["joints"] + 1.0, -1.0)  # 1-based, MPII style
        out.append({
            "image": a["file_name"], "center": [round(float(v), 2) for v in a["objpos"] + 1.0],
            "scale": round(float(a["scale"]), 6), "joints": np.round(joints, 2).tolist(),
            "joints_vis": a["inside"].astype(int).tolist(),
            "is_visible": (a["seen"] & a["inside"]).astype(int).tolist(),
            "head_box": np.round(a["head_box"] + 1.0, 2).tolist(),
            "identity": a["identity"], "pose": a["pose"]})
    return out


def _coco_json(anns, cfg: SyntheticConfig, image_id_base: int) -> dict:
    H, W = cfg.image_size
    images, annotations = [], []
    for k, a in enumerate(anns):
        img_id = image_id_base + k
        images.append({"id": img_id, "file_name": a["file_name"], "height": H, "width": W})
        kps = np.concatenate([a["coco"], a["coco_v"][:, None]], 1)
        x, y, w, h = a["bbox"]
        annotations.append({
            "id": img_id, "image_id": img_id, "category_id": 1, "iscrowd": 0,
            "bbox": [round(v, 2) for v in a["bbox"]], "area": a["area"],
            "num_keypoints": int((a["coco_v"] > 0).sum()),
            "keypoints": [round(float(v), 2) if i % 3 != 2 else int(v)
                          for i, v in enumerate(kps.reshape(-1))],
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            "identity": a["identity"], "pose": a["pose"],
            "head_box": np.round(a["head_box"], 2).tolist()})
    cat = {"id": 1, "name": "person", "supercategory": "person",
           "keypoints": list(joints_lib.COCO.names),
           "skeleton": [[a + 1, b + 1] for a, b in joints_lib.COCO.skeleton]}
    return {"info": {"description": "tfdphpe synthetic poses"}, "images": images,
            "annotations": annotations, "categories": [cat]}


def write_synthetic_dataset(out_dir: str, num_train: int, num_val: int, seed: int = 0,
                            cfg: SyntheticConfig = SyntheticConfig(),
                            num_workers: int = 2) -> dict[str, Any]:
    """Renders and writes the data set; returns a summary (counts, seconds).

    Layout::

      out_dir/images/{train,val}_NNNNNN.jpg
      out_dir/mpii/{train,valid}.json, gt_valid.mat, gt_train.mat,
                   mpii_human_pose_v1_u12_1.mat, valid_split.json
      out_dir/coco/person_keypoints_{train,val}.json
      out_dir/info.json
    """
    from tfdphpe.data import mpii as mpii_lib
    t0 = time.time()
    for sub in ("images", "mpii", "coco"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    jobs = {s: [(seed, s, i, out_dir, cfg) for i in range(n)]
            for s, n in ((0, num_train), (1, num_val))}
    anns: dict[int, list] = {}
    if num_workers > 1 and num_train + num_val > 16:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(num_workers) as pool:
            for s, job in jobs.items():
                anns[s] = pool.map(_render_to_file, job, chunksize=16)
    else:
        for s, job in jobs.items():
            anns[s] = [_render_to_file(j) for j in job]
    t_render = time.time() - t0
    for s, name in ((0, "train"), (1, "valid")):
        entries = _mpii_entries(anns[s])
        with open(os.path.join(out_dir, "mpii", f"{name}.json"), "w") as f:
            json.dump(entries, f)
        if entries:
            mpii_lib.write_gt_valid_mat(
                os.path.join(out_dir, "mpii", f"gt_{name}.mat"),
                np.array([e["joints"] for e in entries]),
                np.array([e["joints_vis"] for e in entries]),
                np.array([e["head_box"] for e in entries]))
        coco = _coco_json(anns[s], cfg, image_id_base=1 + s * 1_000_000)
        with open(os.path.join(out_dir, "coco", f"person_keypoints_{SPLIT_NAMES[s]}.json"),
                  "w") as f:
            json.dump(coco, f)
    # The official MPII layout too: train images first, one person each; the validation
    # persons are listed in a Tompson-style split file.
    release = []
    for s in (0, 1):
        for a, e in zip(anns[s], _mpii_entries(anns[s])):
            pts = [(j, x, y, v) for j, ((x, y), ok, v) in enumerate(
                zip(e["joints"], e["joints_vis"], e["is_visible"])) if ok]
            release.append({"name": a["file_name"], "train": True, "persons": [{
                "head_box": e["head_box"], "objpos": e["center"], "scale": e["scale"],
                "points": pts}]})
    mpii_lib.write_release_mat(os.path.join(out_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                               release)
    with open(os.path.join(out_dir, "mpii", "valid_split.json"), "w") as f:
        json.dump([[num_train + i + 1, 1] for i in range(num_val)], f)
    summary = {"seed": seed, "num_train": num_train, "num_val": num_val,
               "image_size": list(cfg.image_size), "num_identities": cfg.num_identities,
               "render_seconds": round(t_render, 2), "total_seconds": round(time.time() - t0, 2),
               "config": dataclasses.asdict(cfg)}
    with open(os.path.join(out_dir, "info.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
