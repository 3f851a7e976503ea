"""The playground end to end: headless Chromium (Debian's ``chromium`` and
``chromium-driver`` packages, driven by Selenium) against the demo upstream and the real
proxy on loopback. Skipped only when chromium or chromedriver is not installed.

Nothing is downloaded: the driver's path is given (so Selenium Manager never runs) and
``SE_OFFLINE`` forbids it anyway. Each run saves ``artifacts/playground.png``. README's
``docs/playground.png`` is made from the demo itself by ``docs/playground_png.py``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from proxy.app import create_app
from proxy.configs import ConfigSet
from proxy.run import demo
from proxy.run.server import bound_port
from proxy.settings import Settings
from rails.config import RailsConfig

HERE = Path(__file__).parent
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
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
FALCON_ANSWER = (
    "Happy to help! For press questions write to jane.doe@example.com and we will reply "
    "within a day. This year we ship three things: a faster search, an offline mode, and "
    "Project Falcon, our secret plan to launch next spring."
)
WAIT_S = 20

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); not installed here",
)


def rails(stream_first: bool) -> RailsConfig:
    config = {
        "streaming": True,
        "rails": {
            "config": {
                "banned": {"type": "blocklist", "words": ["project falcon"]},
                "pii": {"type": "pii", "entities": ["email", "phone"], "action": "mask"},
            },
            "output": {
                "flows": ["banned", "pii"],
                "streaming": {
                    "enabled": True,
                    "chunk_size": 8,
                    "context_size": 4,
                    "stream_first": stream_first,
                },
            },
        },
    }
    return RailsConfig.model_validate(config)


class Servers:
    """The demo upstream and railproxy (playground on), in a thread with its own loop."""

    def __init__(self) -> None:
        self.base = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="playground-servers")

    def __enter__(self) -> Servers:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"servers did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the server thread did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        upstream = await _start(demo.demo_upstream(delay_s=0.03))
        try:
            url = f"http://127.0.0.1:{bound_port(upstream)}/v1"
            settings = Settings.model_validate(
                {"server": {"playground": True}, "upstream": {"base_url": url}}
            )
            configs = ConfigSet({"held": _guard(False), "streamed": _guard(True)}, "held")
            proxy = await _start(create_app(settings, configs))
            try:
                self.base = f"http://127.0.0.1:{bound_port(proxy)}"
                self._ready.set()
                await self._stop.wait()
            finally:
                await proxy.cleanup()
        finally:
            await upstream.cleanup()


def _guard(stream_first: bool) -> Any:
    return ConfigSet.single(rails(stream_first)).get("default")


async def _start(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    falcon = (re.compile(r"falcon", re.I), FALCON_ANSWER)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "ANSWERS", [falcon, *demo.ANSWERS[1:]])
        with Servers() as running:
            yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    assert CHROMIUM is not None
    assert CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


def text(driver: WebDriver, css: str) -> str:
    """The element's text as shown (CSS may change its case)."""
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def status(driver: WebDriver) -> str:
    """The run's state as the page keeps it (the pill shows it upper-cased)."""
    return str(driver.find_element(By.ID, "status").get_attribute("textContent"))


def ask(driver: WebDriver, base: str, config: str, prompt: str) -> None:
    """Open the page, pick a config, send a prompt, wait for the stream to end."""
    driver.get(base + "/ui")
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#config option")) == 2)
    wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
    Select(driver.find_element(By.ID, "config")).select_by_value(config)
    box = driver.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(prompt)
    driver.find_element(By.ID, "send").click()
    wait.until(lambda d: status(d) in {"done", "blocked", "error", "stopped"})


def console_errors(driver: WebDriver) -> list[Any]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: WebDriver, *paths: Path) -> None:
    """The whole page, however tall, as PNG files (Chrome DevTools' capture)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


def test_a_block_shows_windows_verdicts_and_the_abort(servers: Servers, browser: WebDriver) -> None:
    ask(browser, servers.base, "held", "Tell me about Project Falcon")
    assert status(browser) == "blocked"
    banner = text(browser, "#abort")
    assert "Aborted by rail banned" in banner
    assert "matched blocklisted term 'project falcon'" in banner
    assert "None of the blocked window's text reached the client" in banner
    output = text(browser, "#output")
    assert "blocked by banned" in output
    assert "never sent" in output
    assert "Falcon" not in output
    assert "[EMAIL]" in output
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#windows tr")]
    assert any("allow banned" in r and "allow pii" in r for r in rows)
    assert any("modify pii" in r for r in rows)
    assert "block banned" in rows[-1]
    assert "stream_first false" in text(browser, "#facts")
    assert console_errors(browser) == []
    screenshot(browser, HERE / "artifacts" / "playground.png")


def test_a_clean_stream_ends_done_with_every_window_passed(
    servers: Servers, browser: WebDriver
) -> None:
    ask(browser, servers.base, "streamed", "Hello there")
    assert status(browser) == "done"
    assert browser.find_element(By.ID, "abort").is_displayed() is False
    assert "Every word you read went through" in text(browser, "#output")
    verdicts = [v.text for v in browser.find_elements(By.CSS_SELECTOR, "#windows td .verdict")]
    assert verdicts
    assert set(verdicts) == {"allow"}
    assert "stream_first true" in text(browser, "#facts")
    assert console_errors(browser) == []


def test_a_block_after_release_says_the_text_was_already_streamed(
    servers: Servers, browser: WebDriver
) -> None:
    ask(browser, servers.base, "streamed", "Tell me about Project Falcon")
    assert status(browser) == "blocked"
    banner = text(browser, "#abort")
    assert "Aborted by rail pii" in banner  # the e-mail comes first; masking is too late
    assert "Part of the blocked text had already been streamed" in banner
    struck = browser.find_elements(By.CSS_SELECTOR, "#output .seg.block")
    assert "jane.doe@example.com" in struck[0].text
    assert console_errors(browser) == []
