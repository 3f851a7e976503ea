"""The boundary on the answer side fails closed (issue: "Fail closed at the boundary").

A hostile upstream sends, byte for byte, what a stock client would read as text but a
naive parser would not (NaN numbers, lone surrogates, parts lists, float indexes, a null
``error``), text after the end, compressed or mislabelled bodies, and error bodies that
carry the forbidden text. Through the real proxy on loopback, with a blocklist on
"project falcon": with ``stream_first: false`` the phrase never reaches the client's
socket, and in both modes every stream ends with a verdict or our error, never a clean
unjudged end.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from fakes.hostile import HostileUpstream, Reply, chunk, gzipped, sse
from integration.conftest import ProxyFactory, chat_body, events

pytestmark = pytest.mark.usefixtures("no_leaks")
PHRASE = b"Falcon"


def rails(stream_first: bool) -> dict[str, Any]:
    streaming = {"enabled": True, "chunk_size": 8, "context_size": 4}
    return {
        "streaming": True,
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
            "output": {
                "flows": ["banned"],
                "streaming": {**streaming, "stream_first": stream_first},
            },
        },
    }


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def _error_codes(raw: bytes) -> list[str]:
    codes = []
    for data in events(raw):
        if data == b"[DONE]":
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("error"):
            err = obj["error"]
            codes.append(str(err.get("code") if isinstance(err, dict) else err))
    return codes


OURS = {"content_blocked", "upstream_unreadable", "upstream_protocol_error"}


def _assert_fail_closed(raw: bytes, stream_first: bool, ends: set[str] = OURS) -> None:
    """Hold mode: the phrase never reached the socket. Both modes: the stream ended in a
    block or an error (ours, or the upstream's own clean one), framed (``[DONE]`` last)."""
    if not stream_first:
        assert PHRASE not in raw, raw
    codes = _error_codes(raw)
    assert codes, f"stream ended without a verdict or error: {raw!r}"
    assert codes[-1] in ends, raw
    assert raw.endswith(b"data: [DONE]\n\n")


FALCON = "Project Falcon"

# Each case: events a stock openai client reads as text "Project Falcon".
MALFORMED: dict[str, list[bytes]] = {
    "nan_number": sse(
        b'{"id":"c","object":"chat.completion.chunk","x":NaN,"choices":[{"index":0,'
        b'"delta":{"content":"Project Falcon"},"finish_reason":null}]}'
    ),
    "negative_infinity": sse(
        b'{"id":"c","choices":[{"index":0,"delta":{"content":"Project Falcon"},'
        b'"finish_reason":null,"logprobs":{"x":-Infinity}}]}'
    ),
    "lone_surrogate": sse(
        b'{"id":"c","choices":[{"index":0,"delta":{"content":"Project Falcon\\ud800"},'
        b'"finish_reason":null}]}'
    ),
    "content_parts": sse(
        {"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": FALCON}]}}]}
    ),
    "float_index_after_finish": sse(
        chunk("Hello", 0),
        chunk(None, 0, "stop"),
        chunk(FALCON, 1.0),
        chunk(None, 1.0, "stop"),
    ),
    "error_null": sse({"error": None, **chunk(FALCON)}),
    "text_after_finish": sse(chunk("Hi", 0, "stop"), chunk(FALCON, 0)),
    "text_after_usage": sse(
        chunk("Hi", 0, "stop"),
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        chunk(FALCON, 0),
    ),
    "text_after_in_band_error": sse(
        chunk("Hi"), {"error": {"message": "oops", "code": 500}}, chunk(FALCON)
    ),
    "in_band_error_carries_text": sse(
        chunk("Hi"), {"error": {"message": f"model said: {FALCON}", "type": "x", "code": 500}}
    ),
    "flat_error_carries_text": sse(
        chunk("Hi"), {"object": "error", "message": f"model said: {FALCON}", "code": 500}
    ),
    "unreadable_json": sse(
        chunk("Hi"), b'{"choices":[{"index":0,"delta":{"content":"Project Falcon"'
    ),
    "invalid_utf8": sse(
        b'{"choices":[{"index":0,"delta":{"content":"Project Falcon \xff"},"finish_reason":null}]}'
    ),
    "bool_index": sse(chunk("Hi", 0, "stop"), chunk(FALCON, True)),
}


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_events_never_pass_unjudged(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str, stream_first: bool
) -> None:
    hostile.reply = Reply(MALFORMED[case])
    p = await proxy(target=hostile.base_url, **rails(stream_first))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    clean_error = {"500"} if case == "text_after_in_band_error" else set()
    _assert_fail_closed(raw, stream_first, OURS | clean_error)
    assert PHRASE not in raw or stream_first


