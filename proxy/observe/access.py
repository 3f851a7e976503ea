"""The observing middleware: one ``RequestRecord`` per request, and when the request
ends, its request metrics and its one JSON log line (ids, timings, counts; no text)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.clients import client_of
from proxy.observe.metrics import Metrics
from proxy.observe.record import RECORD, RequestRecord

log = logging.getLogger("railproxy.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
CLIENT_CLOSED = 499  # nginx's convention for "client closed the request"


class Observer:
    """The middleware, built once with the app's metrics."""

    __middleware_version__ = 1  # what @web.middleware marks: a new-style middleware

    def __init__(self, metrics: Metrics, include_text: bool = False) -> None:
        self._metrics = metrics
        self._include_text = include_text

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = RequestRecord(_route(request), time.monotonic(), self._metrics, self._include_text)
        request[RECORD] = record
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            status = CLIENT_CLOSED
            raise
        finally:
            record.status = status
            record.client = client_of(request).name
            _finish(record)


def _route(request: web.Request) -> str:
    """The matched route's template (bounded label values), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _finish(record: RequestRecord) -> None:
    metrics = record.metrics
    duration = time.monotonic() - record.started
    child, code = metrics.child, str(record.status)
    child(metrics.requests, record.route, code).inc()
    child(metrics.request_duration, record.route).observe(duration)
    if record.client:
        child(metrics.client_requests, record.client, code).inc()
    if record.prompt_tokens is not None:
        child(metrics.usage_tokens, "prompt", record.config).inc(record.prompt_tokens)
    if record.completion_tokens is not None:
        child(metrics.usage_tokens, "completion", record.config).inc(record.completion_tokens)
    level = logging.DEBUG if record.route in QUIET_ROUTES else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "request", extra=record.log_fields(duration))
