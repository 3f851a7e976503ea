"""The relay's sans-IO core (``proxy.flow.relay_core``), driven with bytes alone: no
sockets, no tasks. What a pass-through stream writes, what a guarded stream puts before
the rails, and how each ends."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.flow.relay_core import RelayCore
from proxy.observe.metrics import Metrics
from proxy.observe.record import RequestRecord
from proxy.wire.chat import CHAT
from proxy.wire.sse import Event
from rails.base import ChannelKey

DONE = b"data: [DONE]\n\n"


def chunk(
    content: str | None = None, finish: str | None = None, index: int = 0, **extra: Any
) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    obj = {"id": "x", "object": "chat.completion.chunk", "created": 7, "choices": [choice], **extra}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def usage_chunk() -> bytes:
    obj = {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class Sink:
    """Records what the core puts before the rails."""

    def __init__(self) -> None:
        self.pushed: list[tuple[Event, list[tuple[ChannelKey, str]], bool, bool]] = []

    def push(
        self,
        item: Event,
        texts: Sequence[tuple[ChannelKey, str]] = (),
        *,
        ends: Sequence[int] = (),
        end: bool = False,
        bypass: bool = False,
    ) -> None:
        self.pushed.append((item, list(texts), end, bypass))

    def texts(self) -> list[str]:
        return [t for _, texts, _, _ in self.pushed for key, t in texts if key[0] >= 0]


def record() -> RequestRecord:
    return RequestRecord("/v1/chat/completions", time.monotonic(), Metrics())


def core(strip_usage: bool = False, max_event_bytes: int = 1 << 20) -> RelayCore:
    return RelayCore(CHAT, record(), max_event_bytes, strip_usage=strip_usage)


def passthrough(c: RelayCore, reads: list[bytes]) -> tuple[bytes, int]:
    out, texts = b"", 0
    for read in reads:
        data, n = c.passthrough(c.feed(read))
        out, texts = out + data, texts + n
        if c.ending.done:
            break
    else:
        data, n = c.passthrough(c.flush())
        out, texts = out + data, texts + n
    return out + c.closing_bytes(), texts


def guarded(c: RelayCore, reads: list[bytes]) -> Sink:
    sink = Sink()
    for read in reads:
        if not c.judge(sink, c.feed(read)):
            return sink
    c.judge(sink, c.flush())
    return sink


# -- pass-through ---------------------------------------------------------------------


def test_passthrough_is_byte_for_byte_whatever_the_reads() -> None:
    stream = chunk("Hel") + b": ping\n\n" + chunk("lo") + chunk(None, "stop") + DONE
    for cut in range(1, len(stream)):
        c = core()
        out, texts = passthrough(c, [stream[:cut], stream[cut:]])
        assert out == stream
        assert texts == 2
        assert c.outcome == "ok"


def test_passthrough_drops_only_the_usage_chunk_railproxy_asked_for() -> None:
    stream = chunk("hi") + chunk(None, "stop") + usage_chunk() + DONE
    c = core(strip_usage=True)
    out, _ = passthrough(c, [stream])
    assert out == chunk("hi") + chunk(None, "stop") + DONE
    assert (c._record.prompt_tokens, c._record.completion_tokens) == (3, 2)
    out, _ = passthrough(core(strip_usage=False), [stream])
    assert out == stream


@pytest.mark.parametrize(
    ("reads", "outcome", "code"),
    [
        ([chunk("hi")], "eof", b"upstream_eof"),
        ([chunk("hi") + b"data: " + b"x" * 200], "too_large", b"event_too_large"),
    ],
)
def test_passthrough_ends_a_cut_stream_with_our_error(
    reads: list[bytes], outcome: str, code: bytes
) -> None:
    c = core(max_event_bytes=100)
    out, _ = passthrough(c, reads)
    assert out.endswith(DONE)
    assert code in out
    assert c.outcome == outcome


def test_a_failure_the_shell_reports_ends_the_stream_first_one_wins() -> None:
    c = core()
    c.feed(chunk("hi"))
    c.fail("shutting down", "server_shutdown")
    c.fail("cut", "upstream_disconnected")
    assert c.stopped
    assert c.feed(chunk("more")) == []
    assert b"server_shutdown" in c.closing_bytes()
    assert c.outcome == "shutdown"


# -- guarded --------------------------------------------------------------------------


def test_guarded_puts_every_text_before_the_rails_and_ends_at_done() -> None:
    stream = chunk("Hel") + b": ping\n\n" + chunk("lo") + chunk(None, "stop") + DONE
    c = core()
    sink = guarded(c, [stream[:10], stream[10:]])
    assert sink.texts() == ["Hel", "lo"]
    bypassed = [ev.raw for ev, _, _, bypass in sink.pushed if bypass]
    assert bypassed == [b":\n\n"]  # a comment's text is not relayed unjudged
    assert sink.pushed[-1][0].raw == DONE
    assert sink.pushed[-1][2]
    assert c.outcome == "ok"
    assert c.closing_bytes() == b""
    assert c.envelope.created == 7
    assert c.envelope.choices == {0}


def test_guarded_marks_text_events_for_accounting() -> None:
    c = core()
    sink = guarded(c, [chunk("a") + chunk(None, "stop") + DONE])
    assert [ev.has_text for ev, _, _, _ in sink.pushed] == [True, False, False]
    assert c._record.upstream_first is not None


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (b"data: {not json}\n\n", b"upstream_unreadable"),
        (b'data: {"choices": [], "choices": []}\n\n', b"upstream_unreadable"),
        (chunk(None, "stop") + chunk("late"), b"upstream_protocol_error"),
    ],
)
def test_guarded_stops_at_what_it_cannot_judge(bad: bytes, code: bytes) -> None:
    c = core()
    sink = guarded(c, [chunk("ok") + bad + chunk("never") + DONE])
    assert "never" not in sink.texts()
    assert "late" not in sink.texts()
    assert code in c.closing_bytes()
    assert c.outcome == "unreadable"


def test_guarded_judges_an_in_band_error_and_reads_nothing_after() -> None:
    err = b'data: {"error": {"message": "model said Falcon", "code": 500}}\n\n'
    c = core()
    sink = guarded(c, [chunk("ok") + err + chunk("never") + DONE])
    errors = [t for _, texts, _, _ in sink.pushed for key, t in texts if key[0] == -1]
    assert len(errors) == 1
    assert "model said Falcon" in errors[0]
    assert "never" not in sink.texts()
    assert c.outcome == "in_band_error"
    assert c.closing_bytes() == DONE  # our end after the upstream's error


def test_guarded_keeps_the_usage_chunk_from_the_client_when_asked() -> None:
    c = core(strip_usage=True)
    sink = guarded(c, [chunk("a") + chunk(None, "stop") + usage_chunk() + DONE])
    assert all(b'"usage"' not in ev.raw for ev, _, _, _ in sink.pushed)
    assert c._record.completion_tokens == 2


# -- the pass-through fast lane: plain reads as bytes ------------------------------------

_PIECES = [
    chunk("Hel"),
    chunk("lo"),
    chunk(""),
    chunk(None, "stop"),
    chunk("two", index=1),
    b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content": "spaced", "reasoning": "both"}}]}\n\n',
    b'data:{"choices":[{"index":0,"delta":{"content":"no space"}}]}\n\n',
    b'data: {"choices":[],"usage":null}\n\n',
    usage_chunk(),
    b'data: {"error":{"message":"boom","code":500}}\n\n',
    b'data: {"object":"error","message":"bad"}\n\n',
    b": ping - 2026-12-04 05:00:00\n\n",
    b"event: x\ndata: y\n\n",
    b'data: {"choices":[{"index":0,"delta":{"content":"crlf"}}]}\r\n\r\n',
    b"\n\n",
    b"data: [DONE]\n\n",
]


def _per_event(c: RelayCore, reads: list[bytes]) -> tuple[bytes, int]:
    return passthrough(c, reads)


def _fast_lane(c: RelayCore, reads: list[bytes]) -> tuple[bytes, int]:
    out, texts = b"", 0
    for read in reads:
        data, n = c.relay_read(read)
        out, texts = out + data, texts + n
        if c.stopped:
            break
    else:
        data, n = c.passthrough(c.flush())
        out, texts = out + data, texts + n
    return out + c.closing_bytes(), texts


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=12),
    st.lists(st.integers(min_value=1, max_value=4000), max_size=6),
    st.booleans(),
)
def test_the_fast_lane_writes_and_counts_what_the_per_event_path_does(
    pieces: list[bytes], cuts: list[int], strip: bool
) -> None:
    """Whatever the events and however the reads split them, ``relay_read`` gives the
    bytes, text count, usage, outcome and closing bytes of ``passthrough(feed())``."""
    stream = b"data: " + b'{"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    stream += b"".join(pieces)
    points = sorted({min(c, len(stream)) for c in cuts})
    spans = zip([0, *points], [*points, len(stream)], strict=True)
    reads = [stream[a:b] for a, b in spans if b > a]
    slow, fast = core(strip_usage=strip), core(strip_usage=strip)
    assert _fast_lane(fast, reads) == _per_event(slow, reads)
    assert fast.outcome == slow.outcome
    assert (fast._record.prompt_tokens, fast._record.completion_tokens) == (
        slow._record.prompt_tokens,
        slow._record.completion_tokens,
    )


def test_the_fast_lane_keeps_the_event_size_cap() -> None:
    c = core(max_event_bytes=64)
    data, _ = c.relay_read(chunk("fine"))
    assert data == chunk("fine")
    assert c.relay_read(b"data: " + b"x" * 100) == (b"", 0)
    assert c.outcome == "too_large"
    assert c.relay_read(chunk("after")) == (b"", 0)
