"""Integration harness: a real fake upstream and the real proxy, both on 127.0.0.1.

``fake`` is a running ``FakeUpstream``; ``proxy`` starts railproxy (``create_app`` with
real settings, served by a real ``AppRunner`` on a loopback port) in front of it:

    async def test_x(fake, proxy):
        p = await proxy(rails={...}, upstream={"read_timeout_s": 1})
        async with p.session.post(p.url("/v1/chat/completions"), json=...) as r: ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fakes.upstream import FakeUpstream
from proxy.app import create_app
from proxy.keys import STATE, UPSTREAM
from proxy.loader import load_config
from proxy.server import bound_port
from proxy.settings import Settings


@dataclass
class Proxy:
    base: str
    session: aiohttp.ClientSession
    app: web.Application

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def v1(self) -> str:
        return self.base + "/v1"

    async def post_stream(self, path: str, body: dict[str, Any], **kw: Any) -> tuple[int, bytes]:
        """POST and read the whole body (bounded by the test timeout)."""
        async with self.session.post(self.url(path), json=body, **kw) as r:
            return r.status, await r.read()


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


@pytest.fixture
def started_apps() -> list[web.Application]:
    """Every proxy app a test started (for leak checks)."""
    return []


@pytest.fixture
async def proxy(
    fake: FakeUpstream, started_apps: list[web.Application]
) -> AsyncIterator[ProxyFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        upstream: dict[str, Any] | None = None,
        target: str | None = None,
        config_dir: Path | None = None,
        **sections: Any,
    ) -> Proxy:
        up = {"base_url": (target or fake.base_url) + "/v1", **(upstream or {})}
        if config_dir is not None:
            loaded = load_config(str(config_dir), **{"upstream.base_url": up["base_url"]})
            app = create_app(loaded.settings, loaded.configs)
        else:
            app = create_app(Settings.model_validate({"upstream": up, **sections}))
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        sessions.append(session)
        started_apps.append(app)
        return Proxy(f"http://127.0.0.1:{bound_port(runner)}", session, app)

    try:
        yield start
    finally:
        for s in sessions:
            await s.close()
        for r in runners:
            await r.cleanup()
        await asyncio.sleep(0)


@pytest.fixture
async def no_leaks(
    fake: FakeUpstream, proxy: ProxyFactory, started_apps: list[web.Application]
) -> AsyncIterator[None]:
    """After the test: no task, stream or upstream connection of its requests remains.

    Waits (bounded) for the proxy to settle, then asserts: asyncio tasks back to the
    baseline, no stream counted active, no pooled upstream connection still acquired,
    and no fake-upstream handler still serving a request.
    """
    baseline = _tasks()
    yield
    for _ in range(100):  # settle for up to 2 s: closing takes a few loop turns
        if not _leaks(fake, started_apps, baseline):
            break
        await asyncio.sleep(0.02)
    assert _leaks(fake, started_apps, baseline) == []


def _leaks(fake: FakeUpstream, apps: list[web.Application], baseline: int) -> list[str]:
    found = []
    if (tasks := _tasks()) > baseline:
        names = [_name(t) for t in asyncio.all_tasks()]
        found.append(f"{tasks - baseline} extra tasks: {sorted(n for n in names if n)}")
    for app in apps:
        if app[STATE].active_streams:
            found.append(f"{app[STATE].active_streams} active streams")
        connector = app[UPSTREAM].session.connector
        # aiohttp keeps connections in use in a private set; the public API has no count.
        in_use = len(getattr(connector, "_acquired", ()))
        if in_use:
            found.append(f"{in_use} upstream connections in use")
    if fake.active_handlers:
        found.append(f"{fake.active_handlers} upstream handlers running")
    return found


def _name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "") if coro is not None else ""


def _tasks() -> int:
    """Tasks that belong to requests: not aiohttp's per-connection handler (kept alive
    by keep-alive connections, which are pooled on purpose)."""
    return sum(1 for t in asyncio.all_tasks() if _name(t) != "RequestHandler.start")


def chat_body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        **extra,
    }


def events(raw: bytes) -> list[bytes]:
    """The data payloads of an SSE body (tests only; the proxy has its own decoder)."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                out.append(line[5:].lstrip(b" "))
    return out
