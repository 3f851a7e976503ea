"""Attack findings against the fail-closed boundary (issues 12 and 13).

Each test is one way a forbidden phrase ("Project Falcon", blocklist) or an e-mail address
(pii, mask) still reaches a client's socket unjudged with rails configured and
``stream_first: false`` (or in a whole answer), or another broken promise (a hang, a
transparency break), shown through the real proxy on loopback with a hostile upstream
scripted byte for byte. Each test states what must hold and is ``xfail(strict=True)``
until the proxy is fixed, so the suite stays green and a fix flips it to XPASS (remove the
mark then).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from fakes.hostile import HostileUpstream, Reply, chunk, sse
from integration.conftest import Proxy, ProxyFactory, chat_body

pytestmark = pytest.mark.usefixtures("no_leaks")
PHRASE = "Project Falcon"
EMAIL = "jane.doe@example.com"
JSON_CT = "application/json"


def rails(stream_first: bool = False, pii: bool = False, **abort: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"banned": {"type": "blocklist", "words": ["project falcon"]}}
    flows = ["banned"]
    if pii:
        config["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
        flows.append("pii")
    streaming = {"enabled": True, "chunk_size": 16, "context_size": 8}
    output = {"flows": flows, "streaming": {**streaming, "stream_first": stream_first}}
    section: dict[str, Any] = {"config": config, "output": output}
    if abort:
        section["abort"] = abort
    return {"streaming": True, "rails": section}


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def leaked(raw: bytes) -> bool:
    return b"falcon" in raw.lower() or EMAIL.encode() in raw


async def post(p: Proxy, path: str, body: dict[str, Any], **kw: Any) -> tuple[int, bytes]:
    async with p.session.post(p.url(path), json=body, **kw) as r:
        return r.status, await r.read()


def whole(message: dict[str, Any] | None = None, **choice: Any) -> bytes:
    """A whole chat answer of one choice (``message`` None: the choice has none)."""
    first: dict[str, Any] = {"index": 0, "finish_reason": "stop", **choice}
    if message is not None:
        first["message"] = {"role": "assistant", **message}
    return json.dumps({"id": "c", "object": "chat.completion", "choices": [first]}).encode()


def parts_chunk(parts: list[Any]) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": {"content": parts}}]}


THINKING = [{"type": "thinking", "thinking": [{"type": "text", "text": PHRASE}]}]
TEXT_VALUE = [{"type": "text", "text": {"value": PHRASE, "annotations": []}}]

# -- 1. content parts whose text proxy.wire.fields.content_text does not read ------------------


@pytest.mark.parametrize("parts", [THINKING, TEXT_VALUE], ids=["thinking", "text_value"])
async def test_streamed_content_parts_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, parts: list[Any]
) -> None:
    hostile.reply = Reply(sse(parts_chunk(parts)))
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert not leaked(raw), raw


async def test_whole_thinking_part_is_judged(hostile: HostileUpstream, proxy: ProxyFactory) -> None:
    content = [*THINKING, {"type": "text", "text": "ok"}]
    hostile.reply = Reply([whole({"content": content})], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body(stream=False))
    assert not leaked(raw), raw


# -- 2. fields the openai SDK types and shows, never judged --------------------------------

AUDIO = {"id": "a", "data": "", "expires_at": 1, "transcript": PHRASE}


async def test_whole_audio_transcript_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply([whole({"content": None, "audio": AUDIO})], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    client = openai.AsyncOpenAI(base_url=p.v1, api_key="k", max_retries=0)
    try:
        # Today the SDK returns the answer: answer.choices[0].message.audio.transcript is
        # the phrase. Judged, it is blocked like any other field.
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.code == "content_blocked"
    finally:
        await client.close()


@pytest.mark.parametrize("case", ["annotation_title", "streamed_audio_transcript"])
async def test_other_typed_fields_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    if case == "annotation_title":
        cite = {"title": PHRASE, "url": "http://x", "start_index": 0, "end_index": 1}
        note = {"type": "url_citation", "url_citation": cite}
        hostile.reply = Reply(
            [whole({"content": "see", "annotations": [note]})], content_type=JSON_CT
        )
        stream = False
    else:
        ev = {"id": "c", "choices": [{"index": 0, "delta": {"audio": AUDIO}}]}
        hostile.reply = Reply(sse(ev))
        stream = True
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body(stream=stream))
    assert not leaked(raw), raw


# -- 3. shapes railproxy cannot read, relayed instead of refused ----------------------------

UNREAD_CHAT = {
    "message_in_chunk": sse({"choices": [{"index": 0, "message": {"content": PHRASE}}]}),
    "text_in_chat_chunk": sse({"choices": [{"index": 0, "text": PHRASE}]}),
    "delta_is_a_string": sse({"choices": [{"index": 0, "delta": PHRASE}]}),
    "choices_is_an_object": sse({"choices": {"index": 0, "delta": {"content": PHRASE}}}),
    "choice_is_a_string": sse({"choices": [PHRASE]}),
}


@pytest.mark.parametrize("case", sorted(UNREAD_CHAT))
async def test_unreadable_chat_chunks_are_refused(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply(UNREAD_CHAT[case])
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert not leaked(raw), raw


@pytest.mark.parametrize("where", ["delta", "message"])
async def test_chat_shaped_completion_chunks_are_refused(
    hostile: HostileUpstream, proxy: ProxyFactory, where: str
) -> None:
    hostile.reply = Reply(sse({"choices": [{"index": 0, where: {"content": PHRASE}}]}))
    p = await proxy(target=hostile.base_url, **rails())
    body = {"model": "m", "prompt": "hi", "stream": True}
    _, raw = await post(p, "/v1/completions", body)
    assert not leaked(raw), raw


async def test_whole_chat_choice_with_text_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply([whole(None, text=PHRASE)], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body(stream=False))
    assert not leaked(raw), raw


# -- 4/5. content_filter abort: copies unjudged upstream strings; hangs on a huge index ---


async def test_content_filter_abort_carries_no_upstream_text(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply(sse({**chunk(PHRASE), "model": PHRASE, "id": EMAIL}))
    p = await proxy(target=hostile.base_url, **rails(style="content_filter", refusal_message="no"))
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert b'"finish_reason":"content_filter"' in raw
    assert not leaked(raw), raw


async def test_content_filter_abort_with_huge_index_ends_the_stream(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    huge = b'{"choices":[{"index":100000000000000000000000,"delta":{"content":"Project Falcon"}}]}'
    hostile.reply = Reply(sse(huge))
    p = await proxy(target=hostile.base_url, **rails(style="content_filter", refusal_message="no"))
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        raw = await asyncio.wait_for(r.read(), 5)
    assert raw.endswith(b"data: [DONE]\n\n")


# -- 6. the debug channel for any key; its abort reason quotes the blocked term -----------


async def test_debug_channel_needs_an_operator_key(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply(sse(chunk("say Project Falcon now"), chunk(None, 0, "stop")))
    server = {"playground": True, "api_keys": "sk-plain-1"}
    p = await proxy(target=hostile.base_url, server=server, **rails())
    headers = {"Authorization": "Bearer sk-plain-1", "X-Railproxy-Debug": "1"}
    _, raw = await post(p, "/v1/chat/completions", chat_body(), headers=headers)
    assert b'"code": "content_blocked"' in raw
    assert b"event: railproxy" not in raw
    assert not leaked(raw), raw


# -- 7. SSE lines other than data are relayed raw, unjudged ---------------------------------

HI = json.dumps(chunk("Hi")).encode()
SSE_LINES = {
    "comment_in_event": [b": Project Falcon\ndata: " + HI + b"\n\n", b"data: [DONE]\n\n"],
    "comment_event": [b": Project Falcon\n\n", *sse(chunk("Hi"))],
    "id_field": [b"id: Project Falcon\ndata: " + HI + b"\n\n", b"data: [DONE]\n\n"],
    "event_field": [b"event: Project Falcon\n\n", *sse(chunk("Hi"))],
}


@pytest.mark.parametrize("case", sorted(SSE_LINES))
async def test_non_data_sse_lines_carry_no_unjudged_text(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply(SSE_LINES[case])
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert not leaked(raw), raw


# -- 8. duplicate keys: the last value is judged, the raw bytes keep the first -------------


@pytest.mark.parametrize("stream", [True, False])
async def test_duplicate_keys_cannot_hide_text(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    if stream:
        dup = b'{"choices":[{"index":0,"delta":{"content":"Project Falcon","content":"Hi"}}]}'
        hostile.reply = Reply(sse(dup))
    else:
        body = (
            b'{"id":"c","object":"chat.completion","choices":[{"index":0,"finish_reason":'
            b'"stop","message":{"role":"assistant","content":"Project Falcon","content":"ok"}}]}'
        )
        hostile.reply = Reply([body], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await post(p, "/v1/chat/completions", chat_body(stream=stream))
    assert not leaked(raw), raw


# -- 9. upstream headers and envelope strings ---------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_upstream_headers_carry_no_unjudged_text(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    headers = {"X-Note": PHRASE}
    if stream:
        hostile.reply = Reply(sse(chunk("Hi")), headers=headers)
    else:
        hostile.reply = Reply([whole({"content": "ok"})], content_type=JSON_CT, headers=headers)
    p = await proxy(target=hostile.base_url, **rails())
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body(stream=stream)) as r:
        await r.read()
        assert PHRASE not in r.headers.values()


# -- 10. TGI prefill tokens ---------------------------------------------------------------


async def test_tgi_prefill_text_is_judged(hostile: HostileUpstream, proxy: ProxyFactory) -> None:
    details = {
        "finish_reason": "length",
        "generated_tokens": 1,
        "seed": None,
        "prefill": [{"id": 1, "text": PHRASE, "logprob": None}],
        "tokens": [{"id": 2, "text": "ok", "logprob": -0.1, "special": False}],
    }
    body = json.dumps({"generated_text": "ok", "details": details}).encode()
    hostile.reply = Reply([body], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    params = {"details": True, "decoder_input_details": True}
    _, raw = await post(p, "/generate", {"inputs": "hi", "parameters": params})
    assert not leaked(raw), raw


# -- 11. one choice index given twice in one event -------------------------------------------


async def test_an_index_given_twice_in_one_event_is_refused(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """A mask could not tell the two entries apart (it emptied both, losing the text): an
    event that names one choice twice is unreadable, and the stream ends with our error."""
    ev = {
        "choices": [
            {"index": 0, "delta": {"content": "mail jane.doe@"}},
            {"index": 0, "delta": {"content": "example.com ok"}},
        ]
    }
    hostile.reply = Reply(sse(ev, chunk(None, 0, "stop")))
    p = await proxy(target=hostile.base_url, **rails(pii=True))
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert b"example.com" not in raw
    assert b'"code":"upstream_unreadable"' in raw, raw


# -- 12. without rails: byte transparency ---------------------------------------------------


async def test_no_rails_keeps_a_leading_bom(hostile: HostileUpstream, proxy: ProxyFactory) -> None:
    scripted = [b"\xef\xbb\xbfdata: " + HI + b"\n\n", b"data: [DONE]\n\n"]
    hostile.reply = Reply(scripted)
    p = await proxy(target=hostile.base_url)
    _, raw = await post(p, "/v1/chat/completions", chat_body())
    assert raw == b"".join(scripted)


async def test_no_rails_keeps_the_charset(hostile: HostileUpstream, proxy: ProxyFactory) -> None:
    hostile.reply = Reply(
        sse(chunk("caf\u00e9")), content_type="text/event-stream; charset=latin-1"
    )
    p = await proxy(target=hostile.base_url)
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        await r.read()
        assert "latin-1" in r.headers["Content-Type"]
