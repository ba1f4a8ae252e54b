"""Frames from videos, image folders and cameras; annotated video out. PyAV (FFmpeg's libraries,
bundled in its wheel) decodes and encodes.

Why PyAV and not imageio-ffmpeg (measured in docs/benchmarks.md): it decodes in-process,
about twice as fast here (imageio-ffmpeg pipes raw frames out of an ffmpeg subprocess), its
errors arrive as exceptions at the packet that failed (so we can name the frame), its wheel is
half the size (35 vs 68 MB) and one abi3 wheel covers Python 3.11-3.13.

Every error names the file, and for a decoding error the frame where it broke. A video that
ends before the frame count its container declares is reported as truncated, not passed off as
complete. ``VideoWriter`` writes to a temporary name and renames only when the video is
complete.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class VideoError(RuntimeError):
    """A video, image or camera that cannot be read (or written); the message names it."""


@dataclasses.dataclass
class Frame:
    """One decoded frame: RGB uint8 ``[h, w, 3]``, its index and time in seconds."""

    index: int
    timestamp: float
    image: np.ndarray
    name: str = ""     # an image's file name (folders), empty for video frames


def _av():
    import av  # pylint: disable=import-outside-toplevel  (only video work needs FFmpeg)
    return av


class VideoReader:
    """Frames of a video file (or a camera device), in order.

    Args:
      path: the file, or a device such as ``/dev/video0``.
      device_format: FFmpeg input format for devices (``v4l2`` on Linux); None for files.
    """

    def __init__(self, path: str, device_format: str | None = None):
        av = _av()
        self.path = os.fspath(path)
        if device_format is None:
            if not os.path.isfile(self.path):
                raise VideoError(f"{self.path}: no such video file")
            if os.path.getsize(self.path) == 0:
                raise VideoError(f"{self.path}: the file is empty (0 bytes)")
        try:
            self._container = av.open(self.path, format=device_format)
        except (av.error.FFmpegError, OSError) as e:
            raise VideoError(f"{self.path}: cannot open as a video ({e})") from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: no video stream in the file")
        self._stream = self._container.streams.video[0]
        codec = self._stream.codec_context
        if codec is None or not codec.name:
            self._container.close()
            raise VideoError(f"{self.path}: unsupported video codec: FFmpeg has no decoder "
                             "for its video stream")
        self.codec = codec.name
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.declared_frames = int(self._stream.frames or 0)   # 0: the container does not say
        self.width, self.height = int(codec.width), int(codec.height)

    def __iter__(self) -> Iterator[Frame]:
        av = _av()
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                time = frame.time if frame.time is not None else index / self.fps
                yield Frame(index, float(time), frame.to_ndarray(format="rgb24"))
                index += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: decoding failed at frame {index} "
                             f"(t = {index / self.fps:.2f} s): {e}") from e
        finally:
            self._container.close()
        if index == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (codec {self.codec})")
        if self.declared_frames and index < self.declared_frames:
            raise VideoError(f"{self.path}: truncated: decoding ended at frame {index} of the "
                             f"{self.declared_frames} the container declares")


class ImageReader:
    """Frames from image files (a file, or every image in a folder, sorted by name)."""

    def __init__(self, path: str):
        path = os.fspath(path)
        if os.path.isdir(path):
            self.files = sorted(os.path.join(path, f) for f in os.listdir(path)
                                if f.lower().endswith(IMAGE_EXTENSIONS))
            if not self.files:
                raise VideoError(f"{path}: the folder holds no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")
        elif os.path.isfile(path):
            self.files = [path]
        else:
            raise VideoError(f"{path}: no such image file or folder")
        self.path, self.fps, self.declared_frames = path, 0.0, len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel

        for index, file in enumerate(self.files):
            try:
                with Image.open(file) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as e:
                raise VideoError(f"{file}: cannot read the image ({e})") from e
            yield Frame(index, float(index), pixels, os.path.basename(file))


def camera_reader(index: int) -> VideoReader:
    """The camera ``/dev/video<index>`` (Linux, V4L2)."""
    device = f"/dev/video{int(index)}"
    if not os.path.exists(device):
        raise VideoError(f"{device}: no such camera on this machine")
    return VideoReader(device, device_format="v4l2")


class VideoWriter:
    """H.264 MP4 (libx264, yuv420p), written under a temporary name and renamed on success.

    Use as a context manager: leaving it by an exception deletes the partial file, so an
    interrupted run never leaves a video that looks complete.
    """

    def __init__(self, path: str, fps: float, crf: int = 23, preset: str = "veryfast"):
        self.path = os.fspath(path)
        directory, name = os.path.split(self.path)
        self.partial = os.path.join(directory, f".{name}.partial.mp4")
        self.fps, self.crf, self.preset = fps, crf, preset
        self._container = self._stream = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def write(self, image: np.ndarray) -> None:
        av = _av()
        image = np.asarray(image, np.uint8)
        h, w = image.shape[0] - image.shape[0] % 2, image.shape[1] - image.shape[1] % 2
        image = np.ascontiguousarray(image[:h, :w])       # yuv420p needs even sizes
        if self._container is None:
            from fractions import Fraction  # pylint: disable=import-outside-toplevel

            # faststart: the index goes first, so a player (and we) can read a cut-off copy.
            self._container = av.open(self.partial, "w", format="mp4",
                                      options={"movflags": "faststart"})
            rate = Fraction(self.fps).limit_denominator(1001) if self.fps > 0 else 25
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and moves the file to its final name."""
        if self._container is None:
            raise VideoError(f"{self.path}: no frame was written")
        self._container.mux(self._stream.encode())
        self._container.close()
        self._container = None
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if os.path.exists(self.partial):
            os.remove(self.partial)

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
