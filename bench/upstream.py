"""A fast fake vLLM upstream: ``POST /v1/chat/completions`` streams pre-rendered chunks.

The stream is vLLM's dialect, byte for byte in shape: a role chunk, one ``data:
{...}\\n\\n`` chunk per content delta (one write each), a finish chunk with ``stop_reason``,
then ``data: [DONE]\\n\\n``. The request's ``max_tokens`` is the number of deltas;
``bench.rate`` paces them (tokens per second; 0 means full speed, where every write is
followed by a yield to the loop) and ``bench.profile`` picks the text (see ``bench.text``).
A request without ``"stream": true`` gets the same text at once, as one ``chat.completion``
with ``usage``. Under ``/bench/<profile>/<rate>/v1/``, for clients that cannot send
``bench`` (the peers of ``bench/peers.py``), profile and rate come from the path unless the
body names them. ``GET /stats`` counts chat requests. With ``--usage``, a stream that asks
for ``stream_options.include_usage`` ends with vLLM's usage chunk (no choices) before
``[DONE]``; without it no stream reports usage (railproxy then counts the tokens itself).
Paced streams follow an absolute schedule (delta ``i`` is due at ``start + i / rate`` on the
loop clock) so that timer lateness does not accumulate.

Run: ``python -m bench.upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from bench.serve import run, serve
from bench.text import PROFILES, Profile, deltas

_ID = "chatcmpl-bench0000000000000000000000"
_CREATED = 1_700_000_000
_DONE = b"data: [DONE]\n\n"
_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
MAX_DELTAS = 100_000
MAX_BODY_BYTES = 16 << 20  # railproxy's limit is 8 MiB: bench/stall.py sends 8 MB prompts


@dataclass(frozen=True)
class Rendered:
    """The bytes of one whole stream, one item per write."""

    head: bytes
    deltas: tuple[bytes, ...]
    finish: bytes


def _event(choice: dict[str, Any]) -> bytes:
    obj = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "bench",
        "choices": [choice],
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@functools.cache
def render(profile: Profile, n: int) -> Rendered:
    head = _event(
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    )
    body = tuple(
        _event({"index": 0, "delta": {"content": d}, "logprobs": None, "finish_reason": None})
        for d in deltas(profile, n)
    )
    finish = _event(
        {
            "index": 0,
            "delta": {"content": ""},
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
    )
    return Rendered(head, body, finish)


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 12, "total_tokens": 12 + n, "completion_tokens": n}


@functools.cache
def usage_chunk(n: int) -> bytes:
    """vLLM's last chunk when ``stream_options.include_usage`` is asked: no choices, usage."""
    obj = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "bench",
        "choices": [],
        "usage": _usage(n),
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@functools.cache
def whole(profile: Profile, n: int) -> bytes:
    """A non-streamed answer (vLLM's shape) carrying the same ``n`` deltas' text."""
    obj = {
        "id": _ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(deltas(profile, n))},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": _usage(n),
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def _params(body: Any, path: dict[str, str]) -> tuple[Profile, int, float]:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    n = body.get("max_tokens", 64)
    bench = body.get("bench") or {}
    profile = bench.get("profile", path.get("profile", "words"))
    try:
        rate = bench.get("rate", float(path.get("rate", 0)))
    except ValueError:
        raise web.HTTPBadRequest(text="the path's rate must be a number") from None
    if not isinstance(n, int) or not 1 <= n <= MAX_DELTAS:
        raise web.HTTPBadRequest(text=f"max_tokens must be an int in 1..{MAX_DELTAS}")
    if profile not in PROFILES:
        raise web.HTTPBadRequest(text=f"bench.profile must be one of {PROFILES}")
    if not isinstance(rate, int | float) or rate < 0:
        raise web.HTTPBadRequest(text="bench.rate must be a number >= 0")
    return cast(Profile, profile), n, float(rate)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    request.app[CALLS][0] += 1
    profile, n, rate = _params(body, dict(request.match_info))
    if body.get("stream") is not True:
        return web.Response(body=whole(profile, n), content_type="application/json")
    stream = render(profile, n)
    resp = web.StreamResponse(headers=_HEADERS)
    await resp.prepare(request)
    await resp.write(stream.head)
    if rate > 0:
        await _paced(resp, stream.deltas, rate)
    else:
        await _full_speed(resp, stream.deltas)
    await resp.write(stream.finish)
    options = body.get("stream_options")
    if request.app[USAGE] and isinstance(options, dict) and options.get("include_usage"):
        await resp.write(usage_chunk(n))
    await resp.write(_DONE)
    await resp.write_eof()
    return resp


async def _paced(resp: web.StreamResponse, frames: tuple[bytes, ...], rate: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    interval = 1.0 / rate
    for i, frame in enumerate(frames):
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await resp.write(frame)


async def _full_speed(resp: web.StreamResponse, frames: tuple[bytes, ...]) -> None:
    for frame in frames:
        await resp.write(frame)
        await asyncio.sleep(0)


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "bench", "object": "model"}]})


CALLS = web.AppKey("calls", list[int])


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"calls": request.app[CALLS][0]})


USAGE = web.AppKey("usage", bool)


def create_app(usage: bool = False) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[USAGE] = usage
    app[CALLS] = [0]
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    # For clients that cannot send ``bench`` (the peers' servers): text and pacing in the path.
    app.router.add_post("/bench/{profile}/{rate}/v1/chat/completions", chat_completions)
    app.router.add_get("/bench/{profile}/{rate}/v1/models", models)
    app.router.add_get("/stats", stats)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--usage",
        action="store_true",
        help="send a usage chunk when a stream asks for it (stream_options.include_usage), "
        "as vLLM does; without it streams report no usage, so railproxy counts tokens",
    )
    args = p.parse_args(argv)
    run(serve(create_app(args.usage), args.port))


if __name__ == "__main__":
    main()
