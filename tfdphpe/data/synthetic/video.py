"""Video-like scenes: a fixed background and ``people_per_frame`` tracked people whose poses move
smoothly, for training and tests that need real groups (every frame of a person).

A video is planned once from its own random stream (``video_plan``: background, lighting,
occluders and, per track, the identity, key poses, view and a drifting placement) and each frame
is rendered from the plan (``render_frame``), so frame ``f`` of video ``v`` depends only on
(seed, split, v, f) and the config, whatever the worker that renders it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from tfdphpe.data.synthetic.annotation import annotate
from tfdphpe.data.synthetic.config import SyntheticConfig
from tfdphpe.data.synthetic.drawing import background, camera_effects, draw_figure, occluder
from tfdphpe.data.synthetic.kinematics import (identity_params, interpolate_pose, rot_y,
                                               sample_pose, skeleton_3d)

# Random streams of videos, (seed, split, VIDEO_STREAM, video, part): apart from the still
# images' (seed, split, index).
VIDEO_STREAM = 104729
PART_OFFSET = 32   # label-map ids of track t: the figure's part ids + 32 t


@dataclasses.dataclass(frozen=True)
class Track:
    """One person through a video: who, the key poses, the view and the path."""

    ident: dict
    key_poses: tuple
    back: bool
    yaw: tuple[float, float]          # body yaw at the first and the last frame
    scale: float                      # body units -> pixels (fixed: the person keeps a size)
    rot2: np.ndarray                  # in-plane rotation
    shift: tuple[np.ndarray, np.ndarray]   # pelvis position at the first and the last frame

    def at(self, frame: int, cfg: SyntheticConfig):
        """(pose, joints [16, 3] after yaw, head forward, transform) at ``frame``."""
        k, t = divmod(frame, cfg.key_pose_every)
        pose = interpolate_pose(self.key_poses[k], self.key_poses[min(k + 1, len(
            self.key_poses) - 1)], t / cfg.key_pose_every)
        u = frame / max(cfg.frames_per_video - 1, 1)
        ry = rot_y((1 - u) * self.yaw[0] + u * self.yaw[1])
        j3, head_fwd = skeleton_3d(self.ident, pose)
        shift = (1 - u) * self.shift[0] + u * self.shift[1]
        return pose, j3 @ ry.T, ry @ head_fwd, (self.scale, self.rot2, shift)


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    background: np.ndarray            # uint8 [H, W, 3], the same in every frame
    tracks: tuple[Track, ...]         # back to front
    light: np.ndarray
    occluders: tuple                  # (near point, size) of each, fixed in the scene
    occluder_seed: list               # replayed each frame: the occluders look the same
    camera: tuple[float, float, float, float]   # gain, bias, blur, noise amplitude
    jpeg_quality: int


def _track(rng, seed, identity, lane, cfg: SyntheticConfig) -> Track:
    """A person keeping to one activity (pose family), drifting slowly in its lane (a
    1/people_per_frame share of the width)."""
    H, W = cfg.image_size
    ident = identity_params(seed, identity)
    num_keys = -(-max(cfg.frames_per_video - 1, 1) // cfg.key_pose_every) + 1
    keys = [sample_pose(rng)]
    for _ in range(num_keys - 1):  # one activity, each key half way to a fresh pose of it
        keys.append(interpolate_pose(keys[-1], sample_pose(rng, keys[-1]["family"]), 0.5))
    back = bool(rng.random() < cfg.back_view_prob)
    yaw0 = rng.uniform(-70, 70) + (180.0 if back else 0.0)
    roll = rng.uniform(-100, 100) if rng.random() < cfg.tilt_prob else rng.normal(0, 8)
    t = math.radians(roll)
    rot2 = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    j3 = skeleton_3d(ident, keys[0])[0] @ rot_y(yaw0).T
    scale = rng.uniform(0.45, 0.85) * H / max(j3[:, 1].max() - j3[:, 1].min() + 0.12, 0.35)
    pts = (j3[:, :2] @ rot2.T) * scale
    lo, hi = pts.min(0) - 0.08 * scale, pts.max(0) + 0.08 * scale
    lane_w = W / cfg.people_per_frame
    start = np.array([lane * lane_w, 0.0]) - lo
    room = np.array([lane_w, H]) - (hi - lo)
    start += np.where(room > 0, rng.uniform(0, 1, 2) * np.maximum(room, 0), room / 2)
    drift = rng.uniform(-1, 1, 2) * np.array([0.12 * W, 0.03 * H])
    yaw1 = yaw0 + rng.uniform(-30, 30)
    return Track(ident=ident, key_poses=tuple(keys), back=back, yaw=(yaw0, yaw1),
                 scale=float(scale), rot2=rot2, shift=(start, start + drift))


@functools.lru_cache(maxsize=4)
def video_plan(seed: int, split: int, video: int, cfg: SyntheticConfig) -> VideoPlan:
    """Everything about video ``video`` of ``split`` that does not change between frames."""
    rng = np.random.default_rng([seed, split, VIDEO_STREAM, video])
    H, W = cfg.image_size
    bg = np.asarray(background(rng, H, W))
    light = rng.normal(0, 1, 2)
    light /= np.linalg.norm(light) + 1e-9
    people = rng.choice(cfg.num_identities, cfg.people_per_frame, replace=False)
    tracks = tuple(_track(rng, seed, cfg.first_identity + int(p), lane, cfg)
                   for lane, p in enumerate(people))
    occluders = []
    if rng.random() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, 3))):   # near a joint of someone mid-video
            track = tracks[int(rng.integers(len(tracks)))]
            _, j3, _, (scale, rot2, shift) = track.at(cfg.frames_per_video // 2, cfg)
            near = (j3[int(rng.integers(16)), :2] @ rot2.T) * scale + shift
            occluders.append((near, scale * rng.uniform(0.12, 0.3)))
    blur = rng.uniform(0.4, 1.2) if rng.random() < 0.3 else 0.0
    camera = (rng.uniform(0.7, 1.25), rng.uniform(-25, 25), blur, rng.uniform(0.2, 1.0))
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return VideoPlan(background=bg, tracks=tracks, light=light, occluders=tuple(occluders),
                     occluder_seed=[seed, split, VIDEO_STREAM, video, 1], camera=camera,
                     jpeg_quality=quality)


def render_frame(seed: int, split: int, video: int, frame: int,
                 cfg: SyntheticConfig) -> tuple[np.ndarray, list[dict]]:
    """Renders frame ``frame`` of a video; returns (uint8 [H, W, 3], one annotation per person,
    in track order, each with its ``track_id``)."""
    plan = video_plan(seed, split, video, cfg)
    H, W = cfg.image_size
    img = Image.fromarray(plan.background)
    label = Image.new("L", (W, H), 0)
    draws = (ImageDraw.Draw(img), ImageDraw.Draw(label))
    drawn = []
    for t, track in enumerate(plan.tracks):
        pose, j3, head_fwd, transform = track.at(frame, cfg)
        j2, head = draw_figure(draws, track.ident, j3, head_fwd, transform, plan.light,
                               part_offset=PART_OFFSET * t)
        drawn.append((track, pose, j2, j3, head))
    occ_rng = np.random.default_rng(plan.occluder_seed)
    for k, (near, size) in enumerate(plan.occluders):
        occluder(draws, occ_rng, near, size, 100 + k)
    image = camera_effects(img, *plan.camera,
                           np.random.default_rng([seed, split, VIDEO_STREAM, video, 2, frame]))
    label = np.asarray(label)
    anns = []
    for t, (track, pose, j2, j3, head) in enumerate(drawn):
        ann = annotate(label, j2, j3, head, track.ident, pose, track.back, cfg,
                       part_offset=PART_OFFSET * t)
        ann.update(track_id=t, frame_id=frame, jpeg_quality=plan.jpeg_quality)
        anns.append(ann)
    return image, anns
