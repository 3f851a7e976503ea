"""The fake's `llama-cpp-python` dialect against bytes a real llama-cpp-python 0.3.36 sent.

One test (or a few) per item of tests/conformance/README.md, "Where llama-cpp-python's server
differs from `tests/fakes` (llamacpp dialect)": each replays the request of a sample in
`llamacpp_python_samples.py` against the fake, scripted to generate the same words, and
compares bytes with only the per-request `id`, `created` and ping timestamps blanked, plus the
response header names. Logprob values and token ids come from the real model, so those are
compared by shape. The C++ `llamacpp` dialect is left as it was (checked at the end).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from fakes import Fault, FaultKind, Script, running
from fakes import llamacpp_python_samples as real
from fakes.llamacpp_python_samples import Sample, header_names, normalized

CHAT = real.SCRIPT_CHAT
COMPLETION = real.SCRIPT_COMPLETION
UUID4 = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # as received
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def events(self) -> list[bytes]:
        return [e + b"\n\n" for e in self.body.split(b"\n\n") if e]

    def payloads(self) -> list[Any]:
        return [json.loads(e[6:]) for e in self.events() if e.startswith(b"data: {")]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def replay(session: aiohttp.ClientSession, script: Script, sample: Sample) -> Reply:
    """Send the sample's request to a fake running `script`."""
    async with running(script) as fake:
        return await send(session, fake.base_url, sample)


async def send(session: aiohttp.ClientSession, base: str, sample: Sample) -> Reply:
    kw: dict[str, Any] = {} if sample.request is None else {"json": sample.request}
    url = base + sample.path
    async with session.request(sample.method, url, headers=sample.headers, **kw) as r:
        headers = [(k.decode(), v.decode()) for k, v in r.raw_headers]
        return Reply(r.status, headers, await r.read())


def assert_same(reply: Reply, sample: Sample) -> None:
    """Status, bytes (ids, created and pings blanked) and header names as the real server's."""
    assert reply.status == sample.status
    assert normalized(reply.body) == normalized(sample.body)
    assert header_names(reply.headers) == header_names(sample.response_headers)


