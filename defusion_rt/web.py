"""`defusion-rt web`: a small browser interface (standard library only) to fuse an uploaded image pair.

GET / serves a form; POST /fuse takes two images, a task and the colour option and answers with the fused PNG.
The network loads once at start-up; requests are served one at a time (engines are not thread-safe).
"""
from __future__ import annotations

import email.parser
import email.policy
from http.server import BaseHTTPRequestHandler, HTTPServer

import cv2
import numpy as np

from .errors import UserError
from .fusion import Fuser
from .imageio import to_uint8
from .tasks import TASKS, check_task, match_sizes

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>defusion-rt</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}img{max-width:100%}label{display:block;margin:.5em 0}</style>
</head><body><h1>defusion-rt: fuse two images</h1>
<form id="f" enctype="multipart/form-data">
<label>A (IR, under-exposed, or focus A) <input type="file" name="a" accept="image/*" required></label>
<label>B (visible, over-exposed, or focus B) <input type="file" name="b" accept="image/*" required></label>
<label>task <select name="task">{options}</select></label>
<label><input type="checkbox" name="colour" value="1"> keep the visible image's colour (ir-vis)</label>
<button>fuse</button></form><p id="msg"></p><img id="out">
<script>
document.getElementById('f').onsubmit = async e => {
  e.preventDefault(); const msg = document.getElementById('msg'); msg.textContent = 'fusing...';
  const r = await fetch('/fuse', {method: 'POST', body: new FormData(e.target)});
  if (!r.ok) { msg.textContent = await r.text(); return; }
  document.getElementById('out').src = URL.createObjectURL(await r.blob()); msg.textContent = '';
};
</script></body></html>"""


def _decode(data: bytes, name: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"image {name} cannot be decoded")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def make_handler(engine, max_bytes: int = 40 * 2**20):
    """`engine`: an Engine for every task, or a function task -> Engine (each task's own shipped weights)."""
    engine_for = engine if callable(engine) and not hasattr(engine, "device") else (lambda task: engine)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: one line per request is noise for a local tool
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/":
                return self._send(404, b"not found", "text/plain")
            options = "".join(f"<option>{t}</option>" for t in TASKS)
            self._send(200, PAGE.replace("{options}", options).encode(), "text/html; charset=utf-8")

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", 0))
                if self.path != "/fuse" or not 0 < length <= max_bytes:
                    raise UserError("POST two images (at most 40 MB) to /fuse")
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.rfile.read(length))
                fields = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                          for p in msg.iter_parts()}
                if not fields.get("a") or not fields.get("b"):
                    raise UserError("both images a and b are needed")
                task = (fields.get("task") or b"ir-vis").decode()
                a = _decode(fields["a"], "a")
                b = match_sizes(a, _decode(fields["b"], "b"), resize=False)
                fused = Fuser(engine_for(check_task(task)), task, colour=bool(fields.get("colour")))(a, b)
                ok, png = cv2.imencode(".png", cv2.cvtColor(to_uint8(fused), cv2.COLOR_RGB2BGR))
                self._send(200, png.tobytes(), "image/png")
            except UserError as err:
                self._send(400, str(err).encode(), "text/plain; charset=utf-8")

    return Handler


def serve(engine, host: str = "127.0.0.1", port: int = 8080) -> HTTPServer:
    try:
        return HTTPServer((host, port), make_handler(engine))
    except (OSError, OverflowError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise UserError(f"cannot listen on {host}:{port} ({why}); choose another --port") from None
