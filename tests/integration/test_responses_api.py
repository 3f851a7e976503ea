"""``POST /v1/responses`` guarded like chat: the real proxy, the fake upstream speaking
vLLM 0.32's Responses API, and the real openai SDK (``responses.create(stream=True)``, the
``responses.stream()`` helper) or raw HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from fakes.responses_samples import STREAM
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory

pytestmark = pytest.mark.usefixtures("no_leaks")
WORDS = [f" w{i}" for i in range(60)]


def rails(stream_first: bool = True, chunk: int = 10, context: int = 4, **config: Any) -> Any:
    output = {
        "flows": ["banned", *config],
        "streaming": {
            "enabled": True,
            "chunk_size": chunk,
            "context_size": context,
            "stream_first": stream_first,
        },
    }
    banned = {"type": "blocklist", "words": ["project falcon"]}
    return {"streaming": True, "rails": {"config": {"banned": banned, **config}, "output": output}}


MASK = {"pii": {"type": "pii", "entities": ["email"], "action": "mask"}}


def with_secret_at(index: int, total: int = 60) -> list[str]:
    words = [f" w{i}" for i in range(total)]
    words[index : index + 2] = [" Project", " Falcon"]
    return words


def body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "input": "hi", "stream": stream, **extra}


def parsed(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, data) of each SSE event."""
    out = []
    for block in raw.decode().split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((name, data))
    return out


def streamed_text(raw: bytes, kind: str = "response.output_text.delta") -> str:
    return "".join(d["delta"] for _, d in parsed(raw) if d["type"] == kind)


async def deltas(stream: Any, seen: list[str]) -> None:
    async for ev in stream:
        if ev.type == "response.output_text.delta":
            seen.append(ev.delta)


async def helper_stream(c: openai.AsyncOpenAI) -> None:
    async with c.responses.stream(model="m", input="hi") as stream:
        async for _ in stream:
            pass


def client(p: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_clean_stream_is_byte_identical(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(
        text=WORDS, reasoning=[" think", "ing"], tool_calls=[("f", ['{"a"', ":1}"])]
    )
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/responses", body())
    assert status == 200
    assert raw == fake.sent[-1]
    assert "stream_options" not in fake.requests[-1].json  # not a field of this API


@pytest.mark.parametrize("stream_first", [True, False])
async def test_sdk_stream_blocked_raises(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=with_secret_at(25, total=200), tokens_per_s=400)
    p = await proxy(**rails(stream_first))
    async with client(p) as c:
        seen: list[str] = []
        stream = await c.responses.create(model="m", input="hi", stream=True)
        with pytest.raises(openai.APIError, match="Blocked by banned rails"):
            await deltas(stream, seen)
        # held: never shown; stream_first: shown, and the stream stops within the next window
        assert ("Falcon" in "".join(seen)) is stream_first
        assert len(seen) < 60


@pytest.mark.parametrize("stream_first", [True, False])
async def test_sdk_stream_helper_clean_and_blocked(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails(stream_first))
    async with client(p) as c:
        async with c.responses.stream(model="m", input="hi") as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_response()
        assert final.output_text == "".join(WORDS)
        fake.script = Script(text=with_secret_at(40))
        with pytest.raises(openai.APIError):
            await helper_stream(c)


async def test_the_abort_event_continues_the_sequence(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(30))
    p = await proxy(**rails(True))
    _status, raw = await p.post_stream("/v1/responses", body())
    got = parsed(raw)
    name, last = got[-1]
    assert name == "error"
    assert last["type"] == "error"
    assert last["code"] == "content_blocked"
    assert last["error"]["param"] == "banned"
    seqs = [d["sequence_number"] for _, d in got]
    assert seqs == sorted(set(seqs))
    assert raw.decode().count(" w") < 60


async def test_held_mode_masks_every_repeat(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    text = [" mail", " me", " at", " bob@example.com", " now", *WORDS[:20]]
    fake.script = Script(text=text)
    p = await proxy(**rails(False, **MASK))
    async with client(p) as c:
        status, raw = await p.post_stream("/v1/responses", body())
        assert status == 200
        assert b"bob@example.com" not in raw
        shown = streamed_text(raw)
        got = {d["type"]: d for _, d in parsed(raw)}
        assert got["response.output_text.done"]["text"] == shown
        assert got["response.content_part.done"]["part"]["text"] == shown
        assert got["response.output_item.done"]["item"]["content"][0]["text"] == shown
        assert got["response.completed"]["response"]["output"][0]["content"][0]["text"] == shown
        async with c.responses.stream(model="m", input="hi") as stream:
            final = await stream.get_final_response()
        assert final.output_text == shown


async def test_stream_first_mask_is_a_block(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=[" mail", " bob@example.com", *WORDS[:20]])
    p = await proxy(**rails(True, **MASK))
    _status, raw = await p.post_stream("/v1/responses", body())
    assert parsed(raw)[-1][1]["type"] == "error"
    assert b"response.completed" not in raw


@pytest.mark.parametrize("stream_first", [True, False])
async def test_closing_events_wait_for_the_last_window(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """The secret in the last (partial) window: the repeats of the whole text never go."""
    fake.script = Script(text=[*WORDS[:20], " Project", " Falcon"])
    p = await proxy(**rails(stream_first, chunk=50))
    _status, raw = await p.post_stream("/v1/responses", body())
    types = [d["type"] for _, d in parsed(raw)]
    assert "response.output_text.done" not in types
    assert types[-1] == "error"


@pytest.mark.parametrize("stream_first", [True, False])
async def test_tool_arguments_and_reasoning_are_judged(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS[:5], tool_calls=[("f", ['{"q": "project', ' falcon"}'])])
    p = await proxy(**rails(stream_first))
    _, raw = await p.post_stream("/v1/responses", body())
    assert parsed(raw)[-1][1]["type"] == "error"
    assert (b"falcon" in raw) is stream_first  # held: never shown
    assert b"function_call_arguments.done" not in raw
    fake.script = Script(text=WORDS[:5], reasoning=[" project", " fal", "con"])
    _status, raw = await p.post_stream("/v1/responses", body())
    assert parsed(raw)[-1][1]["type"] == "error"
    assert b"reasoning_text.done" not in raw
    assert (b'"con"' in raw) is stream_first


async def test_whole_answer_blocked_and_masked(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(3, total=10))
    p = await proxy(**rails(False, **MASK))
    async with client(p) as c:
        with pytest.raises(openai.BadRequestError, match="Blocked by banned rails"):
            await c.responses.create(model="m", input="hi")
        fake.script = Script(text=[" write", " bob@example.com"])
        answer = await c.responses.create(model="m", input="hi")
        assert "bob@example.com" not in answer.output_text
        assert answer.output_text.startswith(" write")


async def test_content_filter_style(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(30))
    config = rails(True)
    config["rails"]["abort"] = {"style": "content_filter", "refusal_message": "No."}
    p = await proxy(**config)
    async with client(p) as c:
        async with c.responses.stream(model="m", input="hi") as stream:
            events = [ev async for ev in stream]
        last = events[-1]
        assert last.type == "response.incomplete"
        assert last.response.incomplete_details.reason == "content_filter"
        assert last.response.id == events[0].response.id
        refusals = [e.delta for e in events if e.type == "response.refusal.delta"]
        assert refusals == ["No."]
        answer = await c.responses.create(model="m", input="hi")
        assert answer.status == "incomplete"
        assert answer.incomplete_details.reason == "content_filter"


def sse(name: str, **data: Any) -> bytes:
    obj = {"type": name, **data}
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()


AT = {"output_index": 0, "content_index": 0, "item_id": "m"}
CUSTOM = {"output_index": 1, "item_id": "c"}
# what a hostile upstream sends after a first delta, and the code the stream ends with
HOSTILE: dict[str, tuple[list[bytes], str]] = {
    "done_differs": (
        [sse("response.output_text.done", sequence_number=5, text=" y falcon", **AT)],
        "upstream_unreadable",
    ),
    "done_extends": (
        [sse("response.output_text.done", sequence_number=5, text=" x project falcon", **AT)],
        "content_blocked",
    ),
    "name_differs": (
        [
            sse("response.output_text.delta", sequence_number=5, delta=" falcon", **AT).replace(
                b"event: response.output_text.delta", b"event: response.in_progress"
            )
        ],
        "upstream_unreadable",
    ),
    "unknown_event": (
        [sse("response.new_thing", sequence_number=5, note="project falcon")],
        "content_blocked",
    ),
    "unknown_delta_split": (
        [
            sse(
                "response.custom_tool_call_input.delta",
                sequence_number=5,
                delta=" project",
                **CUSTOM,
            ),
            sse(
                "response.custom_tool_call_input.delta",
                sequence_number=6,
                delta=" falcon",
                **CUSTOM,
            ),
        ],
        "content_blocked",
    ),
    "after_item_done": (
        [
            sse("response.output_item.done", sequence_number=5, output_index=0, item={}),
            sse(
                "response.output_text.delta",
                sequence_number=6,
                delta=" falcon",
                **AT | {"content_index": 1},
            ),
        ],
        "upstream_protocol_error",
    ),
    "sequence_goes_back": (
        [sse("response.output_text.delta", sequence_number=4, delta=" falcon", **AT)],
        "upstream_unreadable",
    ),
}
RELEASED_FIRST = ("unknown_event", "unknown_delta_split")  # judged as they come


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("stream_first", [True, False])
async def test_hostile_upstream_never_leaks(
    fake: FakeUpstream, proxy: ProxyFactory, case: str, stream_first: bool
) -> None:
    hostile, code = HOSTILE[case]
    start = sse("response.output_text.delta", sequence_number=4, delta=" x", **AT)
    fake.responses_events = [start, *hostile]
    p = await proxy(**rails(stream_first))
    _status, raw = await p.post_stream("/v1/responses", body())
    # stream_first: text is released, then judged (the block follows); held: never shown
    assert (b"falcon" in raw) is (case in RELEASED_FIRST and stream_first)
    name, last = parsed(raw)[-1]
    assert name == "error"
    assert last["code"] == code


async def test_stored_responses_and_background_are_refused(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(**rails(True))
    async with client(p) as c:
        with pytest.raises(openai.NotFoundError, match="stored"):
            await c.responses.retrieve("resp_123")
        with pytest.raises(openai.NotFoundError, match="stored"):
            await c.responses.cancel("resp_123")
        with pytest.raises(openai.NotFoundError, match="stored"):
            await c.responses.input_items.list("resp_123")
        with pytest.raises(openai.BadRequestError, match="background"):
            await c.responses.create(model="m", input="hi", background=True)
        with pytest.raises(openai.BadRequestError, match="logprobs"):
            await c.responses.create(model="m", input="hi", top_logprobs=2)
        assert all(r.path != "/v1/responses/resp_123" for r in fake.requests)


async def test_input_rails_judge_and_mask_in_place(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    config = {
        "rails": {
            "config": {
                "banned": {"type": "blocklist", "words": ["project falcon"]},
                "pii": {"type": "pii", "entities": ["email"], "action": "mask"},
            },
            "input": {"flows": ["banned", "pii"], "messages": "all"},
        }
    }
    p = await proxy(**config)
    async with client(p) as c:
        with pytest.raises(openai.BadRequestError, match="Blocked"):
            await c.responses.create(model="m", input="tell me about Project Falcon")
        with pytest.raises(openai.BadRequestError, match="Blocked"):
            await c.responses.create(model="m", input="hi", instructions="Project Falcon rules")
        items = [
            {"role": "user", "content": [{"type": "input_text", "text": "mail bob@example.com"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "bob@example.com"},
        ]
        await c.responses.create(model="m", input=items)
        sent = fake.requests[-1].json
        assert "bob@example.com" not in json.dumps(sent)
        assert sent["input"][0]["content"][0]["type"] == "input_text"
        with pytest.raises(openai.BadRequestError, match="judge text"):
            await c.responses.create(
                model="m", input=[{"type": "computer_call_output", "call_id": "c", "output": {}}]
            )


@pytest.mark.parametrize("stream_first", [True, False])
async def test_real_vllm_bytes_go_out_byte_for_byte(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.responses_events = [e + b"\n\n" for e in STREAM.split(b"\n\n") if e]
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/responses", body())
    assert status == 200
    assert raw == STREAM


async def test_metrics_carry_the_route(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=WORDS[:10])
    p = await proxy(**rails(True))
    await p.post_stream("/v1/responses", body())
    async with p.session.get(p.url("/metrics")) as r:
        metrics = await r.text()
    route = 'route="/v1/responses"'
    for name in ("time_to_first_token", "upstream_time_to_first_token"):
        line = next(
            x for x in metrics.splitlines() if x.startswith(f"railproxy_{name}_seconds_count")
        )
        assert route in line
        assert line.endswith(" 1.0")


async def test_playground_debug_events(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(30))
    p = await proxy(server={"playground": True}, **rails(False))
    headers = {"X-Railproxy-Debug": "1"}
    _, raw = await p.post_stream("/v1/responses", body(), headers=headers)
    kinds = [d.get("kind") for name, d in parsed(raw) if name == "railproxy"]
    assert kinds[0] == "start"
    assert "window" in kinds
    assert kinds[-1] == "abort"
    assert parsed(raw)[-1][1]["type"] == "error"
    # without the header, not a byte of it
    _, plain = await p.post_stream("/v1/responses", body())
    assert b"railproxy" not in plain.replace(b"Blocked by", b"")


async def test_input_block_streamed_as_content_filter(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    banned = {"type": "blocklist", "words": ["project falcon"]}
    abort = {"style": "content_filter", "refusal_message": "No."}
    config = {"config": {"banned": banned}, "input": {"flows": ["banned"]}, "abort": abort}
    p = await proxy(rails=config)
    async with client(p) as c, c.responses.stream(model="m", input="Project Falcon?") as stream:
        events = [ev async for ev in stream]
    assert events[0].type == "response.created"
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.id == events[0].response.id
    assert [e.delta for e in events if e.type == "response.refusal.delta"] == ["No."]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert fake.requests == []


async def test_our_error_after_a_cut_stream_continues_the_numbering(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """No rails (pass-through) and rails: an upstream that ends before response.completed
    gets our error event, numbered after the last event it sent."""
    cut = [sse("response.output_text.delta", sequence_number=7, delta=" x", **AT)]
    for config in ({}, rails(True)):
        fake.responses_events = cut
        p = await proxy(**config)
        _, raw = await p.post_stream("/v1/responses", body())
        name, last = parsed(raw)[-1]
        assert name == "error"
        assert last["code"] == "upstream_eof"
        assert last["sequence_number"] == 8


@pytest.mark.parametrize("stream", [True, False])
async def test_the_echoed_request_is_not_judged_as_output(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    """An output mask would block any answer whose strings it would change: the response
    object's echo of the client's own instructions and tools is not output."""
    fake.script = Script(text=WORDS[:12])
    p = await proxy(**rails(False, **MASK))
    tool = {"type": "function", "name": "mail", "description": "writes to bob@example.com"}
    asked = body(stream, instructions="Sign as ops@example.com", tools=[tool])
    status, raw = await p.post_stream("/v1/responses", asked)
    assert status == 200
    assert raw == fake.sent[-1]
    assert b"ops@example.com" in raw


async def test_an_echo_the_client_did_not_send_is_judged(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    created = {"id": "resp_1", "object": "response", "output": [], "instructions": "project falcon"}
    fake.responses_events = [sse("response.created", sequence_number=0, response=created)]
    p = await proxy(**rails(False))
    _, raw = await p.post_stream("/v1/responses", body(instructions="be brief"))
    assert b"falcon" not in raw
    assert parsed(raw)[-1][1]["code"] == "content_blocked"


async def test_tool_arguments_masked_in_every_repeat(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    args = ['{"to": "', "bob@example.com", '", "body": "hi"}']
    fake.script = Script(text=WORDS[:3], tool_calls=[("send", args)])
    p = await proxy(**rails(False, **MASK))
    status, raw = await p.post_stream("/v1/responses", body())
    assert status == 200
    assert b"bob@example.com" not in raw
    shown = streamed_text(raw, "response.function_call_arguments.delta")
    got = {d["type"]: d for _, d in parsed(raw)}
    assert got["response.function_call_arguments.done"]["arguments"] == shown
    items = [d["item"] for _, d in parsed(raw) if d["type"] == "response.output_item.done"]
    assert items[-1]["arguments"] == shown
    final = got["response.completed"]["response"]["output"]
    assert final[-1]["arguments"] == shown
    assert json.loads(shown)["body"] == "hi"


@pytest.mark.parametrize("stream_first", [True, False])
async def test_a_block_closes_the_upstream_request(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=with_secret_at(25, total=2000), tokens_per_s=200)
    p = await proxy(**rails(stream_first))
    _, raw = await p.post_stream("/v1/responses", body())
    assert parsed(raw)[-1][1]["code"] == "content_blocked"
    async with asyncio.timeout(5):
        await fake.wait_disconnect()
    assert fake.requests[-1].deltas_sent < 200


async def test_pass_through_keeps_odd_framing(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """No rails: every byte as it came, odd framing included (guarded streams write each
    event as its `event:` and `data:` lines only)."""
    error = b'{"type":"error","code":"x","message":"m","sequence_number":0}'
    odd = b"id: 7\nevent:error\ndata: " + error + b"\n\n"
    fake.responses_events = [odd]
    p = await proxy()
    _, raw = await p.post_stream("/v1/responses", body())
    assert raw == odd
    p = await proxy(**rails(True))
    _, raw = await p.post_stream("/v1/responses", body())
    assert raw.startswith(b"event: error\ndata: " + error + b"\n\n")
