"""Integration harness: a real fake upstream and the real proxy, both on 127.0.0.1.

``fake`` is a running ``FakeUpstream``; ``proxy`` starts railproxy (``create_app`` with
real settings, served by a real ``AppRunner`` on a loopback port) in front of it:

    async def test_x(fake, proxy):
        p = await proxy(rails={...}, upstream={"read_timeout_s": 1})
        async with p.session.post(p.url("/v1/chat/completions"), json=...) as r: ...
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
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
from proxy.run.server import bound_port
from proxy.settings import Settings
from proxy.state import STATE, UPSTREAM
from rails import offload


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
async def _fds_back_to_baseline(
    fake: FakeUpstream, started_apps: list[web.Application]
) -> AsyncIterator[None]:
    """The file-descriptor half of ``no_leaks``: baseline before any proxy of the test
    exists, checked after the ``proxy`` fixture has torn every proxy down.

    Why then: a live proxy keeps pooled keep-alive connections on purpose (its upstream
    session, the test's session to it, and their server-side ends), and aiohttp has no
    public way to close only the idle ones; so "fds back to baseline" is only sound once
    the pools are gone. What the pools own while the test runs is checked by ``no_leaks``
    (no upstream connection still acquired); anything the pools do not own (a connection
    that escaped its pool, a rail's own session, a file) is still open after teardown and
    is reported here, with its TCP endpoints. ``no_leaks`` lists this fixture before
    ``proxy``, so it is set up before and torn down after it (checked below).
    """
    baseline = open_fds()
    workers = offload.starts()
    yield
    if not baseline:  # no /proc/self/fd (not Linux): nothing to compare
        return
    if offload.starts() != workers:  # the huge-text worker's pipes outlive its shutdown
        baseline |= {fd: t for fd, t in open_fds().items() if t.startswith("pipe:")}
    running = [app for app in started_apps if _upstream_open(app)]
    assert not running, "fd check ran before the proxy fixture's teardown (fixture order)"
    await settle(lambda: [str(fd) for fd in new_fds(baseline)])
    leaks = fd_leaks(baseline)
    assert not leaks, "file descriptors left open: " + "; ".join(leaks)


@pytest.fixture
async def no_leaks(
    fake: FakeUpstream,
    _fds_back_to_baseline: None,
    proxy: ProxyFactory,
    started_apps: list[web.Application],
) -> AsyncIterator[None]:
    """After the test: no task, stream, upstream connection or file descriptor of its
    requests remains.

    Waits (bounded) for the proxy to settle, then asserts: asyncio tasks back to the
    baseline, no stream counted active, no pooled upstream connection still acquired,
    and no fake-upstream handler still serving a request. Then, once the ``proxy``
    fixture has closed every proxy, the process's open file descriptors are back to the
    baseline taken before the test (``_fds_back_to_baseline``; Linux only).
    """
    baseline = _tasks()
    yield
    leaks = await settle(lambda: _leaks(fake, started_apps, baseline))
    assert not leaks, "; ".join(leaks)


async def settle(check: Callable[[], list[str]], seconds: float = 2.0) -> list[str]:
    """Run ``check`` until it finds nothing, for up to ``seconds`` (closing takes a few
    loop turns); what it found last, or []."""
    for _ in range(max(1, round(seconds / 0.02))):
        found = check()
        if not found:
            return []
        await asyncio.sleep(0.02)
    return check()


def _upstream_open(app: web.Application) -> bool:
    try:
        return not app[UPSTREAM].session.closed
    except RuntimeError:  # never started
        return False


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


# -- file descriptors and TCP sockets (Linux /proc) -----------------------------------

FD_DIR = "/proc/self/fd"
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT"}
TCP_STATES |= {7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at (``socket:[inode]``,
    a path, ``pipe:[...]``); {} where there is no /proc/self/fd."""
    try:
        names = os.listdir(FD_DIR)
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            out[int(name)] = os.readlink(f"{FD_DIR}/{name}")
        except OSError:  # closed since the listing (the listing's own fd, for one)
            continue
    return out


def new_fds(baseline: dict[int, str]) -> dict[int, str]:
    """Descriptors open now that were not open at ``baseline`` (or pointed elsewhere)."""
    return {fd: target for fd, target in open_fds().items() if baseline.get(fd) != target}


def fd_leaks(baseline: dict[int, str]) -> list[str]:
    """``new_fds``, described: TCP sockets with their endpoints and state (reading
    /proc/net/tcp takes milliseconds: settle on ``new_fds``, then describe)."""
    new = new_fds(baseline)
    if not new:
        return []
    sockets = {s.inode: s for s in tcp_sockets()}
    out = []
    for fd, target in sorted(new.items()):
        s = sockets.get(_inode(target))
        out.append(f"fd {fd} -> {target}" + (f" ({s})" if s is not None else ""))
    return out


def _inode(target: str) -> int:
    if target.startswith("socket:[") and target.endswith("]"):
        return int(target[8:-1])
    return -1


@dataclass(frozen=True)
class TcpSocket:
    """One row of /proc/net/tcp: IPv4 endpoints, state, queued bytes, inode."""

    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    tx_queue: int  # written by the application, not yet acknowledged by the peer
    rx_queue: int  # received, not yet read by the application
    inode: int

    def __str__(self) -> str:
        (lh, lp), (rh, rp) = self.local, self.remote
        return f"tcp {lh}:{lp} -> {rh}:{rp} {self.state} tx={self.tx_queue} rx={self.rx_queue}"


def tcp_sockets() -> list[TcpSocket]:
    """The IPv4 TCP sockets of this network namespace; [] without /proc/net/tcp."""
    try:
        with open("/proc/net/tcp") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return []
    out = []
    for row in rows:
        f = row.split()
        tx, rx = (int(q, 16) for q in f[4].split(":"))
        state = int(f[3], 16)
        out.append(
            TcpSocket(
                _addr(f[1]), _addr(f[2]), TCP_STATES.get(state, str(state)), tx, rx, int(f[9])
            )
        )
    return out


def _addr(field: str) -> tuple[str, int]:
    host, port = field.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(host, 16))), int(port, 16)


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
