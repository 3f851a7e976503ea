"""The fake's vllm dialect against bytes a real vLLM 0.32.0 sent.

One test (or a few) per item of tests/conformance/README.md, "Where real vLLM 0.32.0 differs
from `tests/fakes` (vllm dialect)": each replays the request of a sample in `vllm_samples.py`
against the fake, scripted to generate the same words, and compares bytes (ids and `created`
blanked, as they are per request). Item 13 (vLLM's own abort metric) is not about the wire:
the fake has no `/metrics`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from fakes import Script, running
from fakes import vllm_samples as real
from fakes.dialects import VLLM_FINGERPRINT
from fakes.vllm_samples import Sample, normalized

CHAT = real.SCRIPT_CHAT
COMPLETION = real.SCRIPT_COMPLETION
STOP_TOKEN = real.SCRIPT_STOP_TOKEN
CHAT_WORDS = real.CHAT_WORDS


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def payloads(self) -> list[Any]:
        return [json.loads(e[6:]) for e in self.events() if e != b"data: [DONE]\n\n"]

    def events(self) -> list[bytes]:
        return [e + b"\n\n" for e in self.body.split(b"\n\n") if e]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def replay(session: aiohttp.ClientSession, script: Script, sample: Sample) -> Reply:
    """Send the sample's request to a fake running `script`."""
    async with running(script) as fake:
        url = fake.base_url + sample.path
        async with session.post(url, json=sample.request, headers=sample.headers) as r:
            headers = {k.lower(): v for k, v in r.headers.items()}
            return Reply(r.status, headers, await r.read())


def assert_same(reply: Reply, sample: Sample) -> None:
    assert reply.status == sample.status
    assert normalized(reply.body) == normalized(sample.body)


