"""Log formats: the text format carries the same fields as the JSON one."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import pytest

from proxy.observe.logs import JsonFormatter, TextFormatter, configure_logging
from proxy.settings import LoggingSettings
from rails import pipeline

FIELDS: list[dict[str, Any]] = [
    {
        "request_id": "r-1",
        "route": "/v1/chat/completions",
        "config": "default",
        "status": 200,
        "stream": True,
        "duration_s": 0.125,
        "outcome": "blocked",
        "blocked_rail": "banned",
        "blocked_reason": 'matched "project falcon"',
    },
    {"url": "http://127.0.0.1:8080"},
    {"empty": "", "tabbed": "a\tb", "eq": "a=b", "none": None, "n": [1, 2]},
    {},
]
PAIR = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def record(fields: dict[str, Any]) -> logging.LogRecord:
    rec = logging.LogRecord("railproxy.access", logging.INFO, __file__, 1, "request", (), None)
    rec.__dict__.update(fields)
    return rec


def text_fields(line: str) -> dict[str, Any]:
    """Parse the ``key=value`` tail back: quoted values are JSON strings, bare ones JSON
    values or plain words."""
    out: dict[str, Any] = {}
    for key, value in PAIR.findall(line.split(" request", 1)[1]):
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@pytest.mark.parametrize("fields", FIELDS)
def test_text_format_carries_the_json_fields(fields: dict[str, Any]) -> None:
    as_json = json.loads(JsonFormatter().format(record(fields)))
    line = TextFormatter().format(record(fields))
    assert " INFO railproxy.access request" in line
    assert "\n" not in line
    extra = {k: v for k, v in as_json.items() if k not in ("time", "level", "logger", "msg")}
    assert text_fields(line) == extra == fields


def test_text_format_keeps_a_traceback_below_the_fields() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord(
            "railproxy", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    rec.__dict__["request_id"] = "r-2"
    first, rest = TextFormatter().format(rec).split("\n", 1)
    assert first.endswith(" ERROR railproxy failed request_id=r-2")
    assert rest.startswith("Traceback")
    assert "RuntimeError: boom" in rest


@pytest.mark.parametrize("include_text", [False, True])
def test_include_text_also_switches_monitor_mode_text(include_text: bool) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(LoggingSettings(include_text=include_text))
        assert pipeline._LOG_TEXT[0] is include_text
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        pipeline.log_monitor_text(False)
