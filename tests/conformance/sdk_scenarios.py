"""Scenarios that run unchanged against every real server: the openai SDK through the
proxy, and the pass-through cases. Each server's test file calls them from thin tests (one
test file per server keeps one server per worker under ``-n 2 --dist loadfile``)."""

from __future__ import annotations

from typing import cast

import openai
from conformance.conftest import ProxyFactory
from conformance.wire import Json, chat, completion, greedy
from openai import AsyncStream
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

ChatStream = AsyncStream[ChatCompletionChunk]
TextStream = AsyncStream[Completion]


async def sdk_chat_stream(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**chat(facts))
        chunks = [c async for c in cast(ChatStream, stream)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == greedy(facts, 40)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"


async def sdk_chat_non_stream(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        answer = await client.chat.completions.create(**chat(facts, stream=False))
    assert answer.choices[0].message.content == greedy(facts, 40)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 40


async def sdk_completions_stream(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.completions.create(**completion(facts, max_tokens=20))
        chunks = [c async for c in cast(TextStream, stream)]
        answer = await client.completions.create(**completion(facts, False, max_tokens=20))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == answer.choices[0].text
    assert len(text.split()) == 20
    assert chunks[-1].choices[0].finish_reason == "length"


async def sdk_completions_non_stream(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        answer = await client.completions.create(**completion(facts, False, max_tokens=20))
    assert answer.object == "text_completion"
    assert len(answer.choices[0].text.split()) == 20
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 20


PASSTHROUGH = {
    "chat-stream": ("/v1/chat/completions", True, {}),
    "chat-stream-usage": ("/v1/chat/completions", True, {"include_usage": True}),
    "chat-json": ("/v1/chat/completions", False, {}),
    "completions-stream": ("/v1/completions", True, {}),
    "completions-stream-usage": ("/v1/completions", True, {"include_usage": True}),
    "completions-json": ("/v1/completions", False, {}),
}


def passthrough_body(facts: Json, path: str, stream: bool, options: Json) -> Json:
    make = chat if path == "/v1/chat/completions" else completion
    extra: Json = {"stream_options": options} if options else {}
    return make(facts, stream, **extra)