def shape(value: Any) -> Any:
    """The JSON structure with key order kept and numbers and strings reduced to types."""
    if isinstance(value, dict):  # completions' top_logprobs are keyed by token (" rupe")
        return [("<token>" if k.startswith(" ") else k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return type(value).__name__


def sampled(payload: Any) -> list[Any]:
    """The sampled tokens a payload's logprobs name, each as token and first alternative, and
    the completions' text offsets: what the fake must get right, unlike the values."""
    out: list[Any] = []
    for choice in payload["choices"]:
        lp = choice["logprobs"] or {}
        for entry in lp.get("content") or []:
            out.append((entry["token"], entry["top_logprobs"][0]["token"]))
        if "tokens" in lp:
            firsts = [next(iter(top)) for top in lp["top_logprobs"]]
            out += list(zip(lp["tokens"], firsts, lp["text_offset"], strict=True))
    return out


def lines(sample: Sample) -> list[Any]:
    return [json.loads(e[6:]) for e in sample.events if e.startswith(b"data: {")]


STREAMS: dict[str, tuple[Script, Sample]] = {
    "chat": (CHAT, real.CHAT_STREAM),
    "chat-stop": (real.SCRIPT_STOP, real.CHAT_STOP_STREAM),
    "completions": (COMPLETION, real.COMPLETIONS_STREAM),
    "unicode-model": (CHAT, real.UNICODE_MODEL_STREAM),
}
BODIES: dict[str, tuple[Script, Sample]] = {
    "chat": (CHAT, real.CHAT_JSON),
    "chat-stop": (real.SCRIPT_STOP, real.CHAT_STOP_JSON),
    "completions": (COMPLETION, real.COMPLETIONS_JSON),
    "unicode-model": (CHAT, real.UNICODE_MODEL_JSON),
}


# -- 1. Python's json.dumps in streams ------------------------------------------------------


@pytest.mark.parametrize("case", sorted(STREAMS))
async def test_1_streams_are_python_json_dumps(session: aiohttp.ClientSession, case: str) -> None:
    """README 1: "JSON in streams is Python's `json.dumps`: a space after every `:` and `,`,
    keys in the order `id, model, created, object, choices` (chat) or `id, object, created,
    model, choices` (completions), each event ends `\\n\\n`" (and non-ASCII is escaped)."""
    script, sample = STREAMS[case]
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    chat = sample.path == real.CHAT_PATH
    keys = ["id", "model", "created", "object"] if chat else ["id", "object", "created", "model"]
    assert all(list(p) == [*keys, "choices"] for p in reply.payloads())
    for event in reply.events()[:-1]:
        assert event.endswith(b"}\n\n")
        assert event == b"data: " + json.dumps(json.loads(event[6:])).encode() + b"\n\n"
    if case == "unicode-model":
        assert b'"model": "t\\u00efny"' in reply.body


# -- 2. no system_fingerprint ---------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(STREAMS) + [f"{c}-json" for c in sorted(BODIES)])
async def test_2_no_system_fingerprint(session: aiohttp.ClientSession, case: str) -> None:
    """README 2: "No `system_fingerprint` anywhere, streaming or not." """
    script, sample = BODIES[case[:-5]] if case.endswith("-json") else STREAMS[case]
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    assert b"fingerprint" not in reply.body
    assert b"fingerprint" not in sample.body


# -- 3. logprobs null on every chat choice --------------------------------------------------


async def test_3_every_chat_choice_has_logprobs_null(session: aiohttp.ClientSession) -> None:
    """README 3: "Every chat choice carries `"logprobs": null`, in the order `index, delta,
    logprobs, finish_reason` ...; the finish chunk is `{"index": 0, "delta": {}, "logprobs":
    null, "finish_reason": "length"}`." A `stop` string ends the same way, with "stop"."""
    reply = await replay(session, CHAT, real.CHAT_STREAM)
    assert_same(reply, real.CHAT_STREAM)
    choices = [p["choices"][0] for p in reply.payloads()]
    assert all(list(c) == ["index", "delta", "logprobs", "finish_reason"] for c in choices)
    assert all(c["logprobs"] is None for c in choices)
    assert choices[0]["delta"] == {"role": "assistant"}
    assert (
        b'"choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}'
        in reply.events()[-2]
    )
    stop = await replay(session, real.SCRIPT_STOP, real.CHAT_STOP_STREAM)
    assert_same(stop, real.CHAT_STOP_STREAM)
    assert [c["choices"][0]["finish_reason"] for c in stop.payloads()][-1] == "stop"


# -- 4. uuid4 ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample", "prefix"),
    [
        (CHAT, real.CHAT_STREAM, "chatcmpl"),
        (COMPLETION, real.COMPLETIONS_STREAM, "cmpl"),
        (CHAT, real.CHAT_JSON, "chatcmpl"),
        (COMPLETION, real.COMPLETIONS_JSON, "cmpl"),
    ],
    ids=["chat", "completions", "chat-json", "completions-json"],
)
async def test_4_ids_are_uuid4_with_dashes(
    session: aiohttp.ClientSession, script: Script, sample: Sample, prefix: str
) -> None:
    """README 4: "Ids are `chatcmpl-` / `cmpl-` + a uuid4 with dashes", new per request."""
    first, second = [await replay(session, script, sample) for _ in range(2)]
    real_ids = set(re.findall(rb'"id": ?"([^"]+)"', sample.body))
    fake_ids = [set(re.findall(rb'"id": ?"([^"]+)"', r.body)) for r in (first, second)]
    assert len(real_ids) == len(fake_ids[0]) == len(fake_ids[1]) == 1
    assert fake_ids[0] != fake_ids[1]
    for found in (*real_ids, *fake_ids[0]):
        assert re.fullmatch(f"{prefix}-{UUID4}", found.decode()), found


async def test_4_request_id_is_not_the_response_id(session: aiohttp.ClientSession) -> None:
    """README 4 and 12: a UUID `X-Request-Id` is echoed in a header but "not used in the
    response `id`"."""
    reply = await replay(session, CHAT, real.REQUEST_ID_DASHED_STREAM)
    assert_same(reply, real.REQUEST_ID_DASHED_STREAM)
    rid = real.DASHED_UUID["X-Request-Id"]
    assert reply.header("x-request-id") == rid
    assert rid.encode() not in reply.body
    assert rid.encode() not in real.REQUEST_ID_DASHED_STREAM.body


# -- 5. completions chunks ------------------------------------------------------------------


async def test_5_completions_chunks(session: aiohttp.ClientSession) -> None:
    """README 5: "Completions chunks have the fake's choice fields in the fake's order
    (`{"text": " rupe", "index": 0, "logprobs": null, "finish_reason": null}`, then `{"text":
    "", "index": 0, "logprobs": null, "finish_reason": "length"}`), in the envelope of item 1."""
    reply = await replay(session, COMPLETION, real.COMPLETIONS_STREAM)
    assert_same(reply, real.COMPLETIONS_STREAM)
    assert b'{"text": " rupe", "index": 0, "logprobs": null, "finish_reason": null}' in reply.body
    assert reply.events()[-2].endswith(
        b'[{"text": "", "index": 0, "logprobs": null, "finish_reason": "length"}]}\n\n'
    )
    assert reply.events()[-1] == b"data: [DONE]\n\n"


# -- 6. non-streaming bodies ----------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BODIES))
async def test_6_non_streaming_bodies(session: aiohttp.ClientSession, case: str) -> None:
    """README 6: "Non-streaming bodies are compact (FastAPI), keys `id, object, created,
    model, choices, usage`; the message has `content` before `role`; usage is `prompt,
    completion, total`" (and non-ASCII is raw UTF-8 there, unlike in streams)."""
    script, sample = BODIES[case]
    reply = await replay(session, script, sample)
    assert_same(reply, sample)
    body = json.loads(reply.body)
    assert reply.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert list(body["usage"]) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    choice = body["choices"][0]
    if sample.path == real.CHAT_PATH:
        assert list(choice) == ["index", "message", "logprobs", "finish_reason"]
        assert list(choice["message"]) == ["content", "role"]
    else:
        assert list(choice) == ["text", "index", "logprobs", "finish_reason"]
    if case == "unicode-model":
        assert '"model":"tïny"'.encode() in reply.body


# -- 7. stream_options ignored --------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [(CHAT, real.CHAT_STREAM_USAGE), (COMPLETION, real.COMPLETIONS_STREAM_USAGE)],
    ids=["chat", "completions"],
)
async def test_7_stream_options_are_ignored(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 7: "`stream_options` is ignored: no usage chunk with `include_usage: true`"
    (even when the Script asks for usage)."""
    assert sample.request["stream_options"] == {"include_usage": True}
    for s in (script, replace(script, include_usage=True)):
        reply = await replay(session, s, sample)
        assert_same(reply, sample)
        assert b'"usage"' not in reply.body


# -- 8. n ignored ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (real.SCRIPT_N2, real.CHAT_N2_STREAM),
        (CHAT, real.CHAT_N2_JSON),
        (real.SCRIPT_COMPLETION_N2, real.COMPLETIONS_N2_STREAM),
    ],
    ids=["chat-stream-seeded", "chat-json-greedy", "completions-stream-seeded"],
)
async def test_8_n_is_ignored(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 8: "`n` is ignored: one choice (`index` 0), streaming or not, at any
    temperature; no error" (even when the Script has `n: 2`)."""
    assert sample.request["n"] == 2
    for s in (script, replace(script, n=2)):
        reply = await replay(session, s, sample)
        assert_same(reply, sample)
        assert b'"index": 1' not in reply.body
        assert b'"index":1' not in reply.body


# -- 9. unknown models ----------------------------------------------------------------------


@pytest.mark.parametrize("sample", [real.UNKNOWN_MODEL_STREAM, real.UNKNOWN_MODEL_JSON])
async def test_9_unknown_models_are_served(session: aiohttp.ClientSession, sample: Sample) -> None:
    """README 9: "Unknown model names are served by the default model, `200`, with the name
    echoed: `"model":"nope"`." (`reject_unknown_models` is vLLM's option: not here.)"""
    reply = await replay(session, replace(CHAT, reject_unknown_models=True), sample)
    assert_same(reply, sample)
    assert reply.body.count(b'"model": "nope"') + reply.body.count(b'"model":"nope"') >= 1
    assert b'"model": "tiny"' not in reply.body


# -- 10. errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (real.SCRIPT_LONG_CHAT, real.CONTEXT_CHAT_400),
        (real.SCRIPT_LONG_CHAT, real.CONTEXT_CHAT_NO_MAX_TOKENS_400),
        (real.SCRIPT_LONG_COMPLETION, real.CONTEXT_COMPLETIONS_400),
    ],
    ids=["chat", "chat-no-max-tokens", "completions"],
)
async def test_10_context_length_exceeded(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 10: "a prompt over the context is `400` `{"error":{"message":"This model's
    maximum context length is 4096 tokens. However, you requested 5006 tokens (5003 in the
    messages, 3 in the completion). ...","type":"invalid_request_error","param":"messages",
    "code":"context_length_exceeded"}}`" (completions word it differently, with the same
    `param`; a chat request without `max_tokens` says "None in the completion")."""
    reply = await replay(session, script, sample)
    assert (reply.status, reply.body) == (400, sample.body)
    assert header_names(reply.headers) == header_names(sample.response_headers)
    error = json.loads(reply.body)["error"]
    assert (error["param"], error["code"]) == ("messages", "context_length_exceeded")


async def test_10_prompt_length_comes_from_the_request_words(
    session: aiohttp.ClientSession,
) -> None:
    """README 10 without `prompt_tokens` scripted: the fake counts the prompt's words against
    `max_model_len` (the server's `n_ctx`); one word under it is generated, as the server
    does (it refuses `len(prompt) >= n_ctx`); `max_tokens` over the context is not refused."""
    script = replace(CHAT, prompt_tokens=None, max_model_len=4)
    at_limit = replace(real.CONTEXT_CHAT_400, request=real.chat(False, messages=words(4)))
    reply = await replay(session, script, at_limit)
    assert reply.status == 400
    assert b"(4 in the messages, 4 in the completion)" in reply.body
    under = real.chat(False, messages=words(3), max_tokens=999999)
    reply = await replay(session, script, replace(real.CHAT_JSON, request=under))
    assert reply.status == 200
    assert json.loads(reply.body)["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }


def words(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": " ".join(["kalo"] * n)}]


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (CHAT, real.SCHEMA_MESSAGES_500),
        (CHAT, real.SCHEMA_STREAM_500),
        (CHAT, real.SCHEMA_MAX_TOKENS_500),
        (CHAT, real.SCHEMA_TWO_ERRORS_500),
        (COMPLETION, real.SCHEMA_COMPLETIONS_500),
    ],
    ids=["messages", "stream", "max-tokens", "two-errors", "completions"],
)
async def test_10_schema_errors_are_500(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 10: "A request the schema rejects is a `500` whose message includes a server
    file path: `{"error":{"message":"1 validation error:\\n  {'type': 'list_type', 'loc':
    ('body', 'messages'), 'msg': 'Input should be a valid list', 'input': 'x'}\\n\\n  File
    \\"…/llama_cpp/server/app.py\\", line 376, in create_chat_completion\\n    POST
    /v1/chat/completions","type":"internal_server_error","param":null,"code":null}}`." """
    reply = await replay(session, script, sample)
    assert (reply.status, reply.body) == (500, sample.body)
    assert header_names(reply.headers) == header_names(sample.response_headers)
    assert reply.header("openai-processing-ms") is None


async def test_10_a_body_that_is_not_json(session: aiohttp.ClientSession) -> None:
    """README 10, one more error seen on the wire: a body that is not JSON makes the error
    handler fail too, and uvicorn answers its own plain-text 500 (no `x-request-id`)."""
    async with running(CHAT) as fake:
        url = fake.base_url + real.CHAT_PATH
        async with session.post(url, data=real.NON_JSON_BODY) as r:
            headers = [(k.decode(), v.decode()) for k, v in r.raw_headers]
            reply = Reply(r.status, headers, await r.read())
    assert_same(reply, real.NON_JSON_500)
    assert reply.header("content-type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "sample", [real.HEALTH_404, real.TOKENIZE_404, real.METRICS_404], ids=lambda s: s.path
)
async def test_10_unknown_paths_are_fastapis_404(
    session: aiohttp.ClientSession, sample: Sample
) -> None:
    """README 10 and 16: "Unknown paths: `404 {"detail":"Not Found"}`" (the fake's own
    `/health` and `/tokenize` included: llama-cpp-python has neither)."""
    reply = await replay(session, CHAT, sample)
    assert_same(reply, sample)
    assert reply.body == b'{"detail":"Not Found"}'


# -- 11. a stream failing in the model: 200, empty body -------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (real.SCRIPT_LONG_CHAT, real.CONTEXT_CHAT_STREAM_EMPTY),
        (real.SCRIPT_LONG_COMPLETION, real.CONTEXT_COMPLETIONS_STREAM_EMPTY),
    ],
    ids=["chat", "completions"],
)
async def test_11_stream_failing_in_the_model_is_200_and_empty(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 11: "A streamed request that fails in the model gets `200` with the SSE headers
    and an empty body (chunked, properly ended: no event, no `[DONE]`)." Scripted as the
    real failure: a prompt of `max_model_len` tokens or more (`prompt_tokens`)."""
    assert sample.body == b""
    async with running(script) as fake:
        reply = await send(session, fake.base_url, sample)
        assert fake.requests[-1].deltas_sent == 0
        assert fake.disconnects == []
    assert_same(reply, sample)
    assert reply.header("transfer-encoding") == "chunked"
    assert reply.header("content-type") == "text/event-stream; charset=utf-8"


# -- 12. X-Request-Id must be a UUID --------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        real.REQUEST_ID_NOT_UUID_STREAM_400,
        real.REQUEST_ID_NOT_UUID_JSON_400,
        real.REQUEST_ID_NOT_UUID_MODELS_400,
    ],
    ids=["stream", "json", "models"],
)
async def test_12_a_request_id_that_is_no_uuid_is_400_empty(
    session: aiohttp.ClientSession, sample: Sample
) -> None:
    """README 12: "`X-Request-Id` must be a UUID (starlette-context validates it): any other
    value gets `400` with `content-length: 0` and no body, streaming or not, before
    routing." """
    async with running(CHAT) as fake:
        reply = await send(session, fake.base_url, sample)
        assert fake.deltas_sent == 0
    assert_same(reply, sample)
    assert (reply.body, reply.header("content-length")) == (b"", "0")
    assert reply.header("x-request-id") is None
    assert reply.header("content-type") is None


