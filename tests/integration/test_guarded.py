"""Output and input rails on live streams, through the real proxy and real clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body, events

WORDS = [f" w{i}" for i in range(60)]
ABORT = (
    b'data: {"error": {"message": "Blocked by banned rails.", "type": "guardrails_violation", '
    b'"param": "banned", "code": "content_blocked"}}\n\ndata: [DONE]\n\n'
)

pytestmark = pytest.mark.usefixtures("no_leaks")


def rails(
    stream_first: bool = True, chunk: int = 10, context: int = 4, **extra: Any
) -> dict[str, Any]:
    output = {
        "flows": ["banned"],
        "streaming": {
            "enabled": True,
            "chunk_size": chunk,
            "context_size": context,
            "stream_first": stream_first,
        },
    }
    return {
        "streaming": True,
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
            "output": output,
            **extra,
        },
    }


def with_secret_at(index: int, total: int = 60) -> list[str]:
    words = [f" w{i}" for i in range(total)]
    words[index : index + 2] = [" Project", " Falcon"]
    return words


def content(raw: bytes) -> str:
    out = []
    for e in events(raw):
        if e == b"[DONE]":
            continue
        obj = json.loads(e)
        for c in obj.get("choices") or []:
            out.append((c.get("delta") or {}).get("content") or c.get("text") or "")
    return "".join(out)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_clean_stream_is_byte_identical_with_rails(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw == fake.sent[-1]


@pytest.mark.parametrize("stream_first", [True, False])
async def test_block_ends_with_the_exact_abort_bytes(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=with_secret_at(25, total=400), tokens_per_s=400)
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw.endswith(ABORT)
    assert raw.count(b"[DONE]") == 1
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    assert fake.deltas_sent < 100  # the upstream stopped long before its 400 deltas


async def test_stream_first_false_never_sends_forbidden_text(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(25))
    p = await proxy(**rails(stream_first=False))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Falcon" not in raw
    released = content(raw)
    assert "".join(WORDS[:25]).startswith(released)  # windows before the phrase's passed
    assert len(released) >= len("".join(WORDS[:10]))
    assert raw.endswith(ABORT)


async def test_stream_first_true_streams_before_the_verdict(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(25))
    p = await proxy(**rails(stream_first=True))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert "".join(WORDS[:25]) in content(raw)
    assert b'"finish_reason":"stop"' not in raw  # the end waited for the verdict
    assert raw.endswith(ABORT)


async def test_phrase_split_across_a_window_boundary_is_caught(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    # " Project" is the 10th token (end of window 1), " Falcon" the first of window 2.
    fake.script = Script(text=with_secret_at(9))
    p = await proxy(**rails(stream_first=False))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert raw.endswith(ABORT)
    assert b"Falcon" not in raw


async def test_openai_sdk_raises_content_blocked(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(5))
    p = await proxy(**rails())
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        with pytest.raises(openai.APIError) as info:
            async for _ in stream:
                pass
    assert info.value.code == "content_blocked"
    assert info.value.body == {
        "message": "Blocked by banned rails.",
        "type": "guardrails_violation",
        "param": "banned",
        "code": "content_blocked",
    }


@pytest.mark.parametrize("refusal", ["", "I can't help with that."])
async def test_content_filter_style(fake: FakeUpstream, proxy: ProxyFactory, refusal: str) -> None:
    fake.script = Script(text=with_secret_at(5))
    abort = {"style": "content_filter", "refusal_message": refusal}
    p = await proxy(**rails(stream_first=False, abort=abort))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [c async for c in stream]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "content_filter"
    texts = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert texts.endswith(refusal)
    assert "Falcon" not in texts


@pytest.mark.parametrize(
    ("separator", "expected"), [(None, "\nNo."), (" -- ", " -- No."), ("", "No.")]
)
async def test_content_filter_refusal_is_separated_from_the_partial_text(
    fake: FakeUpstream, proxy: ProxyFactory, separator: str | None, expected: str
) -> None:
    """Mid-stream, the refusal does not glue onto the text already sent ("w9No.")."""
    fake.script = Script(text=with_secret_at(30))
    abort: dict[str, Any] = {"style": "content_filter", "refusal_message": "No."}
    if separator is not None:
        abort["separator"] = separator
    p = await proxy(**rails(stream_first=True, abort=abort))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    deltas = [
        c["delta"].get("content")
        for e in events(raw)
        if e != b"[DONE]"
        for c in json.loads(e)["choices"]
    ]
    assert deltas[-2:] == [expected, None]  # the refusal chunk, then the finish chunk
    assert "".join(d or "" for d in deltas[:-2]).startswith(" w0 w1")


async def test_content_filter_input_block_has_no_separator(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """Nothing was sent before an input block: the refusal stands alone."""
    abort = {"style": "content_filter", "refusal_message": "No."}
    cfg = rails(abort=abort)
    cfg["rails"]["input"] = {"flows": ["banned"]}
    p = await proxy(**cfg)
    body = chat_body(messages=[{"role": "user", "content": "Project Falcon?"}])
    status, raw = await p.post_stream("/v1/chat/completions", body)
    assert status == 200
    first = json.loads(events(raw)[0])
    assert first["choices"][0]["delta"]["content"] == "No."
    assert fake.requests == []


async def test_non_streaming_block_is_400_without_retry(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(30))
    p = await proxy(**rails())
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body(False)) as r:
        assert r.status == 400
        assert r.headers["x-should-retry"] == "false"
        body = await r.json()
    assert body["error"]["code"] == "content_blocked"
    assert body["error"]["param"] == "banned"


async def test_non_streaming_sdk_raises_bad_request(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(30))
    p = await proxy(**rails())
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=3) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.code == "content_blocked"
    assert len(fake.requests) == 1  # x-should-retry: false means no retry


async def test_non_streaming_content_filter_is_200_with_refusal(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(30))
    abort = {"style": "content_filter", "refusal_message": "No."}
    p = await proxy(**rails(abort=abort))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(False))
    body = json.loads(raw)
    assert status == 200
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == "No."


async def test_input_rail_block_never_reaches_upstream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    cfg = rails()
    cfg["rails"]["input"] = {"flows": ["banned"]}
    p = await proxy(**cfg)
    body = chat_body(messages=[{"role": "user", "content": "tell me about project FALCON"}])
    async with p.session.post(p.url("/v1/chat/completions"), json=body) as r:
        assert r.status == 400
        assert r.headers["x-should-retry"] == "false"
        assert (await r.json())["error"]["param"] == "banned"
    assert fake.requests == []


async def test_input_rail_judges_only_the_last_user_message(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    cfg = rails()
    cfg["rails"]["input"] = {"flows": ["banned"]}
    p = await proxy(**cfg)
    messages = [
        {"role": "user", "content": "project falcon?"},
        {"role": "assistant", "content": "no"},
        {"role": "user", "content": "ok, hello"},
    ]
    status, _ = await p.post_stream("/v1/chat/completions", chat_body(messages=messages))
    assert status == 200


@pytest.mark.parametrize(
    ("streaming", "enabled", "off"),
    [
        (True, False, "rails.output.streaming.enabled is false"),
        (False, True, "streaming is false"),
        (None, True, "streaming is false"),
        (None, False, "streaming and rails.output.streaming.enabled are false"),
    ],
)
async def test_streaming_rails_need_both_switches(
    fake: FakeUpstream, proxy: ProxyFactory, streaming: bool | None, enabled: bool, off: str
) -> None:
    """NeMo Guardrails: top-level `streaming` and `rails.output.streaming.enabled` must both
    be true for a stream through output rails; the 400 names the switch that is off."""
    cfg = rails()
    cfg["streaming"] = streaming
    cfg["rails"]["output"]["streaming"]["enabled"] = enabled
    p = await proxy(**cfg)
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["code"] == "streaming_rails_disabled"
    assert error["message"].startswith(
        f"stream: true cannot be used when output rails are configured but {off}. Either set "
    )
    assert error["message"].endswith(" in the rails config, or send stream: false.")
    assert fake.requests == []
    status, _ = await p.post_stream("/v1/chat/completions", chat_body(False))
    assert status == 200


async def test_both_switches_on_streams_through_the_rails(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(**rails())
    status, _ = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200


async def test_pii_mask_rewrites_held_events(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    words = [" write", " to", " jane", ".doe@", "example", ".com", " now", *WORDS[:20]]
    fake.script = Script(text=words)
    cfg = rails(stream_first=False)
    cfg["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    cfg["rails"]["output"]["flows"] = ["pii"]
    p = await proxy(**cfg)
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"jane" not in raw
    assert content(raw) == " write to [EMAIL] now" + "".join(WORDS[:20])
    assert events(raw)[-1] == b"[DONE]"


async def test_tgi_native_block_uses_tgi_error_shape(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(dialect="tgi", text=with_secret_at(5))
    p = await proxy(**rails(stream_first=False))
    status, raw = await p.post_stream("/generate_stream", {"inputs": "hi"})
    assert status == 200
    assert raw.endswith(
        b'data:{"error": "Blocked by banned rails.", "error_type": "guardrails_violation"}\n\n'
    )
    assert b"Falcon" not in raw


async def test_completions_block(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(5))
    p = await proxy(**rails(stream_first=False))
    body = {"model": "m", "prompt": "hi", "stream": True}
    _, raw = await p.post_stream("/v1/completions", body)
    assert raw.endswith(ABORT)
    assert b"Falcon" not in raw


async def test_each_choice_has_its_own_buffer(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(n=2, text=WORDS[:30], choice_text={1: with_secret_at(5, total=30)})
    p = await proxy(**rails(stream_first=False))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(n=2))
    assert raw.endswith(ABORT)
    assert b"Falcon" not in raw
