"""``railproxy chat``'s HTTP side against a tiny local server that sends canned bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.chat.wire import (
    FALLBACK_MODEL,
    Abort,
    Failure,
    ReplyEvent,
    Target,
    Text,
    fetch_model,
    stream_reply,
    whole_reply,
)

SSE = "text/event-stream"
JSON = "application/json"
BLOCK = {"error": {"message": "Blocked by b rails.", "param": "b", "code": "content_blocked"}}


def chunk(content: str = "", finish: str | None = None) -> str:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n"


def whole(content: str, finish: str = "stop") -> str:
    choice = {"index": 0, "message": {"content": content}, "finish_reason": finish}
    return json.dumps({"choices": [choice]})


Serve = Callable[[int, str, str], Awaitable[str]]


@pytest.fixture
async def serve(aiohttp_server: Any) -> Serve:
    """A factory: start a server answering every /v1 request with one canned response, and
    return its base URL."""

    async def start(status: int, content_type: str, body: str) -> str:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=status, text=body, content_type=content_type)

        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", handler)
        server = await aiohttp_server(app)
        return f"http://127.0.0.1:{server.port}/v1"

    return start


async def collect(reply: AsyncGenerator[ReplyEvent, None]) -> list[ReplyEvent]:
    return [event async for event in reply]


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (200, SSE, chunk("Hi") + chunk("", "stop") + "data: [DONE]\n\n", [Text("Hi")]),
        (200, SSE, chunk("Hi") + chunk("", "stop"), [Text("Hi")]),
        (200, SSE, chunk("Hi"), [Text("Hi"), Failure("the stream ended without [DONE]")]),
        (
            200,
            SSE,
            chunk("Hi") + f"data: {json.dumps(BLOCK)}\n\n",
            [Text("Hi"), Abort("b", "Blocked by b rails.")],
        ),
        (
            200,
            SSE,
            chunk("No.") + chunk("", "content_filter"),
            [Text("No."), Abort(None, "finish_reason: content_filter")],
        ),
        (400, JSON, json.dumps(BLOCK), [Abort("b", "Blocked by b rails.")]),
        (200, JSON, whole("Whole."), [Text("Whole.")]),  # a server that ignores stream: true
        (502, "text/plain", "bad gateway", [Failure("HTTP 502: bad gateway")]),
    ],
)
async def test_stream_reply(
    serve: Serve, status: int, content_type: str, body: str, expected: list[ReplyEvent]
) -> None:
    target = Target(await serve(status, content_type, body), "m", {})
    async with aiohttp.ClientSession() as session:
        assert await collect(stream_reply(session, target, [])) == expected


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, whole("Whole."), [Text("Whole.")]),
        (400, json.dumps(BLOCK), [Abort("b", "Blocked by b rails.")]),
        (
            200,
            whole("Sorry.", "content_filter"),
            [Text("Sorry."), Abort(None, "finish_reason: content_filter")],
        ),
    ],
)
async def test_whole_reply(
    serve: Serve, status: int, body: str, expected: list[ReplyEvent]
) -> None:
    target = Target(await serve(status, JSON, body), "m", {})
    async with aiohttp.ClientSession() as session:
        assert await collect(whole_reply(session, target, [])) == expected


async def test_unreachable_server_is_a_failure_and_models_fall_back() -> None:
    target = Target("http://127.0.0.1:9/v1", "m", {})
    async with aiohttp.ClientSession() as session:
        [event] = await collect(stream_reply(session, target, []))
        assert isinstance(event, Failure)
        assert "ClientConnectorError" in event.message
        assert await fetch_model(session, target.base_url, {}) == FALLBACK_MODEL
