"""A clean guarded TGI ``/generate_stream`` ends with TGI's final event and nothing after it
(no false ``incomplete_generation_stream``), in both release modes, with and without
``details``; ``huggingface_hub``'s ``text_generation(stream=True)`` reads it to the end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import TextGenerationError

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, events

TEXT = ["Hello", ",", " wor", "ld", "!"]


def rails(stream_first: bool, words: list[str] | None = None) -> dict[str, Any]:
    streaming = {"enabled": True, "chunk_size": 4, "context_size": 2}
    return {
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": words or ["project falcon"]}},
            "output": {
                "flows": ["banned"],
                "streaming": {**streaming, "stream_first": stream_first},
            },
        }
    }


@pytest.mark.usefixtures("no_leaks")  # (not the hub tests: its requests pool stays open)
@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("details", [False, True])
async def test_clean_guarded_stream_ends_with_tgi_final_event(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool, details: bool
) -> None:
    fake.script = Script(text=TEXT, dialect="tgi")
    p = await proxy(**rails(stream_first))
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 20, "details": details}}
    status, raw = await p.post_stream("/generate_stream", body)
    assert status == 200
    assert raw == fake.sent[-1]  # byte for byte: nothing added after the final event
    last = json.loads(events(raw)[-1])
    assert last["generated_text"] is not None
    assert "error" not in last


@pytest.mark.parametrize("stream_first", [False, True])
async def test_huggingface_hub_text_generation_through_rails(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=TEXT, dialect="tgi")
    p = await proxy(**rails(stream_first))

    def generate() -> str:
        client = InferenceClient(base_url=p.base)
        return "".join(client.text_generation("hi", stream=True, max_new_tokens=20))

    assert await asyncio.to_thread(generate) == "".join(TEXT) + "</s>"


async def test_huggingface_hub_raises_on_a_tgi_block(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" Project", " Falcon", " rises"], dialect="tgi")
    p = await proxy(**rails(False))

    def generate() -> str:
        client = InferenceClient(base_url=p.base)
        return "".join(client.text_generation("hi", stream=True, max_new_tokens=20))

    with pytest.raises(TextGenerationError):
        await asyncio.to_thread(generate)
