"""HTTP content codings undone incrementally, with a cap on what they decode to: the one
decoder for clients' request bodies (``proxy.flow.request_body``) and upstream responses
(``proxy.flow.upstream_body``), which turn its ``CodingError`` into their own answers.

``gzip`` and ``x-gzip`` (several members in a row allowed, as ``gzip -c a b`` writes),
and ``deflate``: zlib-wrapped per RFC 9110, but some peers send it raw, so the first bytes
decide. Anything else is not a coding railproxy can read.

Two ways to undo them: ``feed`` decodes what it is given at once, refusing more than a
limit (a request body, read whole); ``pieces`` decodes it a piece at a time, as the caller
asks for each (a response read as it streams: a few compressed bytes that decode to a great
deal are never held, nor parsed, in one go).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Literal

KNOWN = ("gzip", "x-gzip", "deflate")
Problem = Literal["unknown", "corrupt", "too_large", "truncated"]


class CodingError(Exception):
    def __init__(self, coding: str, problem: Problem) -> None:
        super().__init__(f"{coding}: {problem}")
        self.coding = coding
        self.problem = problem


def codings_of(headers: Iterable[str]) -> list[str]:
    """The codings ``Content-Encoding`` header values name, in the order applied
    (``identity`` dropped); ``CodingError("unknown")`` for one railproxy cannot undo."""
    codings = [c.strip().lower() for h in headers for c in h.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for c in codings:
        if c not in KNOWN:
            raise CodingError(c, "unknown")
    return codings


class Inflate:
    """One coding, undone as its bytes arrive."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._gzip = coding != "deflate"
        self._z: zlib._Decompress | None = None
        self._members = 0  # members (gzip) or streams (deflate) begun

    def feed(self, data: bytes, limit: int) -> bytes:
        """What ``data`` decodes to; ``CodingError`` if that is more than ``limit`` bytes
        or the bytes are not this coding."""
        out = bytearray()
        while data:
            z = self._z if self._z is not None else self._begin(data)
            try:
                out += z.decompress(data, limit + 1 - len(out))
            except zlib.error:
                raise CodingError(self.coding, "corrupt") from None
            if len(out) > limit:
                raise CodingError(self.coding, "too_large")
            data = z.unused_data if z.eof else b""
            if z.eof:
                self._z = None  # gzip: another member may follow
        return bytes(out)

    def pieces(self, data: bytes, size: int) -> Iterator[bytes]:
        """What ``data`` decodes to, in pieces of at most ``size`` bytes, each decoded when
        asked for; ``CodingError`` when the bytes are not this coding."""
        while True:
            if self._z is None and not data:
                return
            z = self._z if self._z is not None else self._begin(data)
            try:
                out = z.decompress(data, size)
            except zlib.error:
                raise CodingError(self.coding, "corrupt") from None
            data = z.unused_data if z.eof else z.unconsumed_tail
            if z.eof:
                self._z = None  # gzip: another member may follow
            if out:
                yield out
            if not data and len(out) < size:  # (a full piece: more may be pending)
                return

    def end(self) -> None:
        """The body ended: ``CodingError("truncated")`` if it stopped inside a member or
        held none at all."""
        if self._members == 0 or self._z is not None:
            raise CodingError(self.coding, "truncated")

    def _begin(self, data: bytes) -> zlib._Decompress:
        if self._members and not self._gzip:  # bytes after the end of a deflate stream
            raise CodingError(self.coding, "corrupt")
        self._members += 1
        if self._gzip:
            wbits = 16 + zlib.MAX_WBITS
        else:
            wbits = zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS
        self._z = zlib.decompressobj(wbits)
        return self._z


def _zlib_header(data: bytes) -> bool:
    """RFC 1950: method 8 in the low nibble, and the two header bytes a multiple of 31."""
    if len(data) < 2:
        return data[:1] != b"" and data[0] & 0x0F == 8
    return data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


class Decoding:
    """Every coding of a body undone, last applied first."""

    def __init__(self, codings: list[str]) -> None:
        self._steps = [Inflate(c) for c in reversed(codings)]

    @property
    def identity(self) -> bool:
        return not self._steps

    def feed(self, data: bytes, limit: int) -> bytes:
        for step in self._steps:
            data = step.feed(data, limit)
        return data

    def pieces(self, data: bytes, size: int) -> Iterator[bytes]:
        """``Inflate.pieces`` through every coding in turn."""
        stream: Iterator[bytes] = iter((data,))
        for step in self._steps:
            stream = _through(step, stream, size)
        return stream

    def end(self) -> None:
        for step in self._steps:
            step.end()


def _through(step: Inflate, stream: Iterator[bytes], size: int) -> Iterator[bytes]:
    for chunk in stream:
        yield from step.pieces(chunk, size)
