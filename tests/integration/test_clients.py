"""Real clients through the real proxy: the openai SDK (sync and async, streaming and
not) and huggingface_hub's InferenceClient (chat streaming, TGI text_generation)."""

from __future__ import annotations

import asyncio

import openai
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory

TEXT = ["Hello", ",", " wor", "ld", " — ünïcode 🚀", "!"]
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("dialect", ["vllm", "tgi", "llamacpp"])
async def test_openai_async_stream_and_whole(
    fake: FakeUpstream, proxy: ProxyFactory, dialect: str
) -> None:
    fake.script = Script(text=TEXT, dialect=dialect)  # type: ignore[arg-type]
    p = await proxy()
    client = openai.AsyncOpenAI(base_url=p.v1, api_key="sk-client", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        whole = await client.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    assert "".join(parts) == "".join(TEXT)
    assert whole.choices[0].message.content == "".join(TEXT)


async def test_openai_sync_client_stream_completions_and_models(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=TEXT)
    p = await proxy()

    def use_sync_client() -> tuple[str, str, list[str]]:
        with openai.OpenAI(base_url=p.v1, api_key="sk-client", max_retries=0) as client:
            chunks = client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,  # type: ignore[arg-type]
            )
            chat = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            comp = client.completions.create(model="fake-model", prompt="hi", stream=True)
            text = "".join(c.choices[0].text for c in comp if c.choices)
            models = [m.id for m in client.models.list()]
        return chat, text, models

    chat, text, models = await asyncio.to_thread(use_sync_client)
    assert chat == "".join(TEXT)
    assert text == "".join(TEXT)
    assert models == ["fake-model"]


async def test_openai_sdk_sees_usage_when_asked(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage async for c in stream if c.usage]
    assert usage
    assert usage[-1].completion_tokens > 0


async def test_openai_sdk_raises_on_in_band_upstream_error(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    from fakes.faults import Fault, FaultKind

    fake.script = Script(fault=Fault(FaultKind.IN_BAND_ERROR, after=2, message="engine died"))
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        with pytest.raises(openai.APIError, match="engine died"):
            async for _ in stream:
                pass


@pytest.mark.parametrize("dialect", ["vllm", "llamacpp"])
async def test_inference_client_chat_stream(
    fake: FakeUpstream, proxy: ProxyFactory, dialect: str
) -> None:
    # Not the TGI dialect: huggingface_hub only recognises "data: [DONE]" with a space and
    # json-decodes TGI's "data:[DONE]" (axum 0.7 framing), failing without any proxy.
    fake.script = Script(text=TEXT, dialect=dialect)  # type: ignore[arg-type]
    p = await proxy()
    client = AsyncInferenceClient(base_url=p.base)
    out = []
    async for chunk in await client.chat_completion(MESSAGES, stream=True, max_tokens=20):
        out.append(chunk.choices[0].delta.content or "")
    assert "".join(out) == "".join(TEXT)
    assert fake.requests[-1].path == "/v1/chat/completions"


async def test_inference_client_text_generation_stream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=TEXT, dialect="tgi")
    p = await proxy()

    def generate() -> str:
        client = InferenceClient(base_url=p.base)
        return "".join(client.text_generation("hi", stream=True, max_new_tokens=20))

    # TGI ends with its EOS token ("special": true), whose text the client also yields.
    assert await asyncio.to_thread(generate) == "".join(TEXT) + "</s>"
    assert fake.requests[-1].path == "/generate_stream"
