"""Config reload, in-process: fingerprints, the kubelet's symlink swap, refusal of a bad
file, polling, and what happens to requests in flight. (SIGHUP to a real process:
test_server_process.py.)"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from fakes.upstream import FakeUpstream, Script
from proxy.app import create_app
from proxy.configs import ConfigSet
from proxy.loader import load_config
from proxy.run.reload import Reloader, ReloadSource, fingerprint
from proxy.run.server import bound_port
from proxy.state import CONFIGS, INFLIGHT, STATE, live_configs

PLAIN = "upstream: {base_url: '%s/v1'}\n"
GUARDED = PLAIN + (
    "rails:\n  config: {banned: {type: blocklist, words: [falcon]}}\n  input: {flows: [banned]}\n"
)
BROKEN = PLAIN + "rails: {input: {flows: [no_such_rail]}}\n"


class ConfigMapVolume:
    """A directory laid out the way the kubelet writes a ConfigMap volume, and updates it:
    a new ``..<stamp>`` directory, ``..data`` swapped to it with one rename, then the old
    directory removed; ``config.yaml`` stays a symlink to ``..data/config.yaml``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes = 0

    @property
    def path(self) -> Path:
        return self.root / "config.yaml"

    def write(self, text: str) -> None:
        self.writes += 1
        stamp = self.root / f"..2026_01_01_00_00_{self.writes:02d}.000000001"
        stamp.mkdir()
        (stamp / "config.yaml").write_text(text)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        os.symlink(stamp.name, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", self.root / "..data")
        if not self.path.is_symlink():
            os.symlink("..data/config.yaml", self.path)
        if old is not None:
            shutil.rmtree(old)


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path)


def test_fingerprint_follows_the_kubelet_swap(volume: ConfigMapVolume) -> None:
    volume.write(PLAIN % "http://a")
    before = fingerprint(volume.path)
    volume.write(PLAIN % "http://a")  # same bytes, new target
    after = fingerprint(volume.path)
    assert before != after
    assert after[0][1].endswith("_02.000000001/config.yaml")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p.write_text(p.read_text() + "# more\n"), id="rewrite"),
        pytest.param(lambda p: os.utime(p, ns=(1, 1)), id="touch"),
        pytest.param(lambda p: p.unlink(), id="remove"),
        pytest.param(lambda p: os.replace(p.with_name("new.yaml"), p), id="rename-over"),
    ],
)
def test_fingerprint_sees_plain_file_changes(
    tmp_path: Path, change: Callable[[Path], object]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PLAIN % "http://a")
    (tmp_path / "new.yaml").write_text(PLAIN % "http://b")
    before = fingerprint(path)
    change(path)
    assert fingerprint(path) != before


def test_fingerprint_of_a_directory_covers_added_files(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(PLAIN % "http://a")
    before = fingerprint(tmp_path)
    (tmp_path / "strict.yaml").write_text(GUARDED % "http://a")
    assert [entry[0] for entry in fingerprint(tmp_path)] == ["default", "strict"]
    assert fingerprint(tmp_path) != before


class Hooks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ConfigSet | None]] = []
        self.changed = asyncio.Event()

    def __call__(self, result: str, configs: ConfigSet | None) -> None:
        self.calls.append((result, configs))
        self.changed.set()


def make_reloader(
    volume: ConfigMapVolume, poll_s: float = 0
) -> tuple[web.Application, Reloader, Hooks]:
    loaded = load_config(str(volume.path))
    app = create_app(loaded.settings, loaded.configs)
    source = ReloadSource(volume.path, lambda: load_config(str(volume.path)), poll_s)
    reloader = Reloader(app, source, app[INFLIGHT])
    hooks = Hooks()
    app[STATE].reload_hooks.append(hooks)
    return app, reloader, hooks


async def test_a_valid_swap_switches_new_requests_to_the_new_config(
    volume: ConfigMapVolume,
) -> None:
    volume.write(PLAIN % "http://up")
    app, reloader, hooks = make_reloader(volume)
    assert not reloader.changed()
    volume.write(GUARDED % "http://up")
    assert reloader.changed()
    assert reloader.reload()
    live = live_configs(app)
    assert live is not app[CONFIGS]
    assert [r.name for r in live.get("default").input.rails] == ["banned"]
    assert hooks.calls == [("ok", live)]
    assert not reloader.changed()
    await reloader.aclose()


