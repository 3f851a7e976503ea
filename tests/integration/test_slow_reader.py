"""Backpressure end to end: a client that reads slowly, a fast upstream that sends a lot.

The proxy must read the upstream no faster than the client drains (within a bound), and
hold a bounded amount of the stream meanwhile, on the pass-through path and on the guarded
path in both release modes. Then the client either reads the rest (the body arrives byte
for byte, then ``[DONE]``) or goes away (the proxy closes the upstream request); either
way ``no_leaks`` checks nothing of the request remains.

The setup, all on 127.0.0.1 in this process:

    Bulk upstream --(1)--> proxy --(2)--> raw-socket client

``Bulk`` is an aiohttp server of ours that writes ``EVENTS`` chat chunks of ``TEXT`` chars
each as fast as its socket takes them and counts the bytes that left its user space
(``sent``: written minus what still sits in its transport's buffer). The client is a
non-blocking socket read with ``sock_recv`` (no user-space buffer), ``SLOW_READ`` bytes
every ``SLOW_PAUSE_S``.

Loopback TCP buffers autotune to MBs (here ``tcp_rmem`` allows 32 MiB), which would hide
any backpressure, so every socket on the path gets a fixed buffer before the response
starts (a fixed SO_SNDBUF/SO_RCVBUF turns autotuning off; the kernel doubles the value):
the client's receive buffer before it connects, the proxy's two sockets (found through
/proc/net/tcp and /proc/self/fd, set on a dup of the descriptor) and the upstream's send
buffer before the first byte. The proxy's receive buffer is not made smaller than the
default it advertised its first window with, so no byte in flight can be dropped.

The bounds, in bytes of the stream (see ``proxy_bound``):

* kernel: the four socket buffers as the kernel reports them, plus one 64 KiB loopback
  segment of overshoot per socket;
* proxy, pass-through: the upstream reader (aiohttp pauses the socket once its buffer
  passes ``2 * read_bufsize``; one 256 KiB recv can overshoot; while paused the HTTP
  parser keeps at most one recv of unparsed tail), the chunk being relayed (everything
  the reader held, plus a partial event in the SSE decoder) and the client transport's
  buffer (aiohttp writes up to 64 KiB without draining, then one whole write);
* proxy, guarded: the reader and the writer as above, plus the guard's queue:
  ``max_held_events`` plus the events of one read (the reader checks ``room()`` after
  each read), and a released batch of at most as many being written.

(a) ``sent - read <= kernel + proxy``: the upstream is read no faster than the client
drains. (b) ``sent - read - queued <= proxy``, where ``queued`` is what the four sockets
hold right now (/proc/net/tcp ``tx_queue + rx_queue``; a byte received but not yet
acknowledged counts twice, so this can only under-state the proxy's share): the stream
bytes the proxy holds in its own memory stay bounded. On the guarded path, also: the guard
never holds more than ``max_held_events`` plus one read's events. ``TOTAL`` (20 MiB) is
five times the larger bound or more, so a proxy that reads ahead breaks (a) and (b) at
once (checked by hand: with the writer not draining, or ``GuardedStream.room`` returning
at once, 5 to 18 MB are read ahead, and the guard holds some 300 events).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from integration.conftest import ProxyFactory, chat_body, open_fds, settle, tcp_sockets
from rails.stream import GuardedStream

pytestmark = [
    pytest.mark.usefixtures("no_leaks"),
    pytest.mark.skipif(not open_fds(), reason="needs /proc (Linux) to size and measure sockets"),
]

TEXT = 32 * 1024  # chars of generated text per upstream event
EVENTS = 640  # about 20 MiB in all
MAX_HELD = 16  # max_held_events on the guarded path (its minimum)


def default_rcvbuf() -> int:
    """The receive buffer a new TCP socket starts with (what its first window is from)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_rmem") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 128 * 1024


# Socket buffers (the kernel doubles each)
CLIENT_RCVBUF = 64 * 1024
PROXY_SNDBUF = 64 * 1024  # the proxy's socket to the client
# the proxy's socket to the upstream: never below its first window's buffer
PROXY_RCVBUF = max(128 * 1024, default_rcvbuf())

UPSTREAM_SNDBUF = 64 * 1024
SEGMENT = 64 * 1024  # loopback's largest segment: what a buffer may overshoot by

