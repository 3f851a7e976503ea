"""A hostile upstream that generates text on every path and method, and records the raw
request target of everything it receives (the routing tests' witness).

Real servers register more generating routes than railproxy guards (vLLM's
``/v1/responses``, ``/v1/chat/completions/batch``, llama.cpp's ``/v1/messages``...); this fake
answers *every* request with ``WORD``, in the shape its path calls for: chat chunks (SSE) by
default, completion chunks on ``/v1/completions``, TGI events on ``/generate_stream``, TGI
JSON on ``/generate`` and ``/``. ``seen`` holds (method, raw target) in arrival order;
``delay_s`` paces the stream's events.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

WORD = "ruru"


def _chat(text: str) -> dict[str, Any]:
    delta = {"role": "assistant", "content": text}
    return {"id": "x", "object": "chat.completion.chunk", "model": "m", "created": 1,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip


def _completion(text: str) -> dict[str, Any]:
    return {"id": "x", "object": "text_completion", "model": "m", "created": 1,
            "choices": [{"index": 0, "text": text, "finish_reason": None}]}  # fmt: skip


def _tgi(text: str, last: bool) -> dict[str, Any]:
    token = {"id": 1, "text": text, "logprob": 0.0, "special": False}
    return {"index": 1, "token": token, "top_tokens": None,
            "generated_text": f"say {WORD} now" if last else None, "details": None}  # fmt: skip


class Everywhere:
    """The fake server: ``start()`` binds 127.0.0.1; ``base_url`` has no ``/v1``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.seen: list[tuple[str, str]] = []
        self.delay_s = delay_s
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.raw_path))
        await request.read()
        path = request.path
        if request.method == "HEAD":
            return web.Response(headers={"Content-Type": "text/event-stream"})
        if path in ("/generate", "/"):
            return web.json_response({"generated_text": f"say {WORD} now"})
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        pieces = ["say ", WORD, " now"]
        for i, text in enumerate(pieces):
            if path == "/generate_stream":
                event = _tgi(text, i == len(pieces) - 1)
            elif path == "/v1/completions":
                event = _completion(text)
            else:
                event = _chat(text)
            await out.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        if path != "/generate_stream":
            await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out
