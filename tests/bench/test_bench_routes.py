"""bench.routes' fake Responses API stream is one railproxy reads, and the load generator
reads it as the same text as the chat stream."""

from __future__ import annotations

import orjson

from bench.load import _COMPLETED, _responses_content
from bench.routes import Row, table
from bench.text import expected_text, request_body
from bench.upstream import render_responses
from proxy.wire.dialect import Kind
from proxy.wire.reader import EventReader
from proxy.wire.responses import RESPONSES
from proxy.wire.sse import Decoder


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


def test_requests_and_table() -> None:
    assert request_body(8, 0.0, api="responses")["input"]
    assert "messages" in request_body(8, 0.0)
    rows = {"chat": Row("chat", [20.0], [1.0]), "responses": Row("responses", [22.0], [1.5])}
    out = table(rows, 1)
    assert "| `/v1/responses` | 22.0 | 1.10 (goal ≤ 1.15) | 1.50 | 0 |" in out