@pytest.mark.parametrize(
    ("sample", "echoed"),
    [
        (real.REQUEST_ID_DASHED_STREAM, real.DASHED_UUID["X-Request-Id"]),
        (real.REQUEST_ID_HEX_JSON, real.HEX_UUID["X-Request-Id"]),
        (real.CHAT_JSON, None),
    ],
    ids=["dashed", "hex", "absent"],
)
async def test_12_a_uuid_is_echoed_else_one_is_made(
    session: aiohttp.ClientSession, sample: Sample, echoed: str | None
) -> None:
    """README 12: "A UUID (with or without dashes) is echoed in `x-request-id`; without one
    the server makes one (32 hex digits)." """
    reply = await replay(session, CHAT, sample)
    assert_same(reply, sample)
    for rid in (reply.header("x-request-id"), sample.header("x-request-id")):
        assert rid is not None
        if echoed is None:
            assert re.fullmatch("[0-9a-f]{32}", rid)
        else:
            assert rid == echoed


async def test_12_uuid_rules_are_pythons(session: aiohttp.ClientSession) -> None:
    """README 12: what passes is what `uuid.UUID(value, version=4)` parses: braces and
    upper case too; a uuid1 is accepted (the version is not checked); 31 digits are not."""
    async with running(CHAT) as fake:
        url = fake.base_url + "/v1/models"
        for rid, status in [
            ("{0B3A4A9E-8B8C-4C1F-9A51-6F3B2F1A7C2D}", 200),
            ("6fa459ea-ee8a-11ca-a22b-0050568c0001", 200),
            ("0b3a4a9e8b8c4c1f9a516f3b2f1a7c2", 400),
            ("railproxy-7", 400),
        ]:
            async with session.get(url, headers={"X-Request-Id": rid}) as r:
                assert (rid, r.status) == (rid, status)
                assert r.headers.get("x-request-id") == (rid if status == 200 else None)


