"""Frame sources: camera indices, video files, network streams (RTSP/HTTP/TCP/UDP via FFmpeg), folders of numbered
frames and the built-in synthetic sample. Each yields `Frame`s carrying their source timestamp and index."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..imageio import IMAGE_EXTS, to_uint8

NETWORK = re.compile(r"^(rtsp|rtsps|rtmp|http|https|tcp|udp|srt)://", re.I)


@dataclass
class Frame:
    image: np.ndarray   # HxWx3 uint8, BGR (OpenCV order)
    index: int          # 0-based frame number in its source
    timestamp: float    # seconds: source time for recordings, capture clock for live sources
    captured: float     # time.monotonic() when read, for latency


@dataclass
class SourceInfo:
    spec: str
    kind: str           # camera | file | network | folder | sample
    width: int
    height: int
    fps: float          # frames per second (float: 29.97 stays 29.97)
    frames: int | None  # total frames when known
    live: bool          # a camera or network stream: frames come whether we read them or not

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


class Source:
    info: SourceInfo

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream (or a failed read on a live source)."""
        raise NotImplementedError

    def grab(self) -> bool:  # two cameras on one host: grab both, then retrieve both
        return True

    def retrieve(self) -> Frame | None:
        return self.read()

    def close(self) -> None:
        pass


class VideoSource(Source):
    """cv2.VideoCapture with open/read timeouts for network streams (a dropped RTSP read can hang ~90 s)."""

    def __init__(self, spec: str, kind: str, timeout_s: float = 5.0):
        self.spec, self.kind, self.timeout_s = spec, kind, timeout_s
        self.cap = self._open()
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = self.cap.read()
        deadline = time.monotonic() + timeout_s
        while kind != "file" and not ok and time.monotonic() < deadline:  # streams may start mid-GOP
            ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            raise UserError(f"{spec}: opened but no frame could be decoded; the file is corrupt, truncated or empty")
        self._first = first
        self.index = 0
        self.info = SourceInfo(spec, kind, first.shape[1], first.shape[0], fps if 0 < fps < 1000 else 30.0,
                               count if kind == "file" and count > 0 else None, kind in ("camera", "network"))

    def _open(self) -> cv2.VideoCapture:
        ms = int(self.timeout_s * 1000)
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.spec))
            hint = "check the camera is connected and not used by another program (ls /dev/video*)"
        elif self.kind == "network":
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            hint = "check the URL, the network and that the stream is up"
        else:
            cap = cv2.VideoCapture(self.spec)
            hint = "the file is corrupt, truncated or in a format FFmpeg cannot read"
        if not cap.isOpened():
            raise UserError(f"cannot open {self.kind} source {self.spec}: {hint}")
        return cap

    def reopen(self) -> None:
        self.cap.release()
        self.cap = self._open()

    def _frame(self, img: np.ndarray) -> Frame:
        now = time.monotonic()
        ts = now if self.info.live else self.index / self.info.fps
        frame = Frame(img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), self.index, ts, now)
        self.index += 1
        return frame

    def read(self) -> Frame | None:
        if self._first is not None:
            img, self._first = self._first, None
            return self._frame(img)
        ok, img = self.cap.read()
        return self._frame(img) if ok and img is not None else None

    def grab(self) -> bool:
        return self._first is not None or self.cap.grab()

    def retrieve(self) -> Frame | None:
        if self._first is not None:
            return self.read()
        ok, img = self.cap.retrieve()
        return self._frame(img) if ok and img is not None else None

    def close(self) -> None:
        self.cap.release()


class FolderSource(Source):
    """Numbered frames in a folder (000001.png, ...), in name order, at a nominal frame rate."""

    def __init__(self, spec: str, fps: float = 25.0):
        files = sorted(p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"no frames (PNG/JPEG/BMP) in folder {spec}")
        self.files, self.index = files, 0
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise UserError(f"cannot decode the first frame {files[0]}")
        self.info = SourceInfo(spec, "folder", first.shape[1], first.shape[0], fps, len(files), False)

    def read(self) -> Frame | None:
        while self.index < len(self.files):
            img = cv2.imread(str(self.files[self.index]), cv2.IMREAD_COLOR)
            self.index += 1
            if img is not None:
                return Frame(img, self.index - 1, (self.index - 1) / self.info.fps, time.monotonic())
        return None


class SampleSource(Source):
    """The built-in synthetic IR/visible scene (see samples.py): `sample:ir` or `sample:vis`."""

    def __init__(self, spec: str, frames: int = 90, size: tuple[int, int] = (320, 240), fps: float = 30.0):
        from ..samples import sample_pair
        self.which = spec.split(":", 1)[1]
        if self.which not in ("ir", "vis"):
            raise UserError(f"unknown sample stream '{spec}'; use sample:ir or sample:vis")
        self.make, self.index, self.size = sample_pair, 0, size
        self.info = SourceInfo(spec, "sample", size[0], size[1], fps, frames, False)

    def read(self) -> Frame | None:
        if self.index >= self.info.frames:
            return None
        ir, vis = self.make(self.index, self.size)
        img = to_uint8(ir if self.which == "ir" else vis)[..., ::-1].copy()
        frame = Frame(img, self.index, self.index / self.info.fps, time.monotonic())
        self.index += 1
        return frame


class Paced(Source):
    """Plays a recorded source at its frame rate, as a camera would deliver it (live-mode tests, demos)."""

    def __init__(self, inner: Source, fps: float | None = None):
        self.inner, self.start = inner, None
        self.info = SourceInfo(**{**inner.info.__dict__, "live": True, "fps": fps or inner.info.fps})

    def read(self) -> Frame | None:
        self.start = self.start or time.monotonic()
        frame = self.inner.read()
        if frame is None:
            return None
        delay = self.start + frame.index / self.info.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        frame.captured = frame.timestamp = time.monotonic()
        return frame

    def close(self) -> None:
        self.inner.close()


def source_kind(spec: str) -> str:
    if spec.startswith("sample:"):
        return "sample"
    if spec.isdigit():
        return "camera"
    if NETWORK.match(spec):
        return "network"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    raise UserError(f"source not found: {spec}; give a camera index, a video file, a URL or a folder of frames")


def open_source(spec: str | int, fps: float | None = None, paced: bool = False, timeout_s: float = 5.0,
                sample_frames: int = 90) -> Source:
    spec = str(spec)
    kind = source_kind(spec)
    if kind == "sample":
        src: Source = SampleSource(spec, sample_frames, fps=fps or 30.0)
    elif kind == "folder":
        src = FolderSource(spec, fps or 25.0)
    else:
        src = VideoSource(spec, kind, timeout_s)
    return Paced(src, fps) if paced and not src.info.live else src
