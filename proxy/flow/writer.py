"""The SSE response railproxy writes to its client.

One ``StreamResponse`` subclass owns the streaming headers: ``text/event-stream``,
``Cache-Control: no-cache``, ``X-Accel-Buffering: no`` (so nginx-style proxies do not
buffer), and never compression; and the keep-alives: while events are held for their
window (``holding()``), a ``: keep-alive`` comment goes out after ``keepalive_s`` without
a write, so clients and intermediaries with idle timeouts keep the stream open. All SSE
writing goes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from aiohttp import web

from proxy.wire.sse import comment

KEEP_ALIVE = comment("keep-alive")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class SSEWriter(web.StreamResponse):
    """An SSE response. ``send`` writes bytes that are already framed events."""

    def __init__(
        self,
        extra_headers: Iterable[tuple[str, str]] = (),
        status: int = 200,
        content_type: str | None = None,
    ) -> None:
        super().__init__(status=status)
        for k, v in extra_headers:
            if k.lower() not in _OWNED:
                self.headers[k] = v
        self.headers.update(SSE_HEADERS)
        if content_type:  # relayed as it came (no rails: the bytes are the upstream's)
            self.headers["Content-Type"] = content_type
        self.bytes_sent = 0
        self.last_write = 0.0  # the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._pending: asyncio.Task[None] | None = None

    def with_first_bytes(self) -> None:
        """Send the headers with the first bytes of the body, in one write, instead of at
        ``prepare`` (only for a body whose first bytes are already at hand)."""
        self._send_headers_immediately = False

    async def send(self, data: bytes) -> None:
        if data:
            self.bytes_sent += len(data)
            self.last_write = asyncio.get_running_loop().time()
            await self.write(data)

    async def end(self, data: bytes = b"") -> None:
        """The last bytes, if any, and the end of the body, in one write."""
        self.bytes_sent += len(data)
        await self.write_eof(data)

    # -- keep-alives ---------------------------------------------------------------------

    def send_keep_alives(self, interval: float, holding: Callable[[], bool]) -> None:
        """Until ``stop_keep_alives``: a keep-alive comment whenever ``interval`` seconds
        pass without a write while ``holding()`` is true. A timer, not a task: a stream
        that is never idle pays nothing but the clock read in ``send``."""
        loop = asyncio.get_running_loop()
        self.last_write = loop.time()

        def tick() -> None:
            idle = loop.time() - self.last_write
            if idle >= interval:
                if holding() and self._pending is None:
                    task = self._send_keep_alive(holding, self.last_write)
                    self._pending = loop.create_task(task)
                idle = 0.0
            self._timer = loop.call_later(interval - idle, tick)

        self._timer = loop.call_later(interval, tick)

    async def _send_keep_alive(self, holding: Callable[[], bool], idle_since: float) -> None:
        try:
            # The task runs a loop turn after the tick: if the held events went out in
            # between, no comment (nothing written after them may be ours).
            if holding() and self.last_write == idle_since:
                with contextlib.suppress(ConnectionResetError, RuntimeError):  # ended meanwhile
                    await self.send(KEEP_ALIVE)
        finally:
            self._pending = None

    async def stop_keep_alives(self) -> None:
        """No keep-alive after this (before the stream's last bytes are written)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])


_OWNED = frozenset(k.lower() for k in SSE_HEADERS) | {"content-length", "content-encoding"}
