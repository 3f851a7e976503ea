"""Regenerate ``docs/playground.png`` from the demo, so README's picture stays true.

It runs ``railproxy demo`` exactly as a new user does (its own upstream, its own config,
the playground on), opens ``/ui`` in headless Chromium, asks the question the demo's banner
suggests for a block, waits for the run to end, and saves the whole page::

    python docs/playground_png.py                # writes docs/playground.png
    python docs/playground_png.py --out /tmp/x.png --prompt "How do I contact you?"

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium
chromium-driver``) and Selenium (in the test extras); nothing is downloaded: the driver's
path is given and ``SE_OFFLINE`` stops Selenium Manager. ``tests/browser`` runs it too.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "playground.png"
PROMPT = "Tell me about Project Falcon"  # the demo banner's example of a block
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
)
WAIT_S = 20
ENDED = {"done", "blocked", "error", "stopped"}
TAG = "railproxy docs/playground_png.py"  # a PNG tEXt "Software" entry: how it was made


def capture(out: Path = OUT, prompt: str = PROMPT) -> str:
    """Run the demo, ask ``prompt`` in the playground, save the page to ``out``; returns the
    run's final state (``blocked`` for the default prompt)."""
    with demo() as ui, browser() as driver:
        driver.get(ui)
        wait = WebDriverWait(driver, WAIT_S)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#config option"))
        wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
        box = driver.find_element(By.ID, "prompt")
        box.clear()
        box.send_keys(prompt)
        driver.find_element(By.ID, "send").click()
        wait.until(lambda d: state(d) in ENDED)
        ended = state(driver)
        save_page(driver, out, f"{TAG}: railproxy demo, prompt {prompt!r}, {ended}")
        return ended


@contextmanager
def demo() -> Iterator[str]:
    """``railproxy demo --port 0`` from this checkout; yields the playground's URL that its
    banner prints, and stops it on exit."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    code = "import sys; from proxy.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "demo", "--port", "0"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield _playground_url(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _playground_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + WAIT_S
    for line in proc.stdout:  # the banner comes at once; each line is bounded by it
        found = re.search(r"playground: (http://\S+/ui)", line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"railproxy demo printed no playground URL (exit {proc.poll()})")


@contextmanager
def browser() -> Iterator[WebDriver]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        raise RuntimeError("needs Debian's chromium and chromium-driver on PATH")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        os.environ["SE_OFFLINE"] = "true"
        driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
        try:
            driver.set_page_load_timeout(WAIT_S)
            yield driver
        finally:
            driver.quit()


def state(driver: WebDriver) -> str:
    """The run's state as the page keeps it (the pill shows it upper-cased)."""
    return str(driver.find_element(By.ID, "status").get_attribute("textContent"))


def save_page(driver: WebDriver, out: Path, made_by: str) -> None:
    """The whole page, however tall, as a PNG (Chrome DevTools' capture), tagged with
    ``made_by`` (``tag_of`` reads it back)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_tagged(base64.b64decode(shot["data"]), made_by))


def _tagged(png: bytes, text: str) -> bytes:
    """``png`` with a tEXt chunk ``Software: text`` right after its IHDR chunk."""
    data = b"Software\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + data))
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def tag_of(png: bytes) -> str | None:
    """The ``Software`` tEXt entry of a PNG, or None."""
    at = 8
    while at + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        data = png[at + 8 : at + 8 + length]
        if kind == b"tEXt" and data.startswith(b"Software\0"):
            return data[len(b"Software\0") :].decode("latin-1")
        at += 12 + length
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args(argv)
    ended = capture(args.out, args.prompt)
    print(f"{args.out}: the demo's playground after {args.prompt!r} ({ended})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
