"""Request bodies and SSE helpers shared by the conformance tests of every server."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

MODEL_NAME = "tiny"  # what every server calls the model
SEED = 1234
Json = dict[str, Any]


def abort_bytes(rail: str = "banned") -> bytes:
    """NeMo Guardrails' abort event (what railproxy sends when a rail blocks) and [DONE]."""
    return (
        b'data: {"error": {"message": "Blocked by ' + rail.encode() + b' rails.", '
        b'"type": "guardrails_violation", "param": "' + rail.encode() + b'", '
        b'"code": "content_blocked"}}\n\ndata: [DONE]\n\n'
    )


def greedy(facts: Json, n: int) -> str:
    """The first `n` tokens of the model's greedy answer (one word per token)."""
    return "".join(" " + w for w in facts["text"].split()[:n])


def chat(facts: Json, stream: bool = True, max_tokens: int = 40, **extra: Any) -> Json:
    messages = [{"role": "user", "content": facts["prompt"]}]
    return {
        "model": MODEL_NAME,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": SEED,
        "stream": stream,
        **extra,
    }


def completion(facts: Json, stream: bool = True, max_tokens: int = 40, **extra: Any) -> Json:
    body = chat(facts, stream, max_tokens, **extra)
    del body["messages"]
    return body | {"prompt": facts["prompt"]}


def rails(words: list[str], stream_first: bool, **extra: Any) -> Json:
    """Proxy settings: one blocklist rail `banned` on `words`, 10-token windows."""
    streaming = {"enabled": True, "chunk_size": 10, "context_size": 4}
    output = {"flows": ["banned"], "streaming": streaming | {"stream_first": stream_first}}
    config = {"banned": {"type": "blocklist", "words": words}}
    return {"streaming": True, "rails": {"config": config, "output": output, **extra}}


def events(raw: bytes) -> list[bytes]:
    """The data payloads of an SSE body (lines end in \\n or \\r\\n)."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    return [line[6:] for line in lines if line.startswith(b"data: ")]


def contents(raw: bytes) -> dict[int, str]:
    """Generated text per choice index of a chat or completions stream."""
    out: dict[int, str] = {}
    for e in events(raw):
        if e == b"[DONE]" or b'"error"' in e[:10]:
            continue
        for c in json.loads(e).get("choices") or []:
            text = (c.get("delta") or {}).get("content") or c.get("text") or ""
            out[c["index"]] = out.get(c["index"], "") + text
    return out


async def post(session: aiohttp.ClientSession, url: str, body: Json, **kw: Any) -> bytes:
    async with session.post(url, json=body, **kw) as r:
        assert r.status == 200, await r.text()
        return await r.read()
