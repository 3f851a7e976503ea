"""bench.routes' fake Responses and Messages API streams are ones railproxy reads, the
load generator reads them as the same text as the chat stream, and ``--quick`` measures
all three routes through a real railproxy without an error."""

from __future__ import annotations

import orjson
import pytest

from bench.load import _COMPLETED, StreamError, _messages_content, _responses_content
from bench.routes import ROUTES, Row, main, table
from bench.text import expected_text, request_body
from bench.upstream import render_messages, render_responses
from fakes.messages_samples import STREAM
from proxy.wire.dialect import Kind
from proxy.wire.messages import MESSAGES
from proxy.wire.reader import EventReader
from proxy.wire.responses import RESPONSES
from proxy.wire.sse import Decoder, Event


def test_the_fake_stream_is_read_as_its_text() -> None:
    r = render_responses("words", 30)
    events = Decoder().feed(r.head + b"".join(r.deltas) + r.finish)
    reader = EventReader(RESPONSES.for_request({}))
    parsed = [reader.read(ev) for ev in events]
    assert all(p.kind is Kind.DATA for p in parsed)
    assert parsed[-1].complete
    text = "".join(t for p in parsed for k, t in p.texts if k[1] == "content")
    assert text == expected_text("words", 30)
    seen = [_responses_content(orjson.loads(ev.data or b"")) for ev in events]
    assert "".join(s for s in seen if s and s is not _COMPLETED) == text
    assert seen[-1] is _COMPLETED


def test_the_fake_messages_stream_is_vllms_and_read_as_its_text() -> None:
    r = render_messages("words", 30)
    assert len(r.deltas) == 30
    events = Decoder().feed(r.head + b"".join(r.deltas) + r.finish)
    vllm = Decoder().feed(STREAM)
    # vLLM's events, one content_block_delta per delta: the same names, keys and types
    expected = vllm[:2] + vllm[2:3] * 30 + vllm[-3:]
    assert [_shape(ev) for ev in events] == [_shape(ev) for ev in expected]
    reader = EventReader(MESSAGES.for_request({}))
    parsed = [reader.read(ev) for ev in events]
    assert all(p.kind is Kind.DATA for p in parsed)
    assert parsed[-1].complete
    text = "".join(t for p in parsed for k, t in p.texts if k[1] == "content")
    assert text == expected_text("words", 30)
    seen = [_messages_content(orjson.loads(ev.data or b"")) for ev in events]
    assert "".join(s for s in seen if s and s is not _COMPLETED) == text
    assert seen[-1] is _COMPLETED
    assert [s is _COMPLETED for s in seen].count(True) == 1


def _shape(ev: Event) -> tuple[str | None, object]:
    """An event's name and its JSON with every leaf replaced by its type, keys in order."""

    def shape(v: object) -> object:
        if isinstance(v, dict):
            return [(k, shape(x)) for k, x in v.items()]
        return [shape(x) for x in v] if isinstance(v, list) else type(v).__name__

    return ev.event, shape(orjson.loads(ev.data or b""))


def test_the_load_generator_counts_a_messages_error_event() -> None:
    blocked = {"type": "error", "error": {"type": "guardrails_violation", "message": "x"}}
    with pytest.raises(StreamError, match="error_event"):
        _messages_content(blocked)
    thinking = {"type": "content_block_delta", "delta": {"type": "thinking_delta"}, "index": 0}
    assert _messages_content(thinking) is None


def test_requests_and_table() -> None:
    assert request_body(8, 0.0, api="responses")["input"]
    assert "messages" in request_body(8, 0.0)
    assert request_body(8, 0.0, api="messages")["messages"][0]["role"] == "user"
    rows = {
        "chat": Row("chat", [20.0, 30.0], [1.0, 1.0]),
        "responses": Row("responses", [22.0, 30.0], [1.5, 1.5]),
        "messages": Row("messages", [25.0, 30.0], [1.2, 1.4], errors=2),
    }
    out = table(rows, 2)
    assert "| `/v1/responses` | 26.0 | 1.05 (goal ≤ 1.15) | 1.10 / 1.00 | 1.50 | 0 |" in out
    assert "| `/v1/messages` | 27.5 | 1.12 (goal ≤ 1.15) | 1.25 / 1.00 | 1.30 | 2 |" in out


@pytest.mark.timeout(120)
def test_quick_measures_every_route_without_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| `/v1/")]
    assert [r[0] for r in rows] == [f"| `{path}`" for path in ROUTES.values()]
    for r in rows:
        assert float(r[1]) > 0  # some deltas were relayed, at some CPU cost
        assert r[-1] == "0 |", r  # every stream's text and end checked
