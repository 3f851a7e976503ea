"""Property tests of the SSE decoder (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.wire.sse import Decoder, Event, SSEError

FIELD = st.sampled_from([b"data", b"event", b"id", b"retry", b""])
VALUE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
LINE = st.tuples(FIELD, st.booleans(), VALUE).map(lambda t: t[0] + (b": " if t[1] else b":") + t[2])
EOL = st.sampled_from([b"\n", b"\r\n", b"\r"])
EVENT = st.tuples(st.lists(LINE, min_size=1, max_size=4), EOL).map(
    lambda t: t[1].join(t[0]) + t[1] + t[1]
)
STREAM = st.lists(EVENT, max_size=8).map(b"".join)


def decode(stream: bytes, cuts: list[int]) -> list[Event]:
    d = Decoder()
    out: list[Event] = []
    prev = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += d.feed(stream[prev:cut])
        prev = cut
    return out + d.flush()


@settings(max_examples=300, deadline=None)
@given(STREAM, st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_any_split_of_a_valid_stream_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    whole = decode(stream, [])
    assert decode(stream, cuts) == whole
    assert b"".join(e.raw for e in whole) == stream


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=600), max_size=6))
def test_arbitrary_bytes_raise_nothing_but_the_decoders_own_error(
    data: bytes, cuts: list[int]
) -> None:
    d = Decoder(max_event_bytes=1024)
    try:
        events = decode(data, cuts)
    except SSEError:
        return
    for ev in events:
        assert isinstance(ev.raw, bytes)
    assert d.pending == 0
