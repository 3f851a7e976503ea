"""Reading a client's request body: bounded in size and time, decompressed.

The server runs with aiohttp's own request decompression off, so this is the one place a
body is read. ``Content-Encoding: gzip`` / ``x-gzip`` / ``deflate`` (zlib or raw deflate),
possibly several in a row, is decoded here (``proxy.flow.codings``), capped at
``server.max_body_bytes`` of output (a zip bomb stops at the cap: 413), so input rails judge
and the upstream receives the plain body (``Content-Encoding`` is not forwarded). A body that
does not decode is 400; any other coding is 415. The whole body must arrive within
``server.body_timeout_s`` of the request head (408, and the connection is closed).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from proxy.flow.codings import CodingError, Decoding, codings_of
from proxy.state import SETTINGS


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded; b"" when there is none."""
    server = request.app[SETTINGS].server
    codings = content_codings(request.headers.getall("Content-Encoding", []))
    if not request.body_exists:
        return b""
    if request.content.is_eof():  # the whole body came with the head: no wait, no timer
        raw = _buffered(request, server.max_body_bytes)
        return decode(raw, codings, server.max_body_bytes) if codings else raw
    try:
        async with asyncio.timeout(server.body_timeout_s):
            raw = await _read_capped(request, server.max_body_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {server.body_timeout_s:g} s.",
            headers={"Connection": "close"},
        ) from None
    return decode(raw, codings, server.max_body_bytes) if codings else raw


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _buffered(request: web.Request, limit: int) -> bytes:
    body = request.content.read_nowait()
    if len(body) > limit:
        raise _too_large(limit)
    return body


def content_codings(headers: list[str]) -> list[str]:
    """The codings applied to the body, in the order applied (``identity`` dropped);
    415 for one railproxy cannot decode."""
    try:
        return codings_of(headers)
    except CodingError as e:
        raise UnsupportedMediaType(
            f"Content-Encoding {e.coding[:32]!r} is not supported; use gzip, deflate or none.",
            headers={"Accept-Encoding": "gzip, deflate"},
        ) from None


def decode(data: bytes, codings: list[str], limit: int) -> bytes:
    """Undo the codings, never producing more than ``limit`` bytes (413 past it)."""
    decoding = Decoding(codings)
    try:
        out = decoding.feed(data, limit)
        decoding.end()
    except CodingError as e:
        if e.problem == "too_large":
            raise _too_large(limit) from None
        raise _undecodable(e.coding) from None
    return out


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than {limit} bytes.")


def _undecodable(coding: str) -> BadRequest:
    return BadRequest(
        f"The request body is not valid {coding} data.", code="invalid_content_encoding"
    )
