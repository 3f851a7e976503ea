"""A fast fake vLLM upstream: ``POST /v1/chat/completions`` streams pre-rendered chunks,
``POST /v1/responses`` the same text as vLLM 0.32's Responses API events, and
``POST /v1/messages`` as its Anthropic Messages API events.

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
from collections.abc import Callable
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


def _named(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return b"event: " + obj["type"].encode() + b"\ndata: " + data + b"\n\n"


@functools.cache
def render_responses(profile: Profile, n: int) -> Rendered:
    """vLLM 0.32's events for one message item (tests/fakes/responses_samples.py shows
    them): created, in_progress, item and part added, the deltas, the three ``done``
    events and ``response.completed``, numbered in order."""
    texts = deltas(profile, n)
    text = "".join(texts)
    rid, mid = "resp_bench000000000000", "msg_bench000000000000"
    at = {"content_index": 0, "item_id": mid, "output_index": 0}
    part = {"annotations": [], "text": text, "type": "output_text", "logprobs": None}
    item = {"id": mid, "content": [part], "role": "assistant", "status": "completed"}
    item |= {"type": "message", "phase": None}
    head_item = item | {"content": [], "status": "in_progress"}
    response = {"id": rid, "created_at": _CREATED, "model": "bench", "object": "response"}
    events: list[dict[str, Any]] = [
        {
            "response": response | {"output": [], "status": "in_progress"},
            "type": "response.created",
        },
        {
            "response": response | {"output": [], "status": "in_progress"},
            "type": "response.in_progress",
        },
        {"item": head_item, "output_index": 0, "type": "response.output_item.added"},
        {**at, "part": part | {"text": "", "logprobs": []}, "type": "response.content_part.added"},
    ]
    head = b"".join(_named(e | {"sequence_number": i}) for i, e in enumerate(events))
    seq = len(events)
    body = tuple(
        _named(
            {
                **at,
                "delta": d,
                "logprobs": [],
                "sequence_number": seq + i,
                "type": "response.output_text.delta",
            }
        )
        for i, d in enumerate(texts)
    )
    seq += len(texts)
    usage = {"input_tokens": 6, "output_tokens": n, "total_tokens": n + 6}
    closing = [
        {**at, "logprobs": [], "text": text, "type": "response.output_text.done"},
        {**at, "part": part, "type": "response.content_part.done"},
        {"item": item, "output_index": 0, "type": "response.output_item.done"},
        {
            "response": response | {"output": [item], "status": "completed", "usage": usage},
            "type": "response.completed",
        },
    ]
    finish = b"".join(_named(e | {"sequence_number": seq + i}) for i, e in enumerate(closing))
    return Rendered(head, body, finish)


@functools.cache
def render_messages(profile: Profile, n: int) -> Rendered:
    """vLLM 0.32's Messages API events for one text block (tests/fakes/messages_samples.py
    shows them): ``message_start`` and ``content_block_start``, one ``content_block_delta``
    (``text_delta``) per delta, then ``content_block_stop``, ``message_delta`` (``end_turn``,
    as the chat stream's finish is ``stop``, and the usage) and ``message_stop``."""
    usage = {"input_tokens": 6, "output_tokens": 0}
    message = {"id": _ID, "type": "message", "role": "assistant", "content": []}
    message |= {"model": "bench", "stop_reason": None, "stop_sequence": None, "usage": usage}
    block = {"type": "text", "text": ""}
    head = _named({"type": "message_start", "message": message}) + _named(
        {"type": "content_block_start", "content_block": block, "index": 0}
    )
    body = tuple(
        _named(
            {
                "type": "content_block_delta",
                "delta": {"type": "text_delta", "text": d},
                "index": 0,
            }
        )
        for d in deltas(profile, n)
    )
    end = {"stop_reason": "end_turn", "stop_sequence": None}
    finish = b"".join(
        _named(e)
        for e in (
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": end, "usage": usage | {"output_tokens": n}},
            {"type": "message_stop"},
        )
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
    return await _serve(request, render, _DONE)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _serve(request, render_responses, b"")


async def messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, render_messages, b"")


async def _serve(
    request: web.Request, rendering: Callable[[Profile, int], Rendered], done: bytes
) -> web.StreamResponse:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    request.app[CALLS][0] += 1
    profile, n, rate = _params(body, dict(request.match_info))
    if body.get("stream") is not True:
        if rendering is not render:  # whole answers: the chat route only
            raise web.HTTPBadRequest(text="this fake upstream only streams on this route")
        return web.Response(body=whole(profile, n), content_type="application/json")
    stream = rendering(profile, n)
    resp = web.StreamResponse(headers=_HEADERS)
    await resp.prepare(request)
    await resp.write(stream.head)
    if rate > 0:
        await _paced(resp, stream.deltas, rate)
    else:
        await _full_speed(resp, stream.deltas)
    await resp.write(stream.finish)
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage")
    if rendering is render and request.app[USAGE] and asked:
        await resp.write(usage_chunk(n))
    if done:
        await resp.write(done)
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
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
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
