"""`defusion-rt web`: the browser app (standard library HTTP server, no framework).

GET /            upload a pair or pick an example; task, method or model variant, colour
POST /fuse       -> JSON: the fused image, the decomposition, metrics beside the baselines (images as data URLs)
GET /live        the live view of a run started with `run --serve`
GET /bench       the saved benchmark plot and table

Requests are served one at a time: engines are not thread-safe, and one user at a time is what a local tool has.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from ..engines import CLASSICAL, Engine, create_engine
from ..errors import UserError
from ..fusion import decomposition_network
from ..imageio import to_uint8
from ..model import VARIANTS, model_for
from ..tasks import TASKS, check_task
from .analysis import analyse
from .examples import EXAMPLES, example_pair
from .pages import bench_page, fuse_page, live_page

METHODS = ["auto", *VARIANTS, *CLASSICAL]  # auto: the task's default variant
MAX_SIDE = 2048  # larger uploads (a phone's 12 MP) are scaled down: seconds, not minutes, and memory kept in bounds


class Engines:
    """One engine per (task, method), made on first use and kept: the shipped weights differ per task."""

    def __init__(self, device: str = "auto", precision: str = "fp32", weights: str | None = None):
        self.device, self.precision, self.weights = device, precision, weights
        self.cache: dict[tuple[str, str], Engine] = {}

    def __call__(self, task: str, method: str) -> Engine:
        key = (task, method)
        if key not in self.cache:
            if method in CLASSICAL:
                self.cache[key] = create_engine(method, self.device)
            else:
                name = model_for(task, self.weights) if method == "auto" else method
                self.cache[key] = create_engine("eager", self.device, self.precision, weights=self.weights,
                                                task=task, model_name=name)
        return self.cache[key]

    def decomposer(self, variant: str):
        """The network whose decomposition the page shows, made once per variant."""
        key = ("decomposition", variant)
        if key not in self.cache:
            self.cache[key] = decomposition_network(variant, self.weights)
        return self.cache[key]


def _decode(data: bytes, name: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"image {name} is not an image this app can read (PNG, JPEG, BMP, TIFF); upload another")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def _fit(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Both images scaled by one factor so the longer side is at most MAX_SIDE; a note says so."""
    side = max(a.shape[:2])
    if side <= MAX_SIDE:
        return a, b, ""
    f = MAX_SIDE / side
    small = [cv2.resize(x, (round(x.shape[1] * f), round(x.shape[0] * f)), interpolation=cv2.INTER_AREA)
             for x in (a, b)]
    return small[0], small[1], (f"scaled from {a.shape[1]}x{a.shape[0]} to {small[0].shape[1]}x{small[0].shape[0]} "
                                "for the browser; `defusion-rt fuse` keeps full resolution")


def _data_url(img: np.ndarray) -> str:
    png = cv2.imencode(".png", cv2.cvtColor(to_uint8(np.clip(img, 0, 1)), cv2.COLOR_RGB2BGR))[1]
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def make_handler(engines, live_url: str = "", results: Path | None = None, max_mb: int = 40):
    # Engines keeps one decomposition network per variant; a plain engines function gets the CUD weights' per call.
    decomposer = getattr(engines, "decomposer", decomposition_network)
    results = Path(results) if results else None

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
            path = urlparse(self.path).path
            if path == "/":
                self._send(200, fuse_page(list(TASKS), METHODS, EXAMPLES, max_mb), "text/html; charset=utf-8")
            elif path == "/live":
                self._send(200, live_page(live_url), "text/html; charset=utf-8")
            elif path == "/bench":
                self._send(200, self._bench(), "text/html; charset=utf-8")
            elif path == "/bench/plot.png" and results and (results / "fps_640x480.png").is_file():
                self._send(200, (results / "fps_640x480.png").read_bytes(), "image/png")
            else:
                self._send(404, b"not found: try /, /live or /bench", "text/plain")

        def _bench(self) -> bytes:
            from ..bench import load_results, markdown_table
            found = load_results(results) if results and results.is_dir() else []
            return bench_page(markdown_table(found) if found else "",
                              bool(results and (results / "fps_640x480.png").is_file()), str(results or "(none)"))

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", 0))
                if urlparse(self.path).path != "/fuse":
                    raise UserError("POST a pair to /fuse")
                if not 0 < length <= max_mb * 2**20:
                    raise UserError(f"the upload is {length / 2**20:.1f} MB; at most {max_mb} MB, please")
                fields = self._fields(length)
                text = lambda k, default: (fields.get(k) or default.encode()).decode()
                task, method = check_task(text("task", "ir-vis")), text("method", "auto")
                if method not in METHODS:
                    raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
                if text("example", ""):
                    if text("example", "") not in EXAMPLES:
                        raise UserError(f"unknown example '{text('example', '')}'")
                    a, b = example_pair(text("example", ""))
                elif fields.get("a") and fields.get("b"):
                    a, b = _decode(fields["a"], "A"), _decode(fields["b"], "B")
                else:
                    raise UserError("choose two images, A and B, or an example")
                a, b, note = _fit(a, b)
                r = analyse(a, b, task, method, bool(fields.get("colour")), engines, decomposer)
                reply = dict(width=a.shape[1], height=a.shape[0], note=note, engine=r["engine"], seconds=r["seconds"],
                             columns=r["columns"], metrics=r["metrics"],
                             images=dict(a=_data_url(a), b=_data_url(b), fused=_data_url(r["fused"])),
                             parts={k: _data_url(v) for k, v in r["parts"].items()},
                             gains={k: round(g, 2) for k, g in r["gains"].items()})
                self._send(200, json.dumps(reply).encode(), "application/json")
            except UserError as err:
                self._send(400, str(err).encode(), "text/plain; charset=utf-8")

        def _fields(self, length: int) -> dict:
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.rfile.read(length))
            if not msg.is_multipart():
                raise UserError("send the form as multipart/form-data")
            return {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                    for p in msg.iter_parts()}

    return Handler


def serve(engines, host: str = "127.0.0.1", port: int = 8080, live_url: str = "",
          results: Path | None = None, max_mb: int = 40) -> HTTPServer:
    """`engines`: a function (task, method) -> Engine, e.g. `Engines(device)`."""
    try:
        return HTTPServer((host, port), make_handler(engines, live_url, results, max_mb))
    except (OSError, OverflowError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise UserError(f"cannot listen on {host}:{port} ({why}); choose another --port") from None
