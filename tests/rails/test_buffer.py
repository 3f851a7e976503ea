"""The rolling buffer: window boundaries, context, offsets, exact text join."""

from __future__ import annotations

import re
from typing import Literal

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from rails.buffer import RollingBuffer, Window
from rails.tokens import ENCODING_NAME, TiktokenCounter, TokenCounter, counter_for

Unit = Literal["token", "delta"]
TIK = TiktokenCounter()
# (context, new, start, end, char_start) of each window, in order.
Row = tuple[str, str, int, int, int]


def _one_token_words(n: int) -> list[str]:
    """``n`` distinct words like " cat", each one cl100k token, also when joined."""
    enc = tiktoken.get_encoding(ENCODING_NAME)
    words: list[str] = []
    for token_id in range(enc.n_vocab):
        raw = enc.decode_single_token_bytes(token_id)
        if re.fullmatch(rb" [a-z]{4,8}", raw):
            words.append(raw.decode())
        if len(words) == n:
            break
    assert all(TIK.count(w) == 1 for w in words)
    assert TIK.count("".join(words)) == n
    return words


def _run(buf: RollingBuffer, pieces: list[str]) -> list[tuple[int, Window]]:
    """Every window with the index of the push that closed it (len(pieces): flush)."""
    out = [(i, w) for i, p in enumerate(pieces) if (w := buf.push(p)) is not None]
    last = buf.flush()
    if last is not None:
        out.append((len(pieces), last))
    return out


def _windows(pieces: list[str], chunk: int, context: int, unit: Unit = "token") -> list[Window]:
    buf = RollingBuffer(chunk, context, counter_for(unit), unit)
    return [w for _, w in _run(buf, pieces)]


def _rows(windows: list[Window]) -> list[Row]:
    assert [w.index for w in windows] == list(range(len(windows)))
    return [(w.context, w.new, w.start, w.end, w.char_start) for w in windows]


def test_nemo_docs_example() -> None:
    """NeMo's picture: chunk 200, context 50; window 2 covers tokens 151..400."""
    words = _one_token_words(400)
    windows = _windows(words, chunk=200, context=50)
    first, second = windows
    assert (first.context, first.new, first.start, first.end) == ("", "".join(words[:200]), 0, 200)
    assert second.context == "".join(words[150:200])  # tokens 151..200
    assert second.new == "".join(words[200:400])  # tokens 201..400
    assert (second.start, second.end) == (200, 400)
    assert second.text == "".join(words[150:400])


W = [" red", " green", " blue", " cat", " dog", " sun", " moon", " tree"]


def test_table_words_are_one_token_each() -> None:
    assert [TIK.count(w) for w in W] == [1] * len(W)
    assert TIK.count("".join(W)) == len(W)


@pytest.mark.parametrize(
    ("pieces", "chunk", "context", "rows"),
    [
        pytest.param([], 3, 1, [], id="empty stream"),
        pytest.param(["", "", ""], 3, 1, [], id="only empty pieces"),
        pytest.param([W[0]], 200, 50, [("", W[0], 0, 1, 0)], id="one-token stream"),
        pytest.param(
            W[:5],
            2,
            0,
            [("", W[0] + W[1], 0, 2, 0), ("", W[2] + W[3], 2, 4, 10), ("", W[4], 4, 5, 19)],
            id="context 0",
        ),
        pytest.param(
            W[:5],
            2,
            1,
            [("", W[0] + W[1], 0, 2, 0), (W[1], W[2] + W[3], 2, 4, 10), (W[3], W[4], 4, 5, 19)],
            id="context 1",
        ),
        pytest.param(
            W[:4],
            1,
            3,
            [
                ("", W[0], 0, 1, 0),
                (W[0], W[1], 1, 2, 4),
                (W[0] + W[1], W[2], 2, 3, 10),
                (W[0] + W[1] + W[2], W[3], 3, 4, 15),
            ],
            id="context spans several windows",
        ),
        pytest.param(
            W[:4],
            2,
            2,
            [("", W[0] + W[1], 0, 2, 0), (W[0] + W[1], W[2] + W[3], 2, 4, 10)],
            id="exact multiple: flush returns nothing",
        ),
        pytest.param(
            ["".join(W[:3]), W[3] + W[4]],
            1,
            1,
            [("", "".join(W[:3]), 0, 3, 0), (W[2], W[3] + W[4], 3, 5, 15)],
            id="chunk smaller than every piece",
        ),
        pytest.param(
            [W[0], "".join(W[1:6]), W[6]],
            3,
            2,
            [("", "".join(W[:6]), 0, 6, 0), (W[4] + W[5], W[6], 6, 7, 27)],
            id="piece larger than chunk makes one bigger window",
        ),
        pytest.param(
            ["", W[0], "", "", W[1], "", W[2], ""],
            2,
            1,
            [("", W[0] + W[1], 0, 2, 0), (W[1], W[2], 2, 3, 10)],
            id="empty pieces count nothing",
        ),
    ],
)
def test_windows(pieces: list[str], chunk: int, context: int, rows: list[Row]) -> None:
    assert _rows(_windows(pieces, chunk, context)) == rows


