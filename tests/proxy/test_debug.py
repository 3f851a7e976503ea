"""``proxy.playground.channel``: the debug channel's event encoding, one kind at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.playground.channel import (
    DebugChannel,
    abort_event,
    event,
    report_event,
    window_event,
)
from rails.base import Blocked
from rails.guard import Guard
from rails.reports import Holding, RailCall, WindowReport


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON of one debug event, after checking its exact framing."""
    head, data = raw.split(b"\n", 1)
    assert head == b"event: railproxy"
    assert data.startswith(b"data: ")
    assert data.endswith(b"\n\n")
    assert data.count(b"\n") == 2  # one data line: JSON never holds a raw newline
    obj: dict[str, Any] = json.loads(data[6:])
    return obj


ALLOW = RailCall("banned", "allow", 0.0001234567)
MASK = RailCall("pii", "modify", 0.002)
TIMEOUT = RailCall("judge", "timeout", 2.0)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            WindowReport((0, "content", 0), 0, 0, 8, 0, 31, "allow", (ALLOW,), 0.000321),
            {
                "kind": "window",
                "channel": [0, "content", 0],
                "index": 0,
                "start": 0,
                "end": 8,
                "char_start": 0,
                "chars": 31,
                "verdict": "allow",
                "rails": [{"rail": "banned", "verdict": "allow", "seconds": 0.000123}],
                "seconds": 0.000321,
            },
        ),
        (
            WindowReport((1, "tool_arguments", 2), 3, 24, 30, 90, 7, "modify", (ALLOW, MASK), 0.5),
            {
                "kind": "window",
                "channel": [1, "tool_arguments", 2],
                "index": 3,
                "start": 24,
                "end": 30,
                "char_start": 90,
                "chars": 7,
                "verdict": "modify",
                "rails": [
                    {"rail": "banned", "verdict": "allow", "seconds": 0.000123},
                    {"rail": "pii", "verdict": "modify", "seconds": 0.002},
                ],
                "seconds": 0.5,
            },
        ),
        (
            WindowReport((0, "reasoning", 0), 1, 8, 9, 12, 3, "block", (TIMEOUT,), 2.0000004),
            {
                "kind": "window",
                "channel": [0, "reasoning", 0],
                "index": 1,
                "start": 8,
                "end": 9,
                "char_start": 12,
                "chars": 3,
                "verdict": "block",
                "rails": [{"rail": "judge", "verdict": "timeout", "seconds": 2.0}],
                "seconds": 2.0,
            },
        ),
        (
            WindowReport((0, "content", 0), 0, 0, 1, 0, 1, "allow", (), 0.0),
            {
                "kind": "window",
                "channel": [0, "content", 0],
                "index": 0,
                "start": 0,
                "end": 1,
                "char_start": 0,
                "chars": 1,
                "verdict": "allow",
                "rails": [],
                "seconds": 0.0,
            },
        ),
    ],
)
def test_window_event(report: WindowReport, expected: dict[str, Any]) -> None:
    assert decode(window_event(report)) == expected
    assert report_event(report) == window_event(report)


@pytest.mark.parametrize(("events", "tokens"), [(0, 0), (1, 3), (2048, 9000)])
def test_held_event(events: int, tokens: int) -> None:
    assert decode(report_event(Holding(events, tokens))) == {
        "kind": "held",
        "events": events,
        "tokens": tokens,
    }


@pytest.mark.parametrize(
    ("blocked", "expected"),
    [
        (
            Blocked("banned", "matched blocklisted term 'project falcon'", 24),
            {
                "kind": "abort",
                "rail": "banned",
                "reason": "matched blocklisted term 'project falcon'",
                "channel": [0, "content", 0],
                "offset": 24,
                "released": False,
            },
        ),
        (
            Blocked("judge", "rail timed out", 200, (2, "reasoning", 0), released=True),
            {
                "kind": "abort",
                "rail": "judge",
                "reason": "rail timed out",
                "channel": [2, "reasoning", 0],
                "offset": 200,
                "released": True,
            },
        ),
        (
            Blocked('odd "rail"\n', "", 0),
            {
                "kind": "abort",
                "rail": 'odd "rail"\n',
                "reason": "",
                "channel": [0, "content", 0],
                "offset": 0,
                "released": False,
            },
        ),
    ],
)
def test_abort_event(blocked: Blocked, expected: dict[str, Any]) -> None:
    assert decode(abort_event(blocked)) == expected


def test_event_bytes_are_exact() -> None:
    assert event("held", events=1, tokens=2) == (
        b'event: railproxy\ndata: {"kind":"held","events":1,"tokens":2}\n\n'
    )


BLOCKLIST = {"banned": {"type": "blocklist", "words": ["x"]}}


@pytest.mark.parametrize(
    ("rails", "expected"),
    [
        (
            {},
            {
                "guarded": False,
                "rails": [],
                "stream_first": True,
                "chunk_size": 200,
                "context_size": 50,
                "token_unit": "token",
                "parallel": False,
            },
        ),
        (
            {
                "config": BLOCKLIST,
                "output": {
                    "flows": ["banned", "pii"],
                    "parallel": True,
                    "streaming": {
                        "enabled": True,
                        "chunk_size": 8,
                        "context_size": 4,
                        "stream_first": False,
                        "token_unit": "delta",
                    },
                },
            },
            {
                "guarded": True,
                "rails": ["banned", "pii"],
                "stream_first": False,
                "chunk_size": 8,
                "context_size": 4,
                "token_unit": "delta",
                "parallel": True,
            },
        ),
    ],
)
def test_start_event_describes_the_config(rails: dict[str, Any], expected: dict[str, Any]) -> None:
    guard = Guard.from_config({"rails": rails})
    start = decode(DebugChannel.for_guard("strict", guard).start())
    assert start == {"kind": "start", "config": "strict", **expected}
