"""The fake's `/v1/responses` speaks as vLLM 0.32.0 did (`responses_samples`), ids and
times aside."""

from __future__ import annotations

import re

import aiohttp

from .responses_samples import STREAM, WHOLE
from .upstream import FakeUpstream, Script

REQUEST = {"model": "tiny", "input": "kalo mine rusa", "max_output_tokens": 8, "temperature": 0}
PIECES = [" faho", " dodo dodo dodo faho horu kato mito"]  # as vLLM batched them


def normalized(raw: bytes) -> bytes:
    raw = re.sub(rb'"(resp|msg)_[0-9a-f]{16}"', rb'"\1_X"', raw)
    return re.sub(rb'"created_at":\d+', b'"created_at":0', raw)


async def test_stream_and_whole_answer_match_real_vllm() -> None:
    script = Script(text=PIECES, model="tiny", prompt_tokens=6)
    async with FakeUpstream(script) as fake, aiohttp.ClientSession() as s:
        url = fake.base_url + "/v1/responses"
        async with s.post(url, json=REQUEST | {"stream": True}) as r:
            streamed = await r.read()
            assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        async with s.post(url, json=REQUEST) as r:
            whole = await r.read()
    assert normalized(streamed) == normalized(STREAM)
    assert normalized(whole) == normalized(WHOLE)