@pytest.mark.parametrize(
    ("pieces", "chunk", "context", "rows"),
    [
        pytest.param(
            ["Hel", "lo", "", " wor", "ld", "!"],
            2,
            1,
            [("", "Hello", 0, 2, 0), ("lo", " world", 2, 4, 5), ("ld", "!", 4, 5, 11)],
            id="context is whole pieces",
        ),
        pytest.param(
            ["Hel", "lo", " wor", "ld", "!"],
            2,
            0,
            [("", "Hello", 0, 2, 0), ("", " world", 2, 4, 5), ("", "!", 4, 5, 11)],
            id="context 0",
        ),
        pytest.param(
            ["a", "b", "", "c", "d"],
            1,
            3,
            [("", "a", 0, 1, 0), ("a", "b", 1, 2, 1), ("ab", "c", 2, 3, 2), ("abc", "d", 3, 4, 3)],
            id="context spans several windows",
        ),
        pytest.param(
            ["a long delta of many words", "x"],
            1,
            1,
            [
                ("", "a long delta of many words", 0, 1, 0),
                ("a long delta of many words", "x", 1, 2, 26),
            ],
            id="one delta is one token however long",
        ),
    ],
)
def test_delta_unit(pieces: list[str], chunk: int, context: int, rows: list[Row]) -> None:
    assert _rows(_windows(pieces, chunk, context, "delta")) == rows


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param(["Hello", ",", " world", "!"], id="multi-piece"),
        pytest.param(["h", "é", "llo", " wö", "rld"], id="accents"),
        pytest.param(["😀", "👩\u200d", "👩\u200d👧", " 🎉🎉"], id="emoji and ZWJ split"),
        pytest.param(["你好", "世", "界", "再见了"], id="CJK"),
        pytest.param(["a", " ", "  ", "\n", "\t", "\r\n", "b", " "], id="whitespace-only pieces"),
        pytest.param(["<|endoftext|>", "x"], id="special-token text"),
    ],
)
@pytest.mark.parametrize(("chunk", "context"), [(1, 0), (1, 2), (2, 1), (3, 5), (100, 50)])
@pytest.mark.parametrize("unit", ["token", "delta"])
def test_text_joined_exactly_as_streamed(
    pieces: list[str], chunk: int, context: int, unit: Unit
) -> None:
    full = "".join(pieces)
    windows = _windows(pieces, chunk, context, unit)
    assert "".join(w.new for w in windows) == full
    for w in windows:
        assert full[w.char_start : w.char_start + len(w.new)] == w.new
        assert full[: w.char_start].endswith(w.context)


def test_counters() -> None:
    buf = RollingBuffer(3, 1, TIK)
    assert (buf.pending_tokens, buf.total_tokens, buf.pending_chars) == (0, 0, 0)
    assert buf.push(W[0] + W[1]) is None
    assert (buf.pending_tokens, buf.total_tokens, buf.pending_chars) == (2, 2, 10)
    assert buf.push(W[2]) is not None
    assert (buf.pending_tokens, buf.total_tokens, buf.pending_chars) == (0, 3, 0)
    assert buf.push(W[3]) is None
    assert (buf.pending_tokens, buf.total_tokens, buf.pending_chars) == (1, 4, 4)
    assert buf.flush() is not None
    assert buf.flush() is None
    assert (buf.pending_tokens, buf.total_tokens, buf.pending_chars) == (0, 4, 0)


def test_push_after_flush_starts_the_next_window() -> None:
    buf = RollingBuffer(5, 1, TIK)
    buf.push(W[0])
    first = buf.flush()
    second = buf.push("".join(W[1:6]))
    assert first is not None
    assert second is not None
    assert (second.index, second.context, second.start, second.end) == (1, W[0], 1, 6)