async def test_an_invalid_file_is_refused_and_the_old_config_kept(
    volume: ConfigMapVolume, caplog: pytest.LogCaptureFixture
) -> None:
    volume.write(PLAIN % "http://up")
    app, reloader, hooks = make_reloader(volume)
    volume.write(BROKEN % "http://up")
    with caplog.at_level(logging.ERROR, logger="railproxy.reload"):
        assert not reloader.reload()
    assert live_configs(app) is app[CONFIGS]
    assert hooks.calls == [("error", None)]
    (record,) = caplog.records
    assert "refused" in record.getMessage()
    assert "no_such_rail" in record.__dict__["error"]
    assert not reloader.changed()  # the same bad file is not retried every poll
    volume.write(GUARDED % "http://up")
    assert reloader.reload()
    assert [r for r, _ in hooks.calls] == ["error", "ok"]
    await reloader.aclose()


async def test_settings_that_need_a_restart_are_reported(
    volume: ConfigMapVolume, caplog: pytest.LogCaptureFixture
) -> None:
    volume.write(PLAIN % "http://up")
    _, reloader, _ = make_reloader(volume)
    volume.write(PLAIN % "http://elsewhere")
    with caplog.at_level(logging.WARNING, logger="railproxy.reload"):
        assert reloader.reload()
    (record,) = caplog.records
    assert record.__dict__["sections"] == ["upstream"]
    await reloader.aclose()


async def test_watch_picks_up_a_swap_within_a_poll(volume: ConfigMapVolume) -> None:
    volume.write(PLAIN % "http://up")
    _, reloader, hooks = make_reloader(volume, poll_s=0.02)
    watching = asyncio.create_task(reloader.watch())
    try:
        await asyncio.sleep(0.05)
        assert hooks.calls == []  # nothing changed, nothing reloaded
        volume.write(GUARDED % "http://up")
        async with asyncio.timeout(2):
            await hooks.changed.wait()
    finally:
        watching.cancel()
    assert [r for r, _ in hooks.calls] == ["ok"]
    await reloader.aclose()


async def test_watch_with_poll_zero_returns_at_once(volume: ConfigMapVolume) -> None:
    volume.write(PLAIN % "http://up")
    _, reloader, _ = make_reloader(volume, poll_s=0)
    await asyncio.wait_for(reloader.watch(), 1)


async def test_a_failing_hook_does_not_stop_the_reload(volume: ConfigMapVolume) -> None:
    volume.write(PLAIN % "http://up")
    app, reloader, hooks = make_reloader(volume)

    def broken(result: str, configs: ConfigSet | None) -> None:
        raise RuntimeError("metrics exploded")

    app[STATE].reload_hooks.insert(0, broken)
    volume.write(GUARDED % "http://up")
    assert reloader.reload()
    assert [r for r, _ in hooks.calls] == ["ok"]
    await reloader.aclose()


# -- with a real proxy serving --------------------------------------------------------


class Running:
    def __init__(self, app: web.Application, reloader: Reloader, url: str) -> None:
        self.app, self.reloader, self.url = app, reloader, url


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(Script(text=["a falcon", " flies"] * 5, tokens_per_s=40)) as f:
        yield f


@pytest.fixture
async def running(volume: ConfigMapVolume, fake: FakeUpstream) -> AsyncIterator[Running]:
    volume.write(PLAIN % fake.base_url)
    loaded = load_config(str(volume.path))
    app = create_app(loaded.settings, loaded.configs)
    inflight = app[INFLIGHT]
    source = ReloadSource(volume.path, lambda: load_config(str(volume.path)), 0)
    reloader = Reloader(app, source, inflight)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Running(app, reloader, f"http://127.0.0.1:{bound_port(runner)}")
    finally:
        await runner.cleanup()
        await reloader.aclose()


def chat(text: str, stream: bool = True) -> dict[str, object]:
    return {"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]}


async def test_a_stream_in_flight_finishes_under_its_config_and_then_the_old_set_closes(
    running: Running, volume: ConfigMapVolume, fake: FakeUpstream
) -> None:
    old = live_configs(running.app)
    closed = asyncio.Event()
    real_aclose = old.aclose

    async def aclose() -> None:
        closed.set()
        await real_aclose()

    old.aclose = aclose  # type: ignore[method-assign]
    url = running.url + "/v1/chat/completions"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.post(url, json=chat("tell me about the falcon")) as resp:
            await resp.content.readline()
            volume.write(GUARDED % fake.base_url)
            assert running.reloader.reload()
            await asyncio.sleep(0.05)
            assert not closed.is_set()  # the stream still holds a guard of the old set
            body = await resp.read()
        async with asyncio.timeout(2):
            await closed.wait()
    assert body.rstrip().endswith(b"data: [DONE]")
    assert b"content_blocked" not in body


async def test_new_requests_use_the_reloaded_config(
    running: Running, volume: ConfigMapVolume, fake: FakeUpstream
) -> None:
    url = running.url + "/v1/chat/completions"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.post(url, json=chat("falcon?", stream=False)) as resp:
            assert resp.status == 200
        volume.write(GUARDED % fake.base_url)
        assert running.reloader.reload()
        async with s.post(url, json=chat("falcon?", stream=False)) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "content_blocked"
