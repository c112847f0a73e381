"""Watching a run from a browser: `run --serve HOST:PORT`.

`GET /` a page with the live stream (fused, or A | B | fused on a toggle) and the live statistics;
`GET /stream.mjpg[?view=sbs]` the frames as multipart/x-mixed-replace JPEG; `GET /stats.json` the statistics.

The render stage only hands over references to each rendered frame: no copy and no encoding on the pipeline's
thread. Each viewer's thread waits for a newer frame, encodes it once for every viewer (a small cache) and skips
the frames it had no time for, counted; so any number of viewers, slow or stalled, never slow the run. A viewer
that goes away ends its thread.
"""
from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from .overlay import side_by_side

LOCAL = ("127.0.0.1", "localhost", "::1")
BOUNDARY = "defusionframe"


def parse_address(text: str) -> tuple[str, int]:
    """'8090', ':8090' or 'HOST:8090' -> (host, port); the host defaults to this machine only."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        from ..errors import UserError
        raise UserError(f"--serve needs [HOST:]PORT, e.g. 8090 or 0.0.0.0:8090, not '{text}'")
    return host or "127.0.0.1", int(port)


class LiveView:
    """A small HTTP server on its own threads; `publish()` from the render stage, `close()` at the end."""

    def __init__(self, address: str, token: str = "", quality: int = 80):
        self.host, port = parse_address(address)
        self.token, self.quality = token, quality
        self.cond = threading.Condition()
        self.seq = 0
        self.frames: tuple | None = None     # (shown, a, b, fused) of the newest rendered frame
        self.stats: dict = {}
        self.cache: dict[tuple[int, str], bytes] = {}
        self.viewers = 0
        self.skipped = 0                     # frames a viewer had no time for, all viewers together
        self.closed = False
        try:
            self.server = ThreadingHTTPServer((self.host, port), _handler(self))
        except OSError as err:  # the port is taken, or the address is not this machine's
            from ..errors import UserError
            raise UserError(f"cannot serve the live view on {self.host}:{port}: {err.strerror}; choose another "
                            "--serve address or port") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-view", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def local(self) -> bool:
        return self.host in LOCAL

    def publish(self, shown: np.ndarray, a: np.ndarray, b: np.ndarray, fused: np.ndarray, stats: dict) -> None:
        """`shown`: the frame as displayed and recorded; a, b and the plain fused frame for the A | B | fused view."""
        with self.cond:
            self.seq += 1
            self.frames, self.stats = (shown, a, b, fused), stats
            self.cache = {k: v for k, v in self.cache.items() if k[0] >= self.seq - 1}
            self.cond.notify_all()

    def next_jpeg(self, after: int, view: str, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """The newest frame after `after` as JPEG, waiting up to `timeout`; (seq, None) if none came or closing."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or self.closed, timeout)
            if self.closed or self.seq <= after:
                return after, None
            seq, frames = self.seq, self.frames
            if after and seq > after + 1:
                self.skipped += seq - after - 1
            cached = self.cache.get((seq, view))
        if cached is None:  # encoded outside the lock, once per frame and view
            img = side_by_side(frames[1], frames[2], frames[3], labels=("A", "B", "fused")) if view == "sbs" \
                else frames[0]
            cached = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])[1].tobytes()
            with self.cond:
                self.cache[(seq, view)] = cached
        return seq, cached

    def snapshot(self) -> dict:
        with self.cond:
            return dict(self.stats, frame_seq=self.seq, viewers=self.viewers, viewer_skipped=self.skipped)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>defusion-rt live</title>
<style>body{font-family:sans-serif;background:#111;color:#ddd;margin:1em}img{max-width:100%;background:#000}
button{margin:.5em 0}td{padding:1px 10px 1px 0;font-size:13px}</style></head><body>
<h3>defusion-rt: live</h3>
<button id="toggle">show A | B | fused</button><br><img id="view" alt="live stream">
<table id="stats"><tr><td>waiting for statistics...</td></tr></table>
<script>
const q = new URLSearchParams(location.search); const token = q.get("token") || "";
const t = token ? "&token=" + encodeURIComponent(token) : "";
let sbs = false; const img = document.getElementById("view");
function show() { img.src = "stream.mjpg?view=" + (sbs ? "sbs" : "fused") + t; }
document.getElementById("toggle").onclick = () => { sbs = !sbs; show();
  document.getElementById("toggle").textContent = sbs ? "show fused only" : "show A | B | fused"; };
const NAMES = {fps: "frames/s", latency_ms: "latency (ms)", dropped: "dropped (per stream)",
  viewer_skipped: "frames skipped for slow viewers"};
function fmt(v) { if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(1);
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => k + " " + fmt(x)).join(", ");
  return String(v); }
async function poll() { try { const r = await fetch("stats.json?" + t.slice(1)); const s = await r.json();
  const table = document.getElementById("stats"); table.replaceChildren();
  for (const [k, v] of Object.entries(s)) { if (v === "" || v === null) continue;
    const row = table.insertRow(); row.insertCell().textContent = NAMES[k] || k.replace(/_/g, " ");
    row.insertCell().textContent = fmt(v); } } catch (e) {} }
show(); poll(); setInterval(poll, 1000);
</script></body></html>"""


def _handler(view: LiveView):
    class Handler(BaseHTTPRequestHandler):
        timeout = 10.0  # a viewer whose socket takes nothing for this long is let go (its thread ends)

        def log_message(self, *args) -> None:  # viewers coming and going are not worth a log line each
            pass

        def _allowed(self, query: dict) -> bool:
            if not view.token:
                return True
            given = query.get("token", [""])[0] or self.headers.get("Authorization", "").removeprefix("Bearer ")
            return hmac.compare_digest(given, view.token)

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Access-Control-Allow-Origin", "*")  # the web app's /live page reads the statistics
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if not self._allowed(query):
                self._send(403, b"a token is needed: add ?token=... to the address\n", "text/plain")
            elif url.path == "/":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif url.path == "/stats.json":
                self._send(200, json.dumps(view.snapshot(), default=str).encode(), "application/json")
            elif url.path == "/stream.mjpg":
                self._stream(query.get("view", ["fused"])[0])
            else:
                self._send(404, b"not found: try / , /stream.mjpg or /stats.json\n", "text/plain")

        def _stream(self, which: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            with view.cond:
                view.viewers += 1
            seq = 0
            try:
                while not view.closed:
                    seq, jpeg = view.next_jpeg(seq, "sbs" if which == "sbs" else "fused")
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                     f"\r\n\r\n".encode() + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer went away, or stalled (its socket took nothing for `timeout` s)
            finally:
                with view.cond:
                    view.viewers -= 1
    return Handler
