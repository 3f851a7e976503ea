"""The local rails' normalization: what folds, what is left alone, and offsets back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rails.normalize import is_ignorable, normalize

CYR_A, CYR_O, CYR_ER, CYR_U, CYR_ES = "\u0430", "\u043e", "\u0440", "\u0443", "\u0441"


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("fa\u200blcon", "falcon"),  # zero-width space
        ("fal\u00adcon", "falcon"),  # soft hyphen
        ("fal\u2060con", "falcon"),  # word joiner
        ("\ufefffalcon", "falcon"),  # BOM
        ("fal\ufe0fcon", "falcon"),  # variation selector
        ("\u202efalcon\u202c", "falcon"),  # bidi override and pop
        ("f\u0301a\u0308lcon", "falcon"),  # combining marks
        ("\uff26\uff21\uff2c\uff23\uff2f\uff2e", "falcon"),  # full-width
        ("\U0001d41f\U0001d41a\U0001d425\U0001d41c\U0001d428\U0001d427", "falcon"),  # math
        ("\u24d5\u24d0\u24db\u24d2\u24de\u24dd", "falcon"),  # circled
        (f"f{CYR_A}lc{CYR_O}n", "falcon"),  # mixed-script word
        ("f\u03b1lc\u03bfn", "falcon"),  # Greek alpha and omicron
        ("f\u0251lcon", "falcon"),  # Latin alpha: always folds
        ("STRASSE stra\u00dfe", "strasse strasse"),  # casefold
    ],
)
def test_evasions_fold_to_the_plain_word(text: str, folded: str) -> None:
    assert normalize(text, casefold=True).text == folded


def test_digits_of_every_script_become_ascii() -> None:
    text = "\uff14\uff11 \u0664\u0661 \u096a\u0967"  # full-width, Arabic-Indic, Devanagari
    assert normalize(text, casefold=False).text == "41 41 41"


def test_case_is_kept_without_casefold() -> None:
    text = f"AKIA and {CYR_A.upper()}KIA"
    assert normalize(text, casefold=False).text == "AKIA and AKIA"


def test_russian_prose_is_not_folded_into_latin() -> None:
    # "cop" spelled in Cyrillic (a Russian word, "rubbish") among Russian words.
    text = f"\u042d\u0442\u043e {CYR_ES}{CYR_O}{CYR_ER} \u0438 \u043c\u0443\u0441\u043e\u0440"
    assert "cop" not in normalize(text, casefold=True).text


def test_a_cyrillic_word_in_english_text_is_folded() -> None:
    word = f"{CYR_ER}{CYR_A}{CYR_U}{CYR_ER}{CYR_A}l"  # "paypal", mixed with a Latin l
    assert normalize(f"log in to {word} now", casefold=True).text == "log in to paypal now"
    whole = f"{CYR_ES}{CYR_O}{CYR_ER}"  # wholly Cyrillic
    assert normalize(f"call the {whole} now", casefold=True).text == "call the cop now"


def test_greek_prose_keeps_its_letters() -> None:
    text = "\u0391\u03b8\u03ae\u03bd\u03b1 \u03b5\u03af\u03bd\u03b1\u03b9 \u03c0\u03cc\u03bb\u03b7"
    out = normalize(text, casefold=True).text
    assert out.isascii() is False
    assert "\u03b8" in out


def test_emoji_zwj_sequences_lose_only_the_joiners() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert normalize(family, casefold=True).text == "\U0001f468\U0001f469\U0001f467"


def test_ascii_takes_the_identity_map() -> None:
    n = normalize("Hello World", casefold=True)
    assert n.text == "hello world"
    assert n.table is None
    assert n.span(0, 5) == (0, 5)


def test_spans_map_back_over_removed_characters() -> None:
    text = "mail: a\u200b@\uff45xample.com\u200b, ok"
    n = normalize(text, casefold=False)
    start = n.text.index("a@example.com")
    s, e = n.span(start, start + len("a@example.com"))
    assert text[s:e] == "a\u200b@\uff45xample.com\u200b"


def test_ignorable_characters() -> None:
    for char in "\u200b\u200c\u200d\u00ad\u2060\ufeff\ufe0f\u034f\u202e\u2066\U000e0041":
        assert is_ignorable(char), hex(ord(char))
    for char in "a \u00a0\u0301":
        assert not is_ignorable(char)


_ALPHABET = st.sampled_from(
    [*"ab 1-@.", "\u200b", "\u00ad", "\u0301", "\uff41", "\u00df", CYR_A, "\u0664", "\ufb01"]
)


@given(st.lists(_ALPHABET, max_size=40).map("".join), st.booleans())
def test_offsets_cover_the_original_in_order(text: str, casefold: bool) -> None:
    n = normalize(text, casefold=casefold)
    pieces = [n.span(i, i + 1) for i in range(len(n.text))]
    assert all(0 <= s < e <= len(text) for s, e in pieces)
    starts = [s for s, _ in pieces]
    assert starts == sorted(starts)
    if n.text:
        s, e = n.span(0, len(n.text))
        # Everything outside the mapped span was removed by normalization.
        assert normalize(text[:s] + text[e:], casefold=casefold).text == ""
