"""Attacks on ``POST /v1/messages`` with a stock client (the anthropic SDK, raw aiohttp) and
a hostile upstream scripted byte for byte: each test is one way text could reach the client
unjudged, or the client could read other than what railproxy judged, and what holds now.

(Out-of-protocol event orders are ``test_messages_hostile.py``'s; these are what it did not
cover.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from fakes.hostile import HostileUpstream, Reply
from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory
from integration.test_guarded import rails
from integration.test_messages import USER, body, client, named
from integration.test_messages_hostile import MESSAGE_DELTA, MESSAGE_STOP, START, auto, block, stop
from proxy.state import STATE

pytestmark = pytest.mark.usefixtures("no_leaks")
EMAIL = "jane.doe@example.com"


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def guarded(stream_first: bool = False) -> dict[str, Any]:
    """The banned rail (``project falcon``, and ``project_falcon`` as a tool would spell it)
    and the pii rail masking e-mail addresses."""
    config = rails(stream_first)
    config["rails"]["config"]["banned"]["words"].append("project_falcon")
    config["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    config["rails"]["output"]["flows"].append("pii")
    return config


async def start(proxy: ProxyFactory, up: HostileUpstream, stream_first: bool = False) -> Proxy:
    return await proxy(target=up.base_url, **guarded(stream_first))


def leaked(raw: bytes) -> bool:
    return b"falcon" in raw.lower() or EMAIL.encode() in raw


def tool_start(index: int, tool_input: dict[str, Any]) -> bytes:
    content_block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": tool_input}
    return auto({"type": "content_block_start", "index": index, "content_block": content_block})


def ends(*events: bytes) -> list[bytes]:
    return [START, *events, MESSAGE_DELTA, MESSAGE_STOP]


# -- a tool's input given whole in content_block_start ---------------------------------------


@pytest.mark.parametrize(
    "tool_input",
    [{"project_falcon": 1}, {"q": {"project_falcon": True}}, {"q": "Project Falcon"}],
    ids=["key", "nested-key", "value"],
)
async def test_a_tool_input_given_whole_at_its_start_is_judged_keys_and_all(
    hostile: HostileUpstream, proxy: ProxyFactory, tool_input: dict[str, Any]
) -> None:
    """The SDK shows ``input`` from ``content_block_start`` as the tool's arguments when no
    ``input_json_delta`` follows; its keys are argument names the model wrote, judged in a
    whole answer (``json.dumps(input)``), so they are judged here too."""
    hostile.reply = Reply(ends(tool_start(0, tool_input), stop(0)))
    p = await start(proxy, hostile)
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 200
    assert not leaked(raw)
    assert named(raw)[-1][1]["error"]["type"] == "guardrails_violation"


# -- an event whose data spans several lines -------------------------------------------------


def multi_line(obj: dict[str, Any]) -> bytes:
    """The event with its JSON split over three ``data:`` lines (legal SSE: the client joins
    them with newlines, which JSON reads as whitespace)."""
    lines = json.dumps(obj).replace(', "', ',\n"').split("\n")
    data = b"".join(b"data: " + line.encode() + b"\n" for line in lines)
    return b"event: " + obj["type"].encode() + b"\n" + data + b"\n"


async def test_data_on_several_lines_leaves_on_several_data_lines(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """Relayed as the client reads it: each line keeps its ``data:`` field (a bare JSON line
    would be a field the client ignores, leaving it half an object)."""
    delta = {"type": "content_block_delta", "index": 0}
    delta["delta"] = {"type": "text_delta", "text": "Hello there"}
    hostile.reply = Reply(ends(block(0), multi_line(delta), stop(0)))
    p = await start(proxy, hostile)
    _, raw = await p.post_stream("/v1/messages", body())
    for line in raw.split(b"\n"):
        assert line == b"" or line.startswith((b"event: ", b"data: ")), line
    async with client(p) as c, c.messages.stream(model="m", max_tokens=9, messages=USER) as s:
        assert await s.get_final_text() == "Hello there"


# -- a phrase split across text blocks --------------------------------------------------------


def text_block(index: int, words: str) -> list[bytes]:
    delta = {"type": "text_delta", "text": words}
    return [
        block(index),
        auto({"type": "content_block_delta", "index": index, "delta": delta}),
        stop(index),
    ]


def tool_block(index: int) -> list[bytes]:
    delta = {"type": "input_json_delta", "partial_json": '{"q": "x"}'}
    return [
        tool_start(index, {}),
        auto({"type": "content_block_delta", "index": index, "delta": delta}),
        stop(index),
    ]


SPLIT = [
    [*text_block(0, "It is Project"), *text_block(1, " Falcon.")],
    [*text_block(0, "It is Project"), *tool_block(1), *text_block(2, " Falcon.")],
]


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("blocks", SPLIT, ids=["adjacent", "around-a-tool-call"])
async def test_a_phrase_split_across_text_blocks_is_judged_as_the_sdk_joins_them(
    hostile: HostileUpstream, proxy: ProxyFactory, blocks: list[bytes], stream_first: bool
) -> None:
    """``get_final_text()`` (and any reader of ``message.content``'s text) joins the text
    blocks: ``"It is Project" + " Falcon."``. vLLM splits a model's text in two around a
    tool call (text that came inside the call follows it), so a model can be led to
    spell a phrase that way; the text blocks are one text to the rails."""
    hostile.reply = Reply(ends(*blocks))
    p = await start(proxy, hostile, stream_first)
    async with client(p) as c:
        with pytest.raises(anthropic.APIStatusError) as e:
            async with c.messages.stream(model="m", max_tokens=9, messages=USER) as s:
                await s.get_final_text()
    assert e.value.body["error"]["type"] == "guardrails_violation"


async def test_text_blocks_are_masked_across_their_boundary(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    blocks = [*text_block(0, "mail jane.doe"), *tool_block(1), *text_block(2, "@example.com ok")]
    hostile.reply = Reply(ends(*blocks))
    p = await start(proxy, hostile)
    async with client(p) as c, c.messages.stream(model="m", max_tokens=9, messages=USER) as s:
        text = await s.get_final_text()
    assert EMAIL not in text
    assert text.startswith("mail ")
    assert text.endswith(" ok")


def whole(*content: dict[str, Any]) -> Reply:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": list(content),
        "model": "m",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    return Reply([json.dumps(message).encode()], content_type="application/json")


async def test_a_whole_answer_split_across_text_blocks_is_judged_joined(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    tool = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    split = [{"type": "text", "text": "It is Project"}, tool, {"type": "text", "text": " Falcon."}]
    hostile.reply = whole(*split)
    p = await start(proxy, hostile)
    async with client(p) as c:
        with pytest.raises(anthropic.BadRequestError) as e:
            await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert e.value.body["error"]["type"] == "guardrails_violation"


async def test_two_text_blocks_open_at_once_end_the_stream(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """Interleaved, the one text channel would read ``"ProjHelloect Falcon"`` while the SDK
    shows block 0 as ``"Project Falcon"``; no server opens a second text block before the
    first stops, so such a stream is not relayed."""
    first, second = text_block(0, "Proj"), text_block(1, "Hello")
    later = {"type": "text_delta", "text": "ect Falcon"}
    more = auto({"type": "content_block_delta", "index": 0, "delta": later})
    hostile.reply = Reply(ends(first[0], second[0], first[1], second[1], more, stop(0), stop(1)))
    p = await start(proxy, hostile)
    _, raw = await p.post_stream("/v1/messages", body())
    assert not leaked(raw)
    assert b"Hello" not in raw
    assert named(raw)[-1][1]["error"]["type"] == "api_error"


# -- suspicions that turned out safe (kept so they stay so) ----------------------------------


def started(content_block: dict[str, Any]) -> bytes:
    return auto({"type": "content_block_start", "index": 0, "content_block": content_block})


def delta_of(kind: str, field: str, value: str) -> bytes:
    delta = {"type": kind, field: value}
    return auto({"type": "content_block_delta", "index": 0, "delta": delta})


SECRET = "Project Falcon"
SAFE_STREAMS = {
    "text-at-start": [started({"type": "text", "text": f"It is {SECRET}"}), stop(0)],
    "email-at-start": [started({"type": "text", "text": f"mail {EMAIL} now"}), stop(0)],
    "citations": [started({"type": "text", "text": "", "citations": [{"cited_text": SECRET}]})],
    "thinking-at-start": [started({"type": "thinking", "thinking": SECRET, "signature": ""})],
    "redacted-thinking": [started({"type": "redacted_thinking", "data": SECRET}), stop(0)],
    "signature": [block(0, "thinking"), delta_of("signature_delta", "signature", SECRET)],
    "email-in-tool-json": [
        tool_start(0, {}),
        delta_of("input_json_delta", "partial_json", '{"to": "jane.doe@exa'),
        delta_of("input_json_delta", "partial_json", 'mple.com"}'),
        stop(0),
    ],
    "escaped-email-in-tool-json": [
        tool_start(0, {}),
        delta_of("input_json_delta", "partial_json", '{"to": "jane.doe\\u0040example.com"}'),
        stop(0),
    ],
    "stop-sequence": [
        *text_block(0, "hi"),
        auto(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": SECRET},
                "usage": {"output_tokens": 1},
            }
        ),
    ],
    "comment": [*text_block(0, "hi"), b": " + SECRET.encode() + b"\n\n"],
    "event-without-data": [b"event: content_block_delta\nid: " + SECRET.encode() + b"\n\n"],
}


@pytest.mark.parametrize("chunks", SAFE_STREAMS.values(), ids=list(SAFE_STREAMS))
async def test_text_in_every_other_place_of_a_stream_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, chunks: list[bytes]
) -> None:
    hostile.reply = Reply(ends(*chunks))
    p = await start(proxy, hostile)
    _, raw = await p.post_stream("/v1/messages", body())
    assert not leaked(raw)


SAFE_WHOLE = {
    "citations": [{"type": "text", "text": "ok", "citations": [{"cited_text": EMAIL}]}],
    "thinking": [{"type": "thinking", "thinking": f"mail {EMAIL}", "signature": "s"}],
    "tool-input-key": [{"type": "tool_use", "id": "t", "name": "f", "input": {EMAIL: 1}}],
    "server-tool-use": [{"type": "server_tool_use", "id": "t", "name": "s", "input": {}}],
    "web-search-result": [{"type": "web_search_tool_result", "content": SECRET}],
}


@pytest.mark.parametrize("content", SAFE_WHOLE.values(), ids=list(SAFE_WHOLE))
async def test_text_in_every_other_place_of_a_whole_answer_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, content: list[dict[str, Any]]
) -> None:
    """Masked where it can be written back, blocked where not, a 502 for a block type
    railproxy does not read: never relayed as it came."""
    hostile.reply = whole(*content)
    p = await start(proxy, hostile)
    status, raw = await p.post_stream("/v1/messages", body(False))
    assert not leaked(raw)
    if status != 200:
        assert json.loads(raw)["type"] == "error"


# -- keys ------------------------------------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-0123456789"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("judged", [True, False], ids=["rails", "no-rails"])
async def test_an_upstream_error_echoing_the_upstream_key_does_not_show_it(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool, judged: bool
) -> None:
    """railproxy holds the upstream key so its clients need not; an upstream (or a gateway
    before it) that quotes the key in an error must not hand it to them."""
    message = f"invalid x-api-key {UPSTREAM_KEY}"
    error = {"type": "error", "error": {"type": "authentication_error", "message": message}}
    hostile.reply = Reply([json.dumps(error).encode()], 401, "application/json")
    sections = guarded() if judged else {}
    p = await proxy(target=hostile.base_url, upstream={"api_key": UPSTREAM_KEY}, **sections)
    status, raw = await p.post_stream("/v1/messages", body(stream))
    assert status == 401
    assert UPSTREAM_KEY.encode() not in raw
    assert json.loads(raw)["error"]["type"] == "authentication_error"
    async with client(p) as c:
        with pytest.raises(anthropic.AuthenticationError) as e:
            await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert UPSTREAM_KEY not in str(e.value)


async def test_client_keys_never_go_upstream_when_railproxy_holds_none(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """With client keys and no upstream key, neither form of the client's key is forwarded
    (the Messages API would otherwise send it on as both)."""
    keys = {"api_keys": [{"name": "app", "key": "sk-app-1234567890"}]}
    p = await proxy(server=keys, **guarded())
    headers = {"Authorization": "Bearer sk-app-1234567890", "x-api-key": "sk-app-1234567890"}
    status, _ = await p.post_stream("/v1/messages", body(False), headers=headers)
    assert status == 200
    sent = fake.requests[-1].headers
    assert "authorization" not in sent
    assert "x-api-key" not in sent


async def test_a_whole_answer_of_several_text_blocks_is_masked_in_each_or_blocked(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """An address inside one block is masked there (the joined text then reads the same);
    one split across two blocks cannot be masked in either: blocked."""
    tool = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    inside = [{"type": "text", "text": f"mail {EMAIL} now"}, tool, {"type": "text", "text": "ok"}]
    hostile.reply = whole(*inside)
    p = await start(proxy, hostile)
    async with client(p) as c:
        masked = await c.messages.create(model="m", max_tokens=9, messages=USER)
    texts = [b.text for b in masked.content if b.type == "text"]
    assert texts[0].startswith("mail ")
    assert EMAIL not in texts[0]
    assert texts[1] == "ok"
    split = [
        {"type": "text", "text": "mail jane.doe"},
        tool,
        {"type": "text", "text": "@example.com"},
    ]
    hostile.reply = whole(*split)
    status, raw = await p.post_stream("/v1/messages", body(False))
    assert status == 400
    assert not leaked(raw)


# -- the drain ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_the_drain_deadline_ends_a_messages_stream_with_an_anthropic_error(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """What is held is judged before the end (never released unjudged), and the end is
    an ``error`` event the SDK raises (``overloaded_error``: retry)."""
    fake.script = Script(text=[" w"] * 400, tokens_per_s=40)
    p = await proxy(**guarded(stream_first))
    async with p.session.post(p.url("/v1/messages"), json=body()) as r:
        await r.content.readline()
        p.app[STATE].stop()  # what proxy.run.drain does at its deadline
        raw = await r.read()
    name, data = named(raw)[-1]
    assert name == "error"
    assert data["error"]["type"] == "overloaded_error"
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
