"""Graceful drain, in-process: the listener closes, requests in flight finish or are cut.

A tiny app stands in for the proxy (one route that streams ``n`` chunks ``gap`` apart, one
that ends itself when ``ServerState.stopping`` is set, as the relay will); the real proxy is
drained as a process in test_server_process.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from proxy.run.drain import Drain
from proxy.run.server import bound_port
from proxy.state import STATE, InFlight, ServerState


async def slow(request: web.Request) -> web.StreamResponse:
    n, gap = int(request.query.get("n", "5")), float(request.query.get("gap", "0.05"))
    resp = web.StreamResponse()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(b"chunk %d\n" % i)
        await asyncio.sleep(gap)
    await resp.write_eof()
    return resp


async def polite(request: web.Request) -> web.StreamResponse:
    """Streams until the drain deadline, then writes a last line and ends (the relay hook)."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    await resp.write(b"start\n")
    await request.app[STATE].stopping.wait()
    await resp.write(b"server shutting down\n")
    await resp.write_eof()
    return resp


@dataclass
class Served:
    runner: web.AppRunner
    inflight: InFlight
    state: ServerState
    url: str

    def drain(self, timeout_s: float, grace_s: float = 0.2) -> Drain:
        return Drain(self.runner, self.inflight, self.state, timeout_s, grace_s)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    inflight = InFlight()  # what create_app puts first in its chain
    app = web.Application(middlewares=[inflight.middleware()])
    app[STATE] = ServerState()
    app.router.add_get("/slow", slow)
    app.router.add_get("/polite", polite)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Served(runner, inflight, app[STATE], f"http://127.0.0.1:{bound_port(runner)}")
    finally:
        await runner.cleanup()


async def started(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """A GET whose headers and first chunk arrived (so its handler is in flight)."""
    resp = await session.get(url)
    await resp.content.readline()
    return resp


async def test_inflight_counts_requests_and_becomes_idle(served: Served) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await started(s, served.url + "/slow?n=3")
        assert len(served.inflight) == 1
        await resp.read()
        resp.release()
        async with asyncio.timeout(2):
            await served.inflight.wait_idle()
    assert len(served.inflight) == 0


async def test_drain_lets_a_stream_finish_and_refuses_new_connections(served: Served) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await started(s, served.url + "/slow?n=10&gap=0.05")
        task = asyncio.create_task(served.drain(timeout_s=5).run())
        await asyncio.sleep(0.05)
        assert served.state.draining
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectorError):
                await fresh.get(served.url + "/slow?n=1")
        rest = await resp.read()
        report = await asyncio.wait_for(task, 3)
    assert rest.endswith(b"chunk 9\n")
    assert (report.in_flight, report.cut) == (1, 0)
    assert not served.state.stopping.is_set()


async def test_drain_cuts_what_outlives_the_timeout(served: Served) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await started(s, served.url + "/slow?n=100&gap=0.05")
        t0 = time.monotonic()
        report = await asyncio.wait_for(served.drain(timeout_s=0.3).run(), 3)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert 0.3 <= time.monotonic() - t0 < 1.5
    assert report.cut == 1
    assert served.state.stopping.is_set()
    assert len(served.inflight) == 0


async def test_a_stream_can_end_itself_at_the_deadline(served: Served) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await started(s, served.url + "/polite")
        report = await asyncio.wait_for(served.drain(timeout_s=0.2, grace_s=2).run(), 3)
        body = await resp.read()
    assert body == b"server shutting down\n"
    assert report.cut == 0


async def test_hurry_ends_the_wait_at_once(served: Served) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await started(s, served.url + "/slow?n=100&gap=0.05")
        drain = served.drain(timeout_s=30)
        task = asyncio.create_task(drain.run())
        await asyncio.sleep(0.1)
        drain.hurry()
        report = await asyncio.wait_for(task, 2)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert report.cut == 1
    assert report.seconds < 1.5


async def test_drain_with_nothing_in_flight_is_immediate(served: Served) -> None:
    report = await asyncio.wait_for(served.drain(timeout_s=30).run(), 1)
    assert (report.in_flight, report.cut) == (0, 0)
    assert report.seconds < 0.5