# -- 13. headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (CHAT, real.CHAT_STREAM),
        (CHAT, real.CHAT_JSON),
        (real.SCRIPT_LONG_CHAT, real.CONTEXT_CHAT_400),
        (CHAT, real.MODELS),
    ],
    ids=["sse", "json", "error", "models"],
)
async def test_13_headers(session: aiohttp.ClientSession, script: Script, sample: Sample) -> None:
    """README 13: "streams `server: uvicorn`, `cache-control: no-store`, `connection:
    keep-alive`, `x-accel-buffering: no`, `content-type: text/event-stream; charset=utf-8`,
    `openai-processing-ms: 8`, `x-request-id: …`, `vary: Origin`, `Transfer-Encoding:
    chunked`; JSON `content-type: application/json`, `openai-processing-ms`, `x-request-id`,
    `vary: Origin`" (and no `openai-processing-ms` on errors)."""
    reply = await replay(session, script, sample)
    assert header_names(reply.headers) == header_names(sample.response_headers)
    per_request = {"openai-processing-ms", "x-request-id", "content-length"}
    fixed = {k.lower(): v for k, v in sample.response_headers if k.lower() not in per_request}
    assert {k.lower(): v for k, v in reply.headers if k.lower() in fixed} == fixed
    ms = reply.header("openai-processing-ms")
    assert (ms is not None and ms.isdigit()) is (sample.status == 200)