# The proxy's reader and writer (proxy/upstream.py's read_bufsize; asyncio; aiohttp)
READ_BUFSIZE = 64 * 1024
RECV = 256 * 1024  # asyncio's selector transports recv() at most this much at once
READER = 2 * READ_BUFSIZE + RECV + RECV  # buffer past the pause mark, plus the parser's tail
ONE_READ = 2 * READ_BUFSIZE + RECV  # what one iter_any() can return
WRITE_LIMIT = 64 * 1024  # aiohttp's StreamWriter drains once this much is buffered

SLOW_READ = 16 * 1024
SLOW_PAUSE_S = 0.002
SLOW_S = 0.8  # the slow phase lasts this long, and until the client has read SLOW_MIN:
SLOW_MIN = 512 * 1024  # a few MB/s at most (~1 MB/s on a busy box)
SLOW_MAX_S = 20.0  # a bound on the test, not a speed claim: 512 KiB took 5.1 s under load 5
FINISH_S = 15.0  # reading the rest at full speed takes about 1 s


def chunk(content: str, finish: str | None = None) -> bytes:
    delta = {"content": content} if finish is None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    obj = {"id": "chatcmpl-bulk", "object": "chat.completion.chunk", "created": 0}
    obj |= {"model": "fake-model", "choices": [choice]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


WORDS = ("lorem ipsum dolor sit amet " * (TEXT // 27 + 1))[:TEXT]
EVENT = chunk(WORDS)
END = chunk("", finish="stop") + b"data: [DONE]\n\n"
TOTAL = EVENTS * len(EVENT) + len(END)


def proxy_bound(guarded: bool) -> int:
    """Stream bytes the proxy may hold for one stream (module docstring)."""
    relayed = ONE_READ + len(EVENT)  # a read's events, plus a partial one in the decoder
    writer = WRITE_LIMIT + relayed
    if not guarded:
        return READER + relayed + writer
    held = held_bound() * len(EVENT)
    return READER + relayed + 2 * held + WRITE_LIMIT


def held_bound() -> int:
    """Events the guard may hold: ``max_held_events``, plus the events one read can
    complete (its bytes, plus the rest of an event the previous read began), plus the
    stream's two small closing events."""
    return MAX_HELD + (ONE_READ + len(EVENT) - 1) // len(EVENT) + 2


@contextmanager
def borrowed(local_port: int, remote_port: int) -> Iterator[socket.socket]:
    """A dup of this process's TCP socket ``127.0.0.1:local -> 127.0.0.1:remote``
    (socket options set on it apply to the original)."""
    inodes = {
        s.inode
        for s in tcp_sockets()
        if s.local == ("127.0.0.1", local_port) and s.remote == ("127.0.0.1", remote_port)
    }
    fds = [fd for fd, target in open_fds().items() if target in {f"socket:[{i}]" for i in inodes}]
    if len(fds) != 1:
        raise LookupError(f"no single fd for 127.0.0.1:{local_port} -> :{remote_port}: {fds}")
    with socket.fromfd(fds[0], socket.AF_INET, socket.SOCK_STREAM) as dup:
        yield dup


def queued(links: list[tuple[int, int]]) -> int:
    """Bytes the kernel holds right now in these sockets (sent not acked, or not read)."""
    want = {(("127.0.0.1", a), ("127.0.0.1", b)) for a, b in links}
    return sum(s.tx_queue + s.rx_queue for s in tcp_sockets() if (s.local, s.remote) in want)


@dataclass
class Bulk:
    """The fast upstream (module docstring). One streamed response per test."""

    written: int = 0
    finished: bool = False  # every byte was handed to the transport
    cut: bool = False  # the proxy closed the connection first
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    buffers: dict[str, int] = field(default_factory=dict)  # socket buffers, kernel's figures
    link: tuple[int, int] = (0, 0)  # (our port, the proxy's port) of the upstream connection
    done: asyncio.Event = field(default_factory=asyncio.Event)
    transport: asyncio.Transport | None = None
    base_url: str = ""
    runner: web.AppRunner | None = None

    @property
    def sent(self) -> int:
        """Bytes that left our user space (handed to the kernel)."""
        t = self.transport
        return self.written - (t.get_write_buffer_size() if t is not None else 0)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UPSTREAM_SNDBUF)
        self.buffers["upstream send"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.link = (sock.getsockname()[1], sock.getpeername()[1])
        with borrowed(self.link[1], self.link[0]) as theirs:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PROXY_RCVBUF)
            self.buffers["proxy recv"] = theirs.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await resp.prepare(request)
            self.transport = transport
            for _ in range(EVENTS):
                await self._write(resp, EVENT)
            await self._write(resp, END)
            self.finished = True
        except ConnectionResetError:
            self.cut = True
        except asyncio.CancelledError:
            self.cut = True
            raise
        finally:
            self.done.set()
        return resp

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        await resp.write(data)
        self.written += len(data)
        self.digest.update(data)


@pytest.fixture
async def bulk(no_leaks: None) -> AsyncIterator[Bulk]:
    """Started after (and closed before) ``no_leaks`` checks, so its sockets count."""
    upstream = Bulk()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


class Dechunk:
    """An HTTP/1.1 response read incrementally: status line and headers, then the
    chunked body, hashed as it comes (the test never keeps the 32 MiB)."""

    def __init__(self) -> None:
        self.head: bytes | None = None
        self.digest = hashlib.sha256()
        self.body = 0
        self.tail = b""  # the body's last bytes
        self.ended = False
        self._buf = bytearray()
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # a chunk's trailing CRLF is next

    def feed(self, data: bytes) -> None:
        self._buf += data
        if self.head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(self._buf[: end + 4])
            del self._buf[: end + 4]
        while self._buf and not self.ended:
            if self._left:
                piece = bytes(self._buf[: self._left])
                del self._buf[: len(piece)]
                self._left -= len(piece)
                self._crlf = not self._left
                self.digest.update(piece)
                self.body += len(piece)
                self.tail = (self.tail + piece)[-64:]
            elif self._crlf:
                if len(self._buf) < 2:
                    return
                assert self._buf[:2] == b"\r\n"
                del self._buf[:2]
                self._crlf = False
            else:
                line = self._buf.find(b"\r\n")
                if line < 0:
                    return
                size = int(bytes(self._buf[:line]).split(b";")[0], 16)
                del self._buf[: line + 2]
                self._left, self.ended = size, size == 0


class SlowClient:
    """A raw non-blocking socket: nothing is read until the test asks."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        self.sock.setblocking(False)
        self.response = Dechunk()
        self.read = 0
        self.buffers: dict[str, int] = {}
        self.link = (0, 0)  # (our port, the proxy's port)

    async def connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", port))
        self.link = (self.sock.getsockname()[1], port)
        self.buffers["client recv"] = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        for _ in range(200):  # the proxy accepts on a later loop turn
            try:
                with borrowed(port, self.link[0]) as theirs:
                    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PROXY_SNDBUF)
                    self.buffers["proxy send"] = theirs.getsockopt(
                        socket.SOL_SOCKET, socket.SO_SNDBUF
                    )
                    return
            except LookupError:
                await asyncio.sleep(0.005)
        raise AssertionError("the proxy never accepted the connection")

    async def post(self, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        await asyncio.get_running_loop().sock_sendall(self.sock, head.encode() + data)

    async def recv(self, n: int) -> bytes:
        async with asyncio.timeout(5):
            data = await asyncio.get_running_loop().sock_recv(self.sock, n)
        self.read += len(data)
        self.response.feed(data)
        return data

    def close(self) -> None:
        self.sock.close()


def guarded_rails(stream_first: bool) -> dict[str, Any]:
    streaming = {"enabled": True, "chunk_size": 4, "context_size": 1, "token_unit": "delta"}
    streaming |= {"stream_first": stream_first, "max_held_events": MAX_HELD}
    return {
        "streaming": True,
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
            "output": {"flows": ["banned"], "streaming": streaming},
        },
    }


MODES = {
    "passthrough": {},
    "guarded-stream-first": guarded_rails(stream_first=True),
    "guarded-hold": guarded_rails(stream_first=False),
}


@pytest.mark.parametrize("ending", ["finish", "disconnect"])
@pytest.mark.parametrize("mode", list(MODES))
async def test_a_slow_reader_holds_the_upstream_back(
    bulk: Bulk,
    proxy: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    ending: str,
) -> None:
    held = spy_on_held(monkeypatch)
    guarded = mode != "passthrough"
    p = await proxy(target=bulk.base_url, **MODES[mode])
    client = SlowClient()
    try:
        await client.connect(int(p.base.rsplit(":", 1)[1]))
        await client.post(chat_body())
        widest, heaviest = await read_slowly(client, bulk)
        assert client.response.head is not None
        assert client.response.head.startswith(b"HTTP/1.1 200")
        assert client.read >= SLOW_MIN  # the stream flowed
        assert bulk.written < TOTAL  # the upstream is still held back
        assert len(client.buffers) + len(bulk.buffers) == 4  # every buffer on the path sized
        kernel = sum(client.buffers.values()) + sum(bulk.buffers.values()) + 4 * SEGMENT
        # (a) the upstream was read no faster than the client drained, within the bound
        assert widest <= kernel + proxy_bound(guarded), (widest, kernel, proxy_bound(guarded))
        # (b) what the proxy itself held of the stream stayed bounded
        assert heaviest <= proxy_bound(guarded), (heaviest, proxy_bound(guarded))
        if guarded:
            assert 0 < held[0] <= held_bound(), held
        else:
            assert held == [0]  # the pass-through path: no guard at all
        if ending == "finish":
            await read_the_rest(client)
            assert bulk.finished
            assert client.response.body == bulk.written == TOTAL
            assert client.response.digest.digest() == bulk.digest.digest()  # byte for byte
            assert client.response.tail.endswith(b"data: [DONE]\n\n")
        else:
            client.close()
            async with asyncio.timeout(2):
                await bulk.done.wait()
            assert bulk.cut  # the proxy closed the upstream request...
            assert await settle(lambda: established(bulk.link)) == []  # ...and its connection
    finally:
        client.close()
    async with asyncio.timeout(2):
        await bulk.done.wait()


def established(link: tuple[int, int]) -> list[str]:
    """Both ends of this loopback connection that are still ESTABLISHED."""
    ends = {link, link[::-1]}
    return [
        str(s)
        for s in tcp_sockets()
        if (s.local[1], s.remote[1]) in ends
        and s.state == "ESTABLISHED"
        and s.local[0] == s.remote[0] == "127.0.0.1"
    ]


def spy_on_held(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The most events any ``GuardedStream`` held after a push (read-only spy)."""
    most = [0]
    push = GuardedStream.push

    def spy(self: GuardedStream[Any], *args: Any, **kwargs: Any) -> None:
        push(self, *args, **kwargs)
        most[0] = max(most[0], self.held)

    monkeypatch.setattr(GuardedStream, "push", spy)
    return most


async def read_slowly(client: SlowClient, bulk: Bulk) -> tuple[int, int]:
    """Read ``SLOW_READ`` bytes per ``SLOW_PAUSE_S`` for ``SLOW_S`` and ``SLOW_MIN`` bytes;
    returns the widest ``sent - read`` seen, and the most the proxy held (that minus the
    kernel's queues)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    widest = heaviest = 0
    for i in range(int(SLOW_MAX_S / SLOW_PAUSE_S)):
        elapsed = loop.time() - start
        if elapsed > SLOW_S and client.read >= SLOW_MIN:
            break
        assert elapsed < SLOW_MAX_S, f"read {client.read} bytes in {SLOW_MAX_S} s"
        await client.recv(SLOW_READ)
        gap = bulk.sent - client.read
        widest = max(widest, gap)
        if i % 8 == 0 and bulk.link != (0, 0):
            links = [bulk.link, bulk.link[::-1], client.link, client.link[::-1]]
            heaviest = max(heaviest, gap - queued(links))
        await asyncio.sleep(SLOW_PAUSE_S)
    return widest, heaviest


async def read_the_rest(client: SlowClient) -> None:
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINISH_S
    for _ in range(TOTAL + 1):  # every read returns at least one byte
        if client.response.ended:
            return
        assert loop.time() < deadline, f"read {client.read} of {TOTAL} bytes in {FINISH_S} s"
        assert await client.recv(1 << 20), "the proxy closed the connection early"
    raise AssertionError("the response never ended")
