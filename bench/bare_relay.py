"""The floor reference: the least an aiohttp relay does, to measure railproxy against.

``POST /v1/chat/completions``: read the body, open the upstream request with it, copy the
status, content type and body bytes back as they arrive. No parsing, no rails, no logs,
no metrics. ``GET /healthz`` answers 200. uvloop when installed, as ``railproxy serve``.

Run: ``python -m bench.bare_relay --port N --upstream http://127.0.0.1:M/v1``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bench.serve import run, serve

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_UPSTREAM = web.AppKey("upstream", str)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[_SESSION]
    url = request.app[_UPSTREAM] + "/chat/completions"
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    async with session.post(url, data=body, headers=headers) as up:
        ctype = up.headers.get("Content-Type", "application/json")
        resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype})
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=16 << 20)
    app[_UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=4096)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as s:
            app[_SESSION] = s
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", relay)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_relay", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:M/v1")
    args = p.parse_args(argv)
    run(serve(create_app(args.upstream), args.port))


if __name__ == "__main__":
    main()
