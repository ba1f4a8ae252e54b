"""MPII Human Pose -> person records, in the two forms users have, plus writers for tests.

1. The JSON of HRNet/SimCC/mmpose (``train.json``, ``valid.json``: a list of ``{image, center,
   scale, joints [16][2], joints_vis [16]}``) with head boxes from ``gt_valid.mat``
   (``headboxes_src`` ``[2, 2, N]``, aligned with ``valid.json`` by order).
2. The official release ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE.annolist(i).annorect(p)``
   with head rectangle ``x1, y1, x2, y2``, ``annopoints.point`` (id, x, y, is_visible),
   ``objpos``, ``scale``; ``RELEASE.img_train``), split into the standard train/val sets of
   Tompson et al. (CVPR 2015) with their ``detections.mat`` (``RELEASE_img_index``,
   ``RELEASE_person_index``, 1-based), exactly as the CPM/HRNet ``genJSON`` scripts do.

MPII coordinates are MATLAB 1-based; records are 0-based (subtract 1, as HRNet does). The person
box is HRNet's: ``center = objpos + (0, 15 * scale)``, ``box_size = 200 * scale`` square; the
pipeline then pads it by 1.25. A joint is a target when it is annotated (``joints_vis`` in the
JSON, presence in ``annopoints`` in the .mat); MPII's ``is_visible`` (occlusion) does not remove
targets, as in HRNet and mmpose.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np

from tfdphpe.data import joints as joints_lib
from tfdphpe.data.coco import load_json
from tfdphpe.data.records import (AnnotationError, ImageChecker, PoseRecord, ReadResult,
                                  ReadSummary, finish_record)

NUM_JOINTS = 16


def _image_ids(names: Sequence[str]) -> dict[str, int]:
    """Numeric file stems when every name has one (mmpose's ids), else first-seen order."""
    stems = [os.path.splitext(os.path.basename(n))[0] for n in names]
    if all(s.isdigit() for s in stems) and len(set(stems)) == len(set(names)):
        return {n: int(s) for n, s in zip(names, stems)}
    ids: dict[str, int] = {}
    for n in names:
        ids.setdefault(n, len(ids))
    return ids


def mpii_box(center_1based, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """HRNet's MPII box: y shifted down by 15 * scale, then 0-based; square 200 * scale."""
    c = np.asarray(center_1based, np.float64).reshape(2).copy()
    c[1] += 15.0 * scale
    return (c - 1.0).astype(np.float32), np.full(2, 200.0 * scale, np.float32)


# --------------------------------------------------------------------------- gt_valid.mat
def read_head_boxes(path: str) -> np.ndarray:
    """``gt_valid.mat`` -> head boxes ``[N, 4]`` (x1, y1, x2, y2), still 1-based."""
    from scipy.io import loadmat
    if not os.path.isfile(path):
        raise FileNotFoundError(f"head box file not found: {path}")
    try:
        mat = loadmat(path)
    except Exception as e:  # noqa: BLE001
        raise AnnotationError(f"{path}: cannot read as a .mat file ({e})") from e
    if "headboxes_src" not in mat:
        raise AnnotationError(f"{path}: no 'headboxes_src' (expected gt_valid.mat's layout)")
    hb = np.asarray(mat["headboxes_src"], np.float64)
    if hb.ndim != 3 or hb.shape[:2] != (2, 2):
        raise AnnotationError(f"{path}: 'headboxes_src' must be [2, 2, N], got {hb.shape}")
    # headboxes_src[0] = (x1, y1), headboxes_src[1] = (x2, y2), per person on the last axis.
    return np.concatenate([hb[0].T, hb[1].T], axis=1).astype(np.float32)


def write_gt_valid_mat(path: str, keypoints_1based: np.ndarray, visible: np.ndarray,
                       head_boxes_1based: np.ndarray) -> None:
    """Writes HRNet's ``gt_valid.mat`` layout (``pos_gt_src [16, 2, N]``, ``jnt_missing
    [16, N]``, ``headboxes_src [2, 2, N]``, ``dataset_joints``); MATLAB 1-based coordinates."""
    from scipy.io import savemat
    kp = np.asarray(keypoints_1based, np.float64)
    hb = np.asarray(head_boxes_1based, np.float64).reshape(-1, 4)
    names = np.empty((1, NUM_JOINTS), dtype=object)
    for j, n in enumerate(joints_lib.MPII_MAT_NAMES):
        names[0, j] = np.array([n])
    savemat(path, {
        "pos_gt_src": np.transpose(kp, (1, 2, 0)),
        "jnt_missing": (1 - (np.asarray(visible) > 0)).astype(np.float64).T,
        "headboxes_src": np.stack([hb[:, :2].T, hb[:, 2:].T], axis=0),
        "dataset_joints": names,
    })


# --------------------------------------------------------------------------- JSON form
def _entry(entry: Any, i: int, path: str) -> tuple[str, np.ndarray, float, np.ndarray, np.ndarray]:
    where = f"{path}: record #{i}"
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: not an object")
    missing = {"image", "center", "scale", "joints"} - set(entry)
    if missing:
        raise AnnotationError(f"{where} (image {entry.get('image')}): missing {sorted(missing)}")
    where = f"{where} (image {entry['image']})"
    try:
        center = np.asarray(entry["center"], np.float64).reshape(2)
        scale = float(np.asarray(entry["scale"], np.float64).reshape(-1)[0])
        joints = np.asarray(entry["joints"], np.float64)
        vis = np.asarray(entry.get("joints_vis", np.ones(NUM_JOINTS)), np.float64).reshape(-1)
    except (TypeError, ValueError, IndexError) as e:
        raise AnnotationError(f"{where}: {e}") from None
    if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,):
        raise AnnotationError(f"{where}: joints must be [16, 2] and joints_vis [16], got "
                              f"{joints.shape} and {vis.shape}")
    if not (np.all(np.isfinite(center)) and np.isfinite(scale) and np.all(np.isfinite(joints))):
        raise AnnotationError(f"{where}: non-finite center, scale or joints")
    if scale <= 0:
        raise AnnotationError(f"{where}: scale must be > 0, got {scale}")
    return entry["image"], center, scale, joints, vis


def read_mpii_json(annotation_file: str, image_dir: str, *, head_boxes_file: str | None = None,
                   check_images: str = "header") -> ReadResult:
    """Reads MPII in the HRNet/mmpose JSON layout.

    Args:
      annotation_file: ``train.json`` / ``valid.json`` (or a file in that layout).
      image_dir: the folder holding MPII's ``images/``.
      head_boxes_file: ``gt_valid.mat`` aligned with ``annotation_file`` by order; entries may
        instead carry a ``head_box`` [x1, y1, x2, y2] (1-based) field. Without either, head boxes
        are zeros (PCKh then needs them from elsewhere).
      check_images: "header" (default: also gives the image size for the outside-image rule),
        "decode", "exists" or "none".
    """
    data = load_json(annotation_file)
    if not isinstance(data, list):
        raise AnnotationError(f"{annotation_file}: expected a list of person records")
    head_boxes = None
    if head_boxes_file is not None:
        head_boxes = read_head_boxes(head_boxes_file)
        if len(head_boxes) != len(data):
            raise AnnotationError(f"{head_boxes_file}: {len(head_boxes)} head boxes for "
                                  f"{len(data)} records in {annotation_file}")
    parsed = [_entry(e, i, annotation_file) for i, e in enumerate(data)]
    ids = _image_ids([p[0] for p in parsed])
    summary = ReadSummary(source=f"mpii:{annotation_file}")
    checker = ImageChecker(summary, check_images)
    records = []
    for i, (name, center, scale, joints, vis) in enumerate(parsed):
        where = f"{annotation_file}: record #{i} (image {name})"
        path = os.path.join(image_dir, name)
        size, bad = checker(path)
        if bad:
            summary.skip(bad, where, warn=False)
            continue
        if center[0] == -1:  # HRNet's marker of a person without a usable position
            summary.skip("no_box", where, warn=False)
            continue
        head = np.zeros(4, np.float32)
        if head_boxes is not None:
            head = head_boxes[i] - 1.0
        elif "head_box" in data[i]:
            head = np.asarray(data[i]["head_box"], np.float32).reshape(4) - 1.0
        c, s = mpii_box(center, scale)
        rec = PoseRecord(image_path=path, image_id=ids[name], keypoints=joints - 1.0,
                         visible=(vis > 0).astype(np.float32), center=c, box_size=s,
                         head_box=head, image_size=size, annotation_id=i,
                         identity=int(data[i].get("identity", -1)))
        rec = finish_record(rec, summary, where)
        if rec is not None:
            records.append(rec)
    summary.kept = len(records)
    summary.log()
    return ReadResult(records=records, summary=summary, joint_set=joints_lib.MPII)


# --------------------------------------------------------------------------- official .mat
def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.flat)
    return [x]


