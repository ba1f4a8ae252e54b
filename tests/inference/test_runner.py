"""predict.py end to end on a video made in the test; the JSON through pycocotools; the mobile
bundle's reference runner."""

import json
import os

import numpy as np
from pycocotools.coco import COCO

from tests.export.conftest import run_script
from tests.inference.conftest import encode, panned_photo
from tfdphpe.data.joints import MPII
from tfdphpe.inference import VideoReader, load_bundle, read_bundle, write_bundle


def _load_results(doc):
    """pycocotools reads the annotations as results against the document's own images."""
    gt = COCO()
    gt.dataset = {"images": doc["images"], "categories": doc["categories"], "annotations": []}
    gt.createIndex()
    return gt.loadRes(doc["annotations"]) if doc["annotations"] else None


def test_predict_video_writes_annotated_video_and_posetrack_json(pose_models, tmp_path):
    clip = encode(panned_photo(8), tmp_path / "pan.mp4")
    result = run_script("predict.py", f"--model={pose_models['tflite']}", f"--video={clip}",
                        f"--output={tmp_path / 'out'}", "--detect_every=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frame/s" in result.stderr and "8 frames" in result.stdout   # progress bar, summary
    assert sorted(os.listdir(tmp_path / "out")) == ["pan_pose.json", "pan_pose.mp4"]
    assert len(list(VideoReader(str(tmp_path / "out" / "pan_pose.mp4")))) == 8
    doc = json.loads((tmp_path / "out" / "pan_pose.json").read_text())
    assert [i["frame_id"] for i in doc["images"]] == list(range(8))
    assert doc["categories"][0]["keypoints"] == list(MPII.names)
    assert doc["info"]["privacy"]["method"] == "dpsgd"
    skier = [a for a in doc["annotations"]]
    assert len(skier) >= 8 and doc["images"][0]["detected"]    # the detector found the skier
    assert {"track_id", "frame_id", "keypoints", "score", "bbox"} <= set(skier[0])
    coco = _load_results(doc)
    assert len(coco.getAnnIds()) == len(doc["annotations"])
    assert np.array(coco.loadAnns(coco.getAnnIds())[0]["keypoints"]).shape == (48,)


def test_predict_refuses_a_corrupt_video_and_writes_nothing(pose_models, tmp_path):
    clip = encode(panned_photo(4), tmp_path / "pan.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(open(clip, "rb").read()[:3000])
    result = run_script("predict.py", f"--model={pose_models['tflite']}", f"--video={broken}",
                        f"--output={tmp_path / 'out'}")
    assert result.returncode != 0 and "broken.mp4" in result.stderr
    assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []


def test_mobile_bundle_reference_runner(pose_models, tmp_path):
    bundle = write_bundle(pose_models["tflite"], str(tmp_path / "bundle"))
    assert sorted(os.listdir(bundle)) == ["bundle.json", "pose.tflite",
                                          "pose_detection.LICENSE", "pose_detection.NOTICE",
                                          "pose_detection.tflite"]
    description = read_bundle(bundle)
    assert description["pose"]["metadata"]["privacy"]["method"] == "dpsgd"
    assert description["pose"]["metadata"]["joint_names"] == list(MPII.names)
    runner = load_bundle(bundle, detect_every=2)
    out = [runner(frame, t / 10) for t, frame in enumerate(panned_photo(4))]
    assert out[0].detected and len(out[0]) == 1 and out[0].keypoints.shape == (1, 16, 2)
    assert runner.config.detect_every == 2
