"""Painting: shaded capsule figures with identity-specific faces, cluttered backgrounds,
occluders and sensor noise. Every function draws on PIL images (an RGB image and, where given,
a label map of part ids used for visibility).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfdphpe.data.synthetic.kinematics import J

# Part ids in the label map (main figure 1..19; other figure +32; occluders 100+).
PARTS = ("torso", "neck", "head", "r_upper_arm", "r_forearm", "r_hand", "l_upper_arm",
         "l_forearm", "l_hand", "r_thigh", "r_shin", "r_foot", "l_thigh", "l_shin", "l_foot")
P = {n: i + 1 for i, n in enumerate(PARTS)}


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


def background(rng, height, width) -> Image.Image:
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


def occluder(draws, rng, near, size, occluder_id):
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


_NOISE: dict = {}


def noise_patch(rng, height, width) -> np.ndarray:
    """Sensor noise: a random window of a fixed bank of Gaussian noise (std 7), far cheaper
    than drawing every pixel anew; the window offset comes from ``rng``."""
    key = (height, width)
    if key not in _NOISE:
        _NOISE[key] = 7.0 * np.random.default_rng(12345).standard_normal(
            (height + 64, width + 64, 3), dtype=np.float32)
    oy, ox = rng.integers(0, 65, 2)
    return _NOISE[key][oy:oy + height, ox:ox + width]


def camera_effects(img: Image.Image, gain: float, bias: float, blur: float, noise: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Lighting (a lookup table), camera blur (radius, 0 = none) and sensor noise (amplitude;
    the noise window comes from ``rng``); returns uint8 pixels."""
    img = img.point([min(255, max(0, int(v * gain + bias))) for v in range(256)] * 3)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, np.float32) + noise * noise_patch(rng, img.height, img.width)
    return np.clip(arr, 0, 255).astype(np.uint8)
