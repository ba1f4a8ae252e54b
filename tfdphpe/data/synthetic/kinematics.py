"""Who the people are and how they stand: identities, poses, the 3-D skeleton and its placement.

A 3-D kinematic skeleton of the 16 MPII joints with per-identity proportions; joint angles drawn
within anatomical limits from pose families; orthographic projection with in-plane rotation,
scale and position (``placement``).
"""

from __future__ import annotations

import math

import numpy as np

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.synthetic.config import SyntheticConfig

J = {n: i for i, n in enumerate(joints_lib.MPII.names)}
POSE_FAMILIES = ("standing", "walking", "sitting", "crouching", "arms_raised", "bending")
SKIN = ((255, 224, 189), (234, 192, 134), (198, 134, 66), (141, 85, 36), (92, 51, 23),
        (255, 205, 148), (224, 172, 105), (170, 110, 70))
HAIR = ((20, 20, 20), (70, 45, 25), (140, 90, 40), (220, 190, 120), (160, 160, 160),
        (120, 30, 20), (240, 240, 230))


# --------------------------------------------------------------------------- rotations
def _rx(deg):
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg):
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
def sample_pose(rng: np.random.Generator, family: str | None = None) -> dict:
    """Joint angles (degrees) of one pose family (drawn at random unless given); arm angles are
    relative to the torso."""
    u = rng.uniform
    if family is None:
        family = POSE_FAMILIES[rng.choice(len(POSE_FAMILIES),
                                          p=(0.22, 0.22, 0.16, 0.1, 0.16, 0.14))]
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
    r_torso = _rz(pose["side"]) @ _rx(pose["bend"]) @ rot_y(pose["twist"])
    p[J["thorax"]] = r_torso @ np.array([0.0, -ident["torso"], 0.0])
    r_neck = r_torso @ _rx(pose["neck_bend"]) @ _rz(pose["head_roll"])
    p[J["upper_neck"]] = p[J["thorax"]] + r_neck @ np.array([0.0, -ident["neck"], 0.0])
    p[J["head_top"]] = p[J["upper_neck"]] + r_neck @ np.array([0.0, -ident["head"], 0.0])
    head_forward = r_neck @ rot_y(pose["head_yaw"]) @ np.array([0.0, 0.0, 1.0])
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


def placement(rng, j3, cfg: SyntheticConfig, height_frac, truncate):
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


def interpolate_pose(a: dict, b: dict, t: float) -> dict:
    """The pose a fraction ``t`` of the way from key pose ``a`` to ``b``, eased (zero speed at the
    keys, so motion has no kinks); the family is the nearer key's."""
    w = 0.5 - 0.5 * math.cos(math.pi * t)
    out = {k: (1 - w) * v + w * b[k] for k, v in a.items() if k != "family"}
    out["family"] = a["family"] if t < 0.5 else b["family"]
    return out
