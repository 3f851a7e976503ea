"""The upstream's response body as the bytes it means.

railproxy asks the upstream for ``Accept-Encoding: identity``; an upstream that compresses
anyway has its ``gzip``/``deflate`` undone here, incrementally: a piece of at most ``PIECE``
decoded bytes at a time, as the reader asks for it (so a few compressed bytes that decode
to a great deal reach the SSE decoder as a plain body's reads would, never in one go), and
a whole body capped at its limit. Any other coding cannot be read,
so it cannot be judged: ``Unreadable`` (a 502 before the response starts, our error event
after). ``sniff`` tells the body's real format from its first bytes, whatever its
``Content-Type`` says, so a mislabelled event stream is still judged as one.

Exceptions::

    Unreadable(ProxyError)   502 upstream_unreadable: a coding, format or byte we cannot read
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import aiohttp

from proxy.errors import ProxyError
from proxy.flow.codings import CodingError, Decoding, codings_of

Format = Literal["sse", "json", "other", "empty"]
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
PIECE = 1 << 16  # decoded bytes handed on at a time: one network read's worth


class Unreadable(ProxyError):
    status = 502
    type = "upstream_error"
    code = "upstream_unreadable"


class BodyDecoder:
    """Sans-IO: ``pieces(bytes)`` with every content coding undone, in order
    (``proxy.flow.codings``), ``PIECE`` bytes at most at a time. ``Unreadable`` for a
    coding we do not know, or a corrupt or truncated body."""

    def __init__(self, content_encoding: str) -> None:
        try:
            self._decoding = Decoding(codings_of([content_encoding]))
        except CodingError as e:
            raise Unreadable(
                f"The upstream answered with Content-Encoding {e.coding!r}, which "
                "railproxy cannot read and so cannot judge."
            ) from None
        self._fed = False

    @property
    def identity(self) -> bool:
        return self._decoding.identity

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What one read decodes to, a piece at a time, each decoded when asked for."""
        self._fed = self._fed or bool(data)
        try:
            yield from self._decoding.pieces(data, PIECE)
        except CodingError as e:
            raise _unreadable(e) from None

    def end(self) -> None:
        """The body ended: one that stopped inside its coding is unreadable (an empty
        body is just empty)."""
        if not self._fed:
            return
        try:
            self._decoding.end()
        except CodingError as e:
            raise _unreadable(e) from None


def _unreadable(e: CodingError) -> Unreadable:
    return Unreadable(f"The upstream's {e.coding} body is {e.problem}.")


def _too_large(limit: int) -> str:
    return f"The upstream's decoded body is larger than {limit} bytes."


def sniff(first: bytes, ended: bool = True) -> Format | None:
    """The real format of a body from its first bytes (a BOM and whitespace skipped), or
    None while more bytes could still change the answer (``ended`` false)."""
    head = first.lstrip(_WHITESPACE)
    if _BOM.startswith(head) and head and not ended:
        return None
    head = head.removeprefix(_BOM).lstrip(_WHITESPACE)
    if not head:
        return "empty" if ended else None
    if head[:1] in (b"{", b"["):
        return "json"
    if head.startswith(_SSE_STARTS):
        return "sse"
    if not ended and any(p.startswith(head) for p in _SSE_STARTS):
        return None
    return "other"


class UpstreamBody:
    """A response's body, decoded; ``sniff`` looks at the first bytes without losing them.

    ``limit`` caps the decoded size of a whole body (``read``); a stream's events are
    capped by the SSE decoder instead, and ``chunks`` hands it the decoded body a piece
    at a time.
    """

    def __init__(self, resp: aiohttp.ClientResponse, limit: int) -> None:
        self.resp = resp
        self._decoder = BodyDecoder(resp.headers.get("Content-Encoding", ""))
        self._limit = limit
        self._peeked = b""
        self._source = resp.content.iter_any()
        self._pending: Iterator[bytes] = iter(())  # the current read's pieces
        self._ended = False

    @property
    def status(self) -> int:
        return self.resp.status

    @property
    def decoded(self) -> bool:
        """Whether a content coding was undone (the client must not see the header)."""
        return not self._decoder.identity

    @property
    def in_hand(self) -> bool:
        """Whether some of the body has already arrived (a read would not wait)."""
        return bool(self._peeked) or self.resp.content.total_bytes > 0

    async def sniff(self) -> Format:
        """The body's real format (``sniff``), reading only as far as it takes: a stream's
        first event is not waited for beyond its first bytes."""
        while (found := sniff(self._peeked, self._ended)) is None:
            self._peeked += await self._next()
        return found

    async def chunk(self) -> bytes:
        """The next piece of the decoded body as it arrives, starting with anything
        peeked; b"" once it ended. (A method, not an async generator: a stream that stops
        early leaves no generator behind for the loop to finalize.)"""
        if self._peeked:
            first, self._peeked = self._peeked, b""
            return first
        return b"" if self._ended else await self._next()

    async def read(self) -> bytes:
        """The whole decoded body, at most ``limit`` bytes (else ``Unreadable``)."""
        parts = [self._peeked]
        size = len(self._peeked)
        self._peeked = b""
        while not self._ended:
            data = await self._next()
            size += len(data)
            if size > self._limit:
                raise Unreadable(_too_large(self._limit))
            parts.append(data)
        return b"".join(parts)

    async def _next(self) -> bytes:
        """The next piece of the decoded body (b"" once it ended)."""
        while True:
            piece = next(self._pending, None)
            if piece:
                return piece
            if piece is None:
                try:
                    raw = await self._source.__anext__()
                except StopAsyncIteration:
                    self._ended = True
                    self._decoder.end()
                    return b""
                self._pending = self._decoder.pieces(raw)