def _scalar(x) -> float | None:
    """A number from scipy's squeezed .mat values ([] -> None; '1' -> 1.0)."""
    if isinstance(x, np.ndarray):
        if x.size == 0:
            return None
        x = x.flat[0]
    if isinstance(x, (str, bytes)):
        x = x.strip()
        if not x:
            return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _field(obj, name):
    return getattr(obj, name, None) if obj is not None else None


def read_tompson_split(path: str) -> set[tuple[int, int]]:
    """The standard MPII validation persons: (annolist index, person index), both 1-based.

    Accepts Tompson's ``detections.mat`` (``RELEASE_img_index``, ``RELEASE_person_index``) or a
    JSON list of ``[image_index, person_index]`` pairs.
    """
    if path.endswith(".json"):
        pairs = load_json(path)
        try:
            return {(int(a), int(b)) for a, b in pairs}
        except (TypeError, ValueError) as e:
            raise AnnotationError(f"{path}: expected [[image_index, person_index], ...]") from e
    from scipy.io import loadmat
    mat = loadmat(path)
    if "RELEASE_img_index" not in mat or "RELEASE_person_index" not in mat:
        raise AnnotationError(f"{path}: needs RELEASE_img_index and RELEASE_person_index")
    img = np.asarray(mat["RELEASE_img_index"]).reshape(-1)
    per = np.asarray(mat["RELEASE_person_index"]).reshape(-1)
    if img.shape != per.shape:
        raise AnnotationError(f"{path}: RELEASE_img_index and RELEASE_person_index differ in size")
    return {(int(a), int(b)) for a, b in zip(img, per)}


