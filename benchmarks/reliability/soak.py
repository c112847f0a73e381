"""The soak: one live run for an hour on this machine, with the faults a rig meets injected on a schedule.

    python benchmarks/reliability/soak.py --minutes 60 --json benchmarks/reliability/soak_amd-epyc-2c.json

The run (`defusion-rt run`, the real-time network, `auto` engine): two cameras stood in for by FFmpeg serving a
looping clip each over TCP at its 30 FPS, registration `auto` re-estimated every 30 s, the live view (`--serve`)
with viewers coming and going, a recording on a small tmpfs, the fused stream sent to a TCP receiver, and a timing
CSV. Every --sample-s seconds it records the process's RSS, threads and open files, queue depths, latency p50/p95
of the frames since the last sample (from the timing CSV), drops per stream and frames fused. Faults, at fractions
of the run (so a 2-minute test version keeps the order): camera A gone for --outage-s then back (reconnect), a
viewer that stalls (connects and stops reading), the network receiver gone for --outage-s then back, the recording
disk filled up (the recording must stop playable while the run goes on), and SIGTERM at the end.

The verdicts (RSS and p95 flat within 10% from minute 5 to the end, no drops outside the fault windows, every
fault survived, a playable recording) are computed here and saved with the samples; tests/test_soak.py runs a
2-minute version with the same checks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.samples import sample_pair  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "ir_vis_video" / "M3SVD"
FAULTS = {"source_a_gone": 0.25, "viewer_stalls": 0.40, "receiver_gone": 0.55, "disk_full": 0.80}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(path: Path, which: int, size=(640, 480), frames: int = 150) -> Path:
    """The built-in scene as a 5-second clip (where the shared data are absent)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for k in range(frames):
        w.write((255 * sample_pair(k, size)[which][..., ::-1]).astype(np.uint8))
    w.release()
    return path


def h264(clip: Path, out: Path, size: str) -> Path:
    """The clip as H.264 at `size` with a keyframe a second, made once: served with `-c copy` (no encoder
    running), it carries its headers in-band in MPEG-TS and a reconnecting client decodes within a second."""
    scale = ["-vf", f"scale={size.replace('x', ':')}"] if size else []
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), *scale, "-c:v", "libx264", "-preset",
                    "veryfast", "-crf", "18", "-g", "30", "-pix_fmt", "yuv420p", "-an", str(out)], check=True)
    return out


class Camera:
    """FFmpeg serving a clip in a loop over TCP at its own rate; restarted when the client reconnects, unless
    the camera is 'unplugged'."""

    def __init__(self, clip: Path):
        self.url = f"tcp://127.0.0.1:{free_port()}"
        self.cmd = ["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
                    "-f", "mpegts", self.url + "?listen=1"]
        self.plugged, self.done = threading.Event(), threading.Event()
        self.plugged.set()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._keep, daemon=True).start()

    def _keep(self) -> None:
        while not self.done.is_set():
            if self.proc.poll() is not None and self.plugged.is_set():
                self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL)
            time.sleep(0.2)

    def unplug(self) -> None:
        self.plugged.clear()
        self.proc.kill()

    def plug(self) -> None:
        self.plugged.set()

    def stop(self) -> None:
        self.done.set()
        self.proc.kill()


class Receiver(threading.Thread):
    """A TCP listener that takes the fused MPEG-TS stream and counts its bytes; it can go away and come back."""

    def __init__(self):
        super().__init__(daemon=True)
        self.port, self.bytes, self.connections = free_port(), 0, 0
        self.up, self.done = threading.Event(), threading.Event()
        self.up.set()

    def run(self) -> None:
        while not self.done.is_set():
            if not self.up.wait(0.2):
                continue
            with socket.socket() as srv:
                srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                srv.bind(("127.0.0.1", self.port))
                srv.listen(1)
                srv.settimeout(0.5)
                while self.up.is_set() and not self.done.is_set():
                    try:
                        conn, _ = srv.accept()
                    except socket.timeout:
                        continue
                    self.connections += 1
                    with conn:
                        conn.settimeout(0.5)
                        while self.up.is_set() and not self.done.is_set():
                            try:
                                data = conn.recv(1 << 16)
                            except socket.timeout:
                                continue
                            if not data:
                                break
                            self.bytes += len(data)


