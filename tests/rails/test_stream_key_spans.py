"""Masks that stay on across windows (issue 13): a private key block longer than one
window, with the ``secrets`` rail on ``action: mask``, is masked whole, streamed
(``Guard.stream``, the engine the proxy runs) and whole (``Guard.check_output``).

The window that opens the block masks it to its end and leaves an open span; every later
window of the channel masks its new text up to and including the END line, although it
sees no BEGIN line (its context is masked text). A text that ends inside the block is
blocked. With ``stream_first: true`` text goes out before it is judged, so a mask is a
block there, as for any rail.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rails import Action, Blocked, Guard
from rails.base import ChannelKey
from rails.buffer import RollingBuffer
from rails.guard import _WORDS as WORD_SPLIT
from rails.stream import GuardedStream
from rails.tokens import TiktokenCounter

TIK = TiktokenCounter()
MASK = "[REDACTED]"
KEY: ChannelKey = (0, "content", 0)


def body(lines: int, tag: str = "A") -> list[str]:
    return [f"MIIE{tag}{i:03d}" + "Qk9" * 15 + f"{i:02d}x" for i in range(lines)]


def pem(lines: Sequence[str], kind: str = "RSA") -> str:
    return (
        f"-----BEGIN {kind} PRIVATE KEY-----\n"
        + "\n".join(lines)
        + (f"\n-----END {kind} PRIVATE KEY-----")
    )


def guard(
    stream_first: bool = False,
    chunk_size: int = 64,
    context_size: int = 16,
    unit: str = "token",
    parallel: bool = False,
    more: dict[str, Any] | None = None,
) -> Guard:
    rails: dict[str, Any] = {"s": {"type": "secrets", "action": "mask"}, **(more or {})}
    streaming = {
        "enabled": True,
        "chunk_size": chunk_size,
        "context_size": context_size,
        "stream_first": stream_first,
        "token_unit": unit,
    }
    output = {"flows": list(rails), "parallel": parallel, "streaming": streaming}
    return Guard.from_config({"rails": {"config": rails, "output": output}})


async def chunks(pieces: Sequence[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def streamed(g: Guard, pieces: Sequence[str]) -> tuple[str, Blocked | None]:
    out: list[str] = []
    async for item in g.stream(chunks(pieces)):
        if isinstance(item, Blocked):
            return "".join(out), item
        out.append(item)
    return "".join(out), None


def words(text: str) -> list[str]:
    """The pieces ``check_output`` cuts a whole text into (so both see the same windows)."""
    return WORD_SPLIT.findall(text)


def leaked(lines: Sequence[str], out: str) -> list[str]:
    """Body lines of which 12 characters in a row reached ``out``."""
    return [ln for ln in lines if any(ln[i : i + 12] in out for i in range(len(ln) - 11))]


def windows_over(text: str, part: str, chunk_size: int, context_size: int) -> int:
    """How many windows of ``text`` (cut as ``check_output`` cuts it) hold some of ``part``."""
    start = text.index(part)
    buf = RollingBuffer(chunk_size, context_size, TIK)
    found = [buf.push(p) for p in words(text)] + [buf.flush()]
    return sum(
        1
        for w in found
        if w is not None and w.char_start < start + len(part) and w.char_start + len(w.new) > start
    )


@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize(("lines", "windows"), [(2, 1), (4, 2), (7, 3), (10, 4), (13, 5)])
async def test_a_key_of_one_to_five_windows(lines: int, windows: int, stream_first: bool) -> None:
    key_lines = body(lines)
    text = f"Here it is:\n{pem(key_lines)}\nKeep it safe."
    assert windows_over(text, pem(key_lines), 128, 16) == windows
    g = guard(stream_first, chunk_size=128)
    try:
        out, blocked = await streamed(g, words(text))
        whole = await g.check_output(text)
    finally:
        await g.aclose()
    assert whole.action is Action.MODIFY
    assert whole.text == f"Here it is:\n{MASK}\nKeep it safe."
    if stream_first:  # released before judged: a mask is a block
        assert blocked is not None
        assert blocked.rail == "s"
        return
    assert blocked is None
    assert out == whole.text  # same windows, same masks
    assert not leaked(key_lines, out)


async def test_several_keys_in_one_stream() -> None:
    one, two, three = body(7, "A"), body(11, "B"), body(3, "C")
    text = f"a {pem(one)} b {pem(two, 'EC')} c {pem(three, 'OPENSSH')} d"
    g = guard()
    try:
        out, blocked = await streamed(g, words(text))
        whole = await g.check_output(text)
    finally:
        await g.aclose()
    assert blocked is None
    assert not leaked(one + two + three, out)
    assert "END" not in out
    assert "MIIE" not in out
    assert out == whole.text
    assert out.startswith(f"a {MASK} b ")
    assert out.endswith(f"{MASK} d")


@pytest.mark.parametrize("stream_first", [False, True])
async def test_a_key_the_text_never_closes_blocks(stream_first: bool) -> None:
    key_lines = body(12)
    text = "Here:\n" + pem(key_lines).split("-----END")[0]
    g = guard(stream_first)
    try:
        out, blocked = await streamed(g, words(text))
        whole = await g.check_output(text)
    finally:
        await g.aclose()
    assert blocked is not None
    assert blocked.rail == "s"
    assert whole.blocked
    assert "END line" in whole.reason
    if not stream_first:
        assert "END line" in blocked.reason
        assert not leaked(key_lines, out)


async def test_a_key_ending_exactly_at_a_window_edge_then_the_stream_ends() -> None:
    """The last window was judged (span open) before the end came with nothing after it:
    the end itself blocks."""
    key_lines = body(6)
    pieces = ["Here:\n", pem(key_lines).split("-----END")[0]]  # one piece: one window
    g = guard(chunk_size=8)
    try:
        out, blocked = await streamed(g, pieces)
    finally:
        await g.aclose()
    assert blocked is not None
    assert "END line" in blocked.reason
    assert not leaked(key_lines, out)


async def test_the_end_itself_blocks_after_the_last_window_left_a_key_open() -> None:
    """The engine: the window that opened the key was judged and released (masked) before
    the end came, with nothing more to judge: the end blocks, and nothing follows."""
    g = guard(chunk_size=8)
    engine: GuardedStream[str] = g.open_stream("", lambda item, key, new: new)
    text = "Here:\n" + pem(body(6)).split("-----END")[0]
    engine.push(text, [(KEY, text)])
    got: list[object] = []
    try:
        async for released in engine.releases():
            got.append(released)
            if isinstance(released, list):
                engine.push("[DONE]", end=True)  # no text: no window left to judge
                engine.finish()
    finally:
        await engine.aclose()
        await g.aclose()
    assert got[0] == [f"Here:\n{MASK}"]
    assert len(got) == 2
    assert isinstance(got[1], Blocked)
    assert "END line" in got[1].reason


@pytest.mark.parametrize("where", ["begin", "end"])
async def test_a_window_boundary_at_every_character_of_the_begin_and_end_lines(
    where: str,
) -> None:
    """Delta unit, one piece per window: the boundary falls at each cut. A BEGIN line cut
    before it spelled a key keeps its first part (already released when the next window
    judges); no key line ever shows, and the END line is masked wherever it is cut."""
    key_lines = body(3)
    key = pem(key_lines)
    text = f"Here it is: {key} and done."
    start = text.index(key) if where == "begin" else text.index("-----END")
    line = (
        len("-----BEGIN RSA PRIVATE KEY-----")
        if where == "begin"
        else len(key) - (key.index("-----END"))
    )
    g = guard(chunk_size=1, context_size=2, unit="delta")
    try:
        for cut in range(start, start + line + 2):
            out, blocked = await streamed(g, [text[:cut], text[cut:]])
            assert blocked is None, cut
            assert not leaked(key_lines, out), cut
            assert out.count(MASK) == 1, (cut, out)
            assert out.endswith(f"{MASK} and done."), (cut, out)
            assert out.startswith("Here it is: "), cut
    finally:
        await g.aclose()


async def test_with_other_masking_rails_sequential_and_parallel() -> None:
    more = {"p": {"type": "pii", "entities": ["email"], "action": "mask"}}
    key_lines = body(10)
    text = f"mail a@example.com key {pem(key_lines)} mail b@example.com end"
    for parallel in (False, True):
        g = guard(parallel=parallel, more=more)
        try:
            out, blocked = await streamed(g, words(text))
        finally:
            await g.aclose()
        assert blocked is None
        assert out == f"mail [EMAIL] key {MASK} mail [EMAIL] end", parallel


B64_LINE = st.from_regex(r"[A-Z0-9+/]{24,64}", fullmatch=True)
FILLER = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "\n", "."]), max_size=30)


@st.composite
def keyed_stream(draw: st.DrawFn) -> tuple[list[str], list[str], bool]:
    """Filler, 1-3 keys of random base64 lines (one maybe left open at the end), cut
    into random pieces; returns the pieces, the body lines, whether the last is open."""
    parts: list[str] = []
    lines: list[str] = []
    keys = draw(st.integers(1, 3))
    open_last = draw(st.booleans())
    for i in range(keys):
        parts.append(" ".join(draw(FILLER)) + " ")
        key_lines = draw(st.lists(B64_LINE, min_size=1, max_size=12))
        lines += key_lines
        key = pem(key_lines, draw(st.sampled_from(["RSA", "EC", "ENCRYPTED", ""])).strip())
        key = key.replace("BEGIN  ", "BEGIN ").replace("END  ", "END ")
        if open_last and i == keys - 1:
            key = key[: key.index("-----END") + draw(st.integers(0, 20))]
        parts.append(key)
    if not open_last:
        parts.append(" " + " ".join(draw(FILLER)))
    text = "".join(parts)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=40)))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return pieces, lines, open_last


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=keyed_stream(),
    chunk_size=st.integers(4, 48),
    context_size=st.integers(12, 24),
)
async def test_no_line_of_a_key_body_ever_reaches_the_client(
    case: tuple[list[str], list[str], bool], chunk_size: int, context_size: int
) -> None:
    """Hypothesis: whatever the keys, cuts and window sizes (context covering a cut BEGIN
    line), with ``stream_first: false`` and for the whole text, no 12 characters of any
    body line go out, and a text ending inside a key is blocked."""
    pieces, lines, open_last = case
    g = guard(chunk_size=chunk_size, context_size=context_size)
    try:
        out, blocked = await streamed(g, pieces)
        whole = await g.check_output("".join(pieces))
    finally:
        await g.aclose()
    assert not leaked(lines, out)
    assert whole.blocked or not leaked(lines, whole.text)
    ends = re.search(r"-----END (?:[A-Z]+ )?PRIVATE KEY-----\Z", "".join(pieces))
    if open_last and ends is None:
        assert blocked is not None
        assert whole.blocked
    else:
        assert blocked is None
        assert not whole.blocked
