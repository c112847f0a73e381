"""Network output: `--record udp://HOST:PORT`, `tcp://HOST:PORT` (MPEG-TS) or `rtsp://SERVER/PATH` (publishing to
an RTSP server such as MediaMTX), H.264 through PyAV, so VLC, ffplay, GStreamer or a video-management system can
take the fused stream.

A receiver that goes away never stops the pipeline: the write fails, frames are dropped (counted) while the
sink reopens with exponential back-off, and the stream picks up again at a keyframe once the receiver is back.
"""
from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlparse
from fractions import Fraction

import cv2
import numpy as np

from ..errors import UserError

URL = re.compile(r"^(udp|tcp|rtsp|srt)://", re.I)


def is_stream_url(target: str) -> bool:
    return bool(URL.match(str(target)))


def check_stream_url(url: str) -> None:
    """A malformed address or an unknown host is the user's to fix now; a receiver not up yet is retried later."""
    parts = urlparse(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise UserError(f"network output {url} needs a host and a port, e.g. udp://192.168.1.20:5000")
    try:
        socket.getaddrinfo(parts.hostname, port)
    except OSError:
        raise UserError(f"network output {url}: unknown host '{parts.hostname}'; check the address") from None


class StreamSink:
    def __init__(self, url: str, fps: float, size: tuple[int, int], preset: str = "superfast",
                 backoff: tuple[float, float] = (0.5, 8.0)):
        self.url, self.fps, self.preset, self.backoff = url, float(fps), preset, backoff
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self.frames = self.dropped = self.reconnects = 0
        self.used = "H.264 in " + ("RTSP" if url.lower().startswith("rtsp") else "MPEG-TS") + " (PyAV)"
        self._out, self._reopened = None, False
        self._retry_at, self._delay = 0.0, backoff[0]
        self._last_key = 0.0

    def __enter__(self) -> "StreamSink":
        try:
            import av
        except ImportError:
            raise UserError("network output needs PyAV: pip install av") from None
        try:  # a first failure is the user's to fix (a wrong address); later ones are retried
            self._open()
        except (OSError, av.FFmpegError) as err:
            raise UserError(f"cannot send the stream to {self.url}: {err}; check the address and that the "
                            "receiver or RTSP server is up (tcp:// needs a listener)") from None
        return self

    def _open(self) -> None:
        import av
        rtsp = self.url.lower().startswith("rtsp")
        self._out = av.open(self.url, "w", format="rtsp" if rtsp else "mpegts",
                            options={"rtsp_transport": "tcp"} if rtsp else {})
        stream = self._out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": self.preset, "tune": "zerolatency", "crf": "23"}
        stream.codec_context.gop_size = max(1, round(self.fps))  # a receiver joining late waits at most a second
        self._stream = stream
        self._last_key = 0.0

    def write(self, frame: np.ndarray) -> None:
        import av
        if self._out is None:
            if time.monotonic() < self._retry_at:
                self.dropped += 1
                return
            try:
                self._open()
                self._reopened = True  # counted once a packet gets through: a refused connect may only show then
            except (OSError, av.FFmpegError):
                self._give_up_for_now()
                self.dropped += 1
                return
        if frame.shape[1::-1] != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self.size[1] - frame.shape[0], 0, self.size[0] - frame.shape[1],
                                       cv2.BORDER_REPLICATE)
        vf = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        packets = self._stream.encode(vf)  # outside the try: an encoder error is a bug, not a receiver gone
        try:
            for packet in packets:
                self._out.mux(packet)
            self.frames += 1
            if self._reopened:
                self.reconnects, self._reopened, self._delay = self.reconnects + 1, False, self.backoff[0]
        except (OSError, av.FFmpegError):  # the receiver went away
            self._close()
            self._give_up_for_now()
            self.dropped += 1

    def _give_up_for_now(self) -> None:
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(2 * self._delay, self.backoff[1])

    def _close(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except (OSError, ValueError):
                pass  # the connection is already gone: nothing left to flush

    def __exit__(self, *exc) -> None:
        if self._out is not None:
            try:
                for packet in self._stream.encode():
                    self._out.mux(packet)
            except (OSError, ValueError):
                pass
            self._close()
