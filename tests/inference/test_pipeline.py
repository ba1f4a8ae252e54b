"""The pipeline on videos made in the test: track ids across frames, empty frames, batching."""

import numpy as np
import pytest

from tests.inference.conftest import TruthDetector, TruthPose, encode, walking_people
from tfdphpe.export import load_predictor
from tfdphpe.inference import (CropPoseEstimator, PipelineConfig, PosePipeline, VideoReader,
                               WholeFrameDetector)
from tfdphpe.inference.ssd import box_iou


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    frames, truth = walking_people()
    path = encode(frames, tmp_path_factory.mktemp("walk") / "walk.mp4")
    return [f.image for f in VideoReader(path)], truth


def _run(frames, truth, **config):
    detector, pose = TruthDetector(truth), TruthPose(truth)
    pipeline = PosePipeline(detector, pose, PipelineConfig(**config))
    out = []
    for t, frame in enumerate(frames):
        detector.frame = pose.frame = t
        out.append(pipeline(frame, t / 10.0))
    return out, detector


def _ids_by_person(out, truth):
    """person -> set of track ids given to that person's box, frame by frame."""
    ids = {}
    for poses, found in zip(out, truth):
        for person, box, _ in found:
            iou = box_iou(box, poses.boxes)[0]
            assert iou.size and iou.max() > 0.5, "a visible person has no box"
            ids.setdefault((person, poses.frame_id > 7), set()).add(
                int(poses.track_ids[int(iou.argmax())]))
    return ids


@pytest.mark.parametrize("detect_every", [1, 4])
def test_tracks_keep_their_ids_and_empty_frames_are_empty(walk, detect_every):
    frames, truth = walk
    out, detector = _run(frames, truth, detect_every=detect_every, smooth=False)
    # Nobody in frames 6 and 7: empty results. Losing everyone makes the next frame detect.
    for t in (6, 7):
        assert len(out[t]) == 0 and out[t].keypoints.shape == (0, 16, 2)
    assert out[7].detected and out[8].detected
    ids = _ids_by_person(out, truth)
    # Each person keeps one id before the gap and one after it, and no two people share one.
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len({next(iter(v)) for v in ids.values()}) == len(ids)
    if detect_every > 1:   # boxes carried from keypoints between detections
        assert detector.calls < len(frames) and not all(p.detected for p in out)


def test_smoothing_changes_keypoints_but_not_tracks(walk):
    frames, truth = walk
    raw, _ = _run(frames, truth, detect_every=2, smooth=False)
    smooth, _ = _run(frames, truth, detect_every=2, smooth=True)
    assert [list(p.track_ids) for p in raw] == [list(p.track_ids) for p in smooth]
    assert np.allclose(raw[0].keypoints, smooth[0].keypoints)          # first sample passes
    moved = np.abs(raw[3].keypoints - smooth[3].keypoints).max()
    assert 0 < moved < 20


def test_real_pose_model_batches_every_person_of_a_frame(walk, pose_models):
    frames, truth = walk
    predictor = load_predictor(pose_models["saved_model"])
    calls = []
    original = predictor.predict_crops
    predictor.predict_crops = lambda crops: calls.append(len(crops)) or original(crops)
    detector = TruthDetector(truth)
    pipeline = PosePipeline(detector, CropPoseEstimator(predictor), PipelineConfig(detect_every=1))
    poses = pipeline(frames[0], 0.0)
    assert calls == [2]                      # both people in one batch
    assert poses.keypoints.shape[1:] == (16, 2)
    whole = PosePipeline(WholeFrameDetector(), CropPoseEstimator(predictor)).still(frames[0])
    assert len(whole) == 1


def test_bad_frames_are_refused(pose_models):
    pipeline = PosePipeline(WholeFrameDetector(),
                            CropPoseEstimator(load_predictor(pose_models["tflite"])))
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipeline(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="detect_every"):
        PipelineConfig(detect_every=0)