# -- 1. extra null fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [(CHAT, real.CHAT_STREAM), (COMPLETION, real.COMPLETIONS_STREAM)],
    ids=["chat", "completions"],
)
async def test_1_extra_null_fields(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 1: "Extra `null` fields. Role chunk: `...,"finish_reason":null}],
    "prompt_token_ids":null,"prompt_text":null}`. Chat content chunks: `{"index":0,"delta":
    {"content":" ruru"},"logprobs":null,"finish_reason":null,"token_ids":null}`. Completions
    chunks: `{"index":0,"text":" hogi","logprobs":null,"finish_reason":null,"stop_reason":null,
    "prompt_token_ids":null,"token_ids":null}`." """
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    if sample is real.CHAT_STREAM:
        assert reply.events()[0].endswith(
            b'"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        )
        assert (
            b'{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,'
            b'"token_ids":null}' in reply.body
        )
    else:
        assert (
            b'{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,'
            b'"prompt_token_ids":null,"token_ids":null}' in reply.body
        )


# -- 2. no separate finish chunk --------------------------------------------------------


async def test_2_finish_rides_on_the_last_content_chunk(session: aiohttp.ClientSession) -> None:
    """README 2: "No separate finish chunk. `finish_reason` rides on the last content chunk:
    `{"index":0,"delta":{"content":" dovi"},"logprobs":null,"finish_reason":"length",
    "stop_reason":null,"token_ids":null}` (the fake sends an extra `"delta":{"content":""}`
    chunk)." """
    reply = await replay(session, replace(CHAT, text=[" r", " dovi"]), real.CHAT_STREAM)
    last = reply.events()[-2]
    assert (
        b'"choices":[{"index":0,"delta":{"content":" dovi"},"logprobs":null,'
        b'"finish_reason":"length","stop_reason":null,"token_ids":null}]' in last
    )
    assert b'"delta":{"content":""}' not in reply.body
    assert [p["choices"][0]["finish_reason"] for p in reply.payloads()] == [None, None, "length"]


async def test_2_a_stop_token_comes_as_its_own_empty_chunk(
    session: aiohttp.ClientSession,
) -> None:
    """README 2, the other way to finish: a stop token (EOS, or `stop_token_ids`) is generated
    but decodes to no text, so real vLLM sends it as an empty delta carrying the finish, and
    counts it (captured with `stop_token_ids=[193]`)."""
    reply = await replay(session, STOP_TOKEN, real.CHAT_STOP_TOKEN_STREAM)
    assert_same(reply, real.CHAT_STOP_TOKEN_STREAM)
    eos = replace(STOP_TOKEN, stop_reason=None)  # EOS: the same chunk with stop_reason null
    reply = await replay(session, eos, real.CHAT_STOP_TOKEN_STREAM)
    assert (
        b'{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null,'
        in (reply.events()[-2])
    )


async def test_2_completions_end_the_same_way(session: aiohttp.ClientSession) -> None:
    """README 2 for `/v1/completions`: the finish on the last text chunk; a stop token as an
    empty text chunk."""
    reply = await replay(session, COMPLETION, real.COMPLETIONS_STREAM)
    assert json.loads(reply.events()[-2][6:])["choices"][0]["text"] == " kaka"
    stop = replace(COMPLETION, finish_reason="stop")
    reply = await replay(session, stop, real.COMPLETIONS_STREAM)
    choices = [p["choices"][0] for p in reply.payloads()]
    assert [(c["text"], c["finish_reason"]) for c in choices[-2:]] == [
        (" kaka", None),
        ("", "stop"),
    ]


# -- 3. system_fingerprint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (CHAT, real.CHAT_STREAM),
        (CHAT, real.CHAT_STREAM_USAGE),
        (COMPLETION, real.COMPLETIONS_STREAM),
        (COMPLETION, real.COMPLETIONS_STREAM_USAGE),
        (CHAT, real.CHAT_JSON),
    ],
    ids=["chat", "chat-usage", "completions", "completions-usage", "chat-json"],
)
async def test_3_system_fingerprint_placement(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 3: "`system_fingerprint` (`"vllm-0.32.0-35f02103"`, after `choices`) on the
    finishing chunk when usage is off, on the usage chunk (after `usage`) when
    `include_usage` is on; also in non-streaming bodies. The fake never sends it." """
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    assert reply.body.count(b'"system_fingerprint":"vllm-0.32.0-ef8aee28"') == 1
    if sample.request["stream"]:
        usage_on = "stream_options" in sample.request
        fingerprinted = reply.events()[-2]  # the usage chunk, or the finishing chunk
        assert fingerprinted.endswith(b',"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n')
        assert (b'"choices":[],"usage":' in fingerprinted) is usage_on


async def test_3_fingerprint_default_and_none(session: aiohttp.ClientSession) -> None:
    """README 3: the fake's default fingerprint is the README's; None sends none in streams
    and `null` in bodies (vLLM's `--fingerprint-mode none`)."""
    assert VLLM_FINGERPRINT == "vllm-0.32.0-35f02103"
    reply = await replay(session, Script(), real.CHAT_STREAM_USAGE)
    assert b',"system_fingerprint":"vllm-0.32.0-35f02103"}\n\ndata: [DONE]' in reply.body
    none = replace(CHAT, system_fingerprint=None)
    assert b"system_fingerprint" not in (await replay(session, none, real.CHAT_STREAM)).body
    body = (await replay(session, none, real.CHAT_JSON)).body
    assert b'"service_tier":null,"system_fingerprint":null,"usage":' in body


# -- 4. non-streaming bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (CHAT, real.CHAT_JSON),
        (COMPLETION, real.COMPLETIONS_JSON),
        (STOP_TOKEN, real.CHAT_STOP_TOKEN_JSON),
        (
            real.SCRIPT_STOP_STRING,
            real.CHAT_STOP_STRING_JSON,
        ),
    ],
    ids=["chat", "completions", "chat-stop-token", "chat-stop-string"],
)
async def test_4_non_streaming_bodies(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 4: "Non-streaming bodies carry many more fields, in this order: chat message
    `{"role","content","refusal","annotations","audio","function_call","reasoning"}`; choice
    `...,"finish_reason","stop_reason","token_ids","routed_experts"`; then
    `"service_tier":null,"system_fingerprint":…,"usage":{"prompt_tokens","total_tokens",
    "completion_tokens","prompt_tokens_details":null,"completion_tokens_details":null},
    "prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":
    null,"ec_transfer_params":null,"metrics":null`." """
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    body = json.loads(reply.body)
    usage = ["prompt_tokens", "total_tokens", "completion_tokens"]
    assert list(body["usage"]) == [*usage, "prompt_tokens_details", "completion_tokens_details"]
    if sample.path == real.CHAT_PATH:
        message = ["role", "content", "refusal", "annotations", "audio", "function_call"]
        assert list(body["choices"][0]["message"]) == [*message, "reasoning"]
        assert list(body)[-6:] == [
            "prompt_logprobs",
            "prompt_token_ids",
            "prompt_text",
            "kv_transfer_params",
            "ec_transfer_params",
            "metrics",
        ]


# -- 5. continuous_usage_stats ------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (CHAT, real.CHAT_STREAM_CONTINUOUS),
        (COMPLETION, real.COMPLETIONS_STREAM_CONTINUOUS),
        (STOP_TOKEN, real.CHAT_STOP_TOKEN_CONTINUOUS),
    ],
    ids=["chat", "completions", "chat-stop-token"],
)
async def test_5_continuous_usage_stats(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 5: "`continuous_usage_stats`: every chunk's usage has
    `"completion_tokens_details":null` (not the final usage chunk); the role chunk has
    `completion_tokens: 0`." (Chat only: completions chunks have no details field.)"""
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    *chunks, final = reply.payloads()
    chat = sample.path == real.CHAT_PATH
    assert all(("completion_tokens_details" in c["usage"]) is chat for c in chunks)
    assert "completion_tokens_details" not in final["usage"]
    if chat:
        assert chunks[0]["usage"]["completion_tokens"] == 0


# -- 6. ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample", "prefix"),
    [(CHAT, real.CHAT_STREAM, "chatcmpl"), (COMPLETION, real.COMPLETIONS_STREAM, "cmpl")],
    ids=["chat", "completions"],
)
async def test_6_ids_are_16_hex_digits(
    session: aiohttp.ClientSession, script: Script, sample: Sample, prefix: str
) -> None:
    """README 6: "Ids: `chatcmpl-`/`cmpl-` + 16 hex digits"."""
    ids = {p["id"] for p in (await replay(session, script, sample)).payloads()}
    real_ids = {json.loads(e[6:])["id"] for e in sample.events[:-1]}
    assert len(ids) == len(real_ids) == 1
    for found in (ids.pop(), real_ids.pop()):
        assert re.fullmatch(prefix + "-[0-9a-f]{16}", found), found


@pytest.mark.parametrize(
    ("script", "sample", "expected"),
    [
        (CHAT, real.CHAT_STREAM_REQUEST_ID, b'"id":"chatcmpl-abc-123"'),
        (COMPLETION, real.COMPLETIONS_STREAM_REQUEST_ID, b'"id":"cmpl-abc-123"'),
    ],
    ids=["chat", "completions"],
)
async def test_6_ids_use_the_request_id_header(
    session: aiohttp.ClientSession, script: Script, sample: Sample, expected: bytes
) -> None:
    """README 6: "unless the request has `X-Request-Id`, which vLLM uses:
    `chatcmpl-<X-Request-Id>`"."""
    reply = await replay(session, script, sample)
    created = re.compile(rb'"created":\d+')
    assert created.sub(b"", reply.body) == created.sub(b"", sample.body)  # ids as they are
    assert reply.body.count(expected) == len(sample.events) - 1


# -- 7. chunking ----------------------------------------------------------------------------


async def test_7_split_words_and_stop_string_holdback_are_scriptable(
    session: aiohttp.ClientSession,
) -> None:
    """README 7: "Chunking is not one token per event: the API server merges deltas when it
    lags the engine, and a `stop` string makes it hold back characters, splitting words:
    `" r"`, `"uru d"`, `"ovi "` (the last with `"finish_reason":"stop","stop_reason":"fami"`).
    " Scripted as those pieces with `stop_reason`; the captured stop-string stream (stop
    "horu") is reproduced byte for byte."""
    script = real.SCRIPT_STOP_STRING
    assert_same(
        await replay(session, script, real.CHAT_STOP_STRING_STREAM), real.CHAT_STOP_STRING_STREAM
    )
    readme = replace(CHAT, text=[" r", "uru d", "ovi "], finish_reason="stop", stop_reason="fami")
    reply = await replay(session, readme, real.CHAT_STREAM)
    assert [p["choices"][0]["delta"].get("content") for p in reply.payloads()] == [
        "",
        " r",
        "uru d",
        "ovi ",
    ]
    assert (
        b'{"content":"ovi "},"logprobs":null,"finish_reason":"stop","stop_reason":"fami",'
        in reply.body
    )
    merged = replace(CHAT, text=[" faho dodo", " dodo dodo"])  # merged deltas: two words each
    assert len((await replay(session, merged, real.CHAT_STREAM)).payloads()) == 3


# -- 8. n: 2 --------------------------------------------------------------------------------


def choice_order(reply: Reply) -> list[int]:
    return [p["choices"][0]["index"] for p in reply.payloads()]


async def test_8_n2_order_is_scriptable(session: aiohttp.ClientSession) -> None:
    """README 8: "`n: 2` is not strictly interleaved: role chunks 0, 1, then content 0, 0, 1,
    0, 1, 1; each choice finishes on its own last content chunk." The captured completions
    stream (0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1) is reproduced with `choice_order`; the captured chat
    one happened to be strictly interleaved, which is the default."""
    texts = {
        0: [" nemi", " pene", " gine", " kaka", " neto", " milo"],
        1: [" nemi", " ruka", " viho", " saru", " kane", " kasa"],
    }
    order = [0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    script = replace(COMPLETION, n=2, choice_text=texts, choice_order=order)
    assert_same(
        await replay(session, script, real.COMPLETIONS_N2_STREAM), real.COMPLETIONS_N2_STREAM
    )
    texts = {
        0: [" faho", " dodo", " dodo", " dodo", " faho", " horu"],
        1: [" faho", " dodo", " dodo", " dodo", " zuto", " ruka"],
    }
    script = replace(CHAT, n=2, choice_text=texts)
    assert_same(await replay(session, script, real.CHAT_N2_STREAM), real.CHAT_N2_STREAM)
    readme = replace(CHAT, n=2, text=["a", "b", "c"], choice_order=[0, 0, 1, 0, 1, 1])
    reply = await replay(session, readme, real.CHAT_N2_STREAM)
    assert choice_order(reply) == [0, 1, 0, 0, 1, 0, 1, 1]
    finishes = [
        (p["choices"][0]["index"], p["choices"][0]["finish_reason"]) for p in reply.payloads()
    ]
    assert [f for f in finishes if f[1]] == [(0, "length"), (1, "length")]


async def test_8_n2_at_temperature_0_is_refused(session: aiohttp.ClientSession) -> None:
    """README 8: "At temperature 0 it is refused: 400 `{"error":{"message":"n must be 1 when
    using greedy sampling, got 2.","type":"BadRequestError","param":null,"code":400}}`." """
    reply = await replay(session, CHAT, real.N2_GREEDY_400)
    assert reply.body == real.N2_GREEDY_400.body
    assert reply.status == 400
    seeded = real.N2_GREEDY_400.request | {"temperature": 1.0}
    assert (await replay(session, CHAT, replace(real.N2_GREEDY_400, request=seeded))).status == 200


# -- 9. errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (replace(CHAT, reject_unknown_models=True), real.UNKNOWN_MODEL_404),
        (CHAT, real.MAX_TOKENS_400),
        (CHAT, real.NO_MESSAGES_400),
        (CHAT, real.STREAM_OPTIONS_NOT_OBJECT_400),
    ],
    ids=["unknown-model", "max-tokens", "no-messages", "stream-options"],
)
async def test_9_errors_name_the_field(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 9: "Errors name the field: 404 `{"error":{"message":"The model `nope` does not
    exist. Valid aliases: tiny.","type":"NotFoundError","param":"model","code":404}}`; 400
    `{..."type":"BadRequestError","param":"max_tokens","code":400}}`; a request-validation
    error has `"type":"Bad Request"` (with a space) and `"param":"body.messages"`. Errors in
    streaming requests come as these JSON responses before any event." """
    assert sample.request["stream"] is True
    reply = await replay(session, script, sample)
    assert (reply.status, reply.body) == (sample.status, sample.body)
    assert reply.headers["content-type"] == "application/json"


async def test_9_unknown_models_are_accepted_unless_asked(session: aiohttp.ClientSession) -> None:
    """README 9's 404 is an option (`reject_unknown_models`): by default the fake serves any
    model name, echoing it, as tests name models freely."""
    reply = await replay(session, CHAT, real.UNKNOWN_MODEL_404)
    assert reply.status == 200
    assert all(p["model"] == "nope" for p in reply.payloads())


# -- 10. headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (real.CHAT_STREAM_REQUEST_ID, real.SSE_HEADERS),
        (real.CHAT_JSON, real.JSON_HEADERS),
        (real.MAX_TOKENS_400, real.JSON_HEADERS),
    ],
    ids=["sse", "json", "error"],
)
async def test_10_headers(
    session: aiohttp.ClientSession, sample: Sample, expected: dict[str, str]
) -> None:
    """README 10: "Headers: `server: uvicorn`, `vary: Origin`, no `cache-control`;
    `X-Request-Id` is not echoed (only with `--enable-request-id-headers`)." """
    reply = await replay(session, CHAT, sample)
    assert {k: reply.headers[k] for k in expected} == expected
    assert "cache-control" not in reply.headers
    assert "x-request-id" not in reply.headers


