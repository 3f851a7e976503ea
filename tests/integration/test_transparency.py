"""With no rails, a client receives exactly the bytes the upstream sent, per dialect."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body

DIALECTS = ["vllm", "tgi", "llamacpp"]

SCRIPTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "unicode": {"text": ["caf", "é ", "日本", "語 🚀", "\n", " end"]},
    "two_choices": {"n": 2},
    "usage": {"include_usage": True},
    "tools": {"tool_calls": [("get_weather", ['{"city"', ': "Paris"}'])]},
    "reasoning": {"reasoning": ["Let me", " think."]},
    "reasoning_content": {"reasoning": ["hmm"], "reasoning_field": "reasoning_content"},
    "logprobs": {"logprobs": True},
    "keepalive": {"keepalive_comments": True},
    "length": {"finish_reason": "length"},
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", sorted(SCRIPTS))
async def test_chat_stream_is_byte_identical(
    fake: FakeUpstream, proxy: ProxyFactory, dialect: str, case: str
) -> None:
    fake.script = Script(dialect=dialect, **SCRIPTS[case])  # type: ignore[arg-type]
    p = await proxy()
    status, body = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert body == fake.sent[-1]
    assert body.rstrip().endswith(b"[DONE]")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_completions_stream_is_byte_identical(
    fake: FakeUpstream, proxy: ProxyFactory, dialect: str
) -> None:
    fake.script = Script(dialect=dialect)  # type: ignore[arg-type]
    p = await proxy()
    body = {"model": "m", "prompt": "Say hi", "stream": True}
    status, raw = await p.post_stream("/v1/completions", body)
    assert status == 200
    assert raw == fake.sent[-1]


async def test_continuous_usage_stats_pass_through(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    opts = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(**opts))
    assert status == 200
    assert raw == fake.sent[-1]
    assert raw.count(b'"usage"') >= 4
    assert fake.requests[-1].json["stream_options"] == opts["stream_options"]


async def test_tgi_generate_stream_is_byte_identical(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(dialect="tgi")
    p = await proxy()
    body = {"inputs": "hi", "parameters": {"details": True}}
    status, raw = await p.post_stream("/generate_stream", body)
    assert status == 200
    assert raw == fake.sent[-1]
    assert b"[DONE]" not in raw
    assert fake.requests[-1].path == "/generate_stream"


async def test_request_body_is_forwarded_unchanged(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"x_extra":1}'
    headers = {"Content-Type": "application/json"}
    async with p.session.post(p.url("/v1/chat/completions"), data=raw, headers=headers) as r:
        await r.read()
    assert fake.requests[-1].body == raw
