"""The SSE response railproxy writes to its client.

One ``StreamResponse`` subclass owns the streaming headers: ``text/event-stream``,
``Cache-Control: no-cache``, ``X-Accel-Buffering: no`` (so nginx-style proxies do not
buffer), and never compression. All SSE writing goes through here.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

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

    async def send(self, data: bytes) -> None:
        if data:
            self.bytes_sent += len(data)
            await self.write(data)


_OWNED = frozenset(k.lower() for k in SSE_HEADERS) | {"content-length", "content-encoding"}
