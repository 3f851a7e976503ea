"""The fake upstream's Messages API is real vLLM 0.32's, byte for byte (captured bytes)."""

from __future__ import annotations

import aiohttp

from fakes import messages_samples as real
from fakes.upstream import FakeUpstream, Script

BODY = {"model": "tiny", "max_tokens": 12, "messages": [{"role": "user", "content": "x"}]}


async def answer(rid: str, stream: bool) -> tuple[bytes, str]:
    script = Script(text=real.WORDS, finish_reason="length", prompt_tokens=real.PROMPT_TOKENS)
    async with FakeUpstream(script) as fake, aiohttp.ClientSession() as s:
        body = {**BODY, "stream": stream}
        headers = {"X-Request-Id": rid}
        async with s.post(fake.base_url + "/v1/messages", json=body, headers=headers) as r:
            return await r.read(), r.headers["Content-Type"]


async def test_a_stream_is_vllms() -> None:
    raw, content_type = await answer("cap-stream", True)
    assert raw == real.STREAM
    assert content_type == "text/event-stream; charset=utf-8"


async def test_a_whole_answer_is_vllms() -> None:
    raw, content_type = await answer("cap-whole", False)
    assert raw == real.WHOLE
    assert content_type == "application/json"
