"""Several camera pairs through one engine (pipeline/multi.py): every frame of every pair, results routed to their
own pair, a stalled or broken pair stopping alone, and the batched engine calls of the CUDA path."""
import threading
import traceback
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from defusion_rt.capture import END, Frame, FrameQueue
from defusion_rt.cli import main
from defusion_rt.errors import UserError
from defusion_rt.fusion import FusionSettings, FusionStage
from defusion_rt.model import export_weights
from defusion_rt.pipeline import MultiPipeline, load_multi
from defusion_rt.pipeline.multi import Muxer
from conftest import ROOT, count_frames


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_model):
    return str(export_weights(tiny_model, tmp_path_factory.mktemp("w") / "tiny.pt"))


def write(tmp_path, text: str) -> str:
    path = tmp_path / "multi.yaml"
    path.write_text(text)
    return str(path)


def two_pairs(tmp_path, weights, frames=(30, 20), extra="") -> str:
    pairs = "".join(f"""
  - name: p{i}
    sources: {{a: "sample:ir", b: "sample:vis", sample_frames: {n}}}
    render: {{record: "{tmp_path / f'p{i}.mp4'}", csv: "{tmp_path / f'p{i}.csv'}"}}""" for i, n in enumerate(frames))
    return write(tmp_path, f"""
fusion: {{task: ir-vis, weights: "{weights}", device: cpu, engine: eager, precision: fp32}}
run: {{progress: false}}
pairs:{pairs}
{extra}""")


def test_two_pairs_fuse_every_frame_of_both_into_two_complete_recordings(tmp_path, weights):
    summary = MultiPipeline(load_multi(two_pairs(tmp_path, weights))).run()
    by_name = dict(summary.pairs)
    for name, n in (("p0", 30), ("p1", 20)):  # the shorter pair ends first; the other goes on to its end
        sm = by_name[name]
        assert (sm.fused, sm.dropped, sm.stopped_by) == (n, 0, "end of sources")
        assert count_frames(tmp_path / f"{name}.mp4") == n
        rows = (tmp_path / f"{name}.csv").read_text().splitlines()[1:]
        assert [int(r.split(",")[1]) for r in rows] == list(range(n))  # index_a: every frame, in order
    assert summary.fused == 50 and summary.mean_batch == 1.0  # the CPU fuses one pair per call


def test_each_pair_gets_its_own_frames_and_cuda_batches_the_ready_pairs():
    """The muxer on prepared queues (no threads, no timing): three pairs, two of one size and one of another,
    with the CUDA branch's batching on: one call per size per tick, short batches padded to the pairs of that
    size, and every result back with its own pair, in order."""
    fusion = FusionStage(FusionSettings(method="average", device="cpu"))
    stop = threading.Event()
    values = {0: (40, 80), 1: (100, 200), 2: (10, 250)}  # each pair's two constant sources
    shapes = {0: (48, 64), 1: (48, 64), 2: (32, 40)}
    pairs = []
    for i, (va, vb) in values.items():
        ready = FrameQueue(8, "block", stop)
        for k in range(3 if i != 1 else 2):  # pair 1 has a frame fewer: its last tick's batch is short
            fa = Frame(np.full((*shapes[i], 3), va, np.uint8), k, k / 30, 0.0)
            fb = Frame(np.full((*shapes[i], 3), vb, np.uint8), k, k / 30, 0.0)
            ready.put(((fa, fb), fa.image, fb.image, 0.001))
        ready.put(END)
        pairs.append(SimpleNamespace(ready=ready, out=FrameQueue(8, "block", stop), steady=None))
    from collections import Counter
    mux = Muxer(fusion, pairs, Counter({(64, 48): 2, (40, 32): 1}), threading.Event(), threading.Event())
    mux.cuda = True
    mux.run(stop)
    assert mux.error is None
    assert (mux.calls, mux.batched, mux.fused) == (6, 8, 8)  # ticks of 2+1, 2+1, 1+1 pairs
    for i, p in enumerate(pairs):
        frames = []
        while (item := p.out.get_nowait()) not in (None, END):
            frames.append(item)
        assert [f.index_a for f in frames] == list(range(3 if i != 1 else 2))
        assert all(f.image.shape[:2] == shapes[i] for f in frames)
        assert all(abs(float(f.image.mean()) - sum(values[i]) / 2) <= 1 for f in frames)
    assert mux.streamed[(48, 64)].shape[0] == 2  # the short tick was padded to the built batch, not rebuilt


