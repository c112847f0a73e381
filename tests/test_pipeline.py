"""The two-stream pipeline end to end, on files, frame folders, paced sources and a loopback network stream."""
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from defusion_rt.errors import UserError
from defusion_rt.engines.base import Engine
from defusion_rt.model import export_weights
from defusion_rt.pipeline import Pipeline, PipelineSettings, load_pipeline
from defusion_rt.samples import sample_pair
from conftest import ROOT, count_frames, shared


def make_video(path: Path, n: int, which: str = "ir", size=(160, 120), fps=30.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        ir, vis = sample_pair(i, size)
        w.write((255 * (ir if which == "ir" else vis)[..., ::-1]).astype(np.uint8))
    w.release()
    return path


def make_folder(path: Path, n: int, which: str = "vis", size=(160, 120), shift: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = (255 * sample_pair(i, size)[0 if which == "ir" else 1][..., ::-1]).astype(np.uint8)
        if shift:
            img = np.roll(img, shift, axis=1)
        cv2.imwrite(str(path / f"{i + 1:06d}.png"), img)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_model):
    return str(export_weights(tiny_model, tmp_path_factory.mktemp("w") / "tiny.pt"))


def settings(**sections) -> PipelineSettings:
    s = PipelineSettings()
    s.run.progress = False
    for section, values in sections.items():
        for k, v in values.items():
            setattr(getattr(s, section), k, v)
    return s


class SlowEngine(Engine):
    """Stands in for a fusion stage slower than the cameras."""
    name, needs_padding = "slow", False

    def __init__(self, delay: float, fail_at: int | None = None):
        super().__init__(torch.device("cpu"))
        self.delay, self.fail_at, self.calls = delay, fail_at, 0

    def __call__(self, a, b):
        self.calls += 1
        if self.fail_at and self.calls >= self.fail_at:
            raise RuntimeError("engine exploded")
        time.sleep(self.delay)
        return (a + b) / 2


@pytest.mark.data
def test_m3svd_clip_pair_through_the_whole_pipeline(tmp_path):
    clip = shared("ir_vis_video", "M3SVD")
    out = tmp_path / "fused.mp4"
    s = settings(sources=dict(a=str(clip / "ir" / "0111_1716.mp4"), b=str(clip / "vis" / "0111_1716.mp4")),
                 fusion=dict(method="laplacian", batch=4), render=dict(record=str(out), csv=str(tmp_path / "t.csv")))
    summary = Pipeline(s).run()
    assert summary.fused == 151 == summary.frames_a and summary.dropped == 0 and summary.stopped_by == "end of sources"
    assert count_frames(out) == 151
    cap = cv2.VideoCapture(str(out))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 75)
    fused = cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY).astype(float)
    assert fused.shape == (480, 640)
    for src in ("ir", "vis"):
        c = cv2.VideoCapture(str(clip / src / "0111_1716.mp4"))
        c.set(cv2.CAP_PROP_POS_FRAMES, 75)
        assert np.abs(cv2.cvtColor(c.read()[1], cv2.COLOR_BGR2GRAY) - fused).mean() > 3  # not a copy
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 152


def test_network_model_on_a_recorded_folder_pair(tmp_path, weights):
    a, b = make_folder(tmp_path / "ir", 6, "ir"), make_folder(tmp_path / "vis", 6, "vis")
    out = tmp_path / "f.mp4"
    s = settings(sources=dict(a=str(a), b=str(b)), fusion=dict(weights=weights, device="cpu", engine="eager", precision="fp32", batch=4),
                 render=dict(record=str(out), side_by_side=True))
    summary = Pipeline(s).run()
    assert summary.engine == "defusion eager fp32 on cpu"  # model auto: the weight file's architecture
    assert summary.fused == 6 and count_frames(out) == 6
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_WIDTH) == 3 * 160


