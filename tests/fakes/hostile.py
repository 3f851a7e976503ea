"""A hostile upstream: answers every request with exactly the bytes a test scripts.

The fake upstream (``fakes.upstream``) speaks real servers' dialects; this one speaks
whatever a test wants, malformed on purpose: NaN numbers, lone surrogates, invalid UTF-8,
text after the end, compressed bodies the proxy did not ask for, wrong content types.

    async with HostileUpstream() as up:
        up.reply = Reply(chunks=[b"data: {...}\\n\\n", b"data: [DONE]\\n\\n"])
        ... point the proxy at up.base_url ...
        assert up.paths == ["/v1/chat/completions"]
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SSE = "text/event-stream"


@dataclass
class Reply:
    """One scripted answer: status, headers, and the body as the chunks to write (any
    iterable: a generator streams a huge body without holding it)."""

    chunks: Iterable[bytes] = field(default_factory=list)
    status: int = 200
    content_type: str = SSE
    headers: dict[str, str] = field(default_factory=dict)


def sse(*objs: Any) -> list[bytes]:
    """``data:`` events from JSON-able objects (or raw bytes/str as they are), then
    ``[DONE]``."""
    out = []
    for obj in objs:
        if isinstance(obj, bytes):
            data = obj
        elif isinstance(obj, str):
            data = obj.encode("utf-8", "surrogatepass")
        else:
            data = json.dumps(obj).encode()
        out.append(b"data: " + data + b"\n\n")
    return [*out, b"data: [DONE]\n\n"]


def chunk(text: str | None = None, index: Any = 0, finish: str | None = None) -> dict[str, Any]:
    """A chat completion chunk of one choice."""
    delta = {} if text is None else {"content": text}
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [choice],
    }


def gzipped(reply: Reply) -> Reply:
    """The same reply with its body gzip-compressed and labelled so."""
    body = gzip.compress(b"".join(reply.chunks), mtime=0)  # (a list, not a generator)
    headers = {**reply.headers, "Content-Encoding": "gzip"}
    return Reply([body], reply.status, reply.content_type, headers)


class HostileUpstream:
    """Serve ``reply`` on every path and method on 127.0.0.1; record the paths asked."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or Reply()
        self.paths: list[str] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.__aenter__()

    async def close(self) -> None:
        await self.__aexit__()

    async def __aenter__(self) -> HostileUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.raw_path)
        await request.read()
        r = self.reply
        out = web.StreamResponse(status=r.status, headers=r.headers)
        out.content_type = r.content_type
        await out.prepare(request)
        for piece in r.chunks:
            await out.write(piece)
        await out.write_eof()
        return out
