"""The debug channel: what the guard decided, as named SSE events in the stream itself.

Opt-in twice: the server must run with ``server.playground: true`` and the request must
carry ``X-Railproxy-Debug: 1``. Otherwise nothing here runs and the client receives the
bytes it always did. The playground page (``GET /ui``) is this channel's reader.

Each debug event is one SSE event named ``railproxy`` whose data is a JSON object with a
``kind``; SSE clients that read only unnamed events (``onmessage``) skip them::

    event: railproxy
    data: {"kind": "window", ...}

Kinds, in the order they can appear:

``start``   first event of the stream (before any upstream byte)
            ``config`` (id), ``guarded`` (false: no output rails, nothing else follows),
            ``rails`` (output rail names, config order), ``stream_first``, ``chunk_size``,
            ``context_size``, ``token_unit``, ``parallel``
``window``  one judged window, written before the events that window released
            ``channel`` [choice, field, tool-call index], ``index`` (0-based, per
            channel), ``start``/``end`` (token offsets of its new text, end exclusive),
            ``char_start``/``chars`` (offset and length, in Unicode code points, of its new
            text within the channel's text as the client receives it, after masking),
            ``verdict`` (allow | block | modify), ``rails`` [{``rail``, ``verdict`` (allow
            | block | modify | error | timeout), ``seconds``}] (calls that finished, in
            finish order; a rail cancelled by another's block is absent), ``seconds``
            (the whole check)
``held``    ``stream_first: false`` only, whenever the number of held events changed:
            ``events`` (upstream events held back now), ``tokens`` (their text's tokens)
``abort``   a rail blocked; written just before the abort bytes
            ``rail``, ``reason`` (rails' reasons never quote the judged text), ``channel``,
            ``offset`` (token offset where the blocked window's new text starts),
            ``released`` (true: some of the blocked text had reached the client already)

No event carries generated text: offsets and lengths point into text the client receives
anyway. Seconds are rounded to the microsecond.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.clients import client_of
from proxy.state import SETTINGS
from proxy.wire.sse import encode
from rails.base import Blocked, ChannelKey
from rails.guard import Guard
from rails.reports import Holding, Report, WindowReport

HEADER = "X-Railproxy-Debug"
EVENT = "railproxy"


@dataclass(frozen=True, slots=True)
class DebugChannel:
    """One stream's debug channel: the facts its ``start`` event announces."""

    config: str
    guarded: bool
    rails: tuple[str, ...]
    stream_first: bool
    chunk_size: int
    context_size: int
    token_unit: str
    parallel: bool

    @classmethod
    def for_guard(cls, config_id: str, guard: Guard) -> DebugChannel:
        s = guard.streaming
        return cls(
            config=config_id,
            guarded=guard.guards_output,
            rails=tuple(r.name for r in guard.output.rails),
            stream_first=s.stream_first,
            chunk_size=s.chunk_size,
            context_size=s.context_size,
            token_unit=s.token_unit,
            parallel=guard.config.rails.output.parallel,
        )

    def start(self) -> bytes:
        return event("start", **asdict(self))


def requested(request: web.Request) -> bool:
    """The server offers the channel, this request asks for it, and its client may have
    it: an operator key, or any request when railproxy authenticates no clients at all (a
    development setting). Rail reasons derive from text: never to an ordinary client."""
    server = request.app[SETTINGS].server
    if not server.playground or request.headers.get(HEADER) != "1":
        return False
    return not server.api_keys or client_of(request).operator


def channel_for(request: web.Request, config_id: str, guard: Guard) -> DebugChannel | None:
    """The request's debug channel, or None (the usual case: no debug bytes at all)."""
    return DebugChannel.for_guard(config_id, guard) if requested(request) else None


def report_event(report: Report) -> bytes:
    """A ``window`` or ``held`` event for what the guard reported."""
    if isinstance(report, Holding):
        return event("held", events=report.events, tokens=report.tokens)
    return window_event(report)


def window_event(w: WindowReport) -> bytes:
    rails = [{"rail": c.rail, "verdict": c.verdict, "seconds": _s(c.seconds)} for c in w.rails]
    return event(
        "window",
        channel=_channel(w.channel),
        index=w.index,
        start=w.start,
        end=w.end,
        char_start=w.char_start,
        chars=w.chars,
        verdict=w.verdict,
        rails=rails,
        seconds=_s(w.seconds),
    )


def abort_event(blocked: Blocked) -> bytes:
    return event(
        "abort",
        rail=blocked.rail,
        reason=blocked.reason,
        channel=_channel(blocked.channel),
        offset=blocked.offset,
        released=blocked.released,
    )


def event(kind: str, **fields: Any) -> bytes:
    """One framed debug event: ``event: railproxy`` and ``{"kind": kind, **fields}``."""
    return encode(orjson.dumps({"kind": kind, **fields}), event=EVENT)


def _channel(key: ChannelKey) -> list[int | str]:
    return [key[0], key[1], key[2]]


def _s(seconds: float) -> float:
    return round(seconds, 6)
