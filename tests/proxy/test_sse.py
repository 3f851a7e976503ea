"""The SSE decoder: exact raw bytes, every line ending, every split offset."""

from __future__ import annotations

import pytest

from proxy.wire.sse import Decoder, Event, EventTooLarge, comment, encode

VLLM = (
    b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"caf\xc3\xa9"}}]}\n\n'
    b"data: [DONE]\n\n"
)
TGI = b':\n\ndata:{"token":{"text":"a"}}\n\ndata:[DONE]\n\n'
MULTI = b"event: update\nid: 7\ndata: line1\ndata: line2\n: note\n\n"


def decode_all(stream: bytes, cuts: list[int]) -> list[Event]:
    d = Decoder()
    events: list[Event] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        events += d.feed(stream[prev:cut])
        prev = cut
    return events + d.flush()


@pytest.mark.parametrize(
    "stream",
    [
        VLLM,
        TGI,
        MULTI,
        VLLM.replace(b"\n", b"\r\n"),
        VLLM.replace(b"\n", b"\r"),
        TGI.replace(b"\n", b"\r\n"),
    ],
)
def test_every_split_offset_gives_the_same_events(stream: bytes) -> None:
    whole = decode_all(stream, [])
    assert b"".join(e.raw for e in whole) == stream
    for i in range(len(stream) + 1):
        assert decode_all(stream, [i]) == whole, f"split at {i}"
    for i in range(0, len(stream), 7):
        assert decode_all(stream, list(range(i, len(stream), 3))) == whole


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: x\n\n", [(b"x", None, None)]),
        (b"data:x\n\n", [(b"x", None, None)]),
        (b"data:  x\n\n", [(b" x", None, None)]),
        (b"data\n\n", [(b"", None, None)]),
        (b"data: a\ndata: b\n\n", [(b"a\nb", None, None)]),
        (b"event: e\ndata: a\nid: 3\n\n", [(b"a", "e", "3")]),
        (b":\n\n", [(None, None, None)]),
        (b": keep-alive\n\n", [(None, None, None)]),
        (
            b"data: a\r\n\r\ndata: b\r\rdata: c\n\n",
            [(b"a", None, None), (b"b", None, None), (b"c", None, None)],
        ),
        (b"\xef\xbb\xbfdata: bom\n\n", [(b"bom", None, None)]),
    ],
)
def test_fields(stream: bytes, expected: list[tuple[bytes | None, str | None, str | None]]) -> None:
    events = decode_all(stream, [])
    assert [(e.data, e.event, e.id) for e in events] == expected


def test_raw_bytes_are_kept_exactly_including_invalid_utf8() -> None:
    stream = b"data: \xff\xfe not utf-8\n\n"
    (ev,) = Decoder().feed(stream)
    assert ev.raw == stream
    assert ev.data == b"\xff\xfe not utf-8"


def test_comment_flag() -> None:
    (c,) = Decoder().feed(b":\n\n")
    (d,) = Decoder().feed(b"data: 1\n\n")
    assert c.is_comment
    assert not d.is_comment


def test_trailing_cr_waits_for_the_next_byte() -> None:
    d = Decoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\n") == []
    assert [e.data for e in d.feed(b"\r\n")] == [b"a"]


def test_flush_completes_an_event_missing_its_blank_line() -> None:
    d = Decoder()
    assert d.feed(b"data: [DONE]\n") == []
    (ev,) = d.flush()
    assert ev.data == b"[DONE]"
    assert ev.raw == b"data: [DONE]\n\n"


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r"])
def test_flush_of_nothing_is_nothing(tail: bytes) -> None:
    d = Decoder()
    d.feed(b"data: a\n\n" + tail)
    assert d.flush() == []


def test_event_size_cap() -> None:
    d = Decoder(max_event_bytes=1024)
    d.feed(b"data: " + b"x" * 1000)
    with pytest.raises(EventTooLarge):
        d.feed(b"x" * 100)


def test_pending_counts_incomplete_bytes() -> None:
    d = Decoder()
    d.feed(b"data: 1\n\ndata: 2")
    assert d.pending == len(b"data: 2")


def test_encoders() -> None:
    assert encode(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode(b"x", event="error") == b"event: error\ndata: x\n\n"
    assert comment("keep-alive") == b": keep-alive\n\n"
    assert comment() == b":\n\n"
