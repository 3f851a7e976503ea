"""The Responses API class on its own (sans-IO): the captured vLLM stream read per channel,
repeats checked against the deltas, masks written into every repeat, input items, whole
answers and the events railproxy writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fakes.responses_samples import STREAM, WHOLE
from proxy.errors import BadRequest
from proxy.routes import PassRoute, is_stored_response
from proxy.wire.dialect import Envelope, Kind
from proxy.wire.reader import EventReader
from proxy.wire.responses import RESPONSES, Responses
from proxy.wire.responses_state import KEEP
from proxy.wire.sse import Decoder, Event
from rails.base import Blocked
from rails.stream import CannotRewrite

CONTENT = (0, "content", 0)
TEXT = " faho dodo dodo dodo faho horu kato mito"


def events(raw: bytes = STREAM) -> list[Event]:
    return Decoder().feed(raw)


def sse(name: str, **data: Any) -> Event:
    obj = {"type": name, **data}
    return Decoder().feed(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())[0]


def data(ev: Event) -> dict[str, Any]:
    assert ev.data is not None
    obj: dict[str, Any] = json.loads(ev.data)
    return obj


def test_captured_stream_reads_per_channel() -> None:
    reader = EventReader(RESPONSES.for_request({}))
    parsed = [reader.read(ev) for ev in events()]
    assert [p.kind for p in parsed] == [Kind.DATA] * 10
    assert "".join(t for p in parsed for k, t in p.texts if k == CONTENT) == TEXT
    assert parsed[6].ends == [0]  # output_text.done closes its part
    assert parsed[8].ends == [0]  # output_item.done its item
    assert parsed[9].end
    assert parsed[9].complete
    repeats = parsed[6:]
    assert not any(k == CONTENT for p in repeats for k, _ in p.texts)  # repeats add nothing


def test_the_event_name_and_the_type_must_agree() -> None:
    ev = sse("response.output_text.delta", sequence_number=1, output_index=0, content_index=0)
    ev.event = "response.in_progress"
    assert RESPONSES.for_request({}).parse(ev).kind is Kind.OPAQUE


def test_sequence_numbers_must_increase() -> None:
    d = RESPONSES.for_request({})
    ev = sse("response.in_progress", sequence_number=3, response={"id": "r"})
    assert d.parse(ev).kind is Kind.DATA
    assert d.parse(ev).kind is Kind.OPAQUE


@pytest.mark.parametrize(
    ("repeat", "kind", "new"),
    [(" a b", Kind.DATA, ""), (" a b c", Kind.DATA, " c"), (" a x", Kind.OPAQUE, None)],
)
def test_a_repeat_equals_or_continues_the_deltas(repeat: str, kind: Kind, new: str | None) -> None:
    d = RESPONSES.for_request({})
    at = {"output_index": 0, "content_index": 0, "item_id": "m"}
    d.parse(sse("response.output_text.delta", sequence_number=1, delta=" a b", **at))
    p = d.parse(sse("response.output_text.done", sequence_number=2, text=repeat, **at))
    assert p.kind is kind
    if new is not None:
        assert [t for k, t in p.texts if k == CONTENT] == ([new] if new else [])


def test_text_after_its_item_is_late() -> None:
    d = RESPONSES.for_request({})
    d.parse(sse("response.output_item.done", sequence_number=1, output_index=0, item={}))
    late = sse(
        "response.output_text.delta",
        sequence_number=2,
        delta="x",
        output_index=0,
        content_index=3,
        item_id="m",
    )
    assert d.parse(late).kind is Kind.LATE


def test_a_mask_rewrites_the_delta_and_every_repeat() -> None:
    d = RESPONSES.for_request({})
    evs = events()
    for ev in evs:
        d.parse(ev)
    masked = d.rewrite(evs[5], CONTENT, " [EMAIL]")
    assert data(masked)["delta"] == " [EMAIL]"
    shown = " faho [EMAIL]"
    assert data(evs[6])["text"] == shown
    assert data(evs[7])["part"]["text"] == shown
    assert data(evs[8])["item"]["content"][0]["text"] == shown
    assert data(evs[9])["response"]["output"][0]["content"][0]["text"] == shown
    assert evs[9].raw.startswith(b"event: response.completed\ndata: ")


def test_whole_answer_texts_and_mask() -> None:
    body = json.loads(WHOLE)
    texts = RESPONSES.final_texts(body)
    assert (CONTENT, TEXT) in texts
    RESPONSES.set_final_text(body, CONTENT, "masked")
    assert body["output"][0]["content"][0]["text"] == "masked"
    with pytest.raises(ValueError, match="not a list"):
        RESPONSES.final_texts({"output": "nope"})


def test_input_items_as_messages_and_masks_in_place() -> None:
    body: dict[str, Any] = {
        "instructions": "sys",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "u"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "out"},
            {"type": "item_reference", "id": "x"},
        ],
    }
    messages = RESPONSES.input_messages(body)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    RESPONSES.apply_input_changes(
        body, [(0, "S"), (1, [{"type": "input_text", "text": "U"}]), (3, "OUT")]
    )
    assert body["instructions"] == "S"
    assert body["input"][0]["content"][0] == {"type": "input_text", "text": "U"}
    assert body["input"][2]["output"] == "OUT"
    RESPONSES.refuse_unjudged_input({**body, "input": body["input"][:3]}, False)  # readable


@pytest.mark.parametrize(
    "item",
    [
        {"type": "computer_call_output", "call_id": "c", "output": {}},
        {"role": "user", "content": [{"type": "input_text", "text": 5}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
    ],
)
def test_unreadable_input_is_refused(item: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as e:
        RESPONSES.refuse_unjudged_input({"input": [item]}, False)
    assert e.value.code == "input_not_judged"


@pytest.mark.parametrize(
    ("stored", "param"),
    [
        ({"prompt": {"id": "p"}}, "prompt"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ],
)
def test_stored_input_is_refused(stored: dict[str, Any], param: str) -> None:
    """Stored turns reach the model without these input rails: the client sends them
    inline instead."""
    with pytest.raises(BadRequest) as e:
        RESPONSES.refuse_unjudged_input({"input": "hi", **stored}, False)
    assert (e.value.code, e.value.param) == ("input_not_judged", param)
    assert "inline" in str(e.value)


@pytest.mark.parametrize(
    ("part", "code"),
    [
        ({"type": "input_file", "file_data": "data:application/pdf;base64,JVBE"}, "input"),
        ({"type": "input_file", "file_id": "file-1"}, "input"),
        ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input"),
        ({"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}, "input"),
        ({"type": "input_text", "text": "a", "uuid": "u", "audio_url": "x"}, "input"),
        ({"type": "input_text", "text": "a", "refusal": 5}, "input"),
        ({"type": "image_embeds", "image_embeds": "AAAA"}, "token_ids"),
    ],
)
def test_a_part_input_rails_cannot_read_is_refused(part: dict[str, Any], code: str) -> None:
    for item in (
        {"role": "user", "content": [{"type": "input_text", "text": "see"}, part]},
        {"type": "function_call_output", "call_id": "c", "output": [part]},
    ):
        with pytest.raises(BadRequest) as e:
            RESPONSES.refuse_unjudged_input({"input": [item]}, False)
        assert e.value.code == f"{code}_not_judged"
        assert str(e.value.param).startswith("input[0].")


def test_text_image_and_reasoning_parts_are_read() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"}
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, image]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "b", "annotations": []}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "r"}]},
    ]
    RESPONSES.refuse_unjudged_input({"input": items}, False)
    embeds = {"type": "image_embeds", "image_embeds": "AAAA"}
    RESPONSES.refuse_unjudged_input({"input": [{"role": "user", "content": [embeds]}]}, True)


def test_the_block_is_an_error_event_after_the_last_sequence_number() -> None:
    d = RESPONSES.for_request({})
    for ev in events()[:5]:
        d.parse(ev)
    out = d.abort(Blocked("banned", "x"), "error", "", Envelope())
    name, _, payload = out.partition(b"\ndata: ")
    assert name == b"event: error"
    obj = json.loads(payload)
    assert obj["type"] == "error"
    assert obj["sequence_number"] == 5
    assert obj["error"]["code"] == "content_blocked"


def test_content_filter_is_response_incomplete_with_the_streamed_id() -> None:
    d = RESPONSES.for_request({})
    for ev in events()[:5]:
        d.parse(ev)
    out = Decoder().feed(d.abort(Blocked("banned", "x"), "content_filter", "No.", Envelope()))
    last = data(out[-1])
    assert [e.event for e in out][-1] == "response.incomplete"
    assert last["response"]["id"] == "resp_825e7548e1cf13e0"
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert [data(e)["sequence_number"] for e in out] == list(range(5, 5 + len(out)))
    assert isinstance(Responses().for_request({}), Responses)
    assert RESPONSES.for_request({}) is not RESPONSES


@pytest.mark.parametrize(
    "route",
    [
        "GET /v1/responses/{id}",
        "GET /v1/responses/{id}/input_items",
        "POST /v1/responses/{x}/cancel",
    ],
)
def test_stored_responses_cannot_be_passed_through(route: str) -> None:
    with pytest.raises(ValueError, match="stored responses"):
        PassRoute.parse(route)
    assert is_stored_response(route.split(" ")[1].replace("{id}", "resp_1").replace("{x}", "r"))
    assert not is_stored_response("/v1/responses")


def test_a_long_stream_keeps_bounded_state() -> None:
    """The channel keeps a length and a digest, not the text; a mask can still find the
    pieces of the last KEEP events (older ones are long released: it would block)."""
    d = RESPONSES.for_request({})
    at = {"output_index": 0, "content_index": 0, "item_id": "m"}
    n = 3 * KEEP
    evs = [sse("response.output_text.delta", sequence_number=i, delta=" w", **at) for i in range(n)]
    for ev in evs:
        d.parse(ev)
    chan = d._chans[CONTENT]
    assert len(chan.seqs) <= 2 * KEEP
    assert chan.size == 2 * n
    with pytest.raises(CannotRewrite):
        d.rewrite(evs[0], CONTENT, " x")
    d.rewrite(evs[-1], CONTENT, " [X]")
    done = sse("response.output_text.done", sequence_number=n, text=" w" * n, **at)
    assert d.parse(done).kind is Kind.DATA
    assert data(done)["text"] == " w" * (n - 1) + " [X]"
    wrong = sse("response.output_text.done", sequence_number=n + 1, text=" v" * n, **at)
    assert d.parse(wrong).kind is Kind.OPAQUE
