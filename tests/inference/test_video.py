"""Video in and out with PyAV; bad input is a clear error naming the file (and the frame)."""

import os

import av
import numpy as np
import pytest

from tests.inference.conftest import encode, walking_people
from tfdphpe.inference import ImageReader, VideoError, VideoReader, VideoWriter, camera_reader


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, _ = walking_people(num_frames=14, empty=())
    return frames, encode(frames, tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_round_trip_keeps_count_size_and_time(clip):
    frames, path = clip
    reader = VideoReader(path)
    assert (reader.fps, reader.declared_frames, reader.codec) == (10.0, 14, "h264")
    decoded = list(reader)
    assert [f.index for f in decoded] == list(range(14))
    assert decoded[3].timestamp == pytest.approx(0.3)
    assert decoded[0].image.shape == frames[0].shape
    assert np.abs(decoded[5].image.astype(int) - frames[5]).mean() < 6   # lossy, but close


def test_truncated_video_names_the_file_and_where_it_ended(clip, tmp_path):
    _, path = clip
    data = open(path, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError, match=r"cut\.mp4: .*(truncated: decoding ended at frame "
                                         r"\d+ of the 14|decoding failed at frame \d+)"):
        list(VideoReader(str(cut)))


@pytest.mark.parametrize("content, match", [
    (b"", "empty"), (bytes(range(256)) * 16, "no video stream|cannot open"), (None, "no such")],
    ids=["empty", "junk", "missing"])
def test_empty_junk_and_missing_files(tmp_path, content, match):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=f"bad.mp4: .*({match})"):
        VideoReader(str(path))


def test_unsupported_codec(tmp_path):
    path = tmp_path / "m.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    unknown = tmp_path / "unknown.avi"        # a codec tag no decoder knows
    unknown.write_bytes(path.read_bytes().replace(b"FMP4", b"QQZ9"))
    with pytest.raises(VideoError, match="unknown.avi: unsupported video codec"):
        VideoReader(str(unknown))


def test_image_folders_and_cameras(tmp_path):
    with pytest.raises(VideoError, match="holds no images"):
        ImageReader(str(tmp_path))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoError, match="broken.jpg: cannot read"):
        list(ImageReader(str(tmp_path)))
    with pytest.raises(VideoError, match="/dev/video97: no such camera"):
        camera_reader(97)


def test_an_interrupted_writer_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stop"):
        with VideoWriter(str(path), 10) as writer:
            writer.write(np.zeros((31, 41, 3), np.uint8))     # odd sizes: trimmed to even
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    with VideoWriter(str(path), 10) as writer:
        writer.write(np.zeros((31, 41, 3), np.uint8))
    assert os.listdir(tmp_path) == ["out.mp4"]
    assert VideoReader(str(path)).width == 40
