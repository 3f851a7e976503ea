"""A private key longer than one window, through the real proxy (issue 13, "a mask that
opens a span keeps masking until the span closes"): with the ``secrets`` rail on
``action: mask`` the key is masked whole, streamed and whole, on raw sockets and with the
openai SDK; a key the answer never closes is blocked; a key in tool arguments (whose
JSON escapes railproxy cannot write a mask back into) is blocked. With
``stream_first: true`` text goes out before it is judged, so the mask is a block.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
import pytest

from fakes.hostile import HostileUpstream, Reply, sse
from integration.conftest import ProxyFactory, chat_body, events

JSON_CT = "application/json"
MASK = "[KEY]"


def body(lines: int) -> list[str]:
    return [f"MIIE{i:03d}" + "Zm9vYmFy" * 6 + f"{i:02d}Q" for i in range(lines)]


def pem(lines: Sequence[str]) -> str:
    key = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----"])
    return key


def leaked(lines: Sequence[str], raw: bytes) -> list[str]:
    """Body lines of which 12 characters in a row are on the socket."""
    text = raw.decode("utf-8", "replace")
    return [ln for ln in lines if any(ln[i : i + 12] in text for i in range(len(ln) - 11))]


def config(stream_first: bool) -> dict[str, Any]:
    secrets = {"type": "secrets", "action": "mask", "mask_with": MASK}
    streaming = {
        "enabled": True,
        "chunk_size": 96,
        "context_size": 16,
        "stream_first": stream_first,
    }
    output = {"flows": ["s"], "streaming": streaming}
    return {"streaming": True, "rails": {"config": {"s": secrets}, "output": output}}


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


FINISH = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def streamed_reply(text: str) -> Reply:
    pieces = re.findall(r"\S+\s*|\s+", text)
    return Reply(sse(*(chunk({"content": piece}) for piece in pieces), FINISH))


def whole_reply(message: dict[str, Any]) -> Reply:
    answer = {
        "id": "c",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
    }
    return Reply([json.dumps(answer).encode()], content_type=JSON_CT)


def content_of(raw: bytes) -> str:
    out = []
    for data in events(raw):
        if data == b"[DONE]":
            continue
        obj = json.loads(data)
        for choice in obj.get("choices") or []:
            out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("lines", [1, 2, 4, 6, 8])  # 1 to 5 windows of 96 tokens (measured)
async def test_a_long_key_is_masked_whole_streamed_and_whole(
    hostile: HostileUpstream, proxy: ProxyFactory, lines: int, stream_first: bool
) -> None:
    key_lines = body(lines)
    text = f"Here it is:\n{pem(key_lines)}\nKeep it safe."
    p = await proxy(target=hostile.base_url, **config(stream_first))
    hostile.reply = streamed_reply(text)
    status, streamed = await p.post_stream("/v1/chat/completions", chat_body())
    hostile.reply = whole_reply({"content": text})
    whole_status, answered = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert (status, whole_status) == (200, 200)
    assert not leaked(key_lines, answered)
    assert json.loads(answered)["choices"][0]["message"]["content"] == (
        f"Here it is:\n{MASK}\nKeep it safe."
    )
    if stream_first:  # released as it came: a mask is a block, and the client is told
        assert b'"code": "content_blocked"' in streamed
        assert b'"finish_reason": "stop"' not in streamed
        return
    assert not leaked(key_lines, streamed)
    assert b"content_blocked" not in streamed
    assert content_of(streamed) == f"Here it is:\n{MASK}\nKeep it safe."


async def test_the_openai_sdk_sees_the_key_masked(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    key_lines = body(20)
    text = f"a {pem(key_lines)} b {pem(key_lines[:7])} c"
    p = await proxy(target=hostile.base_url, **config(False))
    messages: Any = [{"role": "user", "content": "hi"}]
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="k", max_retries=0) as client:
        hostile.reply = streamed_reply(text)
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        hostile.reply = whole_reply({"content": text})
        answer = await client.chat.completions.create(model="m", messages=messages)
    assert "".join(parts) == f"a {MASK} b {MASK} c"
    assert answer.choices[0].message.content == f"a {MASK} b {MASK} c"


async def test_the_sync_sdk_and_its_stream_helper_see_the_key_masked(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """The sync client streaming, and ``chat.completions.stream()`` (the helper that
    accumulates the deltas into a final completion)."""
    key_lines = body(9)
    text = f"a {pem(key_lines)} b"
    hostile.reply = streamed_reply(text)
    p = await proxy(target=hostile.base_url, **config(False))
    messages: Any = [{"role": "user", "content": "hi"}]

    def use_sync_client() -> tuple[str, str, str]:
        with openai.OpenAI(base_url=p.v1, api_key="k", max_retries=0) as client:
            chunks = client.chat.completions.create(model="m", messages=messages, stream=True)
            plain = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            with client.chat.completions.stream(model="m", messages=messages) as stream:
                deltas = "".join(e.delta for e in stream if e.type == "content.delta")
                final = stream.get_final_completion().choices[0].message.content or ""
        return plain, deltas, final

    plain, deltas, final = await asyncio.to_thread(use_sync_client)
    assert plain == deltas == final == f"a {MASK} b"


@pytest.mark.parametrize("stream_first", [False, True])
async def test_a_key_the_answer_never_closes_is_blocked(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    key_lines = body(14)
    text = "Here:\n" + pem(key_lines).split("-----END")[0]
    p = await proxy(target=hostile.base_url, **config(stream_first))
    hostile.reply = streamed_reply(text)
    _, streamed = await p.post_stream("/v1/chat/completions", chat_body())
    hostile.reply = whole_reply({"content": text})
    status, answered = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert b'"code": "content_blocked"' in streamed
    assert (status, json.loads(answered)["error"]["code"]) == (400, "content_blocked")
    assert not leaked(key_lines, answered)
    if not stream_first:
        assert not leaked(key_lines, streamed)


async def test_a_key_in_tool_arguments_is_blocked_streamed_and_whole(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """JSON escapes every newline of the key, so the mask cannot be written back into the
    arguments: the answer is blocked, and no line of the key reaches the socket."""
    key_lines = body(16)
    args = json.dumps({"key": pem(key_lines)})
    pieces = [args[i : i + 24] for i in range(0, len(args), 24)]

    def call(fragment: str) -> dict[str, Any]:
        fn = {"arguments": fragment, "name": "store"}
        return chunk({"tool_calls": [{"index": 0, "type": "function", "function": fn}]})

    p = await proxy(target=hostile.base_url, **config(False))
    hostile.reply = Reply(sse(*(call(piece) for piece in pieces), FINISH))
    _, streamed = await p.post_stream("/v1/chat/completions", chat_body())
    tool = {"index": 0, "id": "t", "type": "function"}
    calls = [{**tool, "function": {"name": "s", "arguments": args}}]
    message = {"content": None, "tool_calls": calls}
    hostile.reply = whole_reply(message)
    status, answered = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert b'"code": "content_blocked"' in streamed
    assert not leaked(key_lines, streamed)
    assert (status, json.loads(answered)["error"]["code"]) == (400, "content_blocked")
    assert not leaked(key_lines, answered)
