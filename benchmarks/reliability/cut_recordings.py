"""Where a cut leaves a fragmented MP4 unplayable: a recording cut at every byte around its fragment headers,
decoded with OpenCV (FFmpeg's MP4 reader, as players use). The finding behind render/fragments.py: a file that
ends inside a `moof` box decodes 0 frames, so the recorder only ever ends its file on a whole fragment.

    python benchmarks/reliability/cut_recordings.py --json benchmarks/reliability/cut_recordings.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from defusion_rt.bench.telemetry import machine
from defusion_rt.render.sink import VideoSink


def count_frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def boxes(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, size) of the top-level boxes."""
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        out.append((i, data[i + 4:i + 8], size))
        if size < 8:
            break
        i += size
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fragments", type=int, default=4, help="fragments whose every cut is tried")
    p.add_argument("--json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cuts_"))
    rec, rng = work / "rec.mp4", np.random.default_rng(0)
    with VideoSink(rec, 30, (320, 240)) as sink:
        sink.fragment_s = 0  # a fragment per frame
        for _ in range(args.fragments + 4):
            sink.write(rng.integers(0, 256, (240, 320, 3), np.uint8))
    data = rec.read_bytes()
    moofs = [(o, s) for o, kind, s in boxes(data) if kind == b"moof"][1:args.fragments + 1]
    cut, rows = work / "cut.mp4", []
    for start, size in moofs:
        whole = count_frames_at(data, start, cut)
        dead = [k for k in range(size + 16) if count_frames_at(data, start + k, cut) == 0]
        rows.append(dict(moof_at=start, moof_bytes=size, frames_if_cut_before_it=whole,
                         cuts_decoding_nothing=len(dead), tried=size + 16,
                         first=min(dead, default=None), last=max(dead, default=None)))
        print(json.dumps(rows[-1]))
    result = dict(machine=machine(), opencv=cv2.__version__, recording="320x240 H.264, a fragment per frame",
                  offsets="bytes from the start of the moof box", fragments=rows)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


def count_frames_at(data: bytes, end: int, path: Path) -> int:
    path.write_bytes(data[:end])
    return count_frames(path)


if __name__ == "__main__":
    main()
