"""A write-only file for a fragmented MP4 that only ever ends on a whole fragment.

Why: FFmpeg's MP4 reader gives up on the whole file, not just its end, when the file ends inside a fragment's
`moof` box (measured through OpenCV: 16 of the 128 cuts tried around each `moof`, 40 to 111 bytes into it,
decode 0 frames; benchmarks/reliability/cut_recordings.py). A full disk cuts a write short at a page boundary
(likely how a soak run in CI lost its whole recording), and a killed process can stop between two buffer
flushes, so either could leave that cut. Here the muxer's bytes are held until a top-level box other than a
`moof` is complete (`moov` at the start, then each fragment's `mdat`) and written then; a write the disk cuts
short is truncated back to the last whole fragment before the error goes up.
"""
from __future__ import annotations

import os
from pathlib import Path


class FragmentFile:
    """Give to av.open(..., "w", format="mp4"); it has no seek, so the muxer streams (empty_moov fragments)."""

    def __init__(self, path: str | Path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pending = bytearray()
        self.scanned = 0        # offset in `pending` of the next top-level box header
        self.complete = 0       # bytes of `pending` that end on a box that is safe to end the file on
        self.size = 0           # bytes on disk, always ending on such a box

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.pending += data
        self._scan()
        if self.complete:
            self._commit(self.complete)
        return len(data)

    def _scan(self) -> None:
        """Advance over every whole top-level box in `pending`; remember the end of the last non-moof one."""
        while len(self.pending) - self.scanned >= 8:
            size = int.from_bytes(self.pending[self.scanned:self.scanned + 4], "big")
            kind = bytes(self.pending[self.scanned + 4:self.scanned + 8])
            if size == 1:  # a 64-bit size follows the type
                if len(self.pending) - self.scanned < 16:
                    return
                size = int.from_bytes(self.pending[self.scanned + 8:self.scanned + 16], "big")
            if size < 8 or self.scanned + size > len(self.pending):
                return  # not all here yet (size 0, "to the end of the file", waits for close)
            self.scanned += size
            if kind != b"moof":
                self.complete = self.scanned

    def _commit(self, n: int) -> None:
        data, done = bytes(self.pending[:n]), 0
        try:
            while done < n:
                done += os.write(self.fd, data[done:])
        except OSError:
            os.ftruncate(self.fd, self.size)  # undo a partial fragment: the file keeps ending on a whole one
            raise
        self.size += n
        del self.pending[:n]
        self.scanned -= n
        self.complete = 0

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            self._scan()
            if self.complete:
                self._commit(self.complete)
        finally:
            os.close(self.fd)
            self.fd = -1