@pytest.mark.parametrize("stream_first", [False, True])
async def test_clean_in_band_error_goes_out_and_ends_the_stream(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    error = {"error": {"message": "context too long", "type": "BadRequestError", "code": 400}}
    hostile.reply = Reply(sse(chunk("Hi"), error, chunk("more after the error")))
    p = await proxy(target=hostile.base_url, **rails(stream_first))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"context too long" in raw
    assert b"more after the error" not in raw
    assert raw.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_stream_is_decoded_and_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool, encoding: str
) -> None:
    body = b"".join(sse(chunk("Hello "), chunk(FALCON), chunk(None, 0, "stop")))
    packed = gzip.compress(body, mtime=0) if encoding == "gzip" else zlib.compress(body)
    hostile.reply = Reply([packed[:10], packed[10:]], headers={"Content-Encoding": encoding})
    p = await proxy(target=hostile.base_url, **rails(stream_first))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    _assert_fail_closed(raw, stream_first)
    assert raw.startswith(b"data: ")  # plain SSE, not the compressed bytes


async def test_clean_compressed_stream_arrives_decoded(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = gzipped(Reply(sse(chunk("Hello"), chunk(None, 0, "stop"))))
    p = await proxy(target=hostile.base_url, **rails(False))
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        assert "Content-Encoding" not in r.headers
        raw = await r.read()
    assert b'"Hello"' in raw
    assert raw.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("stream", [True, False])
async def test_a_gzip_body_cut_inside_its_member_is_not_taken_as_complete(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    """The upstream's gzip stream stops mid-member (flushed, never finished): what decoded
    is judged as usual, but the body is not complete, so the client gets our error, not a
    clean end."""
    answer = {"choices": [{"index": 0, "message": {"content": "Hello"}, "finish_reason": "stop"}]}
    body = sse(chunk("Hello"))[0] if stream else json.dumps(answer).encode()
    z = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    cut = z.compress(body) + z.flush(zlib.Z_SYNC_FLUSH)  # decodable so far, no end
    label = "text/event-stream" if stream else "application/json"
    hostile.reply = Reply([cut], content_type=label, headers={"Content-Encoding": "gzip"})
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=stream))
    assert b"upstream_unreadable" in raw
    assert status == (200 if stream else 502)
    assert not raw.rstrip().endswith(b'"stop"}]}')


@pytest.mark.parametrize("stream", [True, False])
async def test_unknown_content_encoding_is_refused(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    hostile.reply = Reply([b"\x1b\x00\x00 opaque brotli"], headers={"Content-Encoding": "br"})
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=stream))
    assert status == 502
    assert json.loads(raw)["error"]["code"] == "upstream_unreadable"


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("label", ["text/plain", "application/octet-stream", ""])
async def test_mislabelled_event_stream_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, stream_first: bool, label: str
) -> None:
    hostile.reply = Reply(sse(chunk("Hello "), chunk(FALCON)), content_type=label or "x/y")
    p = await proxy(target=hostile.base_url, **rails(stream_first))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    _assert_fail_closed(raw, stream_first)


