"""Route handlers: thin. The guarded routes hand over to ``proxy.guarded``; the rest
(health, readiness, metrics, configs, the playground, other ``/v1`` paths) live here.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxy import playground
from proxy import requests as req
from proxy.call import request_id
from proxy.guarded import auth_on, guarded
from proxy.keys import METRICS, STATE, UPSTREAM, live_configs
from proxy.protocol import CHAT, COMPLETIONS, TGI_NATIVE
from proxy.record import RECORD
from proxy.upstream import response_headers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/generate_stream", generate_stream)
    app.router.add_post("/generate", generate)
    app.router.add_post("/", compat_generate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/rails/configs", list_configs)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/ui", playground.page)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await guarded(request, CHAT, "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await guarded(request, COMPLETIONS, "/completions")


async def generate_stream(request: web.Request) -> web.StreamResponse:
    return await guarded(request, TGI_NATIVE, "/generate_stream", native=True)


async def generate(request: web.Request) -> web.StreamResponse:
    return await guarded(request, TGI_NATIVE, "/generate", native=True)


async def compat_generate(request: web.Request) -> web.StreamResponse:
    """TGI's ``POST /``: ``/generate_stream`` when the body says ``"stream": true``, else
    ``/generate`` (huggingface_hub's ``text_generation`` posts here)."""
    return await guarded(request, TGI_NATIVE, "/generate", native=True, compat=True)


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
    configs = live_configs(request.app)
    data = [{"id": i, "default": i == configs.default} for i in configs.ids]
    return web.json_response({"object": "list", "data": data})


# -- everything else under /v1 -----------------------------------------------------------


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Any other ``/v1/*`` path (models, embeddings, tokenize...), streamed both ways."""
    tail = request.match_info["tail"]
    req.check_path(tail)
    up = request.app[UPSTREAM]
    rid = request_id(request)
    request[RECORD].request_id = rid
    headers = up.headers(request.headers, rid, auth_on(request))
    url = up.url("/" + tail) + (f"?{request.query_string}" if request.query_string else "")
    body = await request.read() if request.can_read_body else None
    resp = await up.open(request.method, url, headers, body)
    try:
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
    finally:
        resp.close()
