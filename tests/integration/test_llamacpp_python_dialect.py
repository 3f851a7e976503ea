"""railproxy in front of the fake speaking llama-cpp-python's server (issue #7).

For each difference tests/conformance/README.md lists between llama-cpp-python's server and
the fake's C++ `llamacpp` dialect ("Where llama-cpp-python's server differs"), now the fake's
`llama-cpp-python` dialect, the real proxy (no part of it mocked) is shown to handle it:
Python-spaced bytes pass through unchanged without rails and with rails in both
`stream_first` modes; the separate finish chunk waits for the last verdict; blocks, masking
next to chat logprobs, the `200` with an empty body (railproxy's `upstream_eof`), the server's
`X-Request-Id` rule, its 4xx/5xx bodies, its headers and `: ping - …` comments, and the openai
SDK's view. Where a sample of real bytes exists (`fakes/llamacpp_python_samples.py`) the
proxied bytes are also compared with it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from typing import Any

import openai
import orjson
import pytest

from fakes import llamacpp_python_samples as real
from fakes.llamacpp_python_samples import Sample, normalized
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, events
from integration.dialect_helpers import ABORT, payloads, rails, slow_rail, timed_events

pytestmark = pytest.mark.usefixtures("no_leaks")

UPSTREAM_EOF = (
    b'data: {"error":{"message":"The upstream closed the stream before it ended.",'
    b'"type":"upstream_error","param":null,"code":"upstream_eof"}}\n\ndata: [DONE]\n\n'
)
CLEAN = [" migi", " homi", " gisa", " peru", " tosa", " kato", " zugi", " sane", " gigi"]
LAST_IS_BANNED = [*CLEAN, " ruru"]  # the forbidden word on the last content chunk
CHAT = real.SCRIPT_CHAT
COMPLETION = real.SCRIPT_COMPLETION
DASHED = real.DASHED_UUID["X-Request-Id"]

# The samples the fake reproduces byte for byte, and the script that makes it do so.
REPLAYS: dict[str, tuple[Script, Sample]] = {
    "chat": (CHAT, real.CHAT_STREAM),
    "chat-usage": (CHAT, real.CHAT_STREAM_USAGE),
    "chat-stop": (real.SCRIPT_STOP, real.CHAT_STOP_STREAM),
    "chat-n2": (real.SCRIPT_N2, real.CHAT_N2_STREAM),
    "chat-unknown-model": (CHAT, real.UNKNOWN_MODEL_STREAM),
    "chat-unicode-model": (CHAT, real.UNICODE_MODEL_STREAM),
    "chat-logprobs-no-top": (replace(CHAT, text=CHAT.text[:2]), real.CHAT_LOGPROBS_NO_TOP_STREAM),
    "completions": (COMPLETION, real.COMPLETIONS_STREAM),
    "completions-usage": (COMPLETION, real.COMPLETIONS_STREAM_USAGE),
    "completions-n2": (real.SCRIPT_COMPLETION_N2, real.COMPLETIONS_N2_STREAM),
    "chat-json": (CHAT, real.CHAT_JSON),
    "chat-stop-json": (real.SCRIPT_STOP, real.CHAT_STOP_JSON),
    "chat-n2-json": (CHAT, real.CHAT_N2_JSON),
    "chat-unicode-model-json": (CHAT, real.UNICODE_MODEL_JSON),
    "completions-json": (COMPLETION, real.COMPLETIONS_JSON),
}


def pii_mask(chunk: int = 10, context: int = 4, stream_first: bool = False) -> dict[str, Any]:
    cfg = rails(stream_first=stream_first, chunk=chunk, context=context)
    cfg["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    cfg["rails"]["output"]["flows"] = ["pii"]
    return cfg


def chat(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return real.chat(stream, **({"max_tokens": 100} | extra))


def completion(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return real.completion(stream, **({"max_tokens": 100} | extra))


def contents(raw: bytes) -> str:
    """Generated text of choice 0 of a chat or completions stream."""
    out = ""
    for p in payloads(raw):
        for c in p.get("choices") or []:
            out += (c.get("delta") or {}).get("content") or c.get("text") or ""
    return out


def text_of(payload: Any) -> str:
    choice = payload["choices"][0]
    return str((choice.get("delta") or {}).get("content") or choice.get("text") or "")


def finishes(raw: bytes) -> list[str]:
    return [
        c["finish_reason"]
        for p in payloads(raw)
        for c in p.get("choices") or []
        if c.get("finish_reason")
    ]


# -- README 1-9: real bytes through the proxy -----------------------------------------------


@pytest.mark.parametrize("case", sorted(REPLAYS))
async def test_real_bytes_pass_through_without_rails(
    fake: FakeUpstream, proxy: ProxyFactory, case: str
) -> None:
    """README 1-9: `json.dumps` spacing and key orders, no fingerprint, `logprobs: null`,
    uuid4 ids, compact bodies, ignored `stream_options` and `n`, unknown models: what the
    client gets is what the server sent, and that is the real server's (ids blanked)."""
    fake.script, sample = REPLAYS[case]
    p = await proxy()
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 200
    assert raw == fake.sent[-1]
    assert normalized(raw) == normalized(sample.body)


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize("case", sorted(REPLAYS))
async def test_real_bytes_pass_through_rails_that_allow(
    fake: FakeUpstream, proxy: ProxyFactory, case: str, stream_first: bool
) -> None:
    """README 1-9 with output rails judging every window (chunk_size 4: several windows per
    stream): nothing is re-serialized, so the spaced JSON and the non-ASCII escapes stay;
    held events go out verbatim and in order; bodies judged whole go out as written."""
    fake.script, sample = REPLAYS[case]
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 200
    assert raw == fake.sent[-1]
    assert normalized(raw) == normalized(sample.body)


