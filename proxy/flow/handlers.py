"""Route handlers: thin. The guarded routes hand over to ``proxy.flow.request``; the rest
(health, readiness, metrics, configs, the playground, other ``/v1`` paths) live here.
Which paths are guarded, passed through or refused: ``proxy.routes``; every path was
checked raw first (``proxy.flow.paths``).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

from proxy import routes
from proxy.clients import client_of
from proxy.configs import HEADER as CONFIG_HEADER
from proxy.errors import MethodNotAllowed, NotFound
from proxy.flow import paths
from proxy.flow.admission import stream_slot
from proxy.flow.request import auth_on, guarded
from proxy.flow.request_body import read_body
from proxy.observe.record import RECORD, request_id
from proxy.playground import page as playground
from proxy.state import METRICS, PASS_ROUTES, STATE, UPSTREAM, live_configs
from proxy.upstream import response_headers
from proxy.wire.chat import CHAT
from proxy.wire.completions import COMPLETIONS
from proxy.wire.messages import MESSAGES
from proxy.wire.responses import RESPONSES
from proxy.wire.tgi import TGI_NATIVE

GUARDED_LIST = ", ".join(f"{m} {p}" for p, m in routes.GUARDED.items())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/generate_stream", generate_stream)
    app.router.add_post("/generate", generate)
    app.router.add_post("/", compat_generate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/rails/configs", list_configs)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/ui", playground.page)
    app.router.add_route("*", "/v1/{tail:.*}", other_v1)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await guarded(request, CHAT, "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await guarded(request, COMPLETIONS, "/completions")


async def messages(request: web.Request) -> web.StreamResponse:
    return await guarded(request, MESSAGES, "/messages")


async def responses(request: web.Request) -> web.StreamResponse:
    return await guarded(request, RESPONSES, "/responses")


async def generate_stream(request: web.Request) -> web.StreamResponse:
    return await guarded(request, TGI_NATIVE, "/generate_stream")


async def generate(request: web.Request) -> web.StreamResponse:
    return await guarded(request, TGI_NATIVE, "/generate")


async def compat_generate(request: web.Request) -> web.StreamResponse:
    """TGI's ``POST /``: ``/generate_stream`` when the body says ``"stream": true``, else
    ``/generate`` (huggingface_hub's ``text_generation`` posts here)."""
    return await guarded(request, TGI_NATIVE, "/generate", compat=True)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    if not await request.app[UPSTREAM].ready():
        return web.json_response({"status": "upstream unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def list_configs(request: web.Request) -> web.Response:
    """The configs this client may use; ``default``: the one it gets when it names none."""
    configs, client = live_configs(request.app), client_of(request)
    default = client.default_config or configs.default
    data = [{"id": i, "default": i == default} for i in configs.ids if client.may_use(i)]
    return web.json_response({"object": "list", "data": data})


# -- everything else under /v1 -----------------------------------------------------------


async def other_v1(request: web.Request) -> web.StreamResponse:
    """Any other ``/v1/*`` path: an allow-listed pass-through, a variant of one of our routes
    (405/404), or, when the request's config has no rails, relayed (proxy.routes)."""
    target = paths.target(request)
    route = routes.allowed(request.app[PASS_ROUTES], request.method, target.path)
    if route is not None:
        request[RECORD].route = route.template
        return await passthrough(request, target, route.stream)
    _refuse_variant(request, target.path)
    if target.path == "/v1/":
        raise NotFound("No route /v1/.")
    body = await read_body(request)
    configs = live_configs(request.app)
    guard = configs.peek(body, request.headers.get(CONFIG_HEADER), client_of(request))
    if guard.guards_input or guard.guards_output:
        _refused(request, "route_not_guarded")
        if routes.is_stored_response(target.path):
            raise NotFound(
                f"{request.method} {target.path}: railproxy does not serve stored "
                "responses while the rails config this request uses has rails: their text "
                "would reach you without being judged. Read responses from the stream or "
                "answer of POST /v1/responses.",
                code="route_not_guarded",
            )
        raise NotFound(
            f"{request.method} {target.path} is not a route railproxy guards, and the rails "
            "config this request uses has rails: railproxy refuses what it cannot judge. "
            f"Guarded: {GUARDED_LIST}. Routes that generate no text can be allowed in "
            "server.passthrough_routes.",
            code="route_not_guarded",
        )
    return await passthrough(request, target, True, body)


def _refuse_variant(request: web.Request, path: str) -> None:
    known = routes.variant_of(path)
    if known is None:
        return
    exact, method = known
    if path == exact:
        _refused(request, "method_not_allowed")
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {exact}; use {method}.",
            headers={"Allow": method},
        )
    _refused(request, "route_variant")
    raise NotFound(f"No route {path}; did you mean {method} {exact}?")


def _refused(request: web.Request, reason: str) -> None:
    request[RECORD].refused(reason)


async def passthrough(
    request: web.Request, target: paths.Target, stream: bool, body: bytes | None = None
) -> web.StreamResponse:
    """Relay the request to ``{base_url}`` + the raw path after ``/v1`` (and the raw
    query), both ways as bytes; ``stream``: it takes a stream slot while it runs."""
    if body is None:
        body = await read_body(request)
    up = request.app[UPSTREAM]
    rid = request_id(request)
    request[RECORD].request_id = rid
    headers = up.headers(request.headers, rid, auth_on(request))
    url = URL(up.settings.base_url + target.path_and_query[3:], encoded=True)
    with stream_slot(request, stream):
        resp = await up.open(request.method, url, headers, body if request.body_exists else None)
        try:
            return await _relay(request, resp, rid)
        finally:
            resp.close()


async def _relay(
    request: web.Request, resp: aiohttp.ClientResponse, rid: str
) -> web.StreamResponse:
    out = web.StreamResponse(status=resp.status, reason=resp.reason)
    out.headers.update(response_headers(resp.headers))
    out.headers["X-Request-Id"] = rid
    await out.prepare(request)
    try:
        async for chunk in resp.content.iter_any():
            await out.write(chunk)
    except (aiohttp.ClientError, TimeoutError):
        out.force_close()  # a cut body must not look complete to the client
        return out
    await out.write_eof()
    return out
