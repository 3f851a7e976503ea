"""The SSE writer's keep-alives (``proxy.flow.writer``): a comment after ``keepalive_s``
without a write while events are held, none otherwise, none after the stream ends.
Served by a real aiohttp server on 127.0.0.1 and read by a real client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.flow.writer import KEEP_ALIVE, SSEWriter

Script = Callable[[SSEWriter, list[bool]], Awaitable[None]]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
INTERVAL = 0.05


async def served(aiohttp_client: ClientFactory, script: Script, holding: bool) -> bytes:
    """The body a client reads from a handler that runs ``script`` with keep-alives on."""

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = SSEWriter()
        await writer.prepare(request)
        state = [holding]
        writer.send_keep_alives(INTERVAL, lambda: state[0])
        try:
            await script(writer, state)
        finally:
            await writer.stop_keep_alives()
        await writer.write_eof()
        return writer

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    async with asyncio.timeout(10):
        resp = await client.get("/")
        return await resp.read()


async def idle(writer: SSEWriter, state: list[bool]) -> None:
    await asyncio.sleep(INTERVAL * 6)


async def test_keep_alives_while_holding_and_idle(aiohttp_client: ClientFactory) -> None:
    body = await served(aiohttp_client, idle, holding=True)
    assert body.count(KEEP_ALIVE) >= 2
    assert body == KEEP_ALIVE * body.count(KEEP_ALIVE)  # nothing else, whole comments


async def test_no_keep_alive_when_nothing_is_held(aiohttp_client: ClientFactory) -> None:
    assert await served(aiohttp_client, idle, holding=False) == b""


async def test_writes_reset_the_idle_clock(aiohttp_client: ClientFactory) -> None:
    """Events written more often than the interval need no keep-alive between them."""

    async def busy(writer: SSEWriter, state: list[bool]) -> None:
        for i in range(12):
            await writer.send(b"data: %d\n\n" % i)
            await asyncio.sleep(INTERVAL / 5)

    body = await served(aiohttp_client, busy, holding=True)
    assert KEEP_ALIVE not in body
    assert body == b"".join(b"data: %d\n\n" % i for i in range(12))


async def test_keep_alives_stop_with_the_holding(aiohttp_client: ClientFactory) -> None:
    """Once nothing is held, the comments stop; after stop_keep_alives, none is written
    (the stream's last bytes are its own)."""

    async def release(writer: SSEWriter, state: list[bool]) -> None:
        await asyncio.sleep(INTERVAL * 4)
        state[0] = False
        await writer.send(b"data: released\n\n")
        await asyncio.sleep(INTERVAL * 4)

    body = await served(aiohttp_client, release, holding=True)
    before, after = body.split(b"data: released\n\n")
    assert before.count(KEEP_ALIVE) >= 1
    assert after == b""


async def test_no_keep_alive_after_the_held_events_went_out(
    aiohttp_client: ClientFactory,
) -> None:
    """A keep-alive due while events were held, whose write would run only after they
    went out, is not written: the last bytes are the stream's own."""

    async def race(writer: SSEWriter, state: list[bool]) -> None:
        time.sleep(INTERVAL * 1.5)  # noqa: ASYNC251 (a busy loop: the keep-alive tick is overdue)
        await asyncio.sleep(0)  # the tick runs after this step: its write is queued
        await asyncio.sleep(0)
        state[0] = False
        await writer.send(b"data: released\n\n")
        await asyncio.sleep(INTERVAL / 5)

    body = await served(aiohttp_client, race, holding=True)
    assert body == b"data: released\n\n"


class _Counting:
    """The server side of one connection, counting the writes that reach its socket."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.write(b"".join(lines))

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


async def written(aiohttp_client: ClientFactory, first_bytes: bool) -> tuple[list[bytes], bytes]:
    """The socket writes of a response with one event sent, then the end with another."""
    counted: list[_Counting] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        protocol = request.protocol
        assert protocol.transport is not None
        counting = _Counting(protocol.transport)  # type: ignore[arg-type]
        protocol.transport = counting  # type: ignore[assignment]
        counted.append(counting)
        writer = SSEWriter()
        if first_bytes:
            writer.with_first_bytes()
        await writer.prepare(request)
        await writer.send(b"data: 1\n\n")
        await writer.end(b"data: 2\n\n")
        return writer

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    async with asyncio.timeout(10):
        resp = await client.get("/")
        body = await resp.read()
    return counted[0].writes, body


async def test_headers_go_with_the_first_bytes_when_asked(aiohttp_client: ClientFactory) -> None:
    writes, body = await written(aiohttp_client, first_bytes=True)
    assert body == b"data: 1\n\ndata: 2\n\n"
    assert len(writes) == 2  # headers + first event; the last event + the end of the body
    assert writes[0].startswith(b"HTTP/1.1 200")
    assert writes[0].endswith(b"data: 1\n\n\r\n")
    assert writes[1] == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"


async def test_headers_go_at_prepare_by_default(aiohttp_client: ClientFactory) -> None:
    writes, body = await written(aiohttp_client, first_bytes=False)
    assert body == b"data: 1\n\ndata: 2\n\n"
    assert len(writes) == 3
    assert writes[0].endswith(b"\r\n\r\n")
