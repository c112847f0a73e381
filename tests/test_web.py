import threading
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np
import pytest

from defusion_rt.engines import create_engine
from defusion_rt.web import serve


def _multipart(fields: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"".encode()
        body += (f"; filename=\"{name}.png\"\r\nContent-Type: image/png" if isinstance(value, bytes) else "").encode()
        body += b"\r\n\r\n" + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def server(tiny_model):
    srv = serve(create_engine("eager", "cpu", model=tiny_model), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_page_and_fusing_an_uploaded_pair(server, rng):
    assert b"<form" in urllib.request.urlopen(server + "/").read()
    png = [cv2.imencode(".png", (rng.random((30, 40, 3)) * 255).astype(np.uint8))[1].tobytes() for _ in range(2)]
    body, ctype = _multipart({"a": png[0], "b": png[1], "task": "multi-focus"})
    reply = urllib.request.urlopen(urllib.request.Request(server + "/fuse", body, {"Content-Type": ctype}))
    fused = cv2.imdecode(np.frombuffer(reply.read(), np.uint8), cv2.IMREAD_COLOR)
    assert reply.headers["Content-Type"] == "image/png" and fused.shape == (30, 40, 3)


def test_bad_upload_is_a_clear_400(server):
    body, ctype = _multipart({"a": b"junk", "b": b"junk"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(server + "/fuse", body, {"Content-Type": ctype}))
    assert err.value.code == 400 and b"cannot be decoded" in err.value.read()