def read_mpii_mat(release_file: str, image_dir: str, *, split: str = "train",
                  valid_split_file: str | None = None, check_images: str = "header") -> ReadResult:
    """Reads the official ``mpii_human_pose_v1_u12_1.mat``.

    Args:
      release_file: path of the official .mat (``RELEASE`` struct).
      image_dir: the folder with MPII's images.
      split: "train" or "val" (the standard Tompson split: needs ``valid_split_file``; persons in
        validation images that are not themselves validation persons belong to neither split, as
        in genJSON), or "trainval" (every annotated person of ``img_train`` images).
      valid_split_file: Tompson's ``detections.mat`` (from ``mpii_valid_pred.zip``) or a JSON list
        of 1-based ``[image_index, person_index]`` pairs.

    Records: ``image_id`` = 0-based annolist index; ``annotation_id`` = 1000 * image_id + 0-based
    person index.
    """
    from scipy.io import loadmat
    if split not in ("train", "val", "trainval"):
        raise ValueError(f"split must be train, val or trainval, got {split!r}")
    if split in ("train", "val") and valid_split_file is None:
        raise ValueError("the standard MPII train/val split needs valid_split_file: Tompson et "
                         "al.'s detections.mat (mpii_valid_pred.zip) or a JSON list of 1-based "
                         "[image_index, person_index] pairs; or use split='trainval'")
    if not os.path.isfile(release_file):
        raise FileNotFoundError(f"MPII release file not found: {release_file}")
    try:
        mat = loadmat(release_file, squeeze_me=True, struct_as_record=False)
        release = mat["RELEASE"]
        annolist = _as_list(release.annolist)
        img_train = np.asarray(release.img_train).reshape(-1)
    except (KeyError, AttributeError) as e:
        raise AnnotationError(f"{release_file}: not the official layout (RELEASE.annolist, "
                              f"RELEASE.img_train): {e}") from e
    if len(img_train) != len(annolist):
        raise AnnotationError(f"{release_file}: img_train has {len(img_train)} entries, annolist "
                              f"{len(annolist)}")
    valid = read_tompson_split(valid_split_file) if valid_split_file else set()
    valid_images = {i for i, _ in valid}
    summary = ReadSummary(source=f"mpii-mat:{release_file}[{split}]")
    checker = ImageChecker(summary, check_images)
    records = []
    for i, ann in enumerate(annolist):
        if not img_train[i]:
            continue
        name = _field(_field(ann, "image"), "name")
        if not isinstance(name, str):
            raise AnnotationError(f"{release_file}: annolist({i + 1}): no image.name")
        rects = _as_list(_field(ann, "annorect"))
        for p, rect in enumerate(rects):
            key = (i + 1, p + 1)
            where = f"{release_file}: annolist({i + 1}).annorect({p + 1}) (image {name})"
            in_val = key in valid
            if split == "val" and not in_val:
                continue
            if split == "train" and (in_val or (i + 1) in valid_images):
                if not in_val:
                    summary.skip("in_validation_image", where, warn=False)
                continue
            rec = _mat_person(rect, where, name, i, p, image_dir, checker, summary)
            if rec is not None:
                rec = finish_record(rec, summary, where)
            if rec is not None:
                records.append(rec)
    summary.kept = len(records)
    summary.log()
    return ReadResult(records=records, summary=summary, joint_set=joints_lib.MPII)


