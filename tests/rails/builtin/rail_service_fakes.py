"""Real JSON services on 127.0.0.1 (port 0) for the network rails' tests: each answers
every POST with one fixed status and body, and records what it received."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeService:
    """``url`` has no trailing slash; ``received`` fills as requests arrive."""

    url: str
    received: list[Received] = field(default_factory=list)


StartService = Callable[..., Awaitable[FakeService]]


async def start_service(servers: list[TestServer], body: Any, status: int = 200) -> FakeService:
    """Start a service answering ``body`` (bytes as-is, else JSON) with ``status``;
    the caller closes the servers it collected in ``servers``."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    service = FakeService("")

    async def handle(request: web.Request) -> web.Response:
        seen = Received(request.path, dict(request.headers), await request.json())
        service.received.append(seen)
        return web.Response(status=status, body=raw, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    servers.append(server)
    service.url = str(server.make_url("/")).rstrip("/")
    return service


def chat_completion(content: str) -> dict[str, Any]:
    """The body of a non-streaming OpenAI chat completion answering ``content``."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }
