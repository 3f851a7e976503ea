"""The Anthropic Messages protocol class, sans-IO: events in, text per channel out; the
protocol's order; masks; the events railproxy authors; the request's texts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.errors import BadRequest
from proxy.upstream import request_headers
from proxy.wire.dialect import ERROR_INDEX, Kind
from proxy.wire.fields import OTHER
from proxy.wire.messages import MESSAGES, TEXT_INDEX, MessageOrder, MessagesEnvelope
from proxy.wire.reader import EventReader
from proxy.wire.sse import Decoder, Event
from rails.base import Blocked
from rails.stream import CannotRewrite


def ev(name: str | None, obj: Any) -> Event:
    data = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    head = b"event: " + name.encode() + b"\n" if name is not None else b""
    (out,) = Decoder().feed(head + b"data: " + data + b"\n\n")
    return out


def start(message: dict[str, Any] | None = None) -> Event:
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m"}
    return ev("message_start", {"type": "message_start", "message": {**msg, **(message or {})}})


def block(index: int, kind: str = "text", **fields: Any) -> Event:
    defaults: dict[str, Any] = {"text": {"text": ""}, "thinking": {"thinking": ""}}
    defaults["tool_use"] = {"id": "toolu_1", "name": "get_weather", "input": {}}
    content = {"type": kind, **defaults.get(kind, {}), **fields}
    obj = {"type": "content_block_start", "index": index, "content_block": content}
    return ev("content_block_start", obj)


def delta(index: int, kind: str = "text_delta", **fields: Any) -> Event:
    names = {"text_delta": "text", "thinking_delta": "thinking"}
    names |= {"input_json_delta": "partial_json", "signature_delta": "signature"}
    if not fields:
        fields = {names[kind]: "hi"}
    obj = {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}}
    return ev("content_block_delta", obj)


def stop(index: int) -> Event:
    return ev("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(**extra: Any) -> Event:
    body = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    return ev("message_delta", {**body, "usage": {"output_tokens": 3}, **extra})


MESSAGE_STOP = ev("message_stop", {"type": "message_stop"})


def read_all(*events: Event) -> list[Kind]:
    reader = EventReader(MESSAGES)
    return [reader.read(e).kind for e in events]


# -- channels ---------------------------------------------------------------------------


def test_each_delta_kind_goes_to_its_channel() -> None:
    text = MESSAGES.parse(delta(0, text="Hello")).texts
    assert text == [((TEXT_INDEX, "content", 0), "Hello")]  # every text block's channel
    thinking = MESSAGES.parse(delta(1, "thinking_delta", thinking="hm"))
    assert thinking.texts == [((1, "reasoning", 0), "hm")]
    args = MESSAGES.parse(delta(2, "input_json_delta", partial_json='{"city": "Pa'))
    assert args.texts == [((2, "tool_arguments", 0), '{"city": "Pa')]
    signature = MESSAGES.parse(delta(1, "signature_delta", signature="c2ln"))
    assert (signature.texts, signature.rest) == ([], ["c2ln"])


def test_block_starts_carry_their_initial_strings() -> None:
    assert MESSAGES.parse(block(0, text="Hi")).texts == [((TEXT_INDEX, "content", 0), "Hi")]
    assert MESSAGES.parse(block(0, "thinking", thinking="So")).texts == [
        ((0, "reasoning", 0), "So")
    ]
    tool = MESSAGES.parse(block(3, "tool_use", input={"city": "Paris"}))
    assert tool.texts == [((3, "tool_names", 0), "get_weather")]
    # judged on the OTHER channel, keys and all, as a whole answer's input is judged
    assert {"toolu_1", '{"city": "Paris"}'} <= set(tool.rest)


def test_a_tool_start_without_input_is_read_as_llama_cpp_sends_it() -> None:
    """llama.cpp's streamed tool_use start has no ``input`` (its deltas bring it); a whole
    answer's tool_use must still have one."""
    started = {"type": "content_block_start", "index": 0}
    started["content_block"] = {"type": "tool_use", "id": "call_1", "name": "get_weather"}
    tool = MESSAGES.parse(ev("content_block_start", started))
    assert tool.kind is Kind.DATA
    assert tool.texts == [((0, "tool_names", 0), "get_weather")]
    answer = {"type": "message", "content": [started["content_block"]]}
    with pytest.raises(ValueError, match="'input' is not an object"):
        MESSAGES.final_texts(answer)


def test_every_other_string_is_judged_once_on_the_other_channel() -> None:
    reader = EventReader(MESSAGES)
    first = reader.read(start({"model": "secret-model"}))
    assert first.texts[0][0] == OTHER
    assert "secret-model" in first.texts[0][1]
    assert reader.read(block(0)).kind is Kind.DATA
    odd = reader.read(delta(0, text="x", note="a smuggled note"))
    assert (OTHER, "a smuggled note\n") in odd.texts


def test_event_types_are_not_judged_text() -> None:
    """``type`` is checked against the event name, so it is no free text (and
    ``message_stop`` after ``message_delta`` is not text after the end)."""
    assert read_all(start(), message_delta(), MESSAGE_STOP)[-1] is Kind.DATA
    assert MESSAGES.parse(MESSAGE_STOP).complete


def test_a_ping_carries_nothing_to_judge_and_an_odd_ping_is_judged() -> None:
    ping = MESSAGES.parse(ev("ping", {"type": "ping"}))
    assert (ping.kind, ping.texts, ping.rest, ping.end) == (Kind.DATA, [], [], False)
    odd = MESSAGES.parse(ev("ping", {"type": "ping", "say": "hello there"}))
    assert (odd.kind, odd.rest) == (Kind.DATA, ["hello there"])


def test_error_events_end_the_stream_with_their_text_judged() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "secret"}}
    p = MESSAGES.parse(ev("error", error))
    assert p.kind is Kind.ERROR
    assert p.end
    assert p.texts[0][0][0] == ERROR_INDEX
    assert "secret" in p.texts[0][1]


def test_tool_input_is_judged_unescaped() -> None:
    reader = EventReader(MESSAGES)
    for e in (start(), block(0, "tool_use")):
        reader.read(e)
    e = delta(0, "input_json_delta", partial_json='{"q": "project\\u0020falcon"}')
    p = reader.read(e)
    assert p.texts == [((0, "tool_arguments", 0), '{"q": "project falcon"}')]
    assert e.escaped


# -- the protocol's order ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "last"),
    [
        ([ev(None, {"type": "message_start"})], Kind.OPAQUE),  # no event name
        ([ev("message_start", {"type": "content_block_delta"})], Kind.OPAQUE),
        ([ev("content_block_delta", {"type": "message_start"})], Kind.OPAQUE),
        ([ev("future_event", {"type": "future_event"})], Kind.OPAQUE),
        ([block(0)], Kind.OPAQUE),  # before message_start
        ([start(), start()], Kind.OPAQUE),
        ([start({"content": [{"type": "text", "text": "hi"}]})], Kind.OPAQUE),
        ([start(), delta(0)], Kind.OPAQUE),  # a block never started
        ([start(), block(1)], Kind.OPAQUE),  # index 0 skipped
        ([start(), block(0), block(0)], Kind.OPAQUE),  # index reused
        ([start(), block(0), stop(0), delta(0)], Kind.LATE),
        ([start(), block(0), stop(0), stop(0)], Kind.LATE),
        ([start(), block(0), delta(0, "thinking_delta")], Kind.OPAQUE),
        ([start(), block(0, "thinking"), delta(0)], Kind.OPAQUE),
        ([start(), block(0), delta(0, "citations_delta", citation={})], Kind.OPAQUE),
        ([start(), block(0, "server_tool_use")], Kind.OPAQUE),
        ([start(), message_delta(), block(0)], Kind.LATE),
        ([start(), message_delta(), message_delta()], Kind.LATE),
        (
            [start(), ev("content_block_start", {"type": "content_block_start", "index": True})],
            Kind.OPAQUE,
        ),
        ([start(), ev("message_delta", {"type": "message_delta", "delta": "x"})], Kind.OPAQUE),
        (
            [start(), ev("content_block_delta", b'{"type":"content_block_delta","type":"x"}')],
            Kind.OPAQUE,
        ),
    ],
    ids=[
        "no-name",
        "type-not-name",
        "name-not-type",
        "unknown-name",
        "before-start",
        "second-start",
        "start-with-content",
        "never-started",
        "skipped-index",
        "reused-index",
        "delta-after-stop",
        "stop-twice",
        "thinking-delta-in-text",
        "text-delta-in-thinking",
        "unknown-delta",
        "unknown-block",
        "block-after-message-delta",
        "message-delta-twice",
        "bool-index",
        "delta-not-object",
        "duplicate-keys",
    ],
)
def test_a_stream_out_of_order_is_not_read(events: list[Event], last: Kind) -> None:
    kinds = read_all(*events)
    assert kinds[-1] is last
    assert all(k is Kind.DATA for k in kinds[:-1])


def test_blocks_may_overlap_as_llama_cpp_sends_them() -> None:
    """llama.cpp keeps the thinking block open while the text block streams."""
    events = [start(), block(0, "thinking"), delta(0, "thinking_delta"), block(1), delta(1)]
    events += [delta(0, "signature_delta"), stop(0), stop(1), message_delta(), MESSAGE_STOP]
    assert set(read_all(*events)) == {Kind.DATA}


def test_order_is_per_stream() -> None:
    one, two = MessageOrder(MESSAGES), MessageOrder(MESSAGES)
    assert one.read(start()).kind is Kind.DATA
    assert two.read(start()).kind is Kind.DATA


# -- framing and masks ------------------------------------------------------------------


def test_events_keep_their_bytes_or_are_reframed_with_their_name() -> None:
    plain = delta(0)
    assert MESSAGES.client_form(plain) is plain
    (odd,) = Decoder().feed(b"id: 7\r\nevent: content_block_stop\r\n: hi\r\ndata: {}\r\n\r\n")
    out = MESSAGES.client_form(odd)
    assert out.raw == b"event: content_block_stop\ndata: {}\n\n"
    assert MESSAGES.client_form(Event(b": keep-alive\n\n")).raw == b": keep-alive\n\n"
    assert MESSAGES.client_form(Event(b": secret words\n\n")).raw == b":\n\n"


def test_a_mask_rewrites_the_delta_or_the_block_start() -> None:
    out = MESSAGES.rewrite(delta(2, text="mail me@x.io"), (2, "content", 0), "mail [EMAIL]")
    assert out.raw.startswith(b"event: content_block_delta\ndata: ")
    assert json.loads(out.data or b"")["delta"] == {"type": "text_delta", "text": "mail [EMAIL]"}
    started = MESSAGES.rewrite(block(0, text="me@x.io"), (0, "content", 0), "[EMAIL]")
    assert json.loads(started.data or b"")["content_block"]["text"] == "[EMAIL]"
    with pytest.raises(CannotRewrite):
        MESSAGES.rewrite(delta(0), OTHER, "x")
    escaped = delta(0, "input_json_delta", partial_json='"\\u0041"')
    escaped.escaped = True
    with pytest.raises(CannotRewrite):
        MESSAGES.rewrite(escaped, (0, "tool_arguments", 0), "x")


# -- events railproxy authors -----------------------------------------------------------


BLOCKED = Blocked("banned", "found it")


def test_the_abort_is_an_error_event() -> None:
    out = MESSAGES.abort(BLOCKED, "error", "", MessagesEnvelope())
    assert out == (
        b'event: error\ndata: {"type":"error","error":{"type":"guardrails_violation",'
        b'"message":"Blocked by banned rails."}}\n\n'
    )


def names_and_data(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, json.loads(e.data or b"")) for e in Decoder().feed(raw)]


def test_content_filter_before_anything_was_sent_is_a_whole_refused_message() -> None:
    env = MessagesEnvelope.of_request("r1", {"model": "m"})
    out = names_and_data(MESSAGES.abort(BLOCKED, "content_filter", "Sorry.", env))
    assert [n for n, _ in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert out[0][1]["message"]["id"] == "msg_r1"
    assert out[2][1]["delta"] == {"type": "text_delta", "text": "Sorry."}
    assert out[4][1]["delta"]["stop_reason"] == "refusal"


def test_content_filter_closes_what_the_client_has_open() -> None:
    env = MessagesEnvelope.of_request("r1", {"model": "m"})
    env.released([start(), block(0, "thinking"), stop(0), block(1), delta(1), block(2, "tool_use")])
    out = names_and_data(MESSAGES.abort(BLOCKED, "content_filter", "Sorry.", env, " "))
    assert [(n, d.get("index")) for n, d in out] == [
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert out[0][1]["delta"]["text"] == " Sorry."


def test_stream_errors_are_anthropic_error_events_with_no_done() -> None:
    out = names_and_data(MESSAGES.stream_error("gone", "upstream_eof"))
    assert out == [("error", {"type": "error", "error": {"type": "api_error", "message": "gone"}})]
    assert MESSAGES.done() == b""


# -- whole answers ------------------------------------------------------------------------


WHOLE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": "plan", "signature": "sig"},
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "Paris"}},
    ],
    "model": "m",
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 3, "output_tokens": 5},
}


def test_a_whole_answer_is_judged_block_by_block() -> None:
    texts = MESSAGES.final_texts(json.loads(json.dumps(WHOLE)))
    assert texts[:4] == [
        ((0, "reasoning", 0), "plan"),
        ((1, "content", 0), "Hello"),
        ((2, "tool_names", 0), "f"),
        ((2, "tool_arguments", 0), '{"q": "Paris"}'),
    ]
    assert texts[4][0] == OTHER
    assert "sig" in texts[4][1]
    body = json.loads(json.dumps(WHOLE))
    MESSAGES.set_final_text(body, (1, "content", 0), "[X]")
    MESSAGES.set_final_text(body, (2, "tool_arguments", 0), '{"q": "[CITY]"}')
    assert body["content"][1]["text"] == "[X]"
    assert body["content"][2]["input"] == {"q": "[CITY]"}
    with pytest.raises(CannotRewrite):
        MESSAGES.set_final_text(body, (2, "tool_arguments", 0), '{"q": [CITY')
    assert MESSAGES.usage(Event(b"", json.dumps(WHOLE).encode())) == (3, 5)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"type": "error"},
        {"type": "message", "content": "Hello"},
        {"type": "message", "content": [{"type": "web_search_tool_result", "content": []}]},
        {"type": "message", "content": [{"type": "text", "text": 7}]},
    ],
)
def test_a_whole_answer_of_another_shape_is_unreadable(body: Any) -> None:
    with pytest.raises(ValueError, match=r"not|unknown"):
        MESSAGES.final_texts(body)


# -- the request ----------------------------------------------------------------------------


def request(**extra: Any) -> dict[str, Any]:
    tool_result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": "72F"}, {"type": "image", "source": {}}],
    }
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "call it", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"c": "P"}},
            ],
        },
        {"role": "user", "content": [tool_result, {"type": "text", "text": "and?"}]},
    ]
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    return {"model": "m", "max_tokens": 9, "system": system, "messages": messages, **extra}


def test_the_request_is_read_as_chat_messages() -> None:
    got = [
        (m["role"], [p["text"] for p in m["content"]]) for m in MESSAGES.input_messages(request())
    ]
    assert got == [
        ("system", ["Be brief."]),
        ("user", ["weather?"]),
        ("tool", ["72F"]),
        ("user", ["and?"]),
    ]
    assert MESSAGES.last_user_text(request()) == "and?"
    definitions = MESSAGES.input_definitions(request(tools=[{"name": "get_weather"}]))
    assert definitions[0] == "name\nget_weather"
    assert any("call it" in d for d in definitions)
    assert any("P" in d for d in definitions)
    assert not any(line == "s" for d in definitions for line in d.split("\n"))


def test_masks_go_back_into_the_strings_they_came_from() -> None:
    body = request()
    MESSAGES.apply_input_changes(
        body,
        [
            (0, [{"type": "text", "text": "[SYS]"}]),
            (1, "[Q]"),
            (2, [{"type": "text", "text": "[T]"}]),
        ],
    )
    assert body["system"] == [
        {"type": "text", "text": "[SYS]", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][0]["content"] == "[Q]"
    result = body["messages"][2]["content"][0]["content"]
    assert result == [{"type": "text", "text": "[T]"}, {"type": "image", "source": {}}]


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (7, "messages[0].content"),
        ([{"type": "search_result", "content": []}], "messages[0].content[0]"),
        ([{"type": "text", "text": ["x"]}], "messages[0].content[0]"),
        ([{"type": "tool_result", "content": 5}], "messages[0].content[0].content"),
        (
            [{"type": "tool_result", "content": [{"type": "search_result"}]}],
            "messages[0].content[0].content[0]",
        ),
        (
            [{"type": "document", "source": {"type": "base64", "data": "JVBERi0="}}],
            "messages[0].content[0].source",
        ),
        ("x", None),
        ([{"type": "image", "source": {"type": "base64", "data": "iVBO"}}], None),
        ([{"type": "document", "source": {"type": "text", "data": "doc"}}], None),
    ],
)
def test_input_that_cannot_be_read_as_text_is_refused(content: Any, where: str | None) -> None:
    body = {"messages": [{"role": "user", "content": content}]}
    if where is None:
        MESSAGES.refuse_unjudged_input(body, False)
        return
    with pytest.raises(BadRequest) as e:
        MESSAGES.refuse_unjudged_input(body, False)
    assert (e.value.param, e.value.code) == (where, "input_not_judged")


def test_a_text_document_is_judged_and_masked_in_place() -> None:
    doc = {"type": "document", "title": "T", "source": {"type": "text", "data": "secret"}}
    body = {"messages": [{"role": "user", "content": [doc]}]}
    assert [p["text"] for p in MESSAGES.input_messages(body)[0]["content"]] == ["T", "secret"]
    MESSAGES.apply_input_changes(body, [(0, [{"text": "T"}, {"text": "[X]"}])])
    assert doc["source"] == {"type": "text", "data": "[X]"}


# -- the key, upstream ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "api_key", "keep", "want"),
    [
        ({"x-api-key": "client"}, None, True, ("Bearer client", "client")),
        ({"Authorization": "Bearer client"}, None, True, ("Bearer client", "client")),
        ({"x-api-key": "client"}, "up", True, ("Bearer up", "up")),
        ({"x-api-key": "ours", "Authorization": "Bearer ours"}, "up", False, ("Bearer up", "up")),
        ({"x-api-key": "ours"}, None, False, (None, None)),
    ],
)
def test_the_key_goes_upstream_in_both_forms(
    incoming: dict[str, str], api_key: str | None, keep: bool, want: tuple[Any, Any]
) -> None:
    headers = {"anthropic-version": "2023-06-01", **incoming}
    out = request_headers(headers, api_key, "rid", keep, x_api_key=True)
    assert (out.get("Authorization"), out.get("x-api-key")) == want
    assert out["anthropic-version"] == "2023-06-01"
    assert len(out.getall("x-api-key", [])) <= 1


def test_chat_never_forwards_a_client_key_the_upstream_key_replaces() -> None:
    out = request_headers({"x-api-key": "client"}, "up", "rid")
    assert out["Authorization"] == "Bearer up"
    assert "x-api-key" not in out


def test_the_envelope_reads_released_events_as_the_client_does() -> None:
    env = MessagesEnvelope()
    nan = b'{"type":"content_block_start","index":0,'
    nan += b'"content_block":{"type":"text","text":""},"x":NaN}'
    env.released([start(), ev("content_block_start", nan)])
    assert (env.started, env.blocks, env.open) == (True, ["text"], {0})
