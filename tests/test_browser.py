"""The web app and the live view in a real browser (headless Chromium through Selenium): the live page shows
frames that change, an upload returns a fused image of the right size, bad uploads get a readable message.
Skips with the reason where Chromium, its driver or Selenium is missing (CI installs them)."""
import re
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from defusion_rt.engines import CLASSICAL, create_engine
from defusion_rt.pipeline import Pipeline
from defusion_rt.web import serve
from test_pipeline import settings

webdriver = pytest.importorskip("selenium.webdriver", reason="Selenium is not installed: pip install selenium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                                   reason="Chromium and chromedriver are not installed "
                                                          "(apt-get install chromium chromium-driver)")]


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(check, timeout: float = 60.0, step: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("the page did not get there in time")


def screenshot(driver) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)


def test_the_live_page_shows_moving_frames(browser, tmp_path):
    s = settings(sources=dict(paced=True, sample_frames=100000), fusion=dict(method="average"),
                 render=dict(serve="127.0.0.1:0"))
    p = Pipeline(s)
    t = threading.Thread(target=p.run, daemon=True)
    t.start()
    try:
        live = wait_for(lambda: p.stages and p.stages.render.live)
        browser.get(f"http://127.0.0.1:{live.port}/")
        wait_for(lambda: browser.execute_script("return document.getElementById('view').naturalWidth") == 320)
        first = screenshot(browser)
        time.sleep(1.5)
        second = screenshot(browser)
        cv2.imwrite(str(tmp_path / "live.png"), second)
        assert np.abs(first.astype(int) - second).mean() > 0.05  # the walker moved
        text = wait_for(lambda: "frames/s" in (t := browser.find_element("id", "stats").text) and t)
        assert re.search(r"dropped \(per stream\)\s+A \d+, B \d+", text)  # each stream's drops, not their sum
        assert not re.search(r"\d\.\d{3,}", text)  # numbers as people read them, not 15-digit floats
    finally:
        p.stop.set()
        t.join(30)


@pytest.fixture
def app(tmp_path):
    def engines(task, method):
        return create_engine(method if method in CLASSICAL else "average", "cpu")  # fast: the page is under test
    srv = serve(engines, port=0, results=tmp_path, max_mb=1)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def upload(browser, url: str, a, b) -> None:
    browser.get(url + "/")
    browser.find_element("name", "a").send_keys(str(a))
    browser.find_element("name", "b").send_keys(str(b))
    browser.find_element("id", "go").click()


def test_an_upload_in_the_browser_returns_a_fused_image_of_the_right_size(browser, app, tmp_path, rng):
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), (rng.random((90, 130, 3)) * 255).astype(np.uint8))
    upload(browser, app, tmp_path / "a.png", tmp_path / "b.png")
    size = wait_for(lambda: browser.execute_script(
        "const i = document.getElementById('fused'); return i.naturalWidth && [i.naturalWidth, i.naturalHeight]"))
    assert size == [130, 90]
    assert browser.find_element("id", "metrics").text.count("\n") >= 2  # the method and the baselines


@pytest.mark.parametrize("content, message", [(b"this is not an image", "is not an image"),
                                              (b"\x00" * (1 << 20), "at most 1 MB")])
def test_a_bad_upload_gets_a_readable_message(browser, app, tmp_path, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    upload(browser, app, tmp_path / "bad.png", tmp_path / "bad.png")
    text = wait_for(lambda: browser.find_element("id", "msg").text if "fusing" not in
                    browser.find_element("id", "msg").text else "")
    assert message in text
