"""Recording: H.264 MP4 through PyAV when installed (fragmented, so even a killed process leaves a playable
file: a fragment is cut every second of wall-clock time, and the file only ever ends on a whole one:
fragments.py), else OpenCV's MPEG-4 Part 2 (`mp4v`; pip OpenCV cannot
encode H.264). A context manager: the file is always closed, whatever stops the run."""
from __future__ import annotations

import csv
from fractions import Fraction
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..outputs import check_file
from .fragments import FragmentFile


class VideoSink:
    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], codec: str = "auto",
                 preset: str = "superfast"):
        self.path, self.fps, self.codec, self.preset = Path(path), float(fps), codec, preset
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)  # H.264 wants even sizes
        self.frames = 0
        self.fragment_s = 1.0          # wall-clock seconds between forced keyframes (fragments)
        self._last_key = time.monotonic()
        self._av = self._cv = self._file = None
        self.used = ""
        self.failed = False

    def __enter__(self) -> "VideoSink":
        check_file(self.path, "recording")
        want_h264 = self.codec in ("auto", "h264") and self.path.suffix.lower() in (".mp4", ".mkv", ".mov")
        if want_h264:
            self._open_h264()
        if self._av is None:
            fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self._cv = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
            if not self._cv.isOpened():
                raise UserError(f"OpenCV cannot write {self.path}; use an .mp4 or .avi path")
            self.used = "MPEG-4 Part 2 (OpenCV mp4v)" if fourcc == "mp4v" else "Motion JPEG (OpenCV)"
        return self

    def _open_h264(self) -> None:
        try:
            import av
        except ImportError:
            av = None
        if av is not None:
            try:
                if self.path.suffix.lower() in (".mp4", ".mov"):  # fragmented: written whole fragments at a time
                    self._file = FragmentFile(self.path)
                    self._av = av.open(self._file, "w", format=self.path.suffix.lower()[1:],
                                       options={"movflags": "frag_keyframe+empty_moov", "flush_packets": "1"})
                else:  # Matroska: a cut file plays up to the cut by design
                    self._av = av.open(str(self.path), "w")
                self._stream = self._av.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            except (av.error.FFmpegError, ValueError):  # this FFmpeg build has no libx264: fall back to mp4v
                if self._av is not None:
                    self._av.close()
                if self._file is not None:
                    self._file.close()
                self._av = self._file = None
        if self._av is None:
            if self.codec == "h264":
                raise UserError("H.264 recording needs PyAV with libx264: pip install av")
            return
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        # zerolatency: no lookahead or B-frames, so every frame leaves the encoder at once; a keyframe (a new
        # fragment) is forced each second of wall-clock time in write(), so a killed process loses at most about
        # a second of frames, whatever the frame rate.
        self._stream.options = {"preset": self.preset, "crf": "20", "tune": "zerolatency"}
        self._stream.codec_context.gop_size = max(1, round(10 * self.fps))
        self.used = "H.264 (PyAV/libx264)"

    def write(self, frame: np.ndarray) -> None:
        """frame: HxWx3 uint8 BGR at `size` (odd sizes padded by one pixel)."""
        if frame.shape[1::-1] != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self.size[1] - frame.shape[0], 0, self.size[0] - frame.shape[1],
                                       cv2.BORDER_REPLICATE)
        if self._av is not None:
            import av
            # OpenCV's BT.601 conversion matches FFmpeg's swscale to a level and is 4x faster
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            now = time.monotonic()
            if now - self._last_key >= self.fragment_s:
                vf.pict_type = av.video.frame.PictureType.I
                self._last_key = now
            try:
                for packet in self._stream.encode(vf):
                    self._av.mux(packet)
            except OSError as err:  # disk full, file system gone: the fragments written so far stay playable
                self.failed = True
                raise UserError(f"recording {self.path} stopped after {self.frames} frames: {err.strerror or err}; "
                                "it plays up to there. Free space or --record to another disk") from None
        else:
            self._cv.write(frame)
        self.frames += 1

    def __exit__(self, *exc) -> None:
        if self._av is not None:
            for step in (self._flush, self._av.close, self._file.close if self._file else lambda: None):
                try:
                    step()
                except OSError:
                    pass  # the same full disk: the file ends on its last whole fragment
        if self._cv is not None:
            self._cv.release()

    def _flush(self) -> None:
        """The frames still in the encoder (none after a failed write)."""
        if not self.failed:
            for packet in self._stream.encode():
                self._av.mux(packet)


class TimingLog:
    """Optional CSV of per-frame timestamps and stage latencies, flushed once a second."""

    FIELDS = ["frame", "index_a", "index_b", "ts_a", "ts_b", "skew_ms", "register_ms", "fuse_ms", "render_ms",
              "total_ms"]

    def __init__(self, path: str | Path | None):
        self.file, self._flushed = None, time.monotonic()
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", newline="")
            self.writer = csv.DictWriter(self.file, self.FIELDS)
            self.writer.writeheader()

    def write(self, row: dict) -> None:
        if self.file:
            self.writer.writerow({k: row.get(k, "") for k in self.FIELDS})
            if time.monotonic() - self._flushed >= 1.0:  # once a second: a killed run loses at most that
                self.file.flush()
                self._flushed = time.monotonic()

    def close(self) -> None:
        if self.file:
            self.file.close()