def test_live_mode_drops_stale_frames_and_stays_bounded(tmp_path):
    s = settings(sources=dict(mode="live", paced=True, sample_frames=60, tolerance_ms=40), fusion=dict(method="average"))
    summary = Pipeline(s, engine=SlowEngine(0.1)).run()  # 10 FPS fusion against 30 FPS sources
    assert summary.stopped_by == "end of sources"
    assert summary.dropped > 20 and 5 <= summary.fused <= 30
    assert summary.max_queue <= 2
    # Fresh frames: a blocking queue would lag ~4 s by the end (60 frames at 30 FPS in, 10 FPS out).
    assert summary.latency_ms["total"]["p95"] < 1500


def with_sources(monkeypatch, change):
    """Sources opened as usual, then `change(index, source)` (a rate, a broken read) before the run uses them."""
    import defusion_rt.capture.stage as stage
    original, opened = stage.open_source, []

    def patched(*args, **kw):
        src = original(*args, **kw)
        change(len(opened), src)
        opened.append(src)
        return src
    monkeypatch.setattr(stage, "open_source", patched)


def test_different_frame_rates_pair_by_nearest_timestamp(tmp_path, monkeypatch):
    a = make_folder(tmp_path / "a", 10, "ir")
    b = make_folder(tmp_path / "b", 20, "vis")
    s = settings(sources=dict(a=str(a), b=str(b), fps=10.0), fusion=dict(method="average"))
    with_sources(monkeypatch, lambda i, src: setattr(src.info, "fps", 20.0) if i == 1 else None)  # B twice A's
    summary = Pipeline(s).run()
    assert summary.fused == 10 and summary.skipped_b >= 9 and summary.dropped == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg; .ci/run does)")
def test_network_streams_served_by_ffmpeg_on_loopback(tmp_path):
    procs, urls = [], []
    for which in ("ir", "vis"):
        clip = make_video(tmp_path / f"{which}.mp4", 150, which)
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        procs.append(subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-i", str(clip), "-c:v", "libx264", "-preset",
                                       "ultrafast", "-tune", "zerolatency", "-g", "10", "-muxdelay", "0", "-flush_packets", "1", "-f", "mpegts", url + "?listen=1"], stdin=subprocess.DEVNULL))
        urls.append(url)
    try:
        time.sleep(1.0)
        s = settings(sources=dict(a=urls[0], b=urls[1], tolerance_ms=200, timeout_s=3, reconnect=False),
                     fusion=dict(method="average"), render=dict(record=str(tmp_path / "net.mp4")))
        summary = Pipeline(s).run()
    finally:
        for p in procs:
            p.kill()
    assert summary.fused >= 20, summary
    assert count_frames(tmp_path / "net.mp4") == summary.fused


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg; .ci/run does)")
def test_a_dropped_network_stream_reconnects(tmp_path):
    clip = make_video(tmp_path / "ir.mp4", 45, "ir")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = ["ffmpeg", "-loglevel", "error", "-re", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-tune",
           "zerolatency", "-g", "10", "-muxdelay", "0", "-flush_packets", "1", "-f", "mpegts", url + "?listen=1"]
    servers = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL)]

    done = threading.Event()

    def restart():  # the camera comes back a moment after each time its stream dies
        while not done.is_set():
            servers[-1].wait()
            time.sleep(0.5)
            if not done.is_set():
                servers.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
    threading.Thread(target=restart, daemon=True).start()
    try:
        time.sleep(1.0)
        s = settings(sources=dict(a=url, b="sample:vis", sample_frames=100000, paced=True, tolerance_ms=200,
                                  timeout_s=1.0), fusion=dict(method="average"), run=dict(max_frames=60))
        summary = Pipeline(s).run()
    finally:
        done.set()
        for p in servers:
            p.kill()
    assert summary.reconnects >= 1, summary
    assert summary.fused == 60 and summary.stopped_by == "max frames"