# -- 14. keep-alive pings -------------------------------------------------------------------


async def test_14_ping_comments(session: aiohttp.ClientSession) -> None:
    """README 14: "sse-starlette's `: ping - 2026-11-22 05:21:07.269094+00:00\\n\\n` 15 s
    into a stream" (the fake's `keepalive_comments` writes one before every other delta,
    stamped with the current UTC time). The captured comment and its neighbours recur in
    the fake's stream once ids, `created` and the time are blanked."""
    script = replace(CHAT, text=[" zufa", " kape", " hope"], keepalive_comments=True)
    before = datetime.datetime.now(datetime.UTC)
    reply = await replay(session, script, real.CHAT_STREAM)
    pings = real.PING.findall(reply.body)
    assert len(pings) == 2
    assert normalized(real.PING_EXCERPT) in normalized(reply.body)
    assert header_names(reply.headers) == header_names(real.PING_HEADERS)
    stamp = datetime.datetime.fromisoformat(pings[0][len(b": ping - ") : -2].decode())
    assert abs((stamp - before).total_seconds()) < 5
    assert b":\n\n" not in reply.body
    assert real.PING_EVENTS_BEFORE > 500  # the real one came after 15 s of tokens, not 2


# -- 15. logprobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sample"),
    [
        (replace(CHAT, text=real.CHAT_WORDS[:2]), real.CHAT_LOGPROBS_STREAM),
        (replace(CHAT, text=real.CHAT_WORDS[:2]), real.CHAT_LOGPROBS_JSON),
        (replace(CHAT, text=real.CHAT_WORDS[:2]), real.CHAT_LOGPROBS_TOP0_STREAM),
        (replace(COMPLETION, text=real.COMPLETION_WORDS[:2]), real.COMPLETIONS_LOGPROBS_STREAM),
        (replace(COMPLETION, text=real.COMPLETION_WORDS[:2]), real.COMPLETIONS_LOGPROBS_JSON),
    ],
    ids=["chat", "chat-json", "chat-top0", "completions", "completions-json"],
)
async def test_15_logprobs_shapes(
    session: aiohttp.ClientSession, script: Script, sample: Sample
) -> None:
    """README 15: "chat `"logprobs": {"content": [{"token": " migi", "bytes": null,
    "logprob": …, "top_logprobs": [{"token": " migi", "logprob": …, "bytes": null}, …]}],
    "refusal": null}` (`bytes` is `null`, `top_logprobs` entries put `bytes` last, a `refusal`
    key); completions `"logprobs": {"tokens": [" sazu"], "text_offset": [4],
    "token_logprobs": […], "top_logprobs": [{" sazu": …, " rufa": …}]}`." Values come from
    the real model, so the structure is compared: key order, nulls, counts, the tokens."""
    reply = await replay(session, script, sample)
    assert reply.status == 200
    assert header_names(reply.headers) == header_names(sample.response_headers)
    ours = reply.payloads() if sample.request["stream"] else [json.loads(reply.body)]
    theirs = lines(sample) if sample.request["stream"] else [json.loads(sample.body)]
    assert [shape(p) for p in ours] == [shape(p) for p in theirs]
    assert [sampled(p) for p in ours] == [sampled(p) for p in theirs]
    if sample.path == real.CHAT_PATH:
        assert reply.body.count(b"null") == sample.body.count(b"null")  # bytes, refusal