# -- README 3 and 5: the separate finish chunk ---------------------------------------------


async def test_finish_chunk_waits_for_the_last_verdict(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 3, stream_first true: the text goes out at once; the `"delta": {}` chunk with
    `finish_reason` ends the stream, so it waits for the final window's verdict."""
    fake.script = replace(CHAT, text=CLEAN)
    p = await proxy(**slow_rail(stream_first=True, delay_s=0.5))
    timed = await timed_events(p, chat())
    finishing = timed[-2]
    assert finishing[1].endswith(b'"delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n')
    assert timed[-3][0] - timed[0][0] < 0.3  # the text before it did not wait
    assert finishing[0] - timed[-3][0] >= 0.45  # the verdict's 0.5 s
    assert b"".join(e for _, e in timed) == fake.sent[-1]


async def test_finish_chunk_is_held_with_the_text(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 3, stream_first false: the role chunk (no text) goes at once; every text chunk
    waits for its window's verdict, and the finish chunk comes after them."""
    fake.script = replace(CHAT, text=CLEAN)
    p = await proxy(**slow_rail(stream_first=False, delay_s=0.5))
    timed = await timed_events(p, chat())
    assert b'"delta": {"role": "assistant"}' in timed[0][1]
    assert timed[1][0] - timed[0][0] >= 0.45
    assert b'"finish_reason": "length"' in timed[-2][1]
    assert b"".join(e for _, e in timed) == fake.sent[-1]


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize("path", [real.CHAT_PATH, real.COMPLETIONS_PATH])
@pytest.mark.parametrize("where", ["last", "middle"])
async def test_block_never_relays_the_finish_chunk(
    fake: FakeUpstream, proxy: ProxyFactory, path: str, stream_first: bool, where: str
) -> None:
    """README 3 and 5: a block on the last content chunk or mid-stream: the stream ends with
    exactly NeMo's abort and one `[DONE]`, never the server's finish chunk. Unlike vLLM's
    last chunk, this server's last word carries no finish, so with stream_first true it goes
    out before the verdict even at the end; with false no part of it reaches the client, and
    the windows before it do."""
    words = LAST_IS_BANNED if where == "last" else [*CLEAN[:5], " ruru", *CLEAN[5:]]
    fake.script = replace(CHAT if path == real.CHAT_PATH else COMPLETION, text=words)
    p = await proxy(**rails(stream_first))
    body = chat if path == real.CHAT_PATH else completion
    status, raw = await p.post_stream(path, body())
    assert status == 200
    assert raw.endswith(ABORT)
    assert raw.count(b"[DONE]") == 1
    assert finishes(raw) == []
    released = contents(raw)
    assert "".join(words).startswith(released)
    assert ("ruru" in released) is stream_first  # the word is no finishing chunk here
    assert len(released) >= len("".join(CLEAN[:4]))  # the windows before it passed
    assert fake.disconnects or fake.requests[-1].deltas_sent == len(words)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_sdk_sees_the_block_and_no_finish(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 3 from the client's side: the SDK gets the text before the word, then raises
    `APIError(code="content_blocked")`; no chunk with a finish reason came."""
    fake.script = replace(CHAT, text=LAST_IS_BANNED)
    p = await proxy(**rails(stream_first))
    seen: list[Any] = []

    async def read(stream: Any) -> None:
        async for c in stream:
            seen.append(c)

    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**chat())
        with pytest.raises(openai.APIError) as info:
            await read(stream)
    assert info.value.code == "content_blocked"
    assert seen
    assert all(c.choices[0].finish_reason is None for c in seen)
    released = "".join(c.choices[0].delta.content or "" for c in seen)
    assert "".join(LAST_IS_BANNED).startswith(released)
    assert released.endswith(" ruru") is stream_first


async def test_non_streaming_block_is_a_400(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 6: a compact body judged whole and blocked becomes railproxy's 400."""
    fake.script = replace(CHAT, text=LAST_IS_BANNED)
    p = await proxy(**rails(stream_first=True))
    status, raw = await p.post_stream(real.CHAT_PATH, chat(stream=False))
    assert status == 400
    assert json.loads(raw)["error"]["code"] == "content_blocked"


# -- README 15 with masking: railproxy sets "logprobs": null on what it rewrites ------------


@pytest.mark.parametrize("path", [real.CHAT_PATH, real.COMPLETIONS_PATH])
async def test_pii_mask_nulls_the_logprobs_it_would_contradict(
    fake: FakeUpstream, proxy: ProxyFactory, path: str
) -> None:
    """README 15: chat logprobs (`bytes` null, a `refusal` key) and completions logprobs
    repeat each token's text. The chunks railproxy rewrites (the window's text in the first,
    the others emptied) get `"logprobs": null` and are re-serialized compact; every other
    chunk keeps the server's spaced bytes and its logprobs."""
    words = [" write", " to", " jane", ".doe@", "example", ".com", *CLEAN[:4]]
    chatting = path == real.CHAT_PATH
    fake.script = replace(CHAT if chatting else COMPLETION, text=words)
    p = await proxy(**pii_mask())
    body = chat(logprobs=True, top_logprobs=2) if chatting else completion(logprobs=2)
    _, raw = await p.post_stream(path, body)
    assert b'"logprobs": {' in fake.sent[-1]
    assert contents(raw).startswith(" write to [EMAIL]")
    assert b"jane" not in raw
    rewritten = [e for e in events(raw) if e.startswith(b'{"id":"')]
    assert rewritten
    assert any(b"[EMAIL]" in e for e in rewritten)
    assert all(json.loads(e)["choices"][0]["logprobs"] is None for e in rewritten)
    sent = fake.sent[-1].split(b"\n\n")
    untouched = [e for e in raw.split(b"\n\n") if e and not e.startswith(b'data: {"id":"')]
    assert all(e in sent for e in untouched)  # the server's bytes
    kept = [p for p in payloads(raw) if text_of(p) in CLEAN]
    assert [text_of(p) for p in kept] == CLEAN[1:4]  # " migi" shared the address's window
    assert all(p["choices"][0]["logprobs"] is not None for p in kept)


async def test_pii_mask_with_stream_first_true_is_a_block(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 15, stream_first true: the address and its logprobs went out before the
    verdict, so masking cannot help: railproxy ends the stream with the abort (rail `pii`),
    never the server's finish chunk."""
    words = [" write", " to", " jane", ".doe@", "example", ".com", *CLEAN[:4]]
    fake.script = replace(CHAT, text=words)
    p = await proxy(**pii_mask(stream_first=True))
    _, raw = await p.post_stream(real.CHAT_PATH, chat(logprobs=True, top_logprobs=2))
    assert raw.endswith(ABORT.replace(b"banned", b"pii"))
    assert raw.count(b"[DONE]") == 1
    assert finishes(raw) == []
    assert b'"refusal": null' in raw  # the server's chunks went out as sent


async def test_masked_non_streaming_body_drops_its_logprobs(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 6 and 15: a masked body is re-serialized compact, in the server's key order
    (`content` before `role`), with `"logprobs": null` on the masked choice."""
    fake.script = replace(CHAT, text=[" write", " to", " jane.doe@example.com"])
    p = await proxy(**pii_mask())
    status, raw = await p.post_stream(real.CHAT_PATH, chat(False, logprobs=True, top_logprobs=1))
    assert status == 200
    original = json.loads(fake.sent[-1])
    assert original["choices"][0]["logprobs"]["refusal"] is None
    original["choices"][0]["message"]["content"] = " write to [EMAIL]"
    original["choices"][0]["logprobs"] = None
    assert raw == orjson.dumps(original)
    assert list(json.loads(raw)["choices"][0]["message"]) == ["content", "role"]


@pytest.mark.parametrize("stream_first", [True, False])
async def test_logprobs_pass_through_rails_untouched(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 15: nothing masked, the logprobs with `"bytes": null` are relayed as sent."""
    fake.script = replace(CHAT, text=CLEAN)
    p = await proxy(**rails(stream_first))
    _, raw = await p.post_stream(real.CHAT_PATH, chat(logprobs=True, top_logprobs=2))
    assert raw == fake.sent[-1]
    assert raw.count(b'"bytes": null') == 3 * len(CLEAN)
    assert raw.count(b'"refusal": null') == len(CLEAN)


async def test_sdk_reads_llamacpp_python_logprobs(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 15 from the client's side: the SDK parses the entries (`bytes` None) and the
    `refusal` key; the finish chunk's empty delta has no content."""
    fake.script = replace(CHAT, text=CLEAN[:3])
    p = await proxy(**rails(stream_first=False))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**chat(logprobs=True, top_logprobs=2))
        chunks = [c async for c in stream]
    with_text = [c for c in chunks if c.choices[0].delta.content]
    assert [c.choices[0].delta.content for c in with_text] == CLEAN[:3]
    for c in with_text:
        lp = c.choices[0].logprobs
        assert lp is not None
        assert lp.refusal is None
        assert lp.content is not None
        (entry,) = lp.content
        assert (entry.token, entry.bytes) == (c.choices[0].delta.content, None)
        assert [t.token for t in entry.top_logprobs][:1] == [entry.token]
    last = chunks[-1].choices[0]
    assert (last.delta.content, last.finish_reason, last.logprobs) == (None, "length", None)
    assert all(c.system_fingerprint is None for c in chunks)


# -- README 11: 200 with an empty body --------------------------------------------------------


@pytest.mark.parametrize("stream_first", [None, True, False])
@pytest.mark.parametrize("path", [real.CHAT_PATH, real.COMPLETIONS_PATH])
async def test_stream_failing_in_the_model_becomes_upstream_eof(
    fake: FakeUpstream, proxy: ProxyFactory, path: str, stream_first: bool | None
) -> None:
    """README 11: the server answers `200` with SSE headers and ends the body with no
    event. railproxy (with rails or not) ends the client's stream with its `upstream_eof`
    error event and `[DONE]`."""
    chatting = path == real.CHAT_PATH
    fake.script = real.SCRIPT_LONG_CHAT if chatting else real.SCRIPT_LONG_COMPLETION
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    async with p.session.post(p.url(path), json=chat() if chatting else completion()) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        raw = await r.read()
    assert fake.sent[-1] == b""
    assert raw == UPSTREAM_EOF


async def test_sdk_sees_upstream_eof(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 11 from the client's side: instead of a silently empty stream, the SDK
    raises with railproxy's message."""
    fake.script = real.SCRIPT_LONG_CHAT
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**chat())
        with pytest.raises(openai.APIError) as info:
            async for _ in stream:
                pass
    assert info.value.code == "upstream_eof"
    assert "closed the stream before it ended" in info.value.message


# -- README 10: errors --------------------------------------------------------------------------


@pytest.mark.parametrize("with_rails", [False, True])
@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (real.SCRIPT_LONG_CHAT, real.CONTEXT_CHAT_400),
        (real.SCRIPT_LONG_COMPLETION, real.CONTEXT_COMPLETIONS_400),
        (CHAT, real.SCHEMA_MAX_TOKENS_500),
        (COMPLETION, real.SCHEMA_COMPLETIONS_500),
    ],
    ids=["context-chat", "context-completions", "schema-chat", "schema-completions"],
)
async def test_server_errors_are_relayed_byte_for_byte(
    fake: FakeUpstream, proxy: ProxyFactory, script: Script, sample: Sample, with_rails: bool
) -> None:
    """README 10: the 400 `context_length_exceeded` and the schema's 500 (file path and
    all) reach the client with the server's status and body, unchanged (railproxy's own
    validation lets these requests through)."""
    fake.script = script
    p = await proxy(**(rails(stream_first=True) if with_rails else {}))
    async with p.session.post(p.url(sample.path), json=sample.request) as r:
        assert (r.status, await r.read()) == (sample.status, sample.body)
        assert r.content_type == "application/json"
    assert fake.sent[-1] == sample.body


@pytest.mark.parametrize(
    ("sample", "field"),
    [(real.SCHEMA_MESSAGES_500, "messages"), (real.SCHEMA_STREAM_500, "stream")],
    ids=["messages", "stream"],
)
async def test_railproxy_refuses_first_what_it_reads(
    fake: FakeUpstream, proxy: ProxyFactory, sample: Sample, field: str
) -> None:
    """README 10: `messages` and `stream` railproxy checks itself, so for these the client
    gets railproxy's 400 naming the field, never the server's 500 with its file path."""
    fake.script = CHAT
    p = await proxy()
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 400
    assert json.loads(raw)["error"]["param"] == field
    assert b"app.py" not in raw
    assert fake.requests == []


async def test_sdk_sees_context_length_exceeded(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 10 from the client's side: the SDK raises `BadRequestError` with the server's
    `code` and `param` (a string code, where llama.cpp's C++ server has a number)."""
    fake.script = real.SCRIPT_LONG_CHAT
    p = await proxy(**rails(stream_first=False))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(**chat(stream=False, max_tokens=4))
    assert (info.value.code, info.value.param) == ("context_length_exceeded", "messages")
    assert info.value.body == json.loads(real.CONTEXT_CHAT_400.body)["error"]


# -- README 12: X-Request-Id ----------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [None, True, False])
@pytest.mark.parametrize("stream", [True, False])
async def test_railproxys_own_request_id_is_accepted(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool, stream_first: bool | None
) -> None:
    """README 12: railproxy sends a `uuid4().hex` of its own when the client has none (or
    one railproxy does not accept); the server takes it as a UUID, answers 200 and echoes
    it, and the client sees that same id once."""
    fake.script = CHAT
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    for headers in ({}, {"X-Request-Id": "not a token"}):
        async with p.session.post(p.url(real.CHAT_PATH), json=chat(stream), headers=headers) as r:
            assert r.status == 200
            await r.read()
            sent = fake.requests[-1].headers["x-request-id"]
            assert re.fullmatch("[0-9a-f]{32}", sent)
            assert r.headers.getall("X-Request-Id") == [sent]
            assert r.headers["X-Request-Id"] == sent
    assert fake.sent[-1]


@pytest.mark.parametrize("stream_first", [None, True, False])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_request_id_that_is_no_uuid_gets_the_servers_400(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool, stream_first: bool | None
) -> None:
    """README 12: railproxy forwards a client's own `X-Request-Id` when it is a sane token
    (`client-rid-7`); llama-cpp-python then refuses the request before routing: `400`, no
    body. railproxy relays that as it came, streaming or not, rails or not (no event)."""
    fake.script = CHAT
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    headers = {"X-Request-Id": "client-rid-7"}
    async with p.session.post(p.url(real.CHAT_PATH), json=chat(stream), headers=headers) as r:
        assert (r.status, await r.read()) == (400, b"")
        assert r.headers["X-Request-Id"] == "client-rid-7"
    assert fake.requests[-1].headers["x-request-id"] == "client-rid-7"
    assert fake.deltas_sent == 0


async def test_sdk_with_a_non_uuid_request_id(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 12 from the client's side: the SDK raises `BadRequestError` (status 400, no
    error body to read), with the client's own id as its request id."""
    fake.script = CHAT
    p = await proxy(**rails(stream_first=True))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                **chat(), extra_headers={"X-Request-Id": "client-rid-7"}
            )
    assert info.value.status_code == 400
    assert not info.value.body
    assert info.value.request_id == "client-rid-7"


@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_uuid_is_forwarded_and_echoed(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    """README 12: a client's dashed UUID passes both railproxy's rule and the server's; the
    server echoes it and does not use it in the response `id` (README 4)."""
    fake.script = CHAT
    p = await proxy()
    headers = {"X-Request-Id": DASHED}
    async with p.session.post(p.url(real.CHAT_PATH), json=chat(stream), headers=headers) as r:
        assert r.status == 200
        raw = await r.read()
        assert r.headers["X-Request-Id"] == DASHED
    assert fake.requests[-1].headers["x-request-id"] == DASHED
    assert DASHED.encode() not in raw
    assert re.search(rb'"id": ?"chatcmpl-[0-9a-f-]{36}"', raw)


async def test_models_with_a_non_uuid_request_id(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 12 and 16 on a pass-through route: `/v1/models` is refused the same way."""
    fake.script = CHAT
    p = await proxy()
    async with p.session.get(p.v1 + "/models", headers={"X-Request-Id": "abc"}) as r:
        assert (r.status, await r.read()) == (400, b"")
    async with p.session.get(p.v1 + "/models") as r:
        assert (r.status, await r.read()) == (200, real.MODELS.body)


@pytest.mark.parametrize("with_rails", [False, True])
async def test_non_streaming_answer_has_one_request_id(
    fake: FakeUpstream, proxy: ProxyFactory, with_rails: bool
) -> None:
    """README 12 and 13: llama-cpp-python echoes the id railproxy sent in `x-request-id`;
    railproxy sets its own `X-Request-Id` too. The client must get one header, and the SDK
    the bare id (streams do: `SSEWriter` sets headers case-insensitively)."""
    fake.script = CHAT
    p = await proxy(**(rails(stream_first=True) if with_rails else {}))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat(stream=False))
    sent = fake.requests[-1].headers["x-request-id"]
    assert raw.parse().choices[0].message.content == "".join(CHAT.text)
    assert raw.headers.get_list("x-request-id") == [sent]
    assert raw.request_id == sent


# -- README 13: headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_server_headers_through_the_proxy(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    """README 13: `vary` and `openai-processing-ms` are relayed; `server: uvicorn` and the
    hop-by-hop `connection` are not; SSE gets railproxy's `cache-control: no-cache` for the
    server's `no-store`, and one `X-Request-Id`."""
    fake.script = CHAT
    p = await proxy(**rails(stream_first=True))
    async with p.session.post(p.url(real.CHAT_PATH), json=chat(stream)) as r:
        await r.read()
        assert r.headers["Vary"] == "Origin"
        assert r.headers["openai-processing-ms"].isdigit()
        assert r.headers.get("Server") != "uvicorn"
        assert r.headers.get("Connection") != "keep-alive"
        if stream:
            assert r.headers.getall("Cache-Control") == ["no-cache"]
            assert r.headers["X-Accel-Buffering"] == "no"
            assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        else:
            assert r.headers["Content-Type"] == "application/json"
        assert r.headers["X-Request-Id"] == fake.requests[-1].headers["x-request-id"]


# -- README 14: `: ping - <time>` comments --------------------------------------------------------


@pytest.mark.parametrize("stream_first", [None, True, False])
async def test_ping_comments_are_relayed(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool | None
) -> None:
    """README 14: sse-starlette's `: ping - <UTC time>` comments are relayed byte for byte,
    the whole body without rails. With rails (either mode) every comment still arrives, in
    its order, and the events are the server's, in theirs; a comment is not judged, so it may
    go out ahead of events that arrived in the same read and wait for a verdict."""
    fake.script = replace(CHAT, text=CLEAN, keepalive_comments=True)
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    _, raw = await p.post_stream(real.CHAT_PATH, chat())
    sent = fake.sent[-1]
    pings = real.PING.findall(sent)
    assert len(pings) == (len(CLEAN) + 1) // 2
    assert real.PING.findall(raw) == pings
    if stream_first is None:
        assert raw == sent
    assert events(raw) == events(sent)


async def test_ping_overtakes_held_text(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 14 with a slow verdict, stream_first false: a ping arriving while text is held
    goes out at once (a comment has nothing to judge); the held text follows, complete."""
    fake.script = replace(CHAT, text=CLEAN, keepalive_comments=True, tokens_per_s=100)
    p = await proxy(**slow_rail(stream_first=False, delay_s=0.3))
    timed = await timed_events(p, chat())
    pings = [t for t, e in timed if real.PING.fullmatch(e)]
    first_text = next(t for t, e in timed if b'"content": " ' in e)
    assert pings
    assert pings[0] < first_text
    assert events(b"".join(e for _, e in timed)) == events(fake.sent[-1])


# -- README 7 and 8: options the server ignores, with rails ---------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_include_usage_and_n_are_ignored_through_rails(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 7 and 8: asked for usage and two choices, the server sends neither; the finish
    chunk comes last, and the SDK gets one choice and no usage."""
    fake.script = replace(CHAT, text=CLEAN)
    p = await proxy(**rails(stream_first))
    body = chat(n=2, temperature=1.0, stream_options={"include_usage": True})
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**body)
        chunks = [c async for c in stream]
    assert {c.choices[0].index for c in chunks} == {0}
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(CLEAN)
    assert b'"usage"' not in fake.sent[-1]


async def test_request_usage_finds_no_usage_chunk(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 7: with `upstream.request_usage` railproxy asks for a usage chunk on the
    client's behalf; this server ignores the ask, so there is nothing to hide: the bytes are
    the server's, finish chunk last."""
    fake.script = replace(CHAT, text=CLEAN)
    p = await proxy(upstream={"request_usage": True}, **rails(stream_first=False))
    _, raw = await p.post_stream(real.CHAT_PATH, chat())
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert raw == fake.sent[-1]
    assert finishes(raw) == ["length"]


async def test_unknown_model_through_the_sdk(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 9: the server answers for any model name, echoing it (vLLM would 404)."""
    fake.script = CHAT
    p = await proxy(**rails(stream_first=True))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        answer = await client.chat.completions.create(**chat(stream=False, model="nope"))
    assert answer.model == "nope"
    assert answer.choices[0].message.content == "".join(CHAT.text)
    assert answer.system_fingerprint is None
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 6


# -- README 16 and 17 ------------------------------------------------------------------------------


async def test_models_pass_through(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 16: `/v1/models` in the server's shape reaches the SDK (no `created`)."""
    fake.script = CHAT
    p = await proxy()
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        models = [m async for m in client.models.list()]
    assert [(m.id, m.owned_by) for m in models] == [("tiny", "me")]
    assert fake.sent[-1] == real.MODELS.body


@pytest.mark.parametrize("stream_first", [None, True, False])
async def test_client_disconnect_closes_upstream(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool | None
) -> None:
    """README 17: a client gone mid-stream makes railproxy close its upstream connection,
    which is how the server notices (after the token in progress) and frees its lock."""
    fake.script = replace(CHAT, text=[f" w{i}" for i in range(300)], tokens_per_s=200)
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    async with p.session.post(p.url(real.CHAT_PATH), json=chat()) as r:
        for _ in range(4):
            await r.content.readuntil(b"\n\n")
        r.close()
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    assert fake.requests[-1].deltas_sent < 300
