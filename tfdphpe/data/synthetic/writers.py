"""Writing the data set: images, MPII (HRNet JSON, gt_valid.mat, the official .mat) and COCO
annotation files, info.json."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
from PIL import Image

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.synthetic.config import SPLIT_NAMES, SyntheticConfig
from tfdphpe.data.synthetic.scene import render_example


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