# -- 11. chat logprobs ----------------------------------------------------------------------


async def test_11_chat_top_logprobs_carry_bytes(session: aiohttp.ClientSession) -> None:
    """README 11: "Chat logprobs: `top_logprobs` entries carry `bytes` too." The captured
    stream (`top_logprobs: 2`) has the same shape: the sampled token first among its
    alternatives, each with `token`, `logprob`, `bytes`."""
    script = replace(CHAT, text=CHAT_WORDS[:2], logprobs=True)
    reply = await replay(session, script, real.CHAT_LOGPROBS_STREAM)
    real_chunks = [json.loads(e[6:]) for e in real.CHAT_LOGPROBS_STREAM.events[:-1]]
    for fake_chunk, real_chunk in zip(reply.payloads(), real_chunks, strict=True):
        fake_lp, real_lp = (c["choices"][0]["logprobs"] for c in (fake_chunk, real_chunk))
        assert (fake_lp is None) is (real_lp is None)
        if fake_lp is None:
            continue
        (fake_entry,), (real_entry,) = fake_lp["content"], real_lp["content"]
        assert list(fake_entry) == list(real_entry) == ["token", "logprob", "bytes", "top_logprobs"]
        for entry in (fake_entry, real_entry):
            tops = entry["top_logprobs"]
            assert len(tops) == 2
            assert tops[0]["token"] == entry["token"]
            assert all(list(t) == ["token", "logprob", "bytes"] for t in tops)
            assert all(t["bytes"] == list(t["token"].encode()) for t in tops)


# -- 12. keep-alives ------------------------------------------------------------------------


async def test_12_keepalive_comments(session: aiohttp.ClientSession) -> None:
    """README 12: "Keep-alives: off by default; `--sse-keep-alive-interval` sends
    `: keep-alive\\n\\n` (the fake's are TGI's `:\\n\\n`)." """
    assert b": keep-alive" not in (await replay(session, CHAT, real.CHAT_STREAM)).body
    reply = await replay(session, replace(CHAT, keepalive_comments=True), real.CHAT_STREAM)
    assert reply.events().count(b": keep-alive\n\n") == 2
    assert b":\n\n" not in reply.body
    tgi = await replay(session, Script(dialect="tgi", keepalive_comments=True), real.CHAT_STREAM)
    assert tgi.events().count(b":\n\n") == 2
