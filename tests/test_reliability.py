"""Nothing lost whatever goes wrong: several outputs at once, a recording whose disk fills up, a source away for
longer than the stall timeout while it reconnects, every thread's error kept."""
import os
import threading
import time

import numpy as np
import pytest

from defusion_rt.capture.pairing import LivePairer
from defusion_rt.capture.queues import END, FrameQueue
from defusion_rt.capture.sources import Frame
from defusion_rt.errors import UserError
from defusion_rt.pipeline import Pipeline
from defusion_rt.render import fragments, sink as sink_module
from test_pipeline import count_frames, settings, with_sources


def test_a_file_and_a_second_file_are_both_complete(tmp_path):
    outs = [str(tmp_path / "a.mp4"), str(tmp_path / "b.avi")]
    summary = Pipeline(settings(sources=dict(sample_frames=12), fusion=dict(method="average"),
                                render=dict(record=outs))).run()
    assert summary.fused == 12 and [count_frames(o) for o in outs] == [12, 12]
    assert summary.record == ", ".join(outs)


def _disk_fills_after(monkeypatch, frames: int, path_part: str):
    """The recording whose file name contains `path_part` fails its write after `frames` frames, as a full disk does."""
    real = sink_module.VideoSink.write

    def write(self, frame):
        if path_part in self.path.name and self.frames >= frames:
            raise UserError(f"recording {self.path} stopped after {self.frames} frames: No space left on device")
        real(self, frame)
    monkeypatch.setattr(sink_module.VideoSink, "write", write)


def test_a_full_disk_stops_that_recording_and_the_other_outputs_go_on(tmp_path, monkeypatch):
    _disk_fills_after(monkeypatch, 5, "full")
    outs = [str(tmp_path / "full.mp4"), str(tmp_path / "other.mp4")]
    summary = Pipeline(settings(sources=dict(sample_frames=15), fusion=dict(method="average"),
                                render=dict(record=outs))).run()
    assert summary.fused == 15 and summary.stopped_by == "end of sources"
    assert count_frames(outs[0]) == 5 and count_frames(outs[1]) == 15  # playable, every frame written so far
    assert any("No space left on device" in n for n in summary.notes)


def test_a_full_disk_on_the_only_output_stops_the_run_with_one_line(tmp_path, monkeypatch):
    _disk_fills_after(monkeypatch, 4, "only")
    out = str(tmp_path / "only.mp4")
    summary = Pipeline(settings(sources=dict(sample_frames=30), fusion=dict(method="average"),
                                render=dict(record=out))).run()
    assert summary.stopped_by == "error" and "No space left on device" in summary.message
    assert count_frames(out) == 4


@pytest.mark.parametrize("free_bytes", range(1500, 16000, 1111))
def test_a_disk_that_fills_mid_write_leaves_every_whole_fragment_playable(tmp_path, monkeypatch, free_bytes):
    """The real disk's way: a write cut short at any byte, then ENOSPC. FFmpeg's reader drops the whole file when
    it ends inside a fragment's header, so the recording must end on a whole fragment (render/fragments.py)."""
    pytest.importorskip("av")
    left, real = [free_bytes], os.write

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(28, "No space left on device")
        n = real(fd, bytes(data[:left[0]]))
        left[0] -= n
        return n
    monkeypatch.setattr(fragments.os, "write", write)
    rng, out, written = np.random.default_rng(0), tmp_path / "cut.mp4", 0
    with pytest.raises(UserError, match="No space left on device"):
        with sink_module.VideoSink(out, 30, (64, 48)) as sink:
            sink.fragment_s = 0  # a fragment per frame: many places for the cut to land
            for _ in range(100):
                sink.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
                written += 1
    # Every frame but the last one written, which the muxer holds until the next keyframe closes its fragment.
    assert written >= 1 and count_frames(out) == written - 1


def _frame(i: int, t: float) -> Frame:
    return Frame(None, i, t, time.monotonic())


def test_live_pairing_waits_while_a_source_reconnects():
    qa, qb = FrameQueue(2, "drop_oldest"), FrameQueue(2, "drop_oldest")
    back = threading.Event()
    pairer = LivePairer(qa, qb, tolerance_s=0.5, timeout=0.1, reconnecting=lambda: not back.is_set())
    qa.put(_frame(0, 10.0))

    def camera_returns():  # B is away for many pairing timeouts, then comes back
        time.sleep(1.0)
        qb.put(_frame(0, 10.1))
        back.set()
    threading.Thread(target=camera_returns, daemon=True).start()
    fa, fb = pairer.next_pair()
    assert (fa.index, fb.index) == (0, 0)
    with pytest.raises(TimeoutError):  # nobody reconnecting: a stall is a stall
        pairer.next_pair()
    qa.put(END)
    assert pairer.next_pair() is None


def test_every_thread_error_is_kept(tmp_path, monkeypatch, capsys):
    """Both capture threads hit a bug: one is raised with its traceback, the other printed, none dropped."""
    class Broken(Exception):
        pass

    def change(i, src):
        def read():
            raise Broken(f"capture bug in source {'AB'[i]}")
        src.read = read
    with_sources(monkeypatch, change)
    with pytest.raises(Broken, match="capture bug in source") as raised:
        Pipeline(settings(sources=dict(sample_frames=10), fusion=dict(method="average"))).run()
    other = "B" if str(raised.value).endswith("A") else "A"
    err = capsys.readouterr().err
    assert "another thread failed too" in err and f"capture bug in source {other}" in err


def test_the_engine_message_says_built_or_loaded(tmp_path, monkeypatch, tiny_model):
    """A cached engine is loaded, not built again, and the run says which."""
    import io

    from rich.console import Console

    from defusion_rt.model import export_weights
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path / "cache"))
    weights = str(export_weights(tiny_model, tmp_path / "w.pt"))
    said = []
    for _ in range(2):
        text = io.StringIO()
        s = settings(sources=dict(sample_frames=2), fusion=dict(weights=weights, engine="torchscript",
                                                                 precision="fp32", device="cpu"))
        assert Pipeline(s, console=Console(file=text, width=200)).run().fused == 2
        said.append(text.getvalue())
    assert "engine built and cached on disk" in said[0] and "loaded from the disk cache" in said[1]