@pytest.mark.parametrize(("chunk", "context"), [(0, 0), (-1, 1), (1, -1)])
def test_rejects_bad_sizes(chunk: int, context: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RollingBuffer(chunk, context, TIK)


def test_split_phrase_without_context_is_seen_only_in_pieces() -> None:
    """The limit of the guarantee: context 0 and a boundary inside the phrase."""
    windows = _windows([" attack", " at", " dawn"], chunk=1, context=0)
    assert not any(" attack at" in w.text for w in windows)


# --- properties ------------------------------------------------------------------

pieces_st = st.lists(st.text(max_size=8), max_size=12)
sizes = {"chunk": st.integers(1, 8), "context": st.integers(0, 6)}
units = st.sampled_from(["token", "delta"])


@settings(max_examples=80, deadline=None, database=None)
@given(pieces=pieces_st, unit=units, **sizes)
def test_windows_partition_the_stream(
    pieces: list[str], chunk: int, context: int, unit: Unit
) -> None:
    counter = counter_for(unit)
    buf = RollingBuffer(chunk, context, counter, unit)
    closed = _run(buf, pieces)
    full = "".join(pieces)
    assert "".join(w.new for _, w in closed) == full
    assert (closed[-1][1].end if closed else 0) == sum(counter.count(p) for p in pieces)
    first_piece, prev = 0, None
    for at, w in closed:
        own = pieces[first_piece : at + 1]
        assert w.new == "".join(own)  # closes on piece boundaries only
        assert w.end - w.start == sum(counter.count(p) for p in own)
        assert w.start == (prev.end if prev else 0)
        assert w.char_start == len("".join(pieces[:first_piece]))
        assert full[: w.char_start].endswith(w.context)
        assert w.context == _expected_context(counter, unit, context, pieces[:first_piece], prev)
        if at < len(pieces):  # closed by a push, not the flush
            assert w.end - w.start >= chunk
        first_piece, prev = at + 1, w


def _expected_context(
    counter: TokenCounter, unit: Unit, context: int, checked: list[str], prev: Window | None
) -> str:
    if unit == "delta":
        kept = [p for p in checked if p]
        return "".join(kept[-context:]) if context else ""
    return counter.tail(prev.text, context) if prev else ""


@settings(max_examples=100, deadline=None, database=None)
@given(
    before=pieces_st,
    after=pieces_st,
    phrase=st.text(min_size=2, max_size=10),
    unit=units,
    **sizes,
)
def test_phrase_split_at_every_position(
    before: list[str], after: list[str], phrase: str, chunk: int, context: int, unit: Unit
) -> None:
    """The guarantee in rails.buffer's docstring, for the phrase cut at every char."""
    cuts = [[phrase[:k], phrase[k:]] for k in range(1, len(phrase))]
    for phrase_pieces in [*cuts, list(phrase)]:
        full = "".join([*before, *phrase_pieces, *after])
        windows = _windows([*before, *phrase_pieces, *after], chunk, context, unit)
        a = len("".join(before))
        j, w = _window_holding_char(windows, a + len(phrase) - 1)
        previous = windows[j - 1].text if j else ""
        if _guaranteed(previous, full[a : w.char_start], context, unit, phrase_pieces):
            assert phrase in w.text


def _window_holding_char(windows: list[Window], pos: int) -> tuple[int, Window]:
    return next(
        (j, w) for j, w in enumerate(windows) if w.char_start <= pos < w.char_start + len(w.new)
    )


def _guaranteed(
    previous: str, before_boundary: str, context: int, unit: Unit, pieces: list[str]
) -> bool:
    """Whether rails.buffer's docstring promises the phrase to the window where it ends.

    ``previous`` is the text of the window before that one; ``before_boundary`` the
    part of the phrase before that window's new text; ``pieces`` the phrase's pieces.
    """
    if not before_boundary:
        return True
    if unit == "delta":
        return len(pieces) <= context + 1
    if not previous.endswith(before_boundary):
        return False
    return _tokens_covering_suffix(previous, before_boundary) <= context


def _tokens_covering_suffix(text: str, suffix: str) -> int:
    """How many of ``text``'s last tokens it takes to cover ``suffix``'s bytes."""
    enc = tiktoken.get_encoding(ENCODING_NAME)
    need, have, k = len(suffix.encode()), 0, 0
    for token_id in reversed(enc.encode_ordinary(text)):
        if have >= need:
            break
        have += len(enc.decode_single_token_bytes(token_id))
        k += 1
    return k
