"""Network output: `--record udp://...` and `tcp://...` received on 127.0.0.1 and counted; a receiver that goes
away does not stop the pipeline."""
import threading
import time

import pytest

from defusion_rt.pipeline import Pipeline
from test_pipeline import settings

av = pytest.importorskip("av", reason="network output needs PyAV (pip install av)")


def free_port(kind: str) -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receive(url: str, result: dict, options: dict, stop_after: int | None = None) -> None:
    """Decode the MPEG-TS stream at url, counting frames, until it ends, times out or stop_after frames."""
    count, size = 0, None
    try:
        with av.open(url, format="mpegts", options=options) as c:
            for frame in c.decode(video=0):
                count, size = count + 1, (frame.width, frame.height)
                if stop_after and count >= stop_after:
                    break
    except av.FFmpegError:
        pass  # the sender stopped: a read timeout ends the stream
    result.update(frames=count, size=size)


def send(url: str, listen_url: str, frames: int, options: dict, stop_after: int | None = None):
    """A receiver on listen_url first, then a run recording to url; returns the run's summary and what arrived."""
    got = {}
    rx = threading.Thread(target=receive, args=(listen_url, got, options), kwargs=dict(stop_after=stop_after))
    rx.start()
    time.sleep(0.5)
    s = settings(sources=dict(sample_frames=frames, paced=True, mode="recorded"), fusion=dict(method="average"),
                 render=dict(record=url))
    summary = Pipeline(s).run()
    rx.join(60)
    return summary, got


def test_udp_output_is_received_frame_by_frame(tmp_path):
    url = f"udp://127.0.0.1:{free_port('udp')}"
    summary, got = send(url, url, 60, {"timeout": "4000000"})
    assert summary.fused == 60 and summary.codec.startswith("H.264 in MPEG-TS") and not summary.notes
    assert got["size"] == (320, 240) and got["frames"] >= 54  # UDP may lose a packet; loopback rarely does


def test_a_tcp_receiver_that_goes_away_does_not_stop_the_run(tmp_path):
    url = f"tcp://127.0.0.1:{free_port('tcp')}"
    summary, got = send(url, url + "?listen=1", 150, {}, stop_after=10)
    assert got["frames"] == 10
    assert summary.fused == 150 and summary.stopped_by == "end of sources"
    assert summary.notes and "not sent while the receiver was away" in summary.notes[-1]


def test_a_receiver_not_up_yet_costs_frames_not_the_run(tmp_path):
    port = free_port("tcp")  # nobody listens there (yet): the sink keeps retrying with back-off
    s = settings(sources=dict(sample_frames=20), fusion=dict(method="average"),
                 render=dict(record=f"tcp://127.0.0.1:{port}"))
    summary = Pipeline(s).run()
    assert summary.fused == 20 and summary.stopped_by == "end of sources"
    assert f"network output tcp://127.0.0.1:{port}: 20 frame(s) not sent" in summary.notes[-1]


@pytest.mark.parametrize("url, message", [("udp://nohost:x", "needs a host and a port"),
                                          ("tcp://no-such-host.invalid:5000", "unknown host")])
def test_a_malformed_network_output_is_one_line_before_anything_opens(url, message):
    from defusion_rt.errors import UserError
    s = settings(sources=dict(sample_frames=5), fusion=dict(method="average"), render=dict(record=url))
    with pytest.raises(UserError, match=message):
        Pipeline(s).run()
