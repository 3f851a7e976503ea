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
async def proxy(fake: FakeUpstream) -> AsyncIterator[ProxyFactory]:
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
        return Proxy(f"http://127.0.0.1:{bound_port(runner)}", session, app)

    try:
        yield start
    finally:
        for s in sessions:
            await s.close()
        for r in runners:
            await r.cleanup()
        await asyncio.sleep(0)


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
