"""Every reader fills what the privacy units need; a missing key is an error naming the record."""

import json
import os

import numpy as np
import pytest

from tests.data.conftest import COCO_DIR, MPII_DIR
from tfdphpe.data import split_public
from tfdphpe.data.coco import read_coco
from tfdphpe.data.custom import read_custom
from tfdphpe.data.mpii import read_mpii_json, read_mpii_mat, write_release_mat
from tfdphpe.data.posetrack import merged_annotations, read_posetrack
from tfdphpe.data.records import AnnotationError
from tfdphpe.data.units import (apply_video_map, available_groupings, group_sizes, unit_ids,
                                unit_keys)


def _coco(tmp_path, name="video.json", video=True, patients=True):
    """The COCO fixture with video fields: its 4 images are frames of 2 videos; the people are
    tracks within them (and patients)."""
    data = json.load(open(os.path.join(COCO_DIR, "test_coco.json")))
    for i, img in enumerate(data["images"]):
        if video:
            img.update(vid_id=f"v{i % 2}", frame_id=i // 2)
    for j, ann in enumerate(data["annotations"]):
        ann["track_id"] = j % 2
        if patients:
            ann["patient_id"] = f"p{j % 3}"
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_coco_style_records_carry_image_video_track_and_fields(tmp_path):
    records = read_custom(_coco(tmp_path), COCO_DIR).records
    assert records and all(r.video in ("v0", "v1") and r.track_id in (0, 1) for r in records)
    images = unit_keys(records, "image")
    assert len(set(images)) == len({r.image_path for r in records})
    videos = unit_keys(records, "video")
    assert set(videos) == {"video:v0", "video:v1"}
    tracks = unit_keys(records, "identity")               # a track within its video
    assert set(tracks) <= {f"video:v{v}/track:{t}" for v in (0, 1) for t in (0, 1)}
    patients = unit_keys(records, "identity", unit_field="patient_id")
    assert set(patients) <= {"patient_id:p0", "patient_id:p1", "patient_id:p2"}
    assert unit_keys(records, "example") == [f"#{i}" for i in range(len(records))]
    sizes = group_sizes(videos)
    assert sizes["units"] == 2 and sizes["max"] > 1
    assert set(available_groupings(records)) == {"image", "video", "identity"}


def test_a_missing_unit_key_names_the_file_and_the_record(tmp_path):
    records = read_custom(_coco(tmp_path, video=False, patients=False), COCO_DIR).records
    with pytest.raises(AnnotationError, match=r"video\.json: annotation id \d+ .*no video"):
        unit_keys(records, "video")
    with pytest.raises(AnnotationError, match="no person identity"):
        unit_keys(records, "identity")
    with pytest.raises(AnnotationError, match="no field 'patient_id'"):
        unit_keys(records, "identity", unit_field="patient_id")
    assert set(available_groupings(records)) == {"image"}
    coco = read_coco(os.path.join(COCO_DIR, "test_coco.json"), COCO_DIR).records
    with pytest.raises(AnnotationError, match="test_coco.json"):
        unit_keys(coco, "video")


def test_posetrack_folder_of_videos(tmp_path):
    folder = tmp_path / "annotations" / "val"
    folder.mkdir(parents=True)
    for v in (0, 1):
        data = json.load(open(os.path.join(COCO_DIR, "test_coco.json")))
        keep = data["images"][2 * v:2 * v + 2]
        ids = {img["id"] for img in keep}
        for img in keep:
            img.update(vid_id=f"00{v}", frame_id=img["id"] % 7)
        data["images"] = keep
        data["annotations"] = [dict(a, track_id=k) for k, a in
                               enumerate(a for a in data["annotations"] if a["image_id"] in ids)]
        (folder / f"00{v}.json").write_text(json.dumps(data))
    result = read_posetrack(str(folder), COCO_DIR)
    assert {r.video for r in result.records} == {"000", "001"}
    assert result.joint_set.num_joints == 17
    merged = json.load(open(merged_annotations(str(folder))))
    assert len(merged["images"]) == 4 and merged["categories"]
    bad = json.load(open(folder / "000.json"))
    del bad["images"][0]["vid_id"]
    (folder / "000.json").write_text(json.dumps(bad))
    with pytest.raises(AnnotationError, match="000.json.*vid_id"):
        read_posetrack(str(folder), COCO_DIR)


def test_mpii_release_mat_gives_videos_and_the_json_takes_a_map(tmp_path):
    mpii = read_mpii_json(os.path.join(MPII_DIR, "test_mpii.json"), MPII_DIR).records
    with pytest.raises(AnnotationError, match="--unit_map"):
        unit_keys(mpii, "video")
    names = sorted({os.path.basename(r.image_path) for r in mpii})
    mapping = tmp_path / "videos.json"
    mapping.write_text(json.dumps({n: i // 2 for i, n in enumerate(names)}))
    apply_video_map(mpii, str(mapping))
    assert len(set(unit_keys(mpii, "video"))) == len({i // 2 for i in range(len(names))})
    mapping.write_text(json.dumps({names[0]: 1}))
    with pytest.raises(AnnotationError, match="no video for image"):
        apply_video_map(mpii, str(mapping))

    image = {"name": names[0], "train": True, "vididx": 7, "frame_sec": 3,
             "persons": [{"head_box": (1, 1, 20, 20), "objpos": (50, 60), "scale": 1.0,
                          "points": [(j, 40 + j, 50 + j, 1) for j in range(16)]}]}
    release = tmp_path / "release.mat"
    write_release_mat(str(release), [image, dict(image, vididx=None)])
    records = read_mpii_mat(str(release), MPII_DIR, split="trainval", check_images="none").records
    assert [r.video for r in records] == ["7", ""]


def test_s_pub_takes_whole_units_and_whole_images():
    """10 images of 3 people; patient i appears in images 2i and 2i + 1 (a group of 6)."""
    from tfdphpe.data import PoseRecord
    records = [PoseRecord(image_path=f"/img/{i}.jpg", image_id=i, keypoints=np.zeros((16, 2)),
                          visible=np.ones(16), center=[p, 1.0], box_size=[10.0, 20.0],
                          annotation_id=10 * i + p, fields={"patient_id": i // 2})
               for i in range(10) for p in range(3)]
    keys = unit_keys(records, "identity", unit_field="patient_id")
    split = split_public(records, num_public=12, seed=0, unit_keys=keys)
    chosen = {id(r) for r in split.public}
    public = {k for k, r in zip(keys, records) if id(r) in chosen}
    private = {k for k, r in zip(keys, records) if id(r) not in chosen}
    assert len(split.public) == 12 and len(public) == 2 and not public & private
    with pytest.raises(ValueError, match="too large"):
        split_public(records, num_public=5, seed=0, unit_keys=keys)
    assert len(split_public(records, num_public=6, seed=0).public) == 6      # by image alone


def test_unit_ids_are_dense_in_order_of_appearance():
    np.testing.assert_array_equal(unit_ids(["b", "a", "b", "c"]), [0, 1, 0, 2])