def _mat_person(rect, where, name, i, p, image_dir, checker, summary) -> PoseRecord | None:
    points = _as_list(_field(_field(rect, "annopoints"), "point"))
    if not points:
        summary.skip("no_keypoints", where, warn=False)
        return None
    objpos = _field(rect, "objpos")
    x, y = _scalar(_field(objpos, "x")), _scalar(_field(objpos, "y"))
    scale = _scalar(_field(rect, "scale"))
    if x is None or y is None or scale is None or scale <= 0:
        summary.skip("no_box", where, warn=False)
        return None
    kp = np.zeros((NUM_JOINTS, 2), np.float32)
    vis = np.zeros(NUM_JOINTS, np.float32)
    for pt in points:
        jid, px, py = _scalar(_field(pt, "id")), _scalar(_field(pt, "x")), _scalar(_field(pt, "y"))
        if jid is None or px is None or py is None or not 0 <= jid < NUM_JOINTS:
            raise AnnotationError(f"{where}: bad annopoints.point (id={jid}, x={px}, y={py})")
        kp[int(jid)] = (px - 1.0, py - 1.0)
        vis[int(jid)] = 1.0
    head = [_scalar(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
    head_box = np.zeros(4, np.float32) if None in head else np.asarray(head, np.float32) - 1.0
    path = os.path.join(image_dir, name)
    size, bad = checker(path)
    if bad:
        summary.skip(bad, where, warn=False)
        return None
    c, s = mpii_box((x, y), scale)
    return PoseRecord(image_path=path, image_id=i, keypoints=kp, visible=vis, center=c,
                      box_size=s, head_box=head_box, image_size=size, annotation_id=1000 * i + p)


def write_release_mat(path: str, images: Iterable[dict]) -> None:
    """Writes a small file in the official ``mpii_human_pose_v1_u12_1.mat`` layout.

    For tests and the synthetic data set. ``images``: dicts with ``name``, ``train`` (bool) and
    ``persons``: dicts with ``head_box`` (x1, y1, x2, y2), ``objpos`` (x, y), ``scale`` and
    ``points`` (a list of (id, x, y, is_visible), or None for a person without annopoints);
    optionally ``vididx`` (1-based video index) and ``frame_sec`` (left empty when absent, as
    for still images). All coordinates 1-based, as in the real file.
    """
    from scipy.io import savemat
    images = list(images)
    obj = "O"
    annolist = np.zeros((1, len(images)), dtype=[("image", obj), ("annorect", obj),
                                                 ("frame_sec", obj), ("vididx", obj)])
    for i, im in enumerate(images):
        annolist[0, i]["image"] = np.array([(im["name"],)], dtype=[("name", obj)])
        persons = im.get("persons", [])
        rects = np.zeros((1, len(persons)), dtype=[(f, obj) for f in (
            "x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")])
        for p, per in enumerate(persons):
            for k, v in zip(("x1", "y1", "x2", "y2"), per["head_box"]):
                rects[0, p][k] = float(v)
            rects[0, p]["scale"] = float(per["scale"])
            rects[0, p]["objpos"] = np.array([tuple(float(v) for v in per["objpos"])],
                                             dtype=[("x", obj), ("y", obj)])
            pts = per.get("points")
            if pts is None:
                rects[0, p]["annopoints"] = np.zeros((0, 0))
            else:
                # Numeric fields: each element is written as a 1x1 double, like MATLAB's.
                point = np.zeros((1, len(pts)), dtype=[(f, "f8") for f in ("id", "x", "y",
                                                                            "is_visible")])
                for q, (jid, x, y, v) in enumerate(pts):
                    point[0, q] = (int(jid), float(x), float(y), int(v))
                rects[0, p]["annopoints"] = np.array([(point,)], dtype=[("point", obj)])
        annolist[0, i]["annorect"] = rects if persons else np.zeros((0, 0))
        for key in ("frame_sec", "vididx"):
            annolist[0, i][key] = (np.array([[float(im[key])]]) if key in im
                                   else np.zeros((0, 0)))
    release = {"annolist": annolist,
               "img_train": np.array([[int(bool(im.get("train", True))) for im in images]]),
               "version": "12"}
    savemat(path, {"RELEASE": release})


def write_tompson_split(path: str, pairs: Iterable[tuple[int, int]]) -> None:
    """Writes a ``detections.mat``-style split file (1-based image and person indices)."""
    from scipy.io import savemat
    pairs = np.asarray(list(pairs), np.float64).reshape(-1, 2)
    savemat(path, {"RELEASE_img_index": pairs[:, 0][None], "RELEASE_person_index":
                   pairs[:, 1][None]})
