"""`run --serve`: the live view in a browser, as HTTP clients see it: the MJPEG stream, the statistics, the token,
several viewers, and a stalled viewer that must not slow the run."""
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from defusion_rt.errors import UserError
from defusion_rt.pipeline import Pipeline
from defusion_rt.render.serve import LiveView, parse_address
from test_pipeline import count_frames, settings


def read_jpegs(url: str, n: int, timeout: float = 60) -> list[np.ndarray]:
    """The first n JPEG frames of a multipart MJPEG stream, decoded."""
    frames, buf = [], b""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(frames) < n:
            buf += r.read1(65536)
            start, end = buf.find(b"\xff\xd8"), buf.find(b"\xff\xd9")
            while start >= 0 and end > start:
                frames.append(cv2.imdecode(np.frombuffer(buf[start:end + 2], np.uint8), cv2.IMREAD_COLOR))
                buf = buf[end + 2:]
                start, end = buf.find(b"\xff\xd8"), buf.find(b"\xff\xd9")
    return frames


def running(tmp_path, **render):
    """A paced sample run with a live view, on a thread; returns (pipeline, thread, base URL)."""
    s = settings(sources=dict(paced=True, sample_frames=240), fusion=dict(method="average"),
                 render=dict(serve="127.0.0.1:0", **render))
    p = Pipeline(s)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("summary", p.run()), daemon=True)
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not (p.stages and p.stages.render.live):
        time.sleep(0.05)
    live = p.stages.render.live
    return p, t, result, f"http://127.0.0.1:{live.port}"


def test_two_viewers_see_moving_frames_and_the_statistics(tmp_path):
    p, t, result, base = running(tmp_path)
    got = {}
    viewers = [threading.Thread(target=lambda k=k, v=v: got.__setitem__(k, read_jpegs(f"{base}/stream.mjpg?view={v}", 8)))
               for k, v in (("fused", "fused"), ("sbs", "sbs"))]
    for v in viewers:
        v.start()
    for v in viewers:
        v.join(60)
    stats = json.loads(urllib.request.urlopen(f"{base}/stats.json", timeout=10).read())
    page = urllib.request.urlopen(f"{base}/", timeout=10).read().decode()
    p.stop.set()
    t.join(60)
    assert got["fused"][0].shape == (240, 320, 3) and got["sbs"][0].shape == (240, 960, 3)
    assert np.abs(got["fused"][0].astype(int) - got["fused"][-1]).mean() > 1  # the video moves
    assert stats["fps"] > 0 and stats["engine"].startswith("average") and "latency_ms" in stats
    assert "stream.mjpg" in page and "stats.json" in page
    assert result["summary"].fused >= 8


def test_a_stalled_viewer_does_not_slow_the_run_and_the_token_is_checked(tmp_path):
    s = settings(sources=dict(sample_frames=400), fusion=dict(method="average"),
                 render=dict(serve="127.0.0.1:0", serve_token="s3cret", record=str(tmp_path / "rec.mp4")))
    p = Pipeline(s)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("summary", p.run()), daemon=True)
    t.start()
    while not (p.stages and p.stages.render.live):
        time.sleep(0.02)
    port = p.stages.render.live.port
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=10)
    assert info.value.code == 403
    stalled = socket.create_connection(("127.0.0.1", port))  # asks for the stream, then never reads it
    stalled.sendall(b"GET /stream.mjpg?token=s3cret HTTP/1.1\r\nHost: x\r\n\r\n")
    t.join(120)
    assert not t.is_alive() and result["summary"].fused == 400  # every frame, not held back by the viewer
    assert count_frames(tmp_path / "rec.mp4") == 400           # and recorded while served
    stalled.close()


def test_serve_addresses():
    assert parse_address("8090") == ("127.0.0.1", 8090) and parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("localhost", "99999"):
        with pytest.raises(UserError, match=r"\[HOST:\]PORT"):
            parse_address(bad)
    taken = LiveView("127.0.0.1:0")
    try:
        with pytest.raises(UserError, match="choose another"):
            LiveView(f"127.0.0.1:{taken.port}")
    finally:
        taken.close()
