"""A fake LLM judge: ``POST /v1/chat/completions`` answers "No" (allow) after a fixed
delay, like a small judge model behind an OpenAI-compatible server. ``GET /stats``
returns how many judgements it gave, so the runner can check the judge rail ran.

Run: ``python -m bench.judge --port N --delay-ms 50``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from bench.serve import run, serve

_ANSWER = {
    "id": "chatcmpl-judge",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "judge",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "No"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "total_tokens": 2, "completion_tokens": 1},
}
CALLS = web.AppKey("calls", list[int])


def create_app(delay_s: float) -> web.Application:
    async def judge(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay_s)
        request.app[CALLS][0] += 1
        return web.json_response(_ANSWER)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"calls": request.app[CALLS][0]})

    app = web.Application()
    app[CALLS] = [0]
    app.router.add_post("/v1/chat/completions", judge)
    app.router.add_get("/stats", stats)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.judge", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=50.0)
    args = p.parse_args(argv)
    run(serve(create_app(args.delay_ms / 1000), args.port))


if __name__ == "__main__":
    main()
