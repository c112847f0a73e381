"""Screenshots of the web app's pages and of a run's live view, in headless Chromium (Selenium), for the README:
the fuse page after fusing the bundled IR-visible example with the shipped weights, the live view of a run on the
built-in sample, and the benchmark page. Needs `apt-get install chromium chromium-driver` and `pip install selenium`.

    python benchmarks/web_screenshots.py [--out docs]
"""
from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select
    from defusion_rt.pipeline import Pipeline, PipelineSettings
    from defusion_rt.web import Engines, serve
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "screenshots"))
    args = p.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    s = PipelineSettings()
    s.sources.paced, s.sources.sample_frames, s.render.serve, s.render.side_by_side = True, 100000, "127.0.0.1:0", False
    s.fusion.method, s.run.progress = "average", False
    pipeline = Pipeline(s)
    threading.Thread(target=pipeline.run, daemon=True).start()
    while not (pipeline.stages and pipeline.stages.render.live):
        time.sleep(0.1)
    live = f"http://127.0.0.1:{pipeline.stages.render.live.port}/"
    os.chdir(ROOT)  # the bench page names its folder as given: relative, not this machine's path
    app = serve(Engines("cpu"), port=0, live_url=live, results=Path("benchmarks/results"))
    threading.Thread(target=app.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{app.server_port}"

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,2000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        driver.get(base + "/")
        Select(driver.find_element("id", "example")).select_by_value("ir-vis")
        driver.find_element("id", "go").click()
        while driver.find_element("id", "result").get_attribute("hidden") is not None:
            time.sleep(0.2)
        time.sleep(0.5)
        driver.save_screenshot(str(out / "web_fuse.png"))
        driver.set_window_size(1200, 900)
        driver.get(base + "/live")
        driver.find_element("id", "sbs").click()
        time.sleep(3)
        driver.save_screenshot(str(out / "web_live.png"))
        driver.get(base + "/bench")
        time.sleep(1)
        driver.save_screenshot(str(out / "web_bench.png"))
    finally:
        driver.quit()
        pipeline.stop.set()
        app.shutdown()
    print(f"screenshots: {out}/web_fuse.png, web_live.png, web_bench.png")


if __name__ == "__main__":
    main()
