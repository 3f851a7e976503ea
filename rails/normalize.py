"""Text normalization for the local rails, with offsets back to the original text.

``normalize(text, casefold=...)`` returns the text the pattern rails match against and a
way to map a span of it back to ``text`` (for masking). What it does, per character:

- removes default-ignorable and format characters (Unicode ``Default_Ignorable_Code_Point``
  and category ``Cf``): zero-width space/joiners, soft hyphen, BOM, word joiner, bidi
  marks and isolates, variation selectors, tag characters, Hangul fillers;
- NFKD (compatibility decomposition: full-width letters, ligatures, math alphanumerics,
  circled and superscript letters, non-breaking and other spaces become their plain
  forms), then removes combining marks (``strip_marks``; zalgo, accents);
- maps every decimal digit (category ``Nd``: Arabic-Indic, Devanagari, full-width, ...)
  to its ASCII digit;
- optionally casefolds (the blocklist does; pii and secrets keep case, since key formats
  are case-sensitive);
- folds confusables (UTS #39 ``confusables.txt``, as shipped by the
  ``confusable-homoglyphs`` package) to their ASCII look-alike, but only where that
  exposes an attack rather than rewriting genuine text of another script:

  * symbols, punctuation and non-ASCII Latin letters with an ASCII look-alike always fold
    (U+2010 HYPHEN to ``-``, U+0251 LATIN SMALL LETTER ALPHA to ``a``);
  * a letter of another script (Cyrillic, Greek, Cherokee, ...) folds when its word
    also holds Latin letters (a mixed-script word: ``falcon`` with a Cyrillic ``a``), or
    when every letter of its word has a Latin look-alike and the text around it is mostly
    Latin (``paypal`` spelled in Cyrillic inside an English sentence). Russian prose is
    left as it is, even its words that look Latin (Cyrillic ``cop``, "rubbish").

The output is decomposed (NFKD), never recomposed: match it against terms normalized the
same way. Pure ASCII text takes a fast path: returned as it is (lower-cased with
``casefold``), with the identity offset map.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

# Unicode DerivedCoreProperties.txt, Default_Ignorable_Code_Point (Unicode 15): the
# ranges that are not already category Cf (those are caught by category).
_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # half-width Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned specials
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement
)

_OTHER_SCRIPT_NONE = ("LATIN", "COMMON", "INHERITED", "Unknown")


def is_ignorable(char: str) -> bool:
    """A default-ignorable or format character (removed before matching)."""
    if unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _IGNORABLE_RANGES)


def _load_json(name: str) -> object:
    return json.loads(resources.files("confusable_homoglyphs").joinpath(name).read_text("utf-8"))


def _lookalikes() -> dict[str, str]:
    """Non-ASCII character -> its ASCII look-alike, from UTS #39 confusables data."""
    data = _load_json("confusables.json")
    assert isinstance(data, dict)
    table: dict[str, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = sorted(g["c"] for g in glyphs if g["c"].isascii() and g["c"].strip())
        if targets:
            table[char] = targets[0]
    return table


class _Scripts:
    """The script of a code point (Unicode Scripts.txt, as shipped by
    ``confusable-homoglyphs``), by binary search over its ranges."""

    def __init__(self) -> None:
        data = _load_json("categories.json")
        assert isinstance(data, dict)
        ranges = data["code_points_ranges"]
        self._starts = [r[0] for r in ranges]
        self._ends = [r[1] for r in ranges]
        self._names = [data["iso_15924_aliases"][r[2]] for r in ranges]

    def of(self, char: str) -> str:
        import bisect

        code = ord(char)
        i = bisect.bisect_right(self._starts, code) - 1
        if i >= 0 and code <= self._ends[i]:
            return str(self._names[i])
        return "Unknown"


_LOOKALIKE = _lookalikes()
_SCRIPTS = _Scripts()


@functools.cache
def _decompose(char: str, strip_marks: bool) -> str:
    """NFKD, marks (``strip_marks``) and ignorables removed, digits to ASCII, spaces to
    a plain space."""
    out = []
    for ch in unicodedata.normalize("NFKD", char):
        cat = unicodedata.category(ch)
        if (strip_marks and cat[0] == "M") or is_ignorable(ch):
            continue
        if cat == "Nd":
            ch = str(unicodedata.decimal(ch))
        elif cat == "Zs":
            ch = " "
        out.append(ch)
    return "".join(out)


def _script_letter(char: str) -> str:
    """The script of a letter ("" for anything else)."""
    return _SCRIPTS.of(char) if len(char) == 1 and char.isalpha() else ""


def _is_other(char: str) -> bool:
    return _script_letter(char) not in ("", *_OTHER_SCRIPT_NONE)


def _lookalike(char: str) -> str | None:
    look = _LOOKALIKE.get(char) if len(char) == 1 and not char.isascii() else None
    if look == "l" and char.isupper():
        return "I"  # UTS #39 folds capital I look-alikes to "l", their shared skeleton
    return look


class _Table(dict[int, str]):
    """The per-character step (``str.translate`` table), filled on first sight of each
    character: decomposition, casefold, and the look-alikes that always apply (symbols,
    punctuation, Latin letters; letters of other scripts wait for the word rule)."""

    def __init__(self, casefold: bool, strip_marks: bool) -> None:
        super().__init__()
        self._casefold = casefold
        self._strip = strip_marks

    def __missing__(self, code: int) -> str:
        text = _decompose(chr(code), self._strip)
        look = _lookalike(text)
        if look is not None and not _is_other(text):
            text = look
        if self._casefold:
            text = _decompose(text.casefold(), self._strip)
        self[code] = text
        return text


def _word_lookalikes(casefold: bool) -> dict[str, str]:
    """Letters of other scripts (as ``_Table`` outputs them) -> their one-character
    ASCII look-alike: folded only by the word rule."""
    out: dict[str, str] = {}
    for char in _LOOKALIKE:
        look = _lookalike(char)
        if look is None or len(look) != 1 or not _is_other(char):
            continue
        if casefold:
            folded = char.casefold()
            if len(folded) == 1 and folded not in out:
                out[folded] = look.casefold()
            out.setdefault(char, look.casefold())
        else:
            out[char] = look
    return out


@dataclass(frozen=True)
class _Profile:
    casefold: bool
    table: _Table
    fold: dict[int, str]
    any_foldable: re.Pattern[str]
    runs: re.Pattern[str]


@functools.cache
def _profile(casefold: bool, strip_marks: bool) -> _Profile:
    looks = _word_lookalikes(casefold)
    # Basic-plane letters only: sre tests a class of those with one bitmap lookup, but
    # one holding astral characters item by item (10x slower); the astral look-alikes
    # (Carian, Old Italic, ...) are not letters anyone writes prose in.
    chars = "".join(re.escape(c) for c in sorted(looks) if ord(c) <= 0xFFFF)
    return _Profile(
        casefold,
        _Table(casefold, strip_marks),
        {ord(c): v for c, v in looks.items()},
        re.compile(f"[{chars}]"),
        re.compile(f"[{chars}]+"),
    )


@dataclass(frozen=True, slots=True)
class Normalized:
    """``text``, normalized from ``original``; ``span`` maps offsets back."""

    text: str
    original: str
    table: dict[int, str] | None = None  # None: the identity offset map

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``original`` that produced ``text[start:end]`` (``end > start``);
        characters removed just after the span (ignorables, marks) are included."""
        if self.table is None:
            return start, end
        origin = self._origin()
        first, after = origin[start], origin[end]
        return first, max(after, origin[end - 1] + 1)

    def _origin(self) -> list[int]:
        """origin[i]: the index in ``original`` of the character that produced text[i];
        one more entry, len(original). Built on demand: only masking needs it."""
        table = self.table
        assert table is not None
        origin = [i for i, c in enumerate(self.original) for _ in table[ord(c)]]
        origin.append(len(self.original))
        return origin


# An ASCII word character next to a non-ASCII one: where a mixed-script word may be.
_SCRIPT_SEAM = re.compile(r"[0-9A-Za-z_][^\W\x00-\x7f]|[^\W\x00-\x7f][0-9A-Za-z_]")
_OTHER_LETTERS = re.compile(r"[^\W\d_\x00-\x7f]+")
_WORD_CHAR = re.compile(r"\w")


_BLOCK = 64  # chars: ASCII blocks are copied; the others go through the table


def normalize(text: str, *, casefold: bool, strip_marks: bool = True) -> Normalized:
    """``text`` normalized as the module docstring says, with its offset map."""
    if text.isascii():
        return Normalized(text.lower() if casefold else text, text)
    return _normalize(text, casefold, strip_marks)


@functools.lru_cache(maxsize=32)  # pii and secrets judge the same window: one pass
def _normalize(text: str, casefold: bool, strip_marks: bool) -> Normalized:
    profile = _profile(casefold, strip_marks)
    plain, hot = _apply_table(text, profile)
    if not any(profile.any_foldable.search(plain, start, end) for start, end in hot):
        return Normalized(plain, text, profile.table)
    words = {
        _word(plain, m.start())
        for start, end in hot
        for m in _SCRIPT_SEAM.finditer(plain, max(0, start - 1), end + 1)
    }
    regions = [w for w in words if _latin_in(plain, *w)]
    if _mostly_latin(plain, hot):
        regions += [
            w
            for start, end in hot
            for m in profile.runs.finditer(plain, start, end)
            if (w := _word(plain, m.start())) == m.span()
        ]
    if not regions:
        return Normalized(plain, text, profile.table)
    chars = list(plain)
    for start, end in regions:  # look-alikes are one character: offsets stay
        chars[start:end] = plain[start:end].translate(profile.fold)
    return Normalized("".join(chars), text, profile.table)


def _apply_table(text: str, profile: _Profile) -> tuple[str, list[tuple[int, int]]]:
    """``text`` through the per-character table, and the spans of the result that came
    from non-ASCII blocks (the only places a look-alike can be). Testing ``isascii`` on
    blocks costs a fraction of any regex scan for non-ASCII characters."""
    parts: list[str] = []
    hot: list[tuple[int, int]] = []
    pos = 0
    for i in range(0, len(text), _BLOCK):
        block = text[i : i + _BLOCK]
        if not block.isascii():
            block = block.translate(profile.table)
            if hot and hot[-1][1] == pos:
                hot[-1] = (hot[-1][0], pos + len(block))
            else:
                hot.append((pos, pos + len(block)))
        parts.append(block)
        pos += len(block)
    plain = "".join(parts)
    return (plain.lower() if profile.casefold else plain), hot


def _word(text: str, i: int) -> tuple[int, int]:
    """The span of the run of word characters around ``text[i]``."""
    start, end = i, i + 1
    while start > 0 and _WORD_CHAR.match(text, start - 1):
        start -= 1
    while end < len(text) and _WORD_CHAR.match(text, end):
        end += 1
    return start, end


def _latin_in(text: str, start: int, end: int) -> bool:
    return any("a" <= c <= "z" or "A" <= c <= "Z" for c in text[start:end])


def _mostly_latin(text: str, hot: list[tuple[int, int]]) -> bool:
    """Letters of other scripts are fewer than half the ASCII characters: there, a word
    wholly of look-alike letters is an attack, not prose."""
    other = sum(len(m.group()) for s, e in hot for m in _OTHER_LETTERS.finditer(text, s, e))
    return 2 * other < len(text.encode("ascii", "ignore"))
