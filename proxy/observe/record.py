"""Per-request record: what one request did, for its metrics and its log line.

The observing middleware creates one per request (``request[RECORD]``, before any route
runs: refusals and pass-through requests have one too); the flow tells it what happens
(``refused``, ``upstream_failed``, ``stream_opened``, ``client_content``, ``block``,
``stream_ended``...) and every per-request metric is written here, by those methods, or by
the middleware from the record when the request ends (``proxy.observe.access``). Nothing
else in ``proxy/`` writes a per-request metric. No request or response text is stored here,
except a block's judged text when the operator opts in with ``logging.include_text``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.observe.metrics import Metrics
from rails.base import Blocked


@dataclass(slots=True)
class RequestRecord:
    route: str
    started: float
    metrics: Metrics
    include_text: bool = False  # logging.include_text: a block's judged text is logged
    request_id: str = ""
    config: str = ""
    client: str = ""  # the client key's name (server.api_keys), never the key
    status: int = 0
    stream: bool = False
    outcome: str = ""
    sent_upstream: float | None = None
    upstream_first: float | None = None
    client_first: float | None = None
    last_write: float | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    blocked_rail: str = ""
    blocked_reason: str = ""
    # The judged text of a block: only with logging.include_text (opt-in), never otherwise.
    blocked_text: str = ""
    text_events: int = 0  # streamed events carrying generated text written to the client
    tokens: int = 0  # guarded streams: tokens of generated text seen (tiktoken)
    windows: int = 0  # output windows judged
    # The inter-token histogram's child for this route (``Metrics.child``), per stream.
    inter_token: Any = None

    def upstream_sent(self) -> None:
        self.sent_upstream = time.monotonic()

    def upstream_content(self) -> None:
        """The first content delta arrived from upstream (later calls are ignored)."""
        if self.upstream_first is None:
            self.upstream_first = time.monotonic()

    def client_content(self, events: int) -> None:
        """``events`` carrying content were just written to the client: first-token or
        inter-token timing."""
        now = time.monotonic()
        self.text_events += events
        if self.client_first is None:
            self.client_first = now
            self._observe_first(self.metrics)
        elif self.last_write is not None:
            if self.inter_token is None:
                self.inter_token = self.metrics.child(self.metrics.inter_token, self.route)
            self.inter_token.observe(now - self.last_write)
        self.last_write = now

    def _observe_first(self, metrics: Metrics) -> None:
        ttft = self.ttft
        child, route = metrics.child, self.route
        child(metrics.ttft, route, self.config).observe(ttft if ttft is not None else 0.0)
        up = self.upstream_ttft
        if up is not None and ttft is not None:
            child(metrics.upstream_ttft, route).observe(up)
            child(metrics.added_ttft, route, self.config).observe(max(0.0, ttft - up))

    def held_for(self, seconds: float) -> None:
        """An event was held this long for its window (``stream_first: false``)."""
        self.metrics.holdback.observe(seconds)

    def block(self, blocked: Blocked) -> None:
        """A rail ended the request (input, a whole answer, or a stream); with
        ``include_text`` its log line carries the text the rail judged."""
        self.metrics.child(self.metrics.streams_blocked, blocked.rail).inc()
        self.outcome = "blocked"
        self.blocked_rail, self.blocked_reason = blocked.rail, blocked.reason
        if self.include_text:
            self.blocked_text = blocked.text

    def refused(self, reason: str) -> None:
        """A request railproxy would not route (``railproxy_routes_refused_total``)."""
        self.metrics.child(self.metrics.routes_refused, reason).inc()

    def upstream_failed(self, kind: str) -> None:
        """connect | timeout | status | unreadable | in_band | eof."""
        self.metrics.child(self.metrics.upstream_errors, kind).inc()

    def stream_opened(self) -> None:
        self.metrics.active_streams.inc()

    def stream_closed(self) -> None:
        self.metrics.active_streams.dec()

    def client_left(self) -> None:
        self.metrics.disconnects.inc()
        self.outcome = "client_disconnected"

    def stream_ended(self, outcome: str, held: bool) -> None:
        """A stream's end, written before its last bytes go (a client that reads the
        metrics once its stream ended sees them): outcome, upstream failures, tokens
        relayed (and held, ``stream_first: false``), windows judged."""
        if self.outcome != "blocked":
            self.outcome = outcome
        kind = _UPSTREAM_FAILURES.get(outcome)
        if kind is not None:
            self.upstream_failed(kind)
        metrics = self.metrics
        metrics.child(metrics.tokens, "relayed").inc(self.text_events)
        if held:
            metrics.child(metrics.tokens, "held").inc(self.text_events)
        self.metrics.windows.inc(self.windows)
        if self.completion_tokens is None:  # the upstream reported no usage (llama.cpp)
            self.completion_tokens = self.tokens or self.text_events

    @property
    def ttft(self) -> float | None:
        return None if self.client_first is None else self.client_first - self.started

    @property
    def upstream_ttft(self) -> float | None:
        if self.upstream_first is None or self.sent_upstream is None:
            return None
        return self.upstream_first - self.sent_upstream

    def log_fields(self, duration: float) -> dict[str, Any]:
        """The request log line's fields: ids, timings, counts; never text."""
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "route": self.route,
            "config": self.config,
            "status": self.status,
            "stream": self.stream,
            "duration_s": round(duration, 6),
        }
        optional = {
            "client": self.client,
            "outcome": self.outcome,
            "ttft_s": _round(self.ttft),
            "upstream_ttft_s": _round(self.upstream_ttft),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "blocked_rail": self.blocked_rail,
            "blocked_reason": self.blocked_reason,
            "blocked_text": self.blocked_text,
        }
        fields.update({k: v for k, v in optional.items() if v not in (None, "")})
        return fields


_UPSTREAM_FAILURES = {
    "in_band_error": "in_band",
    "eof": "eof",
    "disconnected": "eof",
    "too_large": "eof",
    "timeout": "timeout",
    "unreadable": "unreadable",
}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


RECORD = web.RequestKey("railproxy.record", RequestRecord)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id(request: web.Request) -> str:
    """The request's id: the client's ``X-Request-Id`` when it is a sane token, else a new
    one; decided once per request (kept in its record), so the response header, the
    upstream's header and the access log agree."""
    record: RequestRecord | None = request.get(RECORD)
    if record is not None and record.request_id:
        return record.request_id
    rid = request.headers.get("X-Request-Id", "")
    rid = rid if _REQUEST_ID.match(rid) else os.urandom(16).hex()  # (uuid4's cost, halved)
    if record is not None:
        record.request_id = rid
    return rid


async def stamp_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response carries the request's id (errors, input
    blocks and health checks included), unless the handler set it."""
    if "X-Request-Id" not in response.headers and isinstance(request, web.Request):
        response.headers["X-Request-Id"] = request_id(request)
