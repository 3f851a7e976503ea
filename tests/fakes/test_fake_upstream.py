"""Tests of the fake upstream itself, driven by a raw aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes import Fault, FaultKind, Script, running
from fakes.upstream import Dialect, FakeUpstream, embed

CHAT = {
    "model": "m",
    "messages": [{"role": "user", "content": "say hello"}],
    "stream": True,
}
WITH_USAGE = CHAT | {"stream_options": {"include_usage": True}}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def events(raw: bytes) -> list[bytes]:
    """Split an SSE body into events (without the blank-line terminator)."""
    assert raw.endswith(b"\n\n"), raw[-40:]
    return raw[:-2].split(b"\n\n")


def payloads(raw: bytes) -> list[Any]:
    """The JSON of each data event, `[DONE]` kept as a string; comments dropped."""
    out: list[Any] = []
    for event in events(raw):
        if event.startswith(b":"):
            continue
        data = event.removeprefix(b"data:").removeprefix(b" ")
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


async def post(
    session: aiohttp.ClientSession, fake: FakeUpstream, path: str, body: Any
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with session.post(fake.base_url + path, json=body) as resp:
        return resp, await resp.read()


async def read_into(resp: aiohttp.ClientResponse, buf: bytearray) -> None:
    """Read the body chunk by chunk, keeping what arrived if the read fails."""
    async for data in resp.content.iter_any():
        buf += data


def content_of(chunks: list[Any]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if isinstance(c, dict) and c.get("choices")
    )


# -- dialect framing and event sequences ------------------------------------------------


async def test_vllm_chat_stream_is_vllm_shaped(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="vllm")) as fake:
        resp, raw = await post(session, fake, "/v1/chat/completions", WITH_USAGE)
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert all(e.startswith(b"data: ") for e in events(raw))
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    chunks = payloads(raw)
    role, *deltas, finish, usage, done = chunks
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert role["id"].startswith("chatcmpl-")
    assert role["object"] == "chat.completion.chunk"
    assert [d["choices"][0]["delta"] for d in deltas] == [
        {"content": t} for t in ["Hello", ",", " world", "!"]
    ]
    assert finish["choices"][0] == {  # EOS: a token with no text, carrying the finish
        "index": 0,
        "delta": {"content": ""},
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": None,
        "token_ids": None,
    }
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 5  # the EOS token counts
    assert list(usage["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    assert done == "[DONE]"
    assert b'"model":"m","choices":[' in raw  # compact, pydantic field order
    assert fake.sent == [raw]
    assert fake.deltas_sent == 4


@pytest.mark.parametrize(
    ("script_usage", "options", "expected"),
    [
        (None, None, False),
        (None, {"include_usage": True}, True),
        (False, {"include_usage": True}, False),
        (True, None, True),
    ],
)
async def test_vllm_usage_follows_request_unless_scripted(
    session: aiohttp.ClientSession,
    script_usage: bool | None,
    options: dict[str, bool] | None,
    expected: bool,
) -> None:
    body = CHAT | ({"stream_options": options} if options else {})
    async with running(Script(include_usage=script_usage)) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", body)
    assert any(c != "[DONE]" and c["choices"] == [] for c in payloads(raw)) is expected


async def test_vllm_continuous_usage_on_every_chunk(session: aiohttp.ClientSession) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    async with running() as fake:
        _, raw = await post(
            session, fake, "/v1/chat/completions", CHAT | {"stream_options": options}
        )
    chunks = [c for c in payloads(raw) if c != "[DONE]"]
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3, 4, 5, 5]


async def test_tgi_chat_stream_is_tgi_shaped(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="tgi")) as fake:
        resp, raw = await post(session, fake, "/v1/chat/completions", WITH_USAGE)
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert all(e.startswith(b"data:") and not e.startswith(b"data: ") for e in events(raw))
    assert raw.endswith(b"\n\ndata:[DONE]\n\n")
    *chunks, usage, _ = payloads(raw)
    assert raw.startswith(b'data:{"object":"chat.completion.chunk","id":"","created":')
    for chunk in chunks:
        assert chunk["id"] == ""
        assert chunk["usage"] is None
        assert chunk["system_fingerprint"] == "3.3.6-native"
        assert chunk["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(chunks) == "Hello, world!"
    assert chunks[-1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert list(usage["usage"])[1] == "completion_tokens"


async def test_llamacpp_chat_stream_is_llamacpp_shaped(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="llamacpp")) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", WITH_USAGE)
    assert all(e.startswith(b"data: ") for e in events(raw))
    role, *deltas, finish, done = payloads(raw)
    assert role["choices"] == [{"finish_reason": None, "index": 0, "delta": {"role": "assistant"}}]
    assert raw.startswith(b'data: {"choices":[')
    assert content_of(deltas) == "Hello, world!"
    assert finish["choices"] == [{"finish_reason": "stop", "index": 0, "delta": {}}]
    assert "usage" not in finish
    assert done == "[DONE]"


async def test_vllm_completions_finish_on_last_text_chunk(session: aiohttp.ClientSession) -> None:
    async with running(Script(text=["a", "b"], finish_reason="length")) as fake:
        _, raw = await post(session, fake, "/v1/completions", {"prompt": "x", "stream": True})
    first, last, done = payloads(raw)
    assert first["id"].startswith("cmpl-")
    assert first["object"] == "text_completion"
    assert first["choices"][0]["text"] == "a"
    assert first["choices"][0]["finish_reason"] is None
    assert last["choices"][0]["text"] == "b"
    assert last["choices"][0]["finish_reason"] == "length"
    assert done == "[DONE]"


async def test_tgi_completions_quirks(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="tgi", text=["a", "b"])) as fake:
        _, raw = await post(session, fake, "/v1/completions", {"prompt": "x", "stream": True})
    *texts, final, done = payloads(raw)
    assert [t["choices"][0]["finish_reason"] for t in texts] == ["", ""]
    assert final["choices"][0]["finish_reason"] == "eos_token"
    assert final["usage"]["completion_tokens"] == 3  # the EOS token counts
    assert done == "[DONE]"


async def test_n_choices_and_choice_text(session: aiohttp.ClientSession) -> None:
    script = Script(text=["a", "b"], n=2, choice_text={1: ["z"]})
    async with running(script) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    chunks = [c for c in payloads(raw) if c != "[DONE]"]
    by_choice: dict[int, str] = {0: "", 1: ""}
    for c in chunks:
        choice = c["choices"][0]
        by_choice[choice["index"]] += choice["delta"].get("content") or ""
    assert by_choice == {0: "ab", 1: "z"}
    assert [c["choices"][0]["index"] for c in chunks[:2]] == [0, 1]  # a role chunk each


async def test_tool_calls_and_reasoning_content(session: aiohttp.ClientSession) -> None:
    script = Script(
        text=[],
        reasoning=["think"],
        reasoning_field="reasoning_content",
        tool_calls=[("get_weather", ['{"city":', '"Oslo"}'])],
    )
    async with running(script) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    _, reasoning, name, arg1, arg2, finish, _ = payloads(raw)
    assert reasoning["choices"][0]["delta"] == {"reasoning_content": "think"}
    call = name["choices"][0]["delta"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather"}
    assert call["type"] == "function"
    assert call["id"].startswith("chatcmpl-tool-")
    assert call["index"] == 0
    assert arg1["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"city":'}}
    ]
    assert arg2["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '"Oslo"}'
    assert finish["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("dialect", "entry"),
    [
        ("vllm", {"token": "a", "logprob": -0.25, "bytes": [97], "top_logprobs": []}),
        ("tgi", {"token": "a", "logprob": -0.25, "top_logprobs": []}),
    ],
)
async def test_logprobs_per_dialect(
    session: aiohttp.ClientSession, dialect: Dialect, entry: dict[str, Any]
) -> None:
    async with running(Script(text=["a"], dialect=dialect, logprobs=True)) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    delta = next(c for c in payloads(raw) if content_of([c]) == "a")
    assert delta["choices"][0]["logprobs"] == {"content": [entry]}


async def test_keepalive_comments(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="tgi", keepalive_comments=True)) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    assert events(raw).count(b":") == 2
    assert content_of(payloads(raw)) == "Hello, world!"


# -- TGI native routes --------------------------------------------------------------------


async def test_generate_stream_has_tgi_token_events_and_no_done(
    session: aiohttp.ClientSession,
) -> None:
    body = {"inputs": "hi", "parameters": {"details": True}}
    async with running(Script(dialect="vllm", text=["a", "b"])) as fake:
        _, raw = await post(session, fake, "/generate_stream", body)
    assert b"[DONE]" not in raw
    assert raw.startswith(b'data:{"index":1,"token":{"id":')
    first, second, eos = payloads(raw)
    assert first["token"] | {"id": 0} == {"id": 0, "text": "a", "logprob": -0.25, "special": False}
    assert first["generated_text"] is None
    assert first["details"] is None
    assert [second["index"], eos["index"]] == [2, 3]
    assert eos["token"]["special"] is True
    assert eos["generated_text"] == "ab"
    assert eos["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 3,
        "seed": None,
        "input_length": 1,
    }


async def test_generate_stream_length_ends_on_last_token(session: aiohttp.ClientSession) -> None:
    async with running(Script(text=["a", "b"], finish_reason="length")) as fake:
        _, raw = await post(session, fake, "/generate_stream", {"inputs": "hi"})
    _first, last = payloads(raw)
    assert last["token"]["text"] == "b"
    assert last["generated_text"] == "ab"
    assert last["details"] is None  # not asked for


async def test_generate_returns_generated_text(session: aiohttp.ClientSession) -> None:
    async with running(Script(text=["a", "b"])) as fake:
        resp, raw = await post(session, fake, "/generate", {"inputs": "hi"})
    assert resp.status == 200
    assert json.loads(raw) == {"generated_text": "ab"}


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "path", "expected"),
    [
        (
            "vllm",
            "/v1/chat/completions",
            b'data: {"error": {"message": "boom", "type": "InternalServerError", '
            b'"param": null, "code": 500}}\n\ndata: [DONE]\n\n',
        ),
        (
            "tgi",
            "/v1/chat/completions",
            b'data:{"error":{"message":"boom","http_status_code":422}}\n\ndata:[DONE]\n\n',
        ),
        (
            "llamacpp",
            "/v1/chat/completions",
            b'data: {"error":{"code":500,"message":"boom","type":"server_error"}}'
            b"\n\ndata: [DONE]\n\n",
        ),
        ("tgi", "/generate_stream", b'data:{"error":"boom","error_type":"generation"}\n\n'),
    ],
)
async def test_in_band_error_per_dialect(
    session: aiohttp.ClientSession, dialect: Dialect, path: str, expected: bytes
) -> None:
    fault = Fault(FaultKind.IN_BAND_ERROR, after=2, message="boom")
    async with running(Script(dialect=dialect, fault=fault)) as fake:
        resp, raw = await post(session, fake, path, CHAT | {"inputs": "x"})
    assert resp.status == 200
    assert raw.endswith(expected)
    assert content_of(payloads(raw)) == "Hello," or path == "/generate_stream"
    assert fake.deltas_sent == 2


async def test_eof_no_done_keeps_finish_but_drops_done(session: aiohttp.ClientSession) -> None:
    async with running(Script(fault=Fault(FaultKind.EOF_NO_DONE))) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    assert b"[DONE]" not in raw
    assert b'"finish_reason":"stop"' in raw


async def test_eof_no_done_after_k_stops_cleanly(session: aiohttp.ClientSession) -> None:
    async with running(Script(fault=Fault(FaultKind.EOF_NO_DONE, after=1))) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    assert content_of(payloads(raw)) == "Hello"
    assert b'finish_reason":"stop' not in raw


async def test_drop_mid_event_cuts_an_event_in_half(session: aiohttp.ClientSession) -> None:
    got = bytearray()
    async with running(Script(fault=Fault(FaultKind.DROP_MID_EVENT, after=1))) as fake:
        async with session.post(fake.base_url + "/v1/chat/completions", json=CHAT) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await read_into(resp, got)
        assert fake.sent == [bytes(got)]
    assert not got.endswith(b"\n\n")
    assert got.count(b'"content":"Hello"') == 1
    assert fake.disconnects == []


async def test_drop_before_headers(session: aiohttp.ClientSession) -> None:
    async with running(Script(fault=Fault(FaultKind.DROP_BEFORE_HEADERS))) as fake:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, fake, "/v1/chat/completions", CHAT)
        assert fake.requests[0].json == CHAT


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        (
            "vllm",
            {
                "error": {
                    "message": "busy",
                    "type": "InternalServerError",
                    "param": None,
                    "code": 503,
                }
            },
        ),
        ("tgi", {"error": "busy", "error_type": "generation"}),
        ("llamacpp", {"error": {"code": 503, "message": "busy", "type": "server_error"}}),
    ],
)
async def test_http_status_fault_uses_dialect_error_body(
    session: aiohttp.ClientSession, dialect: Dialect, body: dict[str, Any]
) -> None:
    fault = Fault(FaultKind.HTTP_STATUS, status=503, message="busy")
    async with running(Script(dialect=dialect, fault=fault)) as fake:
        resp, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    assert resp.status == 503
    assert json.loads(raw) == body


async def test_malformed_event_then_stream_continues(session: aiohttp.ClientSession) -> None:
    async with running(Script(fault=Fault(FaultKind.MALFORMED, after=1))) as fake:
        _, raw = await post(session, fake, "/v1/chat/completions", CHAT)
    assert b'"content":"Hello"}' in raw.split(b"data: {not json\n\n")[0]
    assert raw.endswith(b"data: [DONE]\n\n")
    assert fake.deltas_sent == 4


# -- pacing and disconnects -----------------------------------------------------------------


async def test_pacing_is_respected(session: aiohttp.ClientSession) -> None:
    script = Script(text=["a", "b", "c"], tokens_per_s=40, first_token_delay_s=0.1)
    async with running(script) as fake:
        start = time.monotonic()
        async with session.post(fake.base_url + "/v1/chat/completions", json=CHAT) as resp:
            await resp.content.readuntil(b"\n\n")  # the role chunk comes at once
            role_at = time.monotonic() - start
            await resp.content.readuntil(b"\n\n")
            first_at = time.monotonic() - start
            await resp.read()
        total = time.monotonic() - start
    assert role_at < 0.1 <= first_at
    assert total >= 0.1 + 2 / 40


@pytest.mark.parametrize(
    "script",
    [
        Script(text=["x"] * 50, tokens_per_s=10),
        Script(fault=Fault(FaultKind.HANG_AFTER, after=1)),
    ],
    ids=["paced", "hang_after"],
)
async def test_disconnect_is_recorded_promptly(
    session: aiohttp.ClientSession, script: Script
) -> None:
    async with running(script) as fake:
        async with session.post(fake.base_url + "/v1/chat/completions", json=CHAT) as resp:
            for _ in range(2):  # the role chunk and one delta
                await resp.content.readuntil(b"\n\n")
            resp.close()
            closed_at = time.monotonic()
        async with asyncio.timeout(1):
            seen_at = await fake.wait_disconnect()
            await fake.last_stream_done.wait()
        assert seen_at - closed_at < 0.1
        assert fake.requests[0].disconnected_at == seen_at
        sent = fake.deltas_sent
        await asyncio.sleep(0.15)
        assert fake.deltas_sent == sent <= 2


async def test_never_answer_until_client_gives_up(session: aiohttp.ClientSession) -> None:
    async with running(Script(fault=Fault(FaultKind.NEVER_ANSWER))) as fake:
        timeout = aiohttp.ClientTimeout(total=0.2)
        with pytest.raises(asyncio.TimeoutError):
            await session.post(fake.base_url + "/v1/chat/completions", json=CHAT, timeout=timeout)
        async with asyncio.timeout(1):
            await fake.wait_disconnect()
        assert fake.sent == [b""]


# -- non-streaming and the other routes ---------------------------------------------------


@pytest.mark.parametrize("dialect", ["vllm", "tgi", "llamacpp"])
async def test_non_streaming_chat(session: aiohttp.ClientSession, dialect: Dialect) -> None:
    async with running(Script(dialect=dialect)) as fake:
        resp, raw = await post(session, fake, "/v1/chat/completions", CHAT | {"stream": False})
    body = json.loads(raw)
    assert resp.content_type == "application/json"
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert {k: message[k] for k in ("role", "content")} == {
        "role": "assistant",
        "content": "Hello, world!",
    }
    assert set(message) == {"role", "content"} or dialect == "vllm"  # vLLM: README item 4
    assert body["usage"]["prompt_tokens"] == 2
    assert fake.sent == [raw]


async def test_requests_are_recorded(session: aiohttp.ClientSession) -> None:
    async with running() as fake:
        headers = {"Authorization": "Bearer k", "X-Trace": "1"}
        url = fake.base_url + "/v1/chat/completions?x=1"
        async with session.post(url, json=CHAT, headers=headers) as resp:
            await resp.read()
    rec = fake.requests[0]
    assert (rec.method, rec.path, rec.query) == ("POST", "/v1/chat/completions", "x=1")
    assert rec.headers["authorization"] == "Bearer k"
    assert rec.headers["x-trace"] == "1"
    assert rec.json == CHAT
    assert json.loads(rec.body) == CHAT


async def test_other_routes(session: aiohttp.ClientSession) -> None:
    async with running(Script(dialect="tgi", model="org/model")) as fake:
        base = fake.base_url
        async with session.get(base + "/v1/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "org/model"
        async with session.post(base + "/v1/embeddings", json={"input": ["a", "b"]}) as resp:
            data = (await resp.json())["data"]
            assert [d["embedding"] for d in data] == [embed("a"), embed("b")]
        async with session.post(base + "/tokenize", json={"inputs": "a bc"}) as resp:
            assert [t["text"] for t in await resp.json()] == ["a", "bc"]
        async with session.get(base + "/health") as resp:
            assert resp.status == 200
        async with session.get(base + "/info") as resp:
            assert (await resp.json())["model_id"] == "org/model"
    assert [r.path for r in fake.requests][-1] == "/info"