def test_registration_from_a_calibration_file_crops_to_the_common_view(tmp_path):
    from defusion_rt.register import Registration
    a, b = make_folder(tmp_path / "a", 3, "vis"), make_folder(tmp_path / "b", 3, "vis", shift=-8)
    calib = Registration(np.array([[1, 0, 8], [0, 1, 0], [0, 0, 1.0]]), (160, 120), (160, 120)).save(tmp_path / "c.yaml")
    s = settings(sources=dict(a=str(a), b=str(b)), register=dict(method=str(calib)), fusion=dict(method="average"),
                 render=dict(record=str(tmp_path / "r.mp4"), overlay=False))
    summary = Pipeline(s).run()
    assert summary.fused == 3
    cap = cv2.VideoCapture(str(tmp_path / "r.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (152, 120)
    bad = settings(sources=dict(a=str(make_folder(tmp_path / "big", 2, size=(200, 100))), b=str(b)),
                   register=dict(method=str(calib)), fusion=dict(method="average"))
    assert "recalibrate" in Pipeline(bad).run().message


def _run_cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "defusion_rt", "run", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_is_playable_with_every_fused_frame(tmp_path, sig):
    out = tmp_path / "rec.mp4"
    proc = _run_cli("--method", "average", "--paced", "--record", out, "--csv", tmp_path / "t.csv",
                    "--pipeline", _long_sample(tmp_path))
    deadline = time.time() + 60
    while time.time() < deadline and not ((tmp_path / "t.csv").exists() and
                                          len((tmp_path / "t.csv").read_text().splitlines()) > 15):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    fused = len((tmp_path / "t.csv").read_text().splitlines()) - 1
    assert fused >= 15 and count_frames(out) == fused
    assert "stopped by" in err and "signal" in err


def _long_sample(tmp_path) -> Path:
    p = tmp_path / "long.yaml"
    p.write_text("sources: {sample_frames: 3000}\nrun: {progress: false}\n")
    return p


def _kill_after(proc, log: Path, rows: int) -> None:
    deadline = time.time() + 120  # generous: start-up takes long on a busy machine
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > rows):
        time.sleep(0.2)
    proc.kill()  # no chance to close the file: fragmented MP4 keeps what was written
    proc.communicate(timeout=30)


def test_killed_recording_is_still_playable(tmp_path):
    pytest.importorskip("av")
    out, log = tmp_path / "k.mp4", tmp_path / "t.csv"
    proc = _run_cli("--method", "average", "--paced", "--record", out, "--csv", log, "--pipeline",
                    _long_sample(tmp_path))
    _kill_after(proc, log, 60)  # two seconds of 30 FPS frames fused
    assert count_frames(out) > 10


def test_killed_slow_recording_keeps_its_first_seconds(tmp_path):
    """At 3 frames/s (a CPU running the network) fragments are still cut every second of wall-clock time."""
    pytest.importorskip("av")
    out, log = tmp_path / "slow.mp4", tmp_path / "t.csv"
    slow = tmp_path / "slow.yaml"
    slow.write_text("sources: {sample_frames: 3000, fps: 3}\nrun: {progress: false}\n")
    proc = _run_cli("--method", "average", "--paced", "--record", out, "--csv", log, "--pipeline", slow)
    _kill_after(proc, log, 8)
    assert count_frames(out) >= 1


def test_a_bug_in_a_stage_surfaces_on_the_main_thread_after_the_recording_is_closed(tmp_path):
    s = settings(sources=dict(sample_frames=50), fusion=dict(method="average"), render=dict(record=str(tmp_path / "e.mp4")))
    p = Pipeline(s, engine=SlowEngine(0.0, fail_at=6))
    with pytest.raises(RuntimeError, match="engine exploded") as info:
        p.run()
    assert any(f.name == "__call__" for f in traceback.extract_tb(info.value.__traceback__))  # the worker's frame
    assert count_frames(tmp_path / "e.mp4") == 5 and p.stop.is_set()


def test_a_bug_in_capture_surfaces_on_the_main_thread_too(monkeypatch):
    def break_b(i, src):
        if i == 1:
            read, calls = src.read, []

            def broken():
                calls.append(1)
                if len(calls) > 3:
                    raise ValueError("decoder exploded")
                return read()
            src.read = broken
    with_sources(monkeypatch, break_b)
    p = Pipeline(settings(sources=dict(sample_frames=50), fusion=dict(method="average")))
    with pytest.raises(ValueError, match="decoder exploded") as info:
        p.run()
    assert any(f.name == "broken" for f in traceback.extract_tb(info.value.__traceback__))


def test_a_source_that_ends_early_ends_the_run(tmp_path):
    a, b = make_folder(tmp_path / "a", 12, "ir"), make_folder(tmp_path / "b", 5, "vis")
    summary = Pipeline(settings(sources=dict(a=str(a), b=str(b)), fusion=dict(method="average"),
                                render=dict(record=str(tmp_path / "o.mp4")))).run()
    assert summary.fused == 5 and summary.stopped_by == "end of sources" and count_frames(tmp_path / "o.mp4") == 5


def test_max_frames_beyond_the_length_and_within_it(tmp_path):
    a, b = make_video(tmp_path / "a.mp4", 8, "ir"), make_video(tmp_path / "b.mp4", 8, "vis")
    long = Pipeline(settings(sources=dict(a=str(a), b=str(b)), fusion=dict(method="max"),
                             run=dict(max_frames=1000, progress=False))).run()
    assert long.fused == 8 and long.stopped_by == "end of sources"
    short = Pipeline(settings(sources=dict(a=str(a), b=str(b)), fusion=dict(method="max"),
                              run=dict(max_frames=3, progress=False))).run()
    assert short.fused == 3 and short.stopped_by == "max frames"


def test_changing_frame_size_is_scaled_back(tmp_path):
    a, b = make_folder(tmp_path / "a", 4, "ir"), make_folder(tmp_path / "b", 4, "vis")
    cv2.imwrite(str(b / "000003.png"), np.zeros((60, 80, 3), np.uint8))
    p = Pipeline(settings(sources=dict(a=str(a), b=str(b)), fusion=dict(method="average")))
    assert p.run().fused == 4 and p.stages.register.resized == 1


@pytest.mark.parametrize("args, message", [
    (["--a", "missing.mp4", "--b", "sample:vis"], "source not found"),
    (["--a", "CORRUPT", "--b", "sample:vis"], "corrupt"),
    (["--a", "7", "--b", "sample:vis"], "cannot open camera source 7"),
    (["--record", "/proc/nope/out.mp4"], "cannot write recording"),
    (["--register", "BADCAL"], "does not parse"),
    (["--pipeline", "BADYAML"], "unknown config key 'fusion.metod'"),
    (["--method", "magic"], "'fusion.method' cannot be 'magic'"),
    (["--fov-typo"], "'register.fov' cannot be 'crpo'; did you mean 'crop'?"),
    (["--batch", "0"], "argument --batch: '0' is not an integer of 1 or more"),
    (["--batch", "-3"], "argument --batch: '-3' is not an integer of 1 or more"),
    (["--csv", "/proc/nope/t.csv"], "cannot write timing log (--csv) /proc/nope/t.csv"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    (tmp_path / "cal.yaml").write_text("matrix: [1, 2]\nsize_a: [1, 1]\n")
    (tmp_path / "p.yaml").write_text("fusion:\n  metod: average\n")
    (tmp_path / "fov.yaml").write_text("register:\n  fov: crpo\n")
    args = [str(tmp_path / "corrupt.mp4") if a == "CORRUPT" else str(tmp_path / "cal.yaml") if a == "BADCAL" else
            str(tmp_path / "p.yaml") if a == "BADYAML" else a for a in args]
    args = ["--pipeline", str(tmp_path / "fov.yaml")] if args == ["--fov-typo"] else args
    proc = _run_cli("--method", "average", "--max-frames", "3", *args, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "pipelines").glob("*.yaml")
                                         if "pairs:" not in p.read_text()))  # those: test_multi.py
def test_every_shipped_pipeline_runs_on_stand_in_sources(tmp_path, name, weights):
    s = load_pipeline(ROOT / "pipelines" / name)
    a = make_folder(tmp_path / "a", 5, "vis")
    b = make_folder(tmp_path / "b", 5, "vis", shift=3)  # same modality, shifted: auto registration can lock on
    s.sources.a, s.sources.b = str(a), str(b)
    s.sources.paced = s.sources.mode == "live"          # folders standing in for cameras deliver in real time
    s.sources.tolerance_ms = 1000
    if s.register.method not in ("none", "auto", "features"):
        from defusion_rt.register import Registration
        s.register.method = str(Registration(np.eye(3), (160, 120), (160, 120)).save(tmp_path / "cal.yaml"))
    # Eager fp32: the shipped files default to a compiled engine, whose minutes-long builds test_engines covers.
    s.fusion.weights, s.fusion.device, s.fusion.engine, s.fusion.precision = weights, "cpu", "eager", "fp32"
    s.render.display = False
    s.render.record = str(tmp_path / "out.mp4") if s.render.record else ""
    s.render.csv = str(tmp_path / "t.csv") if s.render.csv else ""
    s.run.max_frames, s.run.progress = 3, False
    p = Pipeline(s)
    summary = p.run()
    assert summary.stopped_by in ("max frames", "end of sources"), summary.message
    # Recorded pipelines fuse exactly max_frames; live ones (folders played at 25 FPS) may drop one to a busy CPU.
    assert summary.fused == 3 if s.sources.mode != "live" else 2 <= summary.fused <= 3
    w, h = p.stages.register.registration.output_size
    width = 3 * w if s.render.side_by_side else w
    if s.render.record:
        cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (width + width % 2, h + h % 2)
        assert count_frames(tmp_path / "out.mp4") == summary.fused
    if s.render.csv:
        rows = (tmp_path / "t.csv").read_text().splitlines()
        assert len(rows) == summary.fused + 1 and rows[0].startswith("frame,index_a")


def _explode_after(calls: int, what: str):
    count = []

    def boom(self, *args, **kw):
        count.append(1)
        if len(count) > calls:
            raise RuntimeError(f"{what} exploded")
        return boom.original(self, *args, **kw)
    return boom


@pytest.mark.parametrize("stage, target", [
    ("capture", "defusion_rt.capture.sources.SampleSource.read"),
    ("register", "defusion_rt.register.registration.Registration.align"),
    ("fusion", "defusion_rt.engines.classical.AverageEngine.__call__"),
    ("render", "defusion_rt.render.overlay.StatsOverlay.annotate"),
])
def test_a_bug_in_any_stage_reaches_the_command_line_with_its_traceback(tmp_path, monkeypatch, stage, target):
    import importlib
    from defusion_rt.cli import main
    module, _, attr = target.rpartition(".")
    owner_module, _, cls_name = module.rpartition(".")
    cls = getattr(importlib.import_module(owner_module), cls_name)
    boom = _explode_after(4, stage)
    boom.original = getattr(cls, attr)
    monkeypatch.setattr(cls, attr, boom)
    out = tmp_path / "bug.mp4"
    with pytest.raises(RuntimeError, match=f"{stage} exploded") as info:  # not a one-line "error": a traceback
        main(["run", "--method", "average", "--record", str(out)])
    assert any(f.name == "boom" for f in traceback.extract_tb(info.value.__traceback__))
    assert not [t for t in threading.enumerate() if t.name == "fusion" or t.name.startswith("capture")]
    fused = count_frames(out) if out.exists() else 0
    assert fused <= 4 and (fused > 0 or not out.exists())  # what was fused is kept, and nothing else is written


def test_a_run_that_fuses_nothing_leaves_no_video_file(tmp_path):
    out = tmp_path / "none.mp4"
    s = settings(sources=dict(sample_frames=20), render=dict(record=str(out)))
    with pytest.raises(RuntimeError, match="engine exploded"):
        Pipeline(s, engine=SlowEngine(0.0, fail_at=1)).run()
    assert not out.exists()


def test_a_truncated_file_is_reported_in_the_summary(tmp_path):
    path = tmp_path / "t.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(30):
        w.write((255 * sample_pair(i, (160, 120))[0][..., ::-1]).astype(np.uint8))
    w.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still says 30 frames
    summary = Pipeline(settings(sources=dict(a=str(path), b=str(path)), fusion=dict(method="average"))).run()
    assert 0 < summary.fused < 30 and summary.stopped_by == "end of sources"
    assert len(summary.notes) == 2 and f"ended after {summary.fused} of 30 frames" in summary.notes[0]


def test_warm_up_and_fusion_call_the_engine_on_one_thread(tmp_path):
    """torch keeps CUDA graphs per thread: a warm-up on another thread than the fusion loop's would have the
    graphs captured again on the first live frames. Here every engine call, warm-up included, is on one thread,
    and it is not the main thread."""
    class Prepared(SlowEngine):
        def __init__(self):
            super().__init__(0.0)
            self.threads = []

        def prepare(self, shape):  # a built engine: the stage warms it up before capture
            pass

        def __call__(self, a, b):
            self.threads.append(("call", threading.get_ident()))
            return super().__call__(a, b)
    engine = Prepared()
    s = settings(sources=dict(sample_frames=8), fusion=dict(method="average"), render=dict(record=str(tmp_path / "o.mp4")))
    summary = Pipeline(s, engine=engine).run()
    assert summary.fused == 8 and count_frames(tmp_path / "o.mp4") == 8
    warm = [t for kind, t in engine.threads[:3]]  # the warm-up's three calls come first
    assert len(engine.threads) >= 8 + 3 and len(set(t for _, t in engine.threads)) == 1
    assert warm[0] != threading.get_ident()


def test_an_engine_that_fails_to_build_stops_the_run_with_its_error(tmp_path):
    class Unbuildable(SlowEngine):
        def prepare(self, shape):
            pass

        def __call__(self, a, b):  # a built engine builds on its first call (the warm-up's)
            raise UserError("cannot build this engine; use another --engine")
    s = settings(sources=dict(sample_frames=8), fusion=dict(method="average"))
    with pytest.raises(UserError, match="cannot build this engine"):
        Pipeline(s, engine=Unbuildable(0.0)).run()
    assert not [t for t in threading.enumerate() if t.name == "fusion"]  # no engine thread left behind


def test_live_render_slower_than_fusion_drops_fused_frames_not_fusion_speed():
    """Live: a render stage that falls behind (a stalled window, a slow encoder) loses its oldest fused frames,
    counted, and fusion goes on at the cameras' pace; a recorded source waits for the render (nothing lost).
    The first render stalls until both sources have been read to the end: no timing involved."""
    import defusion_rt.render.stage as render_stage
    original = render_stage.RenderStage.__call__
    pipelines = []

    def stalled_render(self, item, stats):
        if self.frames == 0 and len(pipelines) == 1:  # the live run only
            deadline = time.monotonic() + 60
            while min(pipelines[-1].stages.capture.frames_read) < 60 and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(self, item, stats)
    mp = pytest.MonkeyPatch()
    mp.setattr(render_stage.RenderStage, "__call__", stalled_render)
    try:
        pipelines.append(Pipeline(settings(sources=dict(mode="live", paced=True, sample_frames=60),
                                           fusion=dict(method="average"))))
        summary = pipelines[-1].run()
        assert summary.dropped_by_render >= 10 and summary.fused <= 60 - 10
        pipelines.append(Pipeline(settings(sources=dict(sample_frames=60), fusion=dict(method="average"))))
        summary = pipelines[-1].run()
        assert summary.dropped_by_render == 0 and summary.fused == 60
    finally:
        mp.undo()


def test_a_paced_file_that_ends_ends_the_live_run_without_waiting_for_the_watchdog(tmp_path):
    """A file played at its frame rate is live for pairing, but its end is an end: no camera-style retries for the
    stall timeout (60 s here) after its last frame."""
    a, b = make_video(tmp_path / "a.mp4", 10, "ir"), make_video(tmp_path / "b.mp4", 10, "vis")
    s = settings(sources=dict(a=str(a), b=str(b), paced=True, mode="live", timeout_s=60.0),
                 fusion=dict(method="average"))
    summary = Pipeline(s).run()
    assert summary.stopped_by == "end of sources" and summary.fused >= 1
    assert summary.seconds < 30  # the watchdog's wait would be 60 s