def test_a_stalled_pair_stops_alone_and_keeps_its_frames(tmp_path, weights, monkeypatch):
    from defusion_rt.capture import CaptureStage
    original, calls = CaptureStage.next_pair, {}

    def stalls_after_4(self):
        if self.s.sample_frames == 31:  # the pair standing in for a camera that stops sending
            calls[id(self)] = calls.get(id(self), 0) + 1
            if calls[id(self)] > 4:
                raise TimeoutError
        return original(self)
    monkeypatch.setattr(CaptureStage, "next_pair", stalls_after_4)
    summary = MultiPipeline(load_multi(two_pairs(tmp_path, weights, frames=(31, 25)))).run()
    bad, good = dict(summary.pairs)["p0"], dict(summary.pairs)["p1"]
    assert bad.stopped_by == "error" and "stalled" in bad.message
    assert bad.fused == 4 and count_frames(tmp_path / "p0.mp4") == 4
    assert (good.fused, good.stopped_by) == (25, "end of sources") and count_frames(tmp_path / "p1.mp4") == 25


def test_a_bug_in_one_pair_surfaces_on_the_main_thread_with_every_recording_closed(tmp_path, weights, monkeypatch):
    from defusion_rt.register import RegisterStage
    original, count = RegisterStage.__call__, []

    def boom(self, a, b):
        count.append(1)
        if len(count) > 6:
            raise RuntimeError("register exploded")
        return original(self, a, b)
    monkeypatch.setattr(RegisterStage, "__call__", boom)
    with pytest.raises(RuntimeError, match="register exploded") as info:
        MultiPipeline(load_multi(two_pairs(tmp_path, weights))).run()
    assert any(f.name == "boom" for f in traceback.extract_tb(info.value.__traceback__))
    assert not [t for t in threading.enumerate() if t.name == "fusion" or t.name.startswith(("feed", "capture"))]
    for name in ("p0", "p1"):
        path = tmp_path / f"{name}.mp4"
        assert not path.exists() or count_frames(path) <= 6  # playable, nothing invented


def test_the_shipped_two_pairs_file_runs(tmp_path, weights, monkeypatch):
    monkeypatch.chdir(tmp_path)  # its recordings are relative paths
    s = load_multi(str(ROOT / "pipelines" / "two_pairs.yaml"),
                   {"fusion": dict(weights=weights, device="cpu", engine="eager", precision="fp32"),
                    "run": dict(max_frames=5, progress=False)})
    for p in s.pairs:
        p.render.serve = ""  # no port taken in the test
    summary = MultiPipeline(s).run()
    assert [(n, sm.fused, sm.stopped_by) for n, sm in summary.pairs] == [("gate", 5, "max frames"),
                                                                         ("yard", 5, "max frames")]
    assert count_frames(tmp_path / "gate_fused.mp4") == 5 and count_frames(tmp_path / "yard_fused.mp4") == 5


@pytest.mark.parametrize("text, flags, message", [
    ("pairs: 3\n", [], "must be a list of pairs"),
    ("pairs:\n  - {sources: {aa: x}}\n", [], "unknown config key 'pairs[0].sources.aa'; did you mean"),
    ("pairs:\n  - {render: {record: same.mp4}}\n  - {render: {record: same.mp4}}\n", [],
     "pairs pair1 and pair2 both use same.mp4"),
    ("pairs:\n  - {name: 'a b'}\n", [], "may hold only letters"),
    ("pairs:\n  - {name: x}\n", ["--record", "o.mp4"], "set --record per pair in the file"),
])
def test_a_bad_pairs_file_is_one_line(tmp_path, capsys, text, flags, message):
    assert main(["run", "--pipeline", write(tmp_path, text), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_pairs_file_given_where_one_pair_is_expected_says_so(tmp_path):
    from defusion_rt.pipeline import load_pipeline
    with pytest.raises(UserError, match="lists several pairs"):
        load_pipeline(write(tmp_path, "pairs:\n  - {name: x}\n"))
