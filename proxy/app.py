"""Application wiring: ``create_app(settings)``.

Everything shared is built here once, at start-up, and never mutated while serving:
settings, the rails configs (``Guard`` per config id), the upstream client session.
Per-request state lives in the handler's locals and in per-stream objects.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy import __version__
from proxy.auth import ApiKeyAuth, check_bindings
from proxy.configs import ConfigSet
from proxy.errors import PayloadTooLarge, ProxyError, internal_error
from proxy.flow import handlers
from proxy.flow.paths import check_target
from proxy.observe.access import Observer
from proxy.observe.logs import redact_parse_errors
from proxy.observe.metrics import Metrics
from proxy.observe.record import RECORD, stamp_request_id
from proxy.routes import anthropic_path
from proxy.settings import Settings
from proxy.state import (
    CONFIGS,
    INFLIGHT,
    METRICS,
    PASS_ROUTES,
    SETTINGS,
    STATE,
    UPSTREAM,
    InFlight,
    ServerState,
)
from proxy.upstream import Upstream
from rails import offload

log = logging.getLogger("railproxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place that turns failures into error bodies: OpenAI's shape, Anthropic's on
    the Messages API's paths."""
    anthropic = anthropic_path(request.path)
    try:
        return await handler(request)
    except ProxyError as e:
        return e.response(anthropic)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].server.max_body_bytes
        return PayloadTooLarge(f"Request body is larger than {limit} bytes.").response(anthropic)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 405:  # aiohttp's own: another method on one of our exact routes
            request[RECORD].refused("method_not_allowed")
        return _http_error(e).response(anthropic)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error", extra={"route": request.path})
        return internal_error(anthropic)


def _http_error(e: web.HTTPException) -> ProxyError:
    kind = ProxyError(e.reason or "Error", code="not_found" if e.status == 404 else None)
    if "Allow" in e.headers:  # a 405 says which methods the route takes
        kind.headers = {"Allow": e.headers["Allow"]}
    kind.status = e.status
    kind.type = "invalid_request_error" if e.status < 500 else "server_error"
    return kind


def create_app(
    settings: Settings, configs: ConfigSet | None = None, metrics: Metrics | None = None
) -> web.Application:
    """Build the aiohttp application. ``configs`` defaults to the settings' own rails;
    ``metrics`` to a fresh registry (tests and several apps in one process)."""
    server = settings.server
    configs = configs or ConfigSet.single(settings.rails_config)
    check_bindings(server.api_keys, configs.ids)
    metrics = metrics or Metrics()
    inflight = InFlight()
    # The whole chain, built once: in-flight tracking spans everything (a drain waits for
    # it), then the request record and its metrics, errors in OpenAI's shape, raw paths.
    observer = Observer(metrics, settings.logging.include_text)
    chain = [inflight.middleware(), observer, error_middleware, check_target]
    middlewares: list[Middleware] = chain
    if server.api_keys:
        middlewares.append(ApiKeyAuth(server.api_keys))
    redact_parse_errors()
    app = web.Application(
        client_max_size=server.max_body_bytes,
        middlewares=middlewares,
        handler_args={
            "max_field_size": 16384,
            "max_headers": 128,
            # Also bounds the wait for a whole request head (see ServerSettings).
            "keepalive_timeout": server.idle_timeout_s,
            # After an answer given before the whole body arrived (408, 413, 401...),
            # aiohttp reads and discards the rest for this long, then closes.
            "lingering_time": min(10.0, server.body_timeout_s),
            # proxy.flow.request_body decodes request bodies itself, capped; no header forwarded.
            "auto_decompress": False,
        },
    )
    offload.enable()  # huge texts are judged and counted off the event loop
    app[SETTINGS] = settings
    app[UPSTREAM] = Upstream(settings.upstream)
    app[CONFIGS] = configs
    app[PASS_ROUTES] = server.pass_routes
    app[STATE] = ServerState()
    app[METRICS] = metrics
    app[INFLIGHT] = inflight
    metrics.register(__version__, configs)
    app[STATE].reload_hooks.append(metrics.reload_hook())
    app.cleanup_ctx.append(_lifecycle)
    app.on_response_prepare.append(stamp_request_id)
    handlers.add_routes(app)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    await app[UPSTREAM].start()
    try:
        yield
    finally:
        await app[UPSTREAM].close()
        await app[CONFIGS].aclose()
        await offload.aclose()  # the worker process for huge texts, if one was started
