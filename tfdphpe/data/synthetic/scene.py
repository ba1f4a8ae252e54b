"""One still image: background, the annotated figure, maybe a second figure and occluders, camera
effects; returns the pixels and the annotation of the main figure."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from tfdphpe.data.synthetic.annotation import annotate
from tfdphpe.data.synthetic.config import SyntheticConfig
from tfdphpe.data.synthetic.drawing import background, camera_effects, draw_figure, occluder
from tfdphpe.data.synthetic.kinematics import (identity_params, placement, rot_y, sample_pose,
                                               skeleton_3d)


def render_example(seed: int, split: int, index: int,
                   cfg: SyntheticConfig = SyntheticConfig()) -> tuple[np.ndarray, dict]:
    """Renders one image; returns (uint8 [H, W, 3], annotation dict of the main figure)."""
    rng = np.random.default_rng([seed, split, index])
    H, W = cfg.image_size
    img = background(rng, H, W)
    label = Image.new("L", (W, H), 0)
    draws = (ImageDraw.Draw(img), ImageDraw.Draw(label))
    light = rng.normal(0, 1, 2)
    light /= np.linalg.norm(light) + 1e-9
    identity = cfg.first_identity + int(rng.integers(cfg.num_identities))
    ident = identity_params(seed, identity)
    pose = sample_pose(rng)
    back = rng.random() < cfg.back_view_prob
    yaw = rng.uniform(-70, 70) + (180.0 if back else 0.0)
    j3, head_fwd = skeleton_3d(ident, pose)
    ry = rot_y(yaw)
    j3 = j3 @ ry.T
    head_fwd = ry @ head_fwd
    scale, rot2, shift = placement(rng, j3, cfg, rng.uniform(0.45, 0.92),
                                    rng.random() < cfg.truncation_prob)

    other = None
    if rng.random() < cfg.second_figure_prob:
        o_identity = cfg.first_identity + int(rng.integers(cfg.num_identities))
        o_ident = identity_params(seed, o_identity)
        o_pose = sample_pose(rng)
        o_j3, o_fwd = skeleton_3d(o_ident, o_pose)
        o_ry = rot_y(rng.uniform(-80, 80))
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
            occluder(draws, rng, near, scale * rng.uniform(0.12, 0.35), 100 + k)

    gain, bias = rng.uniform(0.7, 1.25), rng.uniform(-25, 25)
    blur = rng.uniform(0.4, 1.2) if rng.random() < 0.3 else 0.0
    image = camera_effects(img, gain, bias, blur, rng.uniform(0.2, 1.0), rng)
    ann = annotate(np.asarray(label), j2, j3, head, ident, pose, back, cfg)
    ann["jpeg_quality"] = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return image, ann
