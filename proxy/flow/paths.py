"""The request target as the client sent it, checked before anything routes on it.

aiohttp's router matches the *decoded* path, so ``/v1/chat/completions%3F`` and
``/v1/chat%2Fcompletions`` would route (and be forwarded) as something other than what the
upstream sees. railproxy routes on the raw, still-encoded path instead, and refuses every
path whose meaning could differ between railproxy, aiohttp and the upstream (400,
``invalid_path``):

* a target that is not origin-form (``/...``) or absolute-form (``http://host/...``), or
  that carries a fragment (``#``);
* any raw character outside RFC 3986's path characters (whitespace, controls, ``\\``,
  non-ASCII, ``"<>^`{|}``);
* a malformed escape (``%`` not followed by two hex digits), and any escape of a character
  that must not be hidden: ``/ ? # \\ %``, whitespace and controls, and the unreserved
  characters (``A-Z a-z 0-9 - . _ ~``, which never need escaping: ``%2E%2E``, ``%63hat``);
* empty segments (``//``) and dot segments (``.``, ``..``).

What passes is a path whose escapes (if any) decode to characters no route contains, so the
raw path and aiohttp's decoded path select the same route, and the upstream receives exactly
these bytes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from proxy.errors import BadRequest
from proxy.observe.record import RECORD

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar without pct-encoded, plus "/" and "%" (escapes are checked one by one).
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,;=:@/%")
# Printable ASCII a query may hold raw (no space, no "#").
_QUERY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"#"}
_HIDDEN = frozenset(b"/?#\\%") | frozenset(range(0x21)) | {0x7F}
_ESCAPE = re.compile(r"%(.{0,2})", re.S)


@dataclass(frozen=True, slots=True)
class Target:
    """The checked request target: raw path (still encoded) and raw query ("" if none)."""

    path: str
    query: str

    @property
    def path_and_query(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")


_PASSED: dict[str, Target] = {}  # raw targets that passed (a pure check: same answer)
_PASSED_MAX = 1024  # past this many distinct targets, each is checked every time


def parse(raw: str) -> Target:
    """Split and check a raw request target; BadRequest(invalid_path) when it is unsafe."""
    found = _PASSED.get(raw)
    if found is None:
        found = _parse(raw)
        if len(_PASSED) < _PASSED_MAX:
            _PASSED[raw] = found
    return found


def _parse(raw: str) -> Target:
    absolute = _ABSOLUTE.match(raw)
    if absolute is not None:
        raw = raw[absolute.end() :]
        raw = raw if raw.startswith("/") else "/" + raw
    if not raw.startswith("/"):
        raise _invalid("the request target must be a path starting with '/'")
    if "#" in raw:
        raise _invalid("a request target cannot carry a fragment ('#')")
    path, _, query = raw.partition("?")
    _check_path(path)
    if not set(query) <= _QUERY_CHARS:
        raise _invalid("the query holds a character that must be percent-encoded")
    return Target(path, query)


def _check_path(path: str) -> None:
    if not set(path) <= _PATH_CHARS:
        raise _invalid("the path holds a character that must be percent-encoded")
    for m in _ESCAPE.finditer(path):
        _check_escape(m.group(1))
    segments = path.split("/")[1:]
    if any(s == "" for s in segments[:-1]):
        raise _invalid("the path holds an empty segment ('//')")
    if any(s in (".", "..") for s in segments):
        raise _invalid("the path holds a dot segment ('.' or '..')")


def _check_escape(hex_digits: str) -> None:
    try:
        if len(hex_digits) != 2:
            raise ValueError
        byte = int(hex_digits, 16)
    except ValueError:
        raise _invalid("the path holds a malformed percent-escape") from None
    if byte in _HIDDEN or (byte < 0x80 and chr(byte) in _UNRESERVED):
        raise _invalid(f"the path holds an escape that is refused (%{hex_digits.upper()})")


def _invalid(why: str) -> BadRequest:
    return BadRequest(f"Invalid path: {why}.", code="invalid_path")


TARGET = web.RequestKey("railproxy.target", Target)


def target(request: web.Request) -> Target:
    """The request's checked target (the routing middleware stores it; parsed on demand
    for a request that did not pass through it)."""
    found = request.get(TARGET)
    return found if found is not None else parse(request.raw_path)


@web.middleware
async def check_target(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse an unsafe target before any route runs (counted as ``invalid_path``)."""
    try:
        request[TARGET] = parse(request.raw_path)
    except BadRequest:
        request[RECORD].refused("invalid_path")
        raise
    return await handler(request)
