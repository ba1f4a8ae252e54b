"""Writing the data set: images, MPII (HRNet JSON, gt_valid.mat, the official .mat) and COCO
annotation files, info.json.

Each rendered image comes back as the list of its annotated people (one in still mode). In video
mode every person also carries ``vid_id`` (unique over both splits: validation videos are
numbered after the training ones), ``frame_id`` and ``track_id``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from PIL import Image

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.synthetic.config import SPLIT_NAMES, SyntheticConfig
from tfdphpe.data.synthetic.scene import render_example
from tfdphpe.data.synthetic.video import render_frame


def _save(image, anns: list[dict], name: str, out_dir: str) -> list[dict]:
    Image.fromarray(image).save(os.path.join(out_dir, "images", name),
                                quality=anns[0]["jpeg_quality"])
    for a in anns:
        a["file_name"] = name
    return anns


def _render_still(args) -> list[dict]:
    seed, split, index, out_dir, cfg = args
    image, ann = render_example(seed, split, index, cfg)
    return _save(image, [ann], f"{SPLIT_NAMES[split]}_{index:06d}.jpg", out_dir)


def _render_video_frame(args) -> list[dict]:
    seed, split, video, vid_id, frame, out_dir, cfg = args
    image, anns = render_frame(seed, split, video, frame, cfg)
    for a in anns:
        a["vid_id"] = vid_id
    return _save(image, anns, f"{SPLIT_NAMES[split]}_v{vid_id:05d}_f{frame:04d}.jpg", out_dir)


def _jobs(num_train: int, num_val: int, seed: int, out_dir: str, cfg: SyntheticConfig):
    """(render function, {split: its jobs}); in video mode the counts are videos."""
    counts = ((0, num_train), (1, num_val))
    if not cfg.video:
        return _render_still, {s: [(seed, s, i, out_dir, cfg) for i in range(n)]
                               for s, n in counts}
    return _render_video_frame, {
        s: [(seed, s, v, v + s * num_train, f, out_dir, cfg)
            for v in range(n) for f in range(cfg.frames_per_video)] for s, n in counts}


def _render_all(render, jobs: dict, num_workers: int) -> dict[int, list[list[dict]]]:
    """{split: per image, its people}; frames go to workers in order (a video's plan is cached
    per process)."""
    if num_workers > 1 and sum(len(j) for j in jobs.values()) > 16:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(num_workers) as pool:
            return {s: pool.map(render, job, chunksize=16) for s, job in jobs.items()}
    return {s: [render(j) for j in job] for s, job in jobs.items()}


def _mpii_entries(anns) -> list[dict]:
    out = []
    for a in anns:
        joints = np.where(a["inside"][:, None], a["joints"] + 1.0, -1.0)  # 1-based, MPII style
        entry = {
            "image": a["file_name"], "center": [round(float(v), 2) for v in a["objpos"] + 1.0],
            "scale": round(float(a["scale"]), 6), "joints": np.round(joints, 2).tolist(),
            "joints_vis": a["inside"].astype(int).tolist(),
            "is_visible": (a["seen"] & a["inside"]).astype(int).tolist(),
            "head_box": np.round(a["head_box"] + 1.0, 2).tolist(),
            "identity": a["identity"], "pose": a["pose"]}
        if "vid_id" in a:
            entry.update(vid_id=a["vid_id"], frame_id=a["frame_id"], track_id=a["track_id"])
        out.append(entry)
    return out


def _coco_json(images_anns, cfg: SyntheticConfig, image_id_base: int) -> dict:
    H, W = cfg.image_size
    images, annotations = [], []
    for k, people in enumerate(images_anns):
        img_id = image_id_base + k
        image = {"id": img_id, "file_name": people[0]["file_name"], "height": H, "width": W}
        if "vid_id" in people[0]:
            image.update(vid_id=people[0]["vid_id"], frame_id=people[0]["frame_id"])
        images.append(image)
        for a in people:
            annotations.append(_coco_annotation(a, image_id_base + len(annotations), img_id))
    cat = {"id": 1, "name": "person", "supercategory": "person",
           "keypoints": list(joints_lib.COCO.names),
           "skeleton": [[a + 1, b + 1] for a, b in joints_lib.COCO.skeleton]}
    return {"info": {"description": "tfdphpe synthetic poses"}, "images": images,
            "annotations": annotations, "categories": [cat]}


def _coco_annotation(a: dict, ann_id: int, img_id: int) -> dict:
    kps = np.concatenate([a["coco"], a["coco_v"][:, None]], 1)
    x, y, w, h = a["bbox"]
    out = {
        "id": ann_id, "image_id": img_id, "category_id": 1, "iscrowd": 0,
        "bbox": [round(v, 2) for v in a["bbox"]], "area": a["area"],
        "num_keypoints": int((a["coco_v"] > 0).sum()),
        "keypoints": [round(float(v), 2) if i % 3 != 2 else int(v)
                      for i, v in enumerate(kps.reshape(-1))],
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
        "identity": a["identity"], "pose": a["pose"],
        "head_box": np.round(a["head_box"], 2).tolist()}
    if "track_id" in a:
        out["track_id"] = a["track_id"]
    return out


def _write_split(out_dir: str, split: int, images_anns, cfg: SyntheticConfig) -> None:
    """mpii/{train,valid}.json + gt_{train,valid}.mat and coco/person_keypoints_*.json."""
    from tfdphpe.data import mpii as mpii_lib
    name = ("train", "valid")[split]
    entries = _mpii_entries([a for people in images_anns for a in people])
    with open(os.path.join(out_dir, "mpii", f"{name}.json"), "w") as f:
        json.dump(entries, f)
    if entries:
        mpii_lib.write_gt_valid_mat(
            os.path.join(out_dir, "mpii", f"gt_{name}.mat"),
            np.array([e["joints"] for e in entries]),
            np.array([e["joints_vis"] for e in entries]),
            np.array([e["head_box"] for e in entries]))
    coco = _coco_json(images_anns, cfg, image_id_base=1 + split * 1_000_000)
    with open(os.path.join(out_dir, "coco", f"person_keypoints_{SPLIT_NAMES[split]}.json"),
              "w") as f:
        json.dump(coco, f)


def _write_release(out_dir: str, anns: dict) -> None:
    """The official MPII layout: train images first; the validation persons are listed in a
    Tompson-style split file. Video frames carry ``vididx`` (1-based) and ``frame_sec``."""
    from tfdphpe.data import mpii as mpii_lib
    release, valid = [], []
    for s in (0, 1):
        for people in anns[s]:
            persons = []
            for e in _mpii_entries(people):
                pts = [(j, x, y, v) for j, ((x, y), ok, v) in enumerate(
                    zip(e["joints"], e["joints_vis"], e["is_visible"])) if ok]
                persons.append({"head_box": e["head_box"], "objpos": e["center"],
                                "scale": e["scale"], "points": pts})
                if s == 1:
                    valid.append([len(release) + 1, len(persons)])
            image = {"name": people[0]["file_name"], "train": True, "persons": persons}
            if "vid_id" in people[0]:
                image.update(vididx=people[0]["vid_id"] + 1, frame_sec=people[0]["frame_id"])
            release.append(image)
    mpii_lib.write_release_mat(os.path.join(out_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                               release)
    with open(os.path.join(out_dir, "mpii", "valid_split.json"), "w") as f:
        json.dump(valid, f)


def _video_summary(anns: dict, cfg: SyntheticConfig) -> dict:
    """Counts, and which validation people also appear in training videos."""
    ids = {s: sorted({a["identity"] for people in anns[s] for a in people}) for s in (0, 1)}
    shared = sorted(set(ids[0]) & set(ids[1]))
    return {"frames_per_video": cfg.frames_per_video, "people_per_frame": cfg.people_per_frame,
            "train_images": len(anns[0]), "val_images": len(anns[1]),
            "train_people": sum(map(len, anns[0])), "val_people": sum(map(len, anns[1])),
            "train_identities": len(ids[0]), "val_identities": len(ids[1]),
            "val_identities_also_in_train": len(shared)}


def write_synthetic_dataset(out_dir: str, num_train: int, num_val: int, seed: int = 0,
                            cfg: SyntheticConfig = SyntheticConfig(),
                            num_workers: int = 2) -> dict[str, Any]:
    """Renders and writes the data set; returns a summary (counts, seconds).

    ``num_train`` and ``num_val`` count images, or videos when ``cfg.frames_per_video`` > 0.

    Layout::

      out_dir/images/{train,val}_NNNNNN.jpg   (video mode: {train,val}_vVVVVV_fFFFF.jpg)
      out_dir/mpii/{train,valid}.json, gt_valid.mat, gt_train.mat,
                   mpii_human_pose_v1_u12_1.mat, valid_split.json
      out_dir/coco/person_keypoints_{train,val}.json
      out_dir/info.json
    """
    t0 = time.time()
    for sub in ("images", "mpii", "coco"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    anns = _render_all(*_jobs(num_train, num_val, seed, out_dir, cfg), num_workers)
    t_render = time.time() - t0
    for s in (0, 1):
        _write_split(out_dir, s, anns[s], cfg)
    _write_release(out_dir, anns)
    summary = {"seed": seed, "num_train": num_train, "num_val": num_val,
               "image_size": list(cfg.image_size), "num_identities": cfg.num_identities,
               "render_seconds": round(t_render, 2), "total_seconds": round(time.time() - t0, 2),
               "config": cfg.summary()}
    if cfg.video:
        summary["video"] = _video_summary(anns, cfg)
    with open(os.path.join(out_dir, "info.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