async def test_15_chat_logprobs_need_top_logprobs(session: aiohttp.ClientSession) -> None:
    """README 15: the server passes `top_logprobs if logprobs` to the model, so
    `logprobs: true` alone streams `"logprobs": null` (the whole stream is the real one)."""
    sample = real.CHAT_LOGPROBS_NO_TOP_STREAM
    reply = await replay(session, replace(CHAT, text=real.CHAT_WORDS[:2]), sample)
    assert_same(reply, sample)
    assert b'"logprobs": {' not in reply.body


# -- 16. other routes -----------------------------------------------------------------------


@pytest.mark.parametrize("sample", [real.MODELS, real.MODELS_POST_405], ids=["get", "post"])
async def test_16_models(session: aiohttp.ClientSession, sample: Sample) -> None:
    """README 16: "`/v1/models` is `{"object":"list","data":[{"id":"tiny","object":"model",
    "owned_by":"me","permissions":[]}]}`" (and FastAPI's 405 for another method)."""
    reply = await replay(session, CHAT, sample)
    assert_same(reply, sample)
    assert reply.body == sample.body
    if sample.status == 405:
        assert reply.header("allow") == "GET"


async def test_16_extras_tokenize(session: aiohttp.ClientSession) -> None:
    """README 16: "tokenizing is `POST /extras/tokenize` `{"input":"kalo mine"}` →
    `{"tokens":[1,312,342]}` (BOS included)" (the fake's ids are its own: 100 + position);
    `/extras/tokenize/count` counts them; other dialects have no such route."""
    reply = await replay(session, CHAT, real.EXTRAS_TOKENIZE)
    assert header_names(reply.headers) == header_names(real.EXTRAS_TOKENIZE.response_headers)
    ours, theirs = json.loads(reply.body), json.loads(real.EXTRAS_TOKENIZE.body)
    assert shape(ours) == shape(theirs)
    assert ours["tokens"][0] == theirs["tokens"][0] == 1
    assert len(ours["tokens"]) == len(theirs["tokens"]) == 3
    count = replace(real.EXTRAS_TOKENIZE, path="/extras/tokenize/count")
    assert (await replay(session, CHAT, count)).body == b'{"count":3}'
    assert (await replay(session, Script(), real.EXTRAS_TOKENIZE)).status == 404


