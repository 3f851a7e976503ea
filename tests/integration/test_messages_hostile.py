"""A hostile upstream on ``/v1/messages``: every way a stream can make the anthropic SDK
show text other than what railproxy judged, or show it unjudged, ends the stream with our
error event (which the SDK raises) before that text; pings and comments flow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from fakes.hostile import HostileUpstream, Reply
from integration.conftest import Proxy, ProxyFactory
from integration.test_guarded import rails
from integration.test_messages import USER, body, client, named

SECRET = "Project Falcon"  # what the banned rail blocks
SMUGGLED = "smuggled-words"  # text a broken stream carries past the judge


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def event(name: str | None, obj: Any) -> bytes:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + data + b"\n\n"


def auto(obj: dict[str, Any]) -> bytes:
    return event(obj["type"], obj)


START = auto(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "m",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 0},
        },
    }
)


def block(index: int, kind: str = "text") -> bytes:
    content: dict[str, Any] = {"type": kind, {"text": "text", "thinking": "thinking"}[kind]: ""}
    return auto({"type": "content_block_start", "index": index, "content_block": content})


def text(index: int, words: str, kind: str = "text_delta", field: str = "text") -> bytes:
    delta = {"type": kind, field: words}
    return auto({"type": "content_block_delta", "index": index, "delta": delta})


def stop(index: int) -> bytes:
    return auto({"type": "content_block_stop", "index": index})


MESSAGE_DELTA = auto(
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    }
)
MESSAGE_STOP = auto({"type": "message_stop"})
CLEAN = [START, block(0), text(0, "Hello"), text(0, " there"), stop(0), MESSAGE_DELTA, MESSAGE_STOP]


async def guarded(proxy: ProxyFactory, up: HostileUpstream, stream_first: bool) -> Proxy:
    return await proxy(target=up.base_url, **rails(stream_first))


BOTH = pytest.mark.parametrize("stream_first", [True, False])


@BOTH
async def test_pings_and_keep_alives_flow_byte_for_byte(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    chunks = [START, ping, block(0), text(0, "Hello"), ping, *CLEAN[3:]]
    hostile.reply = Reply(chunks)
    p = await guarded(proxy, hostile, stream_first)
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 200
    assert raw == b"".join(chunks)
    hostile.reply = Reply([START, b": keep-alive\n\n", *CLEAN[1:]])
    _, raw = await p.post_stream("/v1/messages", body())
    assert raw.count(b": keep-alive\n\n") == 1
    assert raw.replace(b": keep-alive\n\n", b"") == b"".join(CLEAN)


@pytest.mark.parametrize(
    "chunks",
    [
        [START, block(0), event(None, {"type": "content_block_delta", "index": 0})],
        [START, block(0), event("content_block_delta", {"type": "message_stop", "x": SMUGGLED})],
        [block(0), START, text(0, SMUGGLED)],
        [START, START, block(0), text(0, SMUGGLED)],
        [START, text(0, SMUGGLED)],
        [START, block(1), text(1, SMUGGLED)],
        [START, block(0), stop(0), text(0, SMUGGLED)],
        [START, block(0), stop(0), block(0), text(0, SMUGGLED)],
        [START, block(0), text(0, SMUGGLED, "thinking_delta", "thinking")],
        [START, block(0, "thinking"), text(0, SMUGGLED)],
        [START, block(0), MESSAGE_DELTA, text(0, SMUGGLED)],
        [START, block(0), text(0, SMUGGLED, "citations_delta", "citation")],
        [
            START,
            auto(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "web_search_tool_result", "content": SMUGGLED},
                }
            ),
        ],
        [
            START.replace(
                b'"content": []', b'"content": [{"type": "text", "text": "smuggled-words"}]'
            )
        ],
        [
            START,
            block(0),
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
            b'"delta": {"type": "text_delta", "text": "ok"}, "index": 0}\n\n',
        ],
        [
            START,
            block(0),
            b"event: content_block_delta\ndata: {not json " + SMUGGLED.encode() + b"\n\n",
        ],
    ],
    ids=[
        "no-event-name",
        "name-not-type",
        "before-message-start",
        "second-message-start",
        "never-started",
        "skipped-index",
        "after-block-stop",
        "index-reused",
        "wrong-delta-kind",
        "text-in-thinking",
        "after-message-delta",
        "unknown-delta",
        "unknown-block",
        "start-with-content",
        "duplicate-keys",
        "not-json",
    ],
)
async def test_a_stream_out_of_protocol_ends_before_its_text(
    hostile: HostileUpstream, proxy: ProxyFactory, chunks: list[bytes]
) -> None:
    hostile.reply = Reply([*chunks, MESSAGE_DELTA, MESSAGE_STOP])
    p = await guarded(proxy, hostile, True)
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 200
    assert SMUGGLED.encode() not in raw
    last = named(raw)[-1]
    assert last[0] == "error"
    assert last[1]["error"]["type"] == "api_error"
    async with client(p) as c:
        with pytest.raises(anthropic.APIStatusError):
            async with c.messages.stream(model="m", max_tokens=9, messages=USER) as s:
                await s.get_final_message()


@BOTH
async def test_an_upstream_error_event_is_judged_and_the_sdk_raises(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    hostile.reply = Reply([START, block(0), text(0, "Hi"), auto(error)])
    p = await guarded(proxy, hostile, stream_first)
    _, raw = await p.post_stream("/v1/messages", body())
    assert raw == START + block(0) + text(0, "Hi") + auto(error)
    error["error"]["message"] = f"the model said {SECRET}"
    hostile.reply = Reply([START, auto(error)])
    async with client(p) as c:
        stream = await c.messages.create(model="m", max_tokens=9, messages=USER, stream=True)
        with pytest.raises(anthropic.APIStatusError) as e:
            async for _ in stream:
                pass
    assert e.value.body["error"]["type"] == "guardrails_violation"


async def test_a_ping_carrying_text_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    ping = event("ping", {"type": "ping", "note": SECRET})
    hostile.reply = Reply([START, ping, *CLEAN[1:]])
    p = await guarded(proxy, hostile, False)
    _, raw = await p.post_stream("/v1/messages", body())
    assert SECRET.encode() not in raw
    assert named(raw)[-1][1]["error"]["type"] == "guardrails_violation"


@BOTH
async def test_an_end_without_message_stop_is_our_error(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    hostile.reply = Reply(CLEAN[:-2])
    p = await guarded(proxy, hostile, stream_first)
    _, raw = await p.post_stream("/v1/messages", body())
    assert named(raw)[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The upstream closed the stream before it ended.",
            },
        },
    )


async def test_nothing_after_message_stop_is_relayed(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply([*CLEAN, block(1), text(1, SMUGGLED)])
    p = await guarded(proxy, hostile, True)
    _, raw = await p.post_stream("/v1/messages", body())
    assert raw == b"".join(CLEAN)


async def test_event_names_arrive_in_any_framing_and_leave_in_one(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    data = json.dumps(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        }
    ).encode()
    odd = b"id: 1\r\nevent:content_block_delta\r\n: note\r\ndata: " + data + b"\r\n\r\n"
    hostile.reply = Reply([START, block(0), odd, *CLEAN[3:]])
    p = await guarded(proxy, hostile, False)
    _, raw = await p.post_stream("/v1/messages", body())
    assert raw == b"".join(CLEAN)


async def test_a_secret_split_across_two_text_blocks_is_judged_joined(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """Text blocks are one text to the rails, as the SDK's ``get_final_text()`` joins them
    (more: ``test_attack_messages.py``)."""
    first = [START, block(0), text(0, "Project"), stop(0)]
    hostile.reply = Reply([*first, block(1), text(1, " Falcon"), stop(1), *CLEAN[-2:]])
    p = await guarded(proxy, hostile, False)
    _, raw = await p.post_stream("/v1/messages", body())
    assert named(raw)[-1][0] == "error"
    hostile.reply = Reply([START, block(0), text(0, "Project"), text(0, " Falcon"), *CLEAN[4:]])
    _, raw = await p.post_stream("/v1/messages", body())
    assert named(raw)[-1][0] == "error"
