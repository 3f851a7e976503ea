"""Memory stays bounded whatever the held events carry: a held head whose window needs
more text, then a flood of deltas with no text or with text of a field no rail judges,
through the real proxy (``stream_first: false``). Before the fix, 300,000 empty deltas
grew the process by ~300 MB."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import psutil
import pytest

from fakes.hostile import HostileUpstream, Reply, chunk
from integration.conftest import ProxyFactory, chat_body

FLOOD = 100_000


def _flood(kind: str) -> Iterator[bytes]:
    yield b"data: " + json.dumps(chunk("Hi")).encode() + b"\n\n"
    for i in range(FLOOD):
        if kind == "empty":
            event = chunk("")
        else:
            call = {"index": 0, "function": {"arguments": f'"{i}",'}}
            event = chunk(None)
            event["choices"][0]["delta"] = {"tool_calls": [call]}
        yield b"data: " + json.dumps(event).encode() + b"\n\n"
    yield b"data: " + json.dumps(chunk(None, 0, "stop")).encode() + b"\n\ndata: [DONE]\n\n"


# 100,000 events take ~4 s alone and hit the default 60 s bound once on a loaded 2-core box;
# fewer would not show the bug (it grew ~0.8 KB per event): a wider bound instead.
@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["empty", "tool_arguments"])
async def test_flood_behind_a_held_head_stays_bounded(proxy: ProxyFactory, kind: str) -> None:
    streaming = {"enabled": True, "chunk_size": 200, "context_size": 0, "stream_first": False}
    rails = {
        "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
        "output": {"flows": ["banned"], "streaming": {**streaming, "max_held_events": 64}},
    }
    async with HostileUpstream(Reply(_flood(kind))) as up:
        p = await proxy(target=up.base_url, streaming=True, rails=rails)
        gc.collect()
        before = psutil.Process().memory_info().rss
        received = 0
        async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
            async for piece in r.content.iter_any():
                received += len(piece)
        grown = psutil.Process().memory_info().rss - before
    assert received > FLOOD * 50  # the flood went through, in order, to the end
    assert grown < 40 << 20, f"process grew by {grown >> 20} MB"