# -- 17. client disconnects -----------------------------------------------------------------


async def test_17_client_disconnect_stops_the_stream(session: aiohttp.ClientSession) -> None:
    """README 17: "the server notices after the token in progress ... and frees the model's
    lock": the fake records the disconnect and sends no more deltas."""
    script = replace(CHAT, text=[f" w{i}" for i in range(200)], tokens_per_s=100)
    async with running(script) as fake:
        async with session.post(fake.base_url + real.CHAT_PATH, json=real.chat()) as r:
            for _ in range(3):
                await r.content.readuntil(b"\n\n")
            r.close()
        async with asyncio.timeout(2):
            await fake.wait_disconnect()
        assert fake.requests[-1].disconnected_at is not None
        assert fake.requests[-1].deltas_sent < 20


# -- options, and the dialects left alone ---------------------------------------------------


async def test_faults_speak_the_dialect(session: aiohttp.ClientSession) -> None:
    """Faults keep working: an HTTP_STATUS fault answers in the server's error shape; the
    IN_BAND_ERROR fault (which the real server never sends: a failing stream just ends)
    writes that shape as `json.dumps` does."""
    refused = replace(CHAT, fault=Fault(FaultKind.HTTP_STATUS, status=503, message="busy"))
    reply = await replay(session, refused, real.CHAT_STREAM)
    assert reply.status == 503
    assert reply.body == (
        b'{"error":{"message":"busy","type":"internal_server_error","param":null,"code":null}}'
    )
    in_band = replace(CHAT, fault=Fault(FaultKind.IN_BAND_ERROR, after=2, message="boom"))
    reply = await replay(session, in_band, real.CHAT_STREAM)
    assert reply.events()[-2] == (
        b'data: {"error": {"message": "boom", "type": "internal_server_error", "param": null, '
        b'"code": null}}\n\n'
    )


@pytest.mark.parametrize("dialect", ["llamacpp", "vllm", "tgi"])
async def test_other_dialects_unchanged(session: aiohttp.ClientSession, dialect: str) -> None:
    """The C++ `llamacpp` dialect (and the others) keep their ways: compact JSON, any
    `X-Request-Id`, their own `/health`; no llama-cpp-python headers."""
    script = Script(dialect=dialect)  # type: ignore[arg-type]
    async with running(script) as fake:
        headers = {"X-Request-Id": "not-a-uuid"}
        url = fake.base_url + real.CHAT_PATH
        async with session.post(url, json=real.chat(), headers=headers) as r:
            body = await r.read()
            assert r.status == 200
            assert "x-request-id" not in r.headers
        async with session.get(fake.base_url + "/health") as r:
            assert r.status == 200
    assert b'": ' not in body
    if dialect == "llamacpp":
        assert b'"system_fingerprint":"b6881-8b11deea4"' in body
