"""Reading a client's request body: bounded in size and time, decompressed.

The server runs with aiohttp's own request decompression off, so this is the one place a
body is read. ``Content-Encoding: gzip`` / ``x-gzip`` / ``deflate`` (zlib or raw deflate),
possibly several in a row, is decoded here, incrementally and capped at
``server.max_body_bytes`` of output (a zip bomb stops at the cap: 413), so input rails judge
and the upstream receives the plain body (``Content-Encoding`` is not forwarded). A body that
does not decode is 400; any other coding is 415. The whole body must arrive within
``server.body_timeout_s`` of the request head (408, and the connection is closed).
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from proxy.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from proxy.state import SETTINGS

GZIP = 16 + zlib.MAX_WBITS
ZLIB = zlib.MAX_WBITS
RAW_DEFLATE = -zlib.MAX_WBITS
STEP = 1 << 16  # decompressed bytes per step


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded; b"" when there is none."""
    server = request.app[SETTINGS].server
    codings = content_codings(request.headers.getall("Content-Encoding", []))
    if not request.body_exists:
        return b""
    try:
        async with asyncio.timeout(server.body_timeout_s):
            raw = await _read_capped(request, server.max_body_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {server.body_timeout_s:g} s.",
            headers={"Connection": "close"},
        ) from None
    for coding in reversed(codings):
        raw = decode(raw, coding, server.max_body_bytes)
    return raw


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def content_codings(headers: list[str]) -> list[str]:
    """The codings applied to the body, in the order applied (``identity`` dropped);
    415 for one railproxy cannot decode."""
    codings = [c.strip().lower() for h in headers for c in h.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for c in codings:
        if c not in ("gzip", "x-gzip", "deflate"):
            raise UnsupportedMediaType(
                f"Content-Encoding {c[:32]!r} is not supported; use gzip, deflate or none.",
                headers={"Accept-Encoding": "gzip, deflate"},
            )
    return codings


def decode(data: bytes, coding: str, limit: int) -> bytes:
    """Undo one coding, never producing more than ``limit`` bytes (413 past it)."""
    if not data:
        raise _undecodable(coding)
    wbits = GZIP
    if coding == "deflate":  # RFC 9110 says zlib; some clients send raw deflate
        wbits = ZLIB if data[0] & 0x0F == 8 else RAW_DEFLATE
    out = bytearray()
    while data:
        d = zlib.decompressobj(wbits)
        try:
            while True:
                piece = d.decompress(data, STEP)
                out += piece
                if len(out) > limit:
                    raise _too_large(limit)
                data = d.unconsumed_tail
                if d.eof or not (data or piece):
                    break
        except zlib.error:
            raise _undecodable(coding) from None
        if not d.eof or (d.unused_data and wbits != GZIP):
            raise _undecodable(coding)
        data = d.unused_data if wbits == GZIP else b""  # gzip: members may follow
    return bytes(out)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than {limit} bytes.")


def _undecodable(coding: str) -> BadRequest:
    return BadRequest(
        f"The request body is not valid {coding} data.", code="invalid_content_encoding"
    )
