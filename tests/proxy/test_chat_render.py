"""``railproxy chat``'s pure parts: rendering, reading the wire, reading lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from proxy.chat.render import NOT_KEPT, clean, finish, stopped
from proxy.chat.session import LineReader
from proxy.chat.wire import (
    FALLBACK_MODEL,
    Abort,
    Failure,
    Mark,
    Text,
    classify_error,
    first_model_id,
    http_error,
    read_event,
    read_whole,
)

BANNED = Abort("banned", "Blocked by banned rails.")
FILTER = Abort(None, "finish_reason: content_filter")


@pytest.mark.parametrize(
    ("end", "shown", "tty", "expected"),
    [
        (None, "Hello.", False, "\n"),
        (None, "Hello.\n", False, ""),
        (
            BANNED,
            "",
            False,
            f"[blocked by rail 'banned': Blocked by banned rails.]\n{NOT_KEPT}\n",
        ),
        (
            BANNED,
            "Project Falcon",
            False,
            "\n[blocked by rail 'banned': Blocked by banned rails.]\n"
            "[retracted: the 14 characters above were blocked by rail 'banned']\n"
            f"{NOT_KEPT}\n",
        ),
        (
            BANNED,
            "Project Falcon",
            True,
            "\n\x1b[1;31m[blocked by rail 'banned': Blocked by banned rails.]\x1b[0m\n"
            "\x1b[2m[retracted: the 14 characters above were blocked by rail 'banned']\x1b[0m\n"
            f"{NOT_KEPT}\n",
        ),
        (
            FILTER,
            "Sorry.",
            False,
            "\n[blocked by a content filter: finish_reason: content_filter]\n"
            "[retracted: the 6 characters above were blocked by a content filter]\n"
            f"{NOT_KEPT}\n",
        ),
        (
            Failure("upstream_eof: gone"),
            "Hal",
            False,
            f"\n[error: upstream_eof: gone]\n{NOT_KEPT}\n",
        ),
        (Abort("x\x1b[2J", ""), "", False, f"[blocked by rail 'x\\x1b[2J']\n{NOT_KEPT}\n"),
    ],
)
def test_finish(end: Abort | Failure | None, shown: str, tty: bool, expected: str) -> None:
    assert finish(end, shown, tty) == expected


def test_finish_without_retraction_shows_the_refusal_as_is() -> None:
    out = finish(FILTER, "Sorry, no.", tty=False, retract=False)
    assert "retracted" not in out
    assert out.startswith("\n[blocked by a content filter")


@pytest.mark.parametrize(
    ("shown", "tty", "expected"),
    [
        ("", False, f"[stopped]\n{NOT_KEPT}\n"),
        ("Hel", False, f"\n[stopped]\n{NOT_KEPT}\n"),
        ("Hel", True, f"\n\x1b[2m[stopped]\x1b[0m\n{NOT_KEPT}\n"),
    ],
)
def test_stopped(shown: str, tty: bool, expected: str) -> None:
    assert stopped(shown, tty) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\tb\nc", "a\tb\nc"), ("\x1b[31mred", "\\x1b[31mred"), ("a\rb\x07", "a\\x0db\\x07")],
)
def test_clean_neutralises_control_characters(text: str, expected: str) -> None:
    assert clean(text) == expected


def _error(**fields: str) -> bytes:
    return json.dumps({"error": fields}).encode()


def _chunk(delta: str, finish_reason: str | None = None) -> bytes:
    return (
        b'{"choices":[{"index":0,"delta":{"content":"' + delta.encode() + b'"},'
        b'"finish_reason":' + (f'"{finish_reason}"' if finish_reason else "null").encode() + b"}]}"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, []),
        (b"[DONE]", [Mark.DONE]),
        (b"not json", []),
        (_chunk("Hi"), [Text("Hi")]),
        (_chunk("", "stop"), [Mark.FINISH]),
        (_chunk("Hi", ""), [Text("Hi")]),
        (_chunk("Sorry", "content_filter"), [Text("Sorry"), FILTER]),
        (b'{"choices":[],"usage":{"total_tokens":3}}', []),
        (
            b'{"error": {"message": "Blocked by banned rails.", "type": "guardrails_violation",'
            b' "param": "banned", "code": "content_blocked"}}',
            [BANNED],
        ),
        (
            _error(message="no [DONE]", type="upstream_error", code="upstream_eof"),
            [Failure("upstream_eof: no [DONE]")],
        ),
        (
            b'{"object": "error", "message": "bad", "type": "BadRequestError"}',
            [Failure("BadRequestError: bad")],
        ),
        (
            b'{"error": "Input validation error", "error_type": "validation"}',
            [Failure("Input validation error")],
        ),
    ],
)
def test_read_event(data: bytes | None, expected: list[object]) -> None:
    assert read_event(data) == expected


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            _error(message="Blocked by pii rails.", param="pii", code="content_blocked"),
            Abort("pii", "Blocked by pii rails."),
        ),
        (
            502,
            b'{"error": {"message": "down", "type": "server_error"}}',
            Failure("HTTP 502: server_error: down"),
        ),
        (503, b"Service Unavailable", Failure("HTTP 503: Service Unavailable")),
        (500, b"", Failure("HTTP 500")),
    ],
)
def test_http_error(status: int, body: bytes, expected: Abort | Failure) -> None:
    assert http_error(status, body) == expected


def test_classify_error_without_a_rail_name() -> None:
    assert classify_error({"error": {"code": "content_blocked"}}) == Abort(None, "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}]}',
            [Text("Hi.")],
        ),
        (
            b'{"choices":[{"index":0,"message":{"content":"No."},"finish_reason":"content_filter"}]}',
            [Text("No."), FILTER],
        ),
        (b'{"choices":[]}', [Failure("the server's response is not a chat completion")]),
    ],
)
def test_read_whole(raw: bytes, expected: list[object]) -> None:
    assert read_whole(raw) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": [{"id": "m1"}, {"id": "m2"}]}, "m1"),
        ({"data": []}, FALLBACK_MODEL),
        ({"data": [{"id": ""}]}, FALLBACK_MODEL),
        (["m1"], FALLBACK_MODEL),
    ],
)
def test_first_model_id(body: object, expected: str) -> None:
    assert first_model_id(body) == expected


async def test_line_reader_on_a_pipe_joins_partial_reads_and_ends_at_eof() -> None:
    r, w = os.pipe()
    try:
        reader = LineReader(r)
        os.write(w, b"ab")
        os.write(w, "c\nd\u00e9".encode())
        os.close(w)
        assert [await reader.readline() for _ in range(3)] == ["abc", "d\u00e9", None]
    finally:
        os.close(r)


async def test_line_reader_on_files_it_cannot_poll(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("one\n\ntwo\n")
    fds = [os.open(path, os.O_RDONLY), os.open(os.devnull, os.O_RDONLY)]
    try:
        reader = LineReader(fds[0])
        assert [await reader.readline() for _ in range(4)] == ["one", "", "two", None]
        assert await LineReader(fds[1]).readline() is None
    finally:
        for fd in fds:
            os.close(fd)
