"""Token counters: cl100k counts and suffixes, NeMo's delta unit."""

from __future__ import annotations

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from rails import tokens as token_module
from rails.tokens import ENCODING_NAME, DeltaCounter, TiktokenCounter, counter_for

TIK = TiktokenCounter()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        (" a", 1),
        (" a a a", 3),
        ("hello world", 2),
        # Special-token text counts as ordinary text and never raises.
        ("<|endoftext|>", 7),
        (" 😀", 1),
        ("😀", 2),
    ],
)
def test_tiktoken_count(text: str, tokens: int) -> None:
    assert TIK.count(text) == tokens


@pytest.mark.parametrize(
    ("text", "n", "tail"),
    [
        ("", 3, ""),
        (" a b c", 0, ""),
        (" a b c", -1, ""),
        (" a b c", 1, " c"),
        (" a b c", 2, " b c"),
        (" a b c", 3, " a b c"),
        (" a b c", 10, " a b c"),
        ("hello world", 1, " world"),
        # "世" is split over two tokens (b"\xe4\xb8", b"\x96"): the last token alone
        # starts mid-character, so the suffix widens to the whole character.
        ("界世", 1, "世"),
        # " 😀" is one token whose first byte is the space.
        ("ab 😀", 1, " 😀"),
        ("<|endoftext|>", 2, "|>"),
    ],
)
def test_tiktoken_tail(text: str, n: int, tail: str) -> None:
    assert TIK.tail(text, n) == tail


def test_tail_widens_to_whole_character() -> None:
    # Precondition of the table row above: the last token is a lone continuation byte.
    assert TIK.count("界世") == 3
    assert TIK.count("世") == 2


@settings(max_examples=150, deadline=None, database=None)
@given(text=st.text(max_size=40), n=st.integers(min_value=-1, max_value=30))
def test_tail_is_a_suffix_holding_the_last_tokens(text: str, n: int) -> None:
    tail = TIK.tail(text, n)
    assert text.endswith(tail)
    if n <= 0:
        assert tail == ""
    elif TIK.count(text) <= n:
        assert tail == text
    else:
        # Shortest such suffix: dropping its first char loses part of the n-th token.
        assert len(tail.encode()) >= _last_token_bytes(text, n)
        assert len(tail[1:].encode()) < _last_token_bytes(text, n)


def _last_token_bytes(text: str, n: int) -> int:
    enc = tiktoken.get_encoding(ENCODING_NAME)
    return sum(len(enc.decode_single_token_bytes(t)) for t in enc.encode_ordinary(text)[-n:])


@pytest.mark.parametrize(
    ("text", "n", "count", "tail"),
    [
        ("", 1, 0, ""),
        ("x", 1, 1, "x"),
        ("a long delta", 1, 1, "a long delta"),
        ("a long delta", 0, 1, ""),
    ],
)
def test_delta_counter(text: str, n: int, count: int, tail: str) -> None:
    counter = DeltaCounter()
    assert counter.count(text) == count
    assert counter.tail(text, n) == tail


@pytest.mark.parametrize(("unit", "kind"), [("token", TiktokenCounter), ("delta", DeltaCounter)])
def test_counter_for(unit: str, kind: type[object]) -> None:
    assert isinstance(counter_for(unit), kind)  # type: ignore[arg-type]


def test_counter_for_rejects_unknown_unit() -> None:
    with pytest.raises(ValueError, match="'word'"):
        counter_for("word")  # type: ignore[arg-type]


def test_cached_counts_equal_encoding_counts() -> None:
    enc = tiktoken.get_encoding(ENCODING_NAME)
    pieces = [" the", " the", "ing", " 世界", "x" * 32, "y" * 33, " the", "", "\n\n"]
    for piece in pieces:  # twice: the second pass reads the cache for the short ones
        assert TIK.count(piece) == len(enc.encode_ordinary(piece))
    for piece in pieces:
        assert TIK.count(piece) == len(enc.encode_ordinary(piece))
    assert token_module._counts[" the"] == 1
    assert "y" * 33 not in token_module._counts  # long pieces are not kept


def test_count_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(token_module, "_CACHE_MAX_ENTRIES", 4)
    monkeypatch.setattr(token_module, "_counts", {})
    for i in range(50):
        assert TIK.count(f" w{i}") >= 1
        assert len(token_module._counts) <= 4


# -- huge texts: the synchronous counter never encodes more than LARGE_CHARS ------------------


def test_count_is_exact_up_to_large_chars_and_estimated_beyond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at_limit = " a" * (token_module.LARGE_CHARS // 2)
    assert TIK.count(at_limit) == token_module.LARGE_CHARS // 2  # exact
    encoded: list[int] = []
    enc = token_module._encoding()
    real = enc.encode_ordinary
    monkeypatch.setattr(enc, "encode_ordinary", lambda t: encoded.append(len(t)) or real(t))
    huge = " a" * 1_000_000  # a million tokens
    assert TIK.count(huge) == 500_000  # one per 4 characters
    assert TIK.count(huge + "x") == 500_001  # rounded up
    assert encoded == []


def test_tail_of_a_huge_text_encodes_only_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []
    enc = token_module._encoding()
    real = enc.encode_ordinary
    monkeypatch.setattr(enc, "encode_ordinary", lambda t: encoded.append(len(t)) or real(t))
    assert TIK.tail("x" * 1_000_000 + " a b c", 2) == " b c"
    assert encoded == [token_module.LARGE_CHARS]
    # The cut shows when the last n tokens span more characters than it keeps: a long run
    # of spaces is one token per 128 spaces or so.
    spaces = " " * 100_000
    assert TIK.tail(spaces, 200) == " " * token_module.LARGE_CHARS
    assert TIK.tail(spaces, 1000) == " " * 64_000  # 64 characters per token asked