async def test_event_stream_to_a_whole_request_is_refused(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply(sse(chunk(FALCON)))
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert status == 502
    assert PHRASE not in raw
    assert json.loads(raw)["error"]["code"] == "upstream_unreadable"


def _whole(content: Any, **extra: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "c", "object": "chat.completion", "choices": [choice], **extra}


WHOLE_BODIES: dict[str, bytes] = {
    "nan": json.dumps(_whole(FALCON, x=float("nan"))).encode(),
    "lone_surrogate": b'{"choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Project Falcon\\udfff"}}]}',
    "parts": json.dumps(_whole([{"type": "text", "text": FALCON}])).encode(),
    "error_null": json.dumps({"error": None, **_whole(FALCON)}).encode(),
    "float_index": json.dumps(
        {"choices": [{"index": 0.0, "message": {"content": FALCON}}]}
    ).encode(),
}


@pytest.mark.parametrize("case", sorted(WHOLE_BODIES))
async def test_whole_answers_are_parsed_as_the_client_parses(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply([WHOLE_BODIES[case]], content_type="application/json")
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert PHRASE not in raw
    assert status in (400, 502)


@pytest.mark.parametrize("label", ["text/plain", "application/json", ""])
async def test_whole_answer_compressed_or_mislabelled_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, label: str
) -> None:
    body = json.dumps(_whole(f"Sure: {FALCON}")).encode()
    hostile.reply = gzipped(Reply([body], content_type=label or "x/y"))
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert status == 400
    assert json.loads(raw)["error"]["code"] == "content_blocked"


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": 5}',
        b'{"choices": [5]}',
        b'{"choices": [{"message": "text"}]}',
        b"[1, 2]",
        b"plain words Project Falcon",
        b'{"choices":[{"index":"0","message":{"content":"x"}}]}',
    ],
)
async def test_whole_answer_of_unexpected_shape_is_502(
    hostile: HostileUpstream, proxy: ProxyFactory, body: bytes
) -> None:
    hostile.reply = Reply([body], content_type="application/json")
    p = await proxy(target=hostile.base_url, **rails(False))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert status == 502
    err = json.loads(raw)["error"]
    assert err["code"] == "upstream_unreadable"
    assert PHRASE not in raw


@pytest.mark.parametrize("status", [400, 422, 500, 503])
@pytest.mark.parametrize("stream", [True, False])
async def test_error_bodies_are_judged_status_kept(
    hostile: HostileUpstream, proxy: ProxyFactory, status: int, stream: bool
) -> None:
    body = {"error": {"message": f"generation failed after: {FALCON}", "code": status}}
    hostile.reply = Reply([json.dumps(body).encode()], status, "application/json")
    p = await proxy(target=hostile.base_url, **rails(True))
    got, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=stream))
    assert got == status
    assert PHRASE not in raw
    assert json.loads(raw)["error"]["code"] == "content_blocked"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"upstream crashed: Project Falcon", "text/plain"),
        (b"<html>Project Falcon</html>", "text/html"),
        (gzip.compress(b'{"detail": "Project Falcon"}', mtime=0), "application/json"),
    ],
    ids=["text", "html", "gzip-json"],
)
async def test_non_json_and_compressed_error_bodies_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, body: bytes, content_type: str
) -> None:
    headers = {"Content-Encoding": "gzip"} if body.startswith(b"\x1f\x8b") else {}
    hostile.reply = Reply([body], 500, content_type, headers)
    p = await proxy(target=hostile.base_url, **rails(True))
    got, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert got == 500
    assert PHRASE not in raw


@pytest.mark.parametrize("stream", [True, False])
async def test_clean_error_bodies_go_out_unchanged(
    hostile: HostileUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    body = (
        b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens.",'
        b'"type":"BadRequestError","param":null,"code":400}'
    )
    hostile.reply = Reply([body], 400, "application/json")
    p = await proxy(target=hostile.base_url, **rails(True))
    got, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=stream))
    assert (got, raw) == (400, body)


async def test_unreadable_error_body_is_replaced(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply([b"\xff\xfe Project Falcon \xff"], 500, "text/plain")
    p = await proxy(target=hostile.base_url, **rails(True))
    got, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert got == 500
    assert PHRASE not in raw
    assert json.loads(raw)["error"]["code"] == "upstream_unreadable"


async def test_openai_sdk_raises_on_an_in_band_error_carrying_text(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    hostile.reply = Reply(sse(chunk("Hi"), {"error": {"message": FALCON, "code": 500}}))
    p = await proxy(target=hostile.base_url, **rails(False))
    client = openai.AsyncOpenAI(base_url=p.v1, api_key="k", max_retries=0)
    seen: list[str | None] = []

    async def read() -> None:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for part in stream:
            seen.append(part.choices[0].delta.content if part.choices else "")

    with pytest.raises(openai.APIError) as info:
        await read()
    await client.close()
    assert getattr(info.value, "code", None) == "content_blocked"
    assert "Falcon" not in "".join(s or "" for s in seen)