def viewer(url: str, seconds: float, stall: bool = False) -> int:
    """Watch the MJPEG stream for `seconds` (or connect and stop reading: a stalled viewer); bytes read."""
    got = 0
    with urllib.request.urlopen(url, timeout=10) as r:
        got += len(r.read(4096))
        if stall:
            time.sleep(seconds)
            return got
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got += len(r.read(65536))
    return got


class TimingTail:
    """New rows of the run's timing CSV since the last call (the file grows all run: read only its tail)."""

    def __init__(self, path: Path):
        self.path, self.fh, self.rest, self.rows, self.header = path, None, "", 0, None

    def new_rows(self) -> list[dict]:
        if self.fh is None:
            if not self.path.is_file():
                return []
            self.fh = self.path.open()
        text = self.rest + self.fh.read()
        lines = text.split("\n")
        self.rest = lines.pop()  # a line the writer has not finished yet
        if self.header is None and lines:
            self.header = lines.pop(0).split(",")
        rows = [dict(zip(self.header, line.split(","))) for line in lines if line]
        self.rows += len(rows)
        return rows


def proc_stats(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return dict(rss_mb=round(int(status["VmRSS"].split()[0]) / 1024, 1), threads=int(status["Threads"]),
                open_files=len(os.listdir(f"/proc/{pid}/fd")))


def mount_tmpfs(path: Path, mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def fill(folder: Path) -> None:
    """Take every free byte of the recording's file system (what a full disk looks like to the writer)."""
    fh = open(folder / "filler.bin", "wb", buffering=0)
    for size in (1 << 20, 4096):  # megabytes, then the last partial one
        try:
            while True:
                fh.write(b"\0" * size)
        except OSError:
            pass
    try:
        fh.close()
    except OSError:
        pass


def soak(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="soak_"))
    if args.clip_a == "sample" or not (args.clip_a or (CLIP / "ir").is_dir()):  # the built-in scene
        clips = [make_clip(work / f"{side}.mp4", i) for i, side in enumerate(("ir", "vis"))]
    elif args.clip_a:
        clips = [Path(args.clip_a), Path(args.clip_b)]
    else:
        clips = [CLIP / side / f"{args.clip}.mp4" for side in ("ir", "vis")]
    originals, clips = clips, [h264(c, work / f"cam{i}.mp4", args.size) for i, c in enumerate(clips)]
    rec_dir = work / "rec"
    tmpfs = mount_tmpfs(rec_dir, args.tmpfs_mb)
    cams = [Camera(c) for c in clips]
    receiver = Receiver()
    receiver.start()
    serve_port = free_port()
    record = rec_dir / "fused.mp4"
    timing = work / "timing.csv"
    cmd = [sys.executable, "-m", "defusion_rt", "run", "--a", cams[0].url, "--b", cams[1].url, "--live",
           "--register", "auto", "--reestimate", str(args.reestimate_s), "--serve", f"127.0.0.1:{serve_port}",
           "--record", str(record), "--record", f"tcp://127.0.0.1:{receiver.port}", "--csv", str(timing)]
    time.sleep(1.0)
    log = open(work / "run.log", "w")
    run = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{serve_port}"
    total = args.minutes * 60
    t0, samples, faults, viewers, tail = None, [], {}, [], TimingTail(timing)
    schedule = {name: frac * total for name, frac in FAULTS.items()}

    def stats() -> dict:
        with urllib.request.urlopen(f"{base}/stats.json", timeout=5) as r:
            return json.loads(r.read())

    def run_viewer(seconds: float, stall: bool = False) -> None:
        def go():
            try:
                viewers.append(dict(start=round(time.monotonic() - t0, 1), stall=stall,
                                    bytes=viewer(f"{base}/stream.mjpg", seconds, stall)))
            except OSError as err:  # a viewer failing to connect is a finding, kept
                viewers.append(dict(start=round(time.monotonic() - t0, 1), stall=stall, error=str(err)))
        threading.Thread(target=go, daemon=True).start()

    try:
        deadline = time.monotonic() + 300  # the engine builds (first run) before the live view is up
        while t0 is None:
            if run.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the run did not start: see {work / 'run.log'}")
            try:
                if stats().get("frame", 0) > 0:
                    t0 = time.monotonic()
            except OSError:
                time.sleep(1.0)
        next_viewer = 0.0
        while (t := time.monotonic() - t0) < total and run.poll() is None:
            for name, at in schedule.items():
                if name not in faults and t >= at:
                    faults[name] = dict(at_s=round(t, 1))
                    if name == "source_a_gone":
                        cams[0].unplug()
                        threading.Timer(args.outage_s, cams[0].plug).start()
                    elif name == "receiver_gone":
                        receiver.up.clear()
                        threading.Timer(args.outage_s, receiver.up.set).start()
                    elif name == "viewer_stalls":
                        run_viewer(args.outage_s * 3, stall=True)
                    elif name == "disk_full":
                        faults[name]["tmpfs"] = tmpfs
                        if tmpfs:
                            faults[name]["recording_bytes_before"] = record.stat().st_size if record.exists() else 0
                            fill(rec_dir)
            if t >= next_viewer:  # viewers come and go all run long
                run_viewer(min(20.0, args.sample_s * 2))
                next_viewer = t + args.viewer_every_s
            new = tail.new_rows()
            lat = [float(r["total_ms"]) for r in new if r.get("total_ms")]
            try:
                s = stats()
            except OSError as err:
                s = dict(error=str(err))
            samples.append(dict(t_s=round(t, 1), **proc_stats(run.pid), frames=tail.rows,
                                fps=round(len(new) / args.sample_s, 1),
                                p50_ms=round(float(np.percentile(lat, 50)), 1) if lat else None,
                                p95_ms=round(float(np.percentile(lat, 95)), 1) if lat else None,
                                dropped=s.get("dropped"), queued=s.get("queued"), status=s.get("status"),
                                tighter_pairs=s.get("dropped_for_tighter_pairs"),
                                viewers=s.get("viewers"), receiver_bytes=receiver.bytes,
                                receiver_connections=receiver.connections))
            print(json.dumps(samples[-1]), flush=True)
            time.sleep(max(0.0, args.sample_s - (time.monotonic() - t0 - t)))
        ended_early = run.poll() is not None
        run.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=60)
    finally:
        for c in cams:
            c.stop()
        receiver.done.set()
        if run.poll() is None:
            run.kill()
        log.close()
    text = (work / "run.log").read_text()
    frames_in_file = count_frames(record)
    result = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), command=" ".join(sys.argv), run_command=cmd,
                  machine=machine(), minutes=args.minutes, clips=[str(c) for c in originals], size=args.size or "as is",
                  tmpfs_mb=args.tmpfs_mb,
                  outage_s=args.outage_s, faults=faults, viewers=viewers, samples=samples, exit_code=rc,
                  ended_before_sigterm=ended_early, log_tail=text[-3000:], recording_frames=frames_in_file)
    result["verdicts"] = verdicts(result, args, text)
    shutil.rmtree(work, ignore_errors=True) if not args.keep else None
    if tmpfs and not args.keep:
        subprocess.run(["umount", str(rec_dir)], capture_output=True)
    return result


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _flat(values: list[float], tol: float) -> dict:
    """Flat within `tol`: the last fifth's median against the first fifth's (of the samples after warm-up)."""
    if len(values) < 5:
        return dict(ok=None, why="too few samples")
    k = max(1, len(values) // 5)
    first, last = float(np.median(values[:k])), float(np.median(values[-k:]))
    return dict(first=round(first, 1), last=round(last, 1), change=round(last / first - 1, 3),
                ok=abs(last / first - 1) <= tol)


def verdicts(r: dict, args, log: str) -> dict:
    total, out = args.minutes * 60, {}
    start = min(300, total * 0.1)  # from minute 5 (10% of a short run)
    steady = [s for s in r["samples"] if s["t_s"] >= start]
    out["rss_flat"] = _flat([s["rss_mb"] for s in steady], 0.10)
    # Latency with the same outputs: up to the full disk, after which the run no longer encodes the recording
    # (faster); the level after it is reported beside.
    full = r["faults"].get("disk_full", {}).get("at_s", total)
    same = [s for s in steady if s["t_s"] < full and s["p95_ms"] is not None
            and not _in_fault(s["t_s"], r["faults"], args.outage_s)]
    out["p95_flat"] = _flat([s["p95_ms"] for s in same], 0.10) | dict(span_s=[start, full])
    after = [s["p95_ms"] for s in r["samples"] if s["t_s"] > full + 15 and s["p95_ms"] is not None]
    out["p95_after_disk_full"] = round(float(np.median(after)), 1) if after else None
    out["threads_max"] = max(s["threads"] for s in r["samples"]) if r["samples"] else None
    out["open_files_max"] = max(s["open_files"] for s in r["samples"]) if r["samples"] else None
    # Drops outside the fault windows (and their recovery) are unplanned.
    unplanned, prev = {"A": 0, "B": 0}, None
    for s in r["samples"]:
        if prev and s.get("dropped") and prev.get("dropped") and not _in_fault(s["t_s"], r["faults"], args.outage_s):
            for k in unplanned:
                unplanned[k] += s["dropped"][k] - prev["dropped"][k]
        prev = s
    out["unplanned_drops"] = unplanned
    choices = [s.get("tighter_pairs") for s in r["samples"] if s.get("tighter_pairs") is not None]
    if choices:  # of the drops, frames given up for a tighter pair (the rest: stale in a queue, a backlog)
        out["dropped_for_tighter_pairs"] = choices[-1]
    frames = r["samples"][-1]["frames"] if r["samples"] else 0
    out["unplanned_drop_rate"] = round(sum(unplanned.values()) / 2 / max(1, frames), 5)
    out["reconnected_after_source_gone"] = any(
        s["t_s"] > r["faults"].get("source_a_gone", {}).get("at_s", total) + args.outage_s and s["fps"] > 0
        and all(v == "ok" for v in (s.get("status") or {}).values()) for s in r["samples"])
    out["receiver_back"] = r["samples"][-1]["receiver_connections"] >= 2 if r["samples"] else False
    stall = r["faults"].get("viewer_stalls", {}).get("at_s")
    before = [s["threads"] for s in r["samples"] if stall is not None and s["t_s"] < stall]
    after = [s["threads"] for s in r["samples"] if stall is not None and s["t_s"] > stall + 3 * args.outage_s + 15]
    out["stalled_viewer_let_go"] = dict(threads_before=max(before, default=None), threads_after=min(after, default=None),
                                        ok=bool(before and after) and min(after) <= max(before))
    out["disk_full_recording_stopped_cleanly"] = ("No space left on device" in log and "other outputs go on" in log
                                                  if r["faults"].get("disk_full", {}).get("tmpfs") else None)
    out["recording_playable"] = r["recording_frames"] > 0
    out["sigterm_clean"] = r["exit_code"] == 0 and not r["ended_before_sigterm"] and "stopped by" in log
    return out


def _in_fault(t: float, faults: dict, outage_s: float, settle_s: float = 15.0) -> bool:
    """Within a fault window or its recovery (reconnect back-off, pairing catching up)."""
    windows = {"source_a_gone": outage_s + settle_s + 10, "receiver_gone": outage_s + settle_s,
               "viewer_stalls": 3 * outage_s + settle_s, "disk_full": settle_s}
    return any(f["at_s"] <= t <= f["at_s"] + windows[name] for name, f in faults.items())


def markdown(r: dict) -> str:
    """The README table of a saved soak: what was checked, the measure, and whether it held."""
    v, steady = r["verdicts"], r["samples"]
    yes = lambda ok: "yes" if ok else "no" if ok is not None else "not tested"  # noqa: E731
    rows = [("minutes, clips, machine", f"{r['minutes']:g} min, {Path(r['clips'][0]).name} at {r.get('size', '?')}, "
             f"{r['machine']['cpu']} ({r['machine']['cpu_cores']} cores)", ""),
            ("frames fused", f"{steady[-1]['frames']} ({np.median([s['fps'] for s in steady]):.1f} FPS median)", ""),
            ("RSS, minute 5 to the end (medians of the first and last fifth)",
             f"{v['rss_flat'].get('first')} -> {v['rss_flat'].get('last')} MB ({v['rss_flat'].get('change', 0):+.1%})",
             yes(v["rss_flat"]["ok"])),
            ("latency p95 outside the faults, minute 5 to the full disk (same outputs)",
             f"{v['p95_flat'].get('first')} -> {v['p95_flat'].get('last')} ms ({v['p95_flat'].get('change', 0):+.1%}); "
             f"{v.get('p95_after_disk_full')} ms after it (no recording to encode)", yes(v["p95_flat"]["ok"])),
            ("threads, open files (max)", f"{v['threads_max']}, {v['open_files_max']}", ""),
            ("drops outside the fault windows (A, B)", f"{v['unplanned_drops']['A']}, {v['unplanned_drops']['B']} "
             f"({v.get('unplanned_drop_rate', 0):.2%} of the frames)",
             yes(v["unplanned_drops"]["A"] + v["unplanned_drops"]["B"] == 0)),
            (f"camera A gone {r['outage_s']:g} s, then back", "reconnected, fusing again",
             yes(v["reconnected_after_source_gone"])),
            ("a viewer that stalls", f"threads {v['stalled_viewer_let_go']['threads_before']} before, "
             f"{v['stalled_viewer_let_go']['threads_after']} after", yes(v["stalled_viewer_let_go"]["ok"])),
            (f"network receiver gone {r['outage_s']:g} s", f"{r['samples'][-1]['receiver_connections']} connections",
             yes(v["receiver_back"])),
            ("recording disk full", "recording stopped playable, the run went on",
             yes(v["disk_full_recording_stopped_cleanly"])),
            ("recording playable", f"{r['recording_frames']} frames decode", yes(v["recording_playable"])),
            ("SIGTERM at the end", f"exit code {r['exit_code']}", yes(v["sigterm_clean"]))]
    return "\n".join(["| check | measured | held |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--outage-s", type=float, default=20.0, help="how long camera A and the receiver stay away")
    p.add_argument("--viewer-every-s", type=float, default=90.0)
    p.add_argument("--reestimate-s", type=float, default=30.0)
    p.add_argument("--tmpfs-mb", type=int, default=2048, help="the recording's disk (filled at 80%% of the run)")
    p.add_argument("--clip", default="0111_1716", help="M3SVD clip (ir/ and vis/) in ../shared/data")
    p.add_argument("--size", default="", help="scale the clips to WxH (default: as they are)")
    p.add_argument("--clip-a", help="camera A's clip instead ('sample': the built-in scene, made here)")
    p.add_argument("--clip-b")
    p.add_argument("--json", help="save the samples and verdicts here")
    p.add_argument("--keep", action="store_true", help="keep the work folder (recording, timing CSV, run log)")
    p.add_argument("--report", help="only print the README table of this saved soak JSON")
    p.add_argument("--rescore", action="store_true", help="with --report: recompute its verdicts from its samples "
                                                         "(after the verdict code changed) and save them")
    args = p.parse_args()
    if args.report:
        r = json.loads(Path(args.report).read_text())
        if args.rescore:
            saved = argparse.Namespace(minutes=r["minutes"], outage_s=r["outage_s"])
            r["verdicts"] = verdicts(r, saved, r["log_tail"])
            r["verdicts_recomputed"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            Path(args.report).write_text(json.dumps(r, indent=1))
        print(markdown(r))
        return
    result = soak(args)
    print(json.dumps(result["verdicts"], indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
