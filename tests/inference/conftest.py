"""Test videos made in the test (synthetic people walking, a pan over a fixture photo), a tiny
pose model exported in-process, and stand-ins for the detector and the pose model."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.export.conftest import FIXTURES, PRIVACY, tiny_model
from tfdphpe.data import synthetic
from tfdphpe.data.joints import MPII
from tfdphpe.inference import Detections, VideoWriter

SIZE = (240, 320)          # test frames: height, width


def walking_people(num_frames=14, empty=(6, 7), seed=0):
    """Frames of two synthetic people walking in opposite directions, nobody in ``empty``.

    Returns (frames [T, H, W, 3] uint8, ground truth: per frame a list of (person, box [4],
    joints [16, 2])).
    """
    h, w = SIZE
    rng = np.random.default_rng(seed)
    people = []
    for person, (start, step) in enumerate([(70.0, 9.0), (250.0, -9.0)]):
        ident = synthetic.identity_params(seed, person)
        j3, head = synthetic.skeleton_3d(ident, synthetic.sample_pose(rng))
        people.append((ident, j3, head, start, step))
    frames, truth = [], []
    for t in range(num_frames):
        image = Image.new("RGB", (w, h), (90, 110, 100))
        draws = (ImageDraw.Draw(image), None)
        found = []
        if t not in empty:
            for person, (ident, j3, head, start, step) in enumerate(people):
                transform = (150.0, np.eye(2), np.array([start + step * t, 110.0]))
                j2, _ = synthetic.draw_figure(draws, ident, j3, head, transform, np.ones(2) / 2)
                lo, hi = j2.min(0) - 12, j2.max(0) + 12
                found.append((person, np.concatenate([lo, hi]).astype(np.float32),
                              j2.astype(np.float32)))
        frames.append(np.asarray(image))
        truth.append(found)
    return np.stack(frames), truth


def panned_photo(num_frames=8, step=12):
    """A window sliding over the COCO fixture photo of one skier (a camera pan)."""
    photo = np.asarray(Image.open(f"{FIXTURES}/coco/000000000785.jpg").convert("RGB"))
    return np.stack([photo[40:392, step * t:step * t + 480] for t in range(num_frames)])


def encode(frames, path, fps=10.0):
    with VideoWriter(str(path), fps) as writer:
        for frame in frames:
            writer.write(frame)
    return str(path)


class TruthDetector:
    """Ground-truth boxes of the current frame (set ``frame``) as detections."""

    def __init__(self, truth):
        self.truth, self.frame, self.calls = truth, 0, 0

    def detect(self, frame):
        self.calls += 1
        found = self.truth[self.frame]
        return Detections([b for _, b, _ in found], np.ones(len(found)))


class TruthPose:
    """Ground-truth joints of the person whose box overlaps most (a perfect pose model)."""

    num_joints = 16

    def __init__(self, truth):
        self.truth, self.frame = truth, 0

    def __call__(self, frame, boxes):
        from tfdphpe.inference.ssd import box_iou
        found = self.truth[self.frame]
        keypoints = np.zeros((len(boxes), 16, 2), np.float32)
        scores = np.zeros((len(boxes), 16), np.float32)
        if found:
            iou = box_iou(boxes, np.stack([b for _, b, _ in found]))
            for i, row in enumerate(iou):
                if row.max() > 0.1:
                    keypoints[i], scores[i] = found[int(row.argmax())][2], 0.9
        return keypoints, scores


@pytest.fixture(scope="session")
def pose_models(tmp_path_factory):
    """The tiny pose model as a float32 .tflite file and a SavedModel (made in-process)."""
    from tfdphpe.export import convert_to_tflite, export_saved_model

    root = tmp_path_factory.mktemp("pose_models")
    model = tiny_model()
    tflite = root / "pose.tflite"
    tflite.write_bytes(convert_to_tflite(model, "float32", joint_set=MPII, privacy=PRIVACY))
    saved = export_saved_model(model, str(root / "saved" / "1"), MPII, PRIVACY)
    return {"tflite": str(tflite), "saved_model": saved, "root": root}
