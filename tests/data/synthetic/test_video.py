"""Video-like mode: people keep their look across frames, move smoothly, and the video fields
agree across the MPII JSON, COCO JSON and the official .mat; still mode writes none of them."""

import collections
import json
import os

import numpy as np
import pytest
from scipy.io import loadmat

from tfdphpe.data import read_mpii_json, read_mpii_mat
from tfdphpe.data.synthetic import SyntheticConfig, J, render_example, write_synthetic_dataset
from tfdphpe.data.synthetic.video import render_frame, video_plan

from .test_writers import _generate

CFG = SyntheticConfig(image_size=(128, 160), frames_per_video=12, people_per_frame=2,
                      num_identities=6, first_identity=500)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("video"))
    write_synthetic_dataset(out, num_train=3, num_val=2, seed=3, cfg=CFG, num_workers=1)
    return out


def _load(root, *parts):
    with open(os.path.join(root, *parts)) as f:
        return json.load(f)


def test_people_keep_their_look_and_identity_across_frames():
    frames = [render_frame(4, 0, 1, f, CFG) for f in range(CFG.frames_per_video)]
    for t, track in enumerate(video_plan(4, 0, 1, CFG).tracks):
        assert {anns[t]["identity"] for _, anns in frames} == {track.ident["identity"]}
        # The shirt at the middle of the torso: the same colour in (nearly) every frame.
        colours = []
        for image, anns in frames:
            x, y = np.round(0.5 * (anns[t]["joints"][J["thorax"]] +
                                   anns[t]["joints"][J["pelvis"]])).astype(int)
            colours.append(np.median(image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3), axis=0))
        colours = np.array(colours)
        close = np.abs(colours - np.median(colours, axis=0)).max(axis=1) < 30
        assert close.mean() >= 0.8, colours


def test_consecutive_frames_move_little():
    height = CFG.image_size[0]
    steps, jumps = [], []
    for video in range(3):
        joints = np.array([[a["joints"] for a in render_frame(0, 0, video, f, CFG)[1]]
                           for f in range(CFG.frames_per_video)])     # [F, people, 16, 2]
        steps.append(np.linalg.norm(np.diff(joints, axis=0), axis=-1).ravel())
    # Independent still images, for scale: the same joints of unrelated people.
    still = np.array([render_example(0, 0, i, SyntheticConfig(image_size=CFG.image_size))[1]
                      ["joints"] for i in range(12)])
    jumps = np.linalg.norm(np.diff(still, axis=0), axis=-1).ravel()
    steps = np.concatenate(steps)
    assert np.percentile(steps, 95) < 0.03 * height and steps.max() < 0.08 * height
    assert np.median(jumps) > 8 * np.median(steps)


def test_video_fields_agree_across_the_three_formats(video_dir):
    mpii = {s: _load(video_dir, "mpii", f"{s}.json") for s in ("train", "valid")}
    coco = {s: _load(video_dir, "coco", f"person_keypoints_{s}.json") for s in ("train", "val")}
    assert len(mpii["train"]) == 3 * 12 * 2 and len(mpii["valid"]) == 2 * 12 * 2
    train_vids = {e["vid_id"] for e in mpii["train"]}
    assert train_vids == {0, 1, 2} and {e["vid_id"] for e in mpii["valid"]} == {3, 4}
    tracks = collections.defaultdict(set)
    for e in mpii["train"] + mpii["valid"]:
        assert all(type(e[k]) is int for k in ("identity", "vid_id", "frame_id", "track_id"))
        assert 500 <= e["identity"] < 506
        tracks[e["vid_id"], e["track_id"]].add(e["identity"])
    assert all(len(ids) == 1 for ids in tracks.values())     # a track is one person
    for m_split, c_split in (("train", "train"), ("valid", "val")):
        images = {im["id"]: im for im in coco[c_split]["images"]}
        by_key = {(images[a["image_id"]]["file_name"], a["track_id"]): (a, images[a["image_id"]])
                  for a in coco[c_split]["annotations"]}
        assert len(by_key) == len(mpii[m_split])
        for e in mpii[m_split]:
            ann, image = by_key[e["image"], e["track_id"]]
            assert ann["identity"] == e["identity"]
            assert (image["vid_id"], image["frame_id"]) == (e["vid_id"], e["frame_id"])
    # The official layout: one annolist entry per frame, vididx 1-based, frame_sec = frame_id.
    release = loadmat(os.path.join(video_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                      squeeze_me=True, struct_as_record=False)["RELEASE"]
    frames = {e["image"]: e for e in mpii["train"] + mpii["valid"]}
    assert len(release.annolist) == len(frames) == 5 * 12
    for item in release.annolist:
        e = frames[item.image.name]
        assert (item.vididx, item.frame_sec) == (e["vid_id"] + 1, e["frame_id"])
        assert len(item.annorect) == 2
    images = os.path.join(video_dir, "images")
    official = read_mpii_mat(os.path.join(video_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                             images, split="val", valid_split_file=os.path.join(
                                 video_dir, "mpii", "valid_split.json"))
    hrnet = read_mpii_json(os.path.join(video_dir, "mpii", "valid.json"), images)
    assert len(official) == len(hrnet) + hrnet.summary.num_skipped == 48
    info = _load(video_dir, "info.json")["video"]
    assert (info["train_people"], info["val_people"]) == (72, 48)


def test_still_mode_writes_no_video_fields(synthetic_dir):
    entry = _load(synthetic_dir, "mpii", "train.json")[0]
    coco = _load(synthetic_dir, "coco", "person_keypoints_train.json")
    assert not {"vid_id", "frame_id", "track_id"} & (set(entry) | set(coco["images"][0]) |
                                                     set(coco["annotations"][0]))
    release = loadmat(os.path.join(synthetic_dir, "mpii", "mpii_human_pose_v1_u12_1.mat"),
                      squeeze_me=True, struct_as_record=False)["RELEASE"]
    assert np.size(release.annolist[0].vididx) == 0
    assert "frames_per_video" not in _load(synthetic_dir, "info.json")["config"]


def test_video_mode_gives_identical_files_in_two_processes(tmp_path):
    video = ["--num_videos=2", "--num_val_videos=1", "--frames_per_video=10",
             "--people_per_frame=2", "--num_identities=4"]
    a = _generate(tmp_path / "a", workers=2, hash_seed=1, extra=video)
    b = _generate(tmp_path / "b", workers=1, hash_seed=2, extra=video)
    assert len([k for k in a if k.endswith(".jpg")]) == 30 and a == b
