"""Helpers shared by the tests that put the proxy in front of a fake speaking a real
server's dialect (test_vllm_dialect.py, test_llamacpp_python_dialect.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from integration.conftest import Proxy, events

ABORT = (
    b'data: {"error": {"message": "Blocked by banned rails.", "type": "guardrails_violation", '
    b'"param": "banned", "code": "content_blocked"}}\n\ndata: [DONE]\n\n'
)


def rails(stream_first: bool, chunk: int = 4, context: int = 2, **extra: Any) -> dict[str, Any]:
    """A blocklist rail on "ruru" (a word the scripts put where a test needs it)."""
    streaming = {"enabled": True, "chunk_size": chunk, "context_size": context}
    output = {"flows": ["banned"], "streaming": streaming | {"stream_first": stream_first}}
    config = {"banned": {"type": "blocklist", "words": ["ruru"]}}
    return {"streaming": True, "rails": {"config": config, "output": output, **extra}}


def slow_rail(stream_first: bool, delay_s: float) -> dict[str, Any]:
    """One window per stream (chunk_size 200): its verdict takes `delay_s`."""
    cfg = rails(stream_first, chunk=200)
    options = {"delay_s": delay_s}
    cfg["rails"]["config"] = {
        "slow": {
            "type": "python",
            "class": "integration.sample_rails:SlowRail",
            "options": options,
            "fields": ["content"],  # one window: not also the envelope's strings
        }
    }
    cfg["rails"]["output"]["flows"] = ["slow"]
    return cfg


def payloads(raw: bytes) -> list[Any]:
    return [json.loads(e) for e in events(raw) if e != b"[DONE]"]


async def timed_events(
    p: Proxy, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> list[tuple[float, bytes]]:
    """Each SSE event (or comment) with the time it reached the client (at most 200)."""
    out: list[tuple[float, bytes]] = []
    async with p.session.post(p.url(path), json=body) as r:
        assert r.status == 200
        for _ in range(200):
            event = await r.content.readuntil(b"\n\n")
            if not event:
                break
            out.append((time.monotonic(), event))
    assert out
    assert out[-1][1] == b"data: [DONE]\n\n"
    return out
