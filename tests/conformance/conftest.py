"""Conformance harness: real model servers (from the setup scripts' cache) and the real proxy.

``vllm`` starts `python -m vllm.entrypoints.openai.api_server` (setup.sh's cache) and
``llamacpp`` starts `python -m llama_cpp.server` (setup_llamacpp.sh's cache), each once for its
test file on a free loopback port, and stops it (its whole process group) after that file. ``proxy``
starts railproxy in front of the module's ``upstream`` (vLLM unless the test module overrides
the fixture) the way tests/integration does (``create_app`` + ``AppRunner`` on 127.0.0.1:0, in
the test's loop), through a ``Tap``: a loopback TCP relay that records the exact bytes the
server sent on each upstream connection and when railproxy closed it:

    async def test_x(proxy, facts):
        p = await proxy(rails={...})
        async with p.session.post(p.url("/v1/chat/completions"), json=...) as r: ...

When a server's part of the cache is absent its tests skip (so the normal test run stays fast),
unless ``RAILPROXY_CONFORMANCE=1`` (vLLM) or ``RAILPROXY_CONFORMANCE_LLAMACPP=1`` (llama.cpp)
makes that a failure; ``RAILPROXY_CONFORMANCE=0`` skips all of them even when the cache is there.
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
from conformance import llamacpp_server, vllm_server
from conformance.server_process import ServerProcess, cache_dir, served
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import create_app
from proxy.run.server import bound_port
from proxy.settings import Settings

# The scenarios shared by every server's test file assert too: show their values on failure.
pytest.register_assert_rewrite("conformance.sdk_scenarios")

HERE = Path(__file__).parent
MODE = os.environ.get("RAILPROXY_CONFORMANCE", "")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Suite:
    """One real server's tests: its test file, its part of the cache, how to build it."""

    name: str
    test_file: str
    setup: str
    required_by: str  # the variable that turns an absent cache into a failure
    missing_parts: Callable[[Path], list[str]]

    def required(self) -> bool:
        return os.environ.get(self.required_by, "") == "1"

    def absent_reason(self) -> str | None:
        """Why this suite cannot run here, or None when its cache is complete."""
        cache = cache_dir()
        missing = self.missing_parts(cache)
        if not missing:
            return None
        return (
            f"{self.name} conformance cache incomplete at {cache} (missing: "
            f"{', '.join(missing)}): run tests/conformance/{self.setup}; "
            f"{self.required_by}=1 makes this a failure"
        )


VLLM = Suite("vLLM", "test_vllm.py", "setup.sh", "RAILPROXY_CONFORMANCE", vllm_server.missing_parts)
LLAMACPP = Suite(
    "llama.cpp",
    "test_llamacpp.py",
    "setup_llamacpp.sh",
    "RAILPROXY_CONFORMANCE_LLAMACPP",
    llamacpp_server.missing_parts,
)
SUITES = {s.test_file: s for s in (VLLM, LLAMACPP)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        suite = SUITES.get(item.path.name)
        if MODE == "0":
            reason: str | None = "RAILPROXY_CONFORMANCE=0"
        elif suite is None or suite.required():
            continue  # its server fixture fails with the reason instead
        else:
            reason = suite.absent_reason()
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def ready_cache(suite: Suite) -> Path:
    reason = suite.absent_reason()
    if reason is not None:
        pytest.fail(reason)
    return cache_dir()


@pytest.fixture(scope="session")
def cache() -> Path:
    """The cache, complete for vLLM."""
    return ready_cache(VLLM)


@pytest.fixture(scope="session")
def facts(cache: Path) -> dict[str, Any]:
    """What setup.sh learned from vLLM (test_llamacpp.py overrides this)."""
    return vllm_server.load_facts(cache)


def serve(server: ServerProcess, deadline_s: float) -> Iterator[ServerProcess]:
    with served(server, deadline_s):
        yield server


@pytest.fixture(scope="module")
def vllm(cache: Path) -> Iterator[ServerProcess]:
    """vLLM, for one test module (each server's tests are one file: it stops after them)."""
    yield from serve(vllm_server.start(cache), vllm_server.START_DEADLINE_S)


@pytest.fixture(scope="session")
def llamacpp_cache() -> Path:
    """The cache, complete for llama.cpp."""
    return ready_cache(LLAMACPP)


@pytest.fixture(scope="module")
def llamacpp(llamacpp_cache: Path) -> Iterator[ServerProcess]:
    """llama-cpp-python's server, for one test module (test_llamacpp.py)."""
    yield from serve(llamacpp_server.start(llamacpp_cache), llamacpp_server.START_DEADLINE_S)


@pytest.fixture
def upstream(vllm: ServerProcess) -> ServerProcess:
    """The server `proxy` fronts (test_llamacpp.py overrides this)."""
    return vllm


@dataclass
class TapConnection:
    """One upstream connection: what the server sent on it, and when railproxy closed it."""

    received: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    local_port: int = 0  # the tap's port on its connection to the server (the server's peer)

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
    """A TCP relay on 127.0.0.1 between railproxy and a server (bytes pass unchanged both ways;
    a close on either side is passed on at once)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections: list[TapConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def last_body(self) -> bytes:
        """The body of the last complete response the server sent railproxy."""
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
        conn.local_port = up_writer.get_extra_info("sockname")[1]
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
    """A client session for direct requests to the server (bounded by a total timeout). It keeps
    no connection alive, so every connection to the server left open here is the proxy's."""
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        yield session


@pytest.fixture
async def proxy(upstream: ServerProcess) -> AsyncIterator[ProxyFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []
    taps: list[Tap] = []

    async def start_proxy(**sections: Any) -> Proxy:
        tap = Tap(upstream.port)
        taps.append(tap)
        target = {"base_url": await tap.start() + "/v1", **sections.pop("upstream", {})}
        app = create_app(Settings.model_validate({"upstream": target, **sections}))
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


Note = Callable[[str], None]


@pytest.fixture
def note(request: pytest.FixtureRequest) -> Note:
    """Record a note for report.py's table: a JUnit property, which (unlike pytest's
    `record_property`) warns about no junit_family."""

    def add(text: str) -> None:
        request.node.user_properties.append(("note", text))
        print(f"note: {text}")

    return add


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
