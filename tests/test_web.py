"""`defusion-rt web` as an HTTP client sees it: pages, an upload fused with its decomposition and metrics, the
examples, and readable errors. (Browser tests: test_browser.py.)"""
import json
import threading
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np
import pytest

from defusion_rt.engines import CLASSICAL, create_engine
from defusion_rt.web import serve


def multipart(fields: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"".encode()
        body += (f"; filename=\"{name}.png\"\r\nContent-Type: image/png" if isinstance(value, bytes) else "").encode()
        body += b"\r\n\r\n" + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def server(tiny_model, tmp_path):
    def engines(task, method):  # the tiny network for every variant, the real baselines
        return create_engine(method, "cpu") if method in CLASSICAL else create_engine("eager", "cpu", model=tiny_model)
    srv = serve(engines, port=0, results=tmp_path)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def post(url: str, fields: dict) -> dict:
    body, ctype = multipart(fields)
    return json.loads(urllib.request.urlopen(urllib.request.Request(url + "/fuse", body, {"Content-Type": ctype}),
                                             timeout=120).read())


def decode(data_url: str) -> np.ndarray:
    import base64
    return cv2.imdecode(np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_pages(server):
    for path, text in (("/", b"<form"), ("/live", b"--serve"), ("/bench", b"No saved results")):
        assert text in urllib.request.urlopen(server + path, timeout=30).read()


def test_an_upload_is_fused_decomposed_and_scored_beside_the_baselines(server, rng):
    png = [cv2.imencode(".png", (rng.random((30, 40, 3)) * 255).astype(np.uint8))[1].tobytes() for _ in range(2)]
    r = post(server, {"a": png[0], "b": png[1], "task": "multi-focus", "method": "defusion"})
    assert (r["width"], r["height"]) == (40, 30) and decode(r["images"]["fused"]).shape == (30, 40, 3)
    assert set(r["parts"]) == {"common", "unique_a", "unique_b"}
    assert r["gains"]["common"] == 1 and all(1 <= r["gains"][k] <= 8 for k in ("unique_a", "unique_b"))
    assert [m["method"] for m in r["metrics"]][1:] == ["average", "max", "laplacian"]
    assert all(0 <= m["Qabf"] <= 1 and m["MI"] > 0 for m in r["metrics"])


def test_a_very_large_upload_is_scaled_down_with_a_note(server):
    big = cv2.imencode(".png", np.full((60, 4096, 3), 128, np.uint8))[1].tobytes()
    r = post(server, {"a": big, "b": big, "task": "multi-focus", "method": "average"})
    assert (r["width"], r["height"]) == (2048, 30) and "scaled from 4096x60 to 2048x30" in r["note"]
    assert decode(r["images"]["fused"]).shape == (30, 2048, 3)


def test_an_example_through_a_baseline_has_no_decomposition(server):
    r = post(server, {"example": "multi-exposure", "task": "multi-exposure", "method": "average"})
    a, b, f = (decode(r["images"][k]).astype(float) for k in ("a", "b", "fused"))
    assert np.abs(f - (a + b) / 2).max() <= 1.5 and r["parts"] == {}
    assert [m["method"] for m in r["metrics"]] == ["average", "max", "laplacian"]


@pytest.mark.parametrize("fields, message", [
    ({"a": b"junk", "b": b"junk"}, "is not an image"),
    ({"task": "ir-vis"}, "choose two images"),
    ({"example": "ir-vis", "method": "magic"}, "unknown method 'magic'"),
])
def test_bad_uploads_are_a_readable_400(server, fields, message):
    body, ctype = multipart(fields)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(server + "/fuse", body, {"Content-Type": ctype}), timeout=60)
    assert err.value.code == 400 and message in err.value.read().decode()
