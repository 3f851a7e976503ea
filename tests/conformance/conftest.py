"""Conformance harness: a real vLLM server (from setup.sh's cache) and the real proxy.

``vllm`` starts `python -m vllm.entrypoints.openai.api_server` once per session on a free
loopback port and stops it (its whole process group) at the end; ``proxy`` starts railproxy
in front of it the way tests/integration does (``create_app`` + ``AppRunner`` on 127.0.0.1:0,
in the test's loop), through a ``Tap``: a loopback TCP relay that records the exact bytes
vLLM sent on each upstream connection and when railproxy closed it:

    async def test_x(vllm, proxy):
        p = await proxy(rails={...})
        async with p.session.post(p.url("/v1/chat/completions"), json=...) as r: ...

When the cache is absent the tests skip (so the normal test run stays fast), unless
``RAILPROXY_CONFORMANCE=1``, which makes that a failure; ``RAILPROXY_CONFORMANCE=0`` skips
them even when the cache is there.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conformance.vllm_server import VllmServer, cache_dir, load_facts, missing_parts, start
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import create_app
from proxy.server import bound_port
from proxy.settings import Settings

HERE = Path(__file__).parent
MODE = os.environ.get("RAILPROXY_CONFORMANCE", "")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def absent_reason() -> str | None:
    """Why the suite cannot run here, or None when the cache is complete."""
    cache = cache_dir()
    missing = missing_parts(cache)
    if not missing:
        return None
    return (
        f"conformance cache incomplete at {cache} (missing: {', '.join(missing)}): run "
        "tests/conformance/setup.sh; RAILPROXY_CONFORMANCE=1 makes this a failure"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MODE == "1":
        return  # the session fixture fails with the reason instead
    reason = "RAILPROXY_CONFORMANCE=0" if MODE == "0" else absent_reason()
    if reason is None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def cache() -> Path:
    reason = absent_reason()
    if reason is not None:
        pytest.fail(reason)
    return cache_dir()


@pytest.fixture(scope="session")
def facts(cache: Path) -> dict[str, Any]:
    return load_facts(cache)


@pytest.fixture(scope="session")
def vllm(cache: Path) -> Iterator[VllmServer]:
    server = start(cache)
    try:
        took = server.wait_ready()
        print(f"\nvLLM ready on {server.base_url} in {took:.1f} s (log: {server.log})")
        yield server
    finally:
        server.stop()


@dataclass
class TapConnection:
    """One upstream connection: what vLLM sent on it, and when railproxy closed it."""

    received: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def bodies(self) -> list[bytes]:
        """The bodies of the complete HTTP responses received, in order (keep-alive)."""
        data, out = bytes(self.received), []
        while b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            body, data = _read_body(head.lower(), rest)
            out.append(body)
        return out


def _read_body(head: bytes, rest: bytes) -> tuple[bytes, bytes]:
    """One response body (chunked encoding undone) and the bytes after it."""
    if b"transfer-encoding: chunked" not in head:
        match = re.search(rb"content-length: *(\d+)", head)
        n = int(match.group(1)) if match else len(rest)
        return rest[:n], rest[n:]
    out, i = bytearray(), 0
    while True:
        eol = rest.find(b"\r\n", i)
        if eol < 0:
            # The last chunk's terminator had not crossed the tap yet (railproxy stops
            # reading at [DONE]); the body's events are all there.
            return bytes(out), b""
        size, i = int(rest[i:eol].split(b";")[0], 16), eol + 2
        if size == 0:
            return bytes(out), rest[i + 2 :]
        out += rest[i : i + size]
        i += size + 2


class Tap:
    """A TCP relay on 127.0.0.1 between railproxy and vLLM (bytes pass unchanged both ways;
    a close on either side is passed on at once)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections: list[TapConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def last_body(self) -> bytes:
        """The body of the last complete response vLLM sent railproxy."""
        return self.connections[-1].bodies()[-1]

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = TapConnection()
        self.connections.append(conn)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        down = asyncio.create_task(_pump(up_reader, writer, conn.received))
        try:
            await _pump(reader, up_writer, None)  # until railproxy closes its side
            conn.closed.set()
            await down
        finally:
            down.cancel()
            for w in (writer, up_writer):
                w.close()
            if task is not None:
                self._tasks.discard(task)


async def _pump(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bytearray | None
) -> None:
    """Copy until EOF or a reset, then close `dst` (so the close reaches the other side)."""
    try:
        while data := await src.read(1 << 16):
            if record is not None:
                record += data
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()


@dataclass
class Proxy:
    base: str
    session: aiohttp.ClientSession
    app: web.Application
    tap: Tap

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def v1(self) -> str:
        return self.base + "/v1"


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for direct requests to vLLM (bounded by a total timeout). It keeps no
    connection alive, so every connection to vLLM left open in this process is the proxy's."""
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        yield session


@pytest.fixture
async def proxy(vllm: VllmServer) -> AsyncIterator[ProxyFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []
    taps: list[Tap] = []

    async def start_proxy(**sections: Any) -> Proxy:
        tap = Tap(vllm.port)
        taps.append(tap)
        upstream = {"base_url": await tap.start() + "/v1", **sections.pop("upstream", {})}
        app = create_app(Settings.model_validate({"upstream": upstream, **sections}))
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        sessions.append(session)
        return Proxy(f"http://127.0.0.1:{bound_port(runner)}", session, app, tap)

    try:
        yield start_proxy
    finally:
        for s in sessions:
            await s.close()
        for r in runners:
            await r.cleanup()
        for t in taps:
            await t.close()
        await asyncio.sleep(0)


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    async with session.get(url) as r:
        assert r.status == 200, url
        text = await r.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every sample whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


async def wait_until(
    check: Callable[[], Awaitable[bool]], within_s: float, every_s: float = 0.05
) -> float:
    """Poll `check` until it holds; return how long that took, or fail after `within_s`."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met within {within_s} s")
