"""The ``blocklist`` rail: block text containing any configured word or phrase.

Text and terms are both normalized (``rails.normalize``: default-ignorable characters
removed, NFKD, combining marks removed, casefold, look-alike letters folded where they
hide a Latin word), then cut into words. Matching is whole-word and caseless, and a
phrase matches across separators:

- any run of whitespace, ``-``, ``_`` and ``.`` between words separates words, so
  ``project falcon`` matches ``Project\\n  Falcon``, ``project-falcon``,
  ``project_falcon`` and ``project.falcon``; other punctuation is a word of its own, so
  ``project, falcon`` does not match (and ``c++`` matches ``c++``);
- ``-``, ``_`` and ``.`` also join: ``fal-con``, ``f.a.l.c.o.n`` and ``fal_con`` match
  ``falcon``; a phrase's words written together match it (``projectfalcon``);
- letter spacing: in a run of three or more one-character words (``f a l c o n``), a
  term spelled by consecutive letters matches.

Whole-word still holds: ``projected falconry`` is not ``project falcon``. Words of other
scripts next to Latin letters are separate words (Chinese text around a Latin term).
Terms are found with one Aho-Corasick automaton (``pyahocorasick``) over the words, so
the cost per window hardly depends on the number of terms.

```yaml
rails:
  config:
    banned: {type: blocklist, words: [falcon, project falcon]}
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar

import ahocorasick
from pydantic import AfterValidator, Field

from rails.base import CheckContext, RailConfig, Verdict
from rails.normalize import normalize
from rails.resources import Resources

_SEPARATORS = " \t\n\r\f\v-_."
_JOINERS = "-_."


# On UTF-8 bytes, so that translation is one C pass whatever the text holds (``str``'s
# translate is 30x slower once the text is not ASCII): separators become a space;
# joiners are deleted instead for the joined form.
_SPACED = bytes.maketrans(_SEPARATORS.encode(), b" " * len(_SEPARATORS))
_WHITESPACE = b" \t\n\r\f\v"
_JOINED = bytes.maketrans(_WHITESPACE, b" " * len(_WHITESPACE))
_JOINER_BYTES = _JOINERS.encode()
# ASCII punctuation that is a word of its own (each costs one substring test per window).
_MARKS = tuple(c for c in map(chr, range(33, 127)) if not c.isalnum() and c not in _SEPARATORS)
_ASCII_PUNCTUATION = "".join(_MARKS) + _SEPARATORS
_ASCII_ALNUM = re.compile(r"[a-z0-9]").search
_NON_ASCII_MARK = re.compile(r"[^\w\s]")  # a non-ASCII symbol or punctuation
# An ASCII letter or digit next to a non-ASCII word character: a word boundary.
_SCRIPT_SEAM = re.compile(r"(?<=[a-z0-9])(?=[^\W\x00-\x7f])|(?<=[^\W\x00-\x7f])(?=[a-z0-9])")
# Three or more one-character words, in the spaced form; the ASCII test is 3x cheaper.
_LETTER_RUN = re.compile(r" [^\W_](?: [^\W_]){2,}(?= )")
_ASCII_LETTER_RUN = re.compile(r" [a-z0-9] [a-z0-9] [a-z0-9] ")


def _words(folded: str, joined: bool = False) -> str:
    """`` w1 w2 ... `` of already-normalized text: one space around every word."""
    if joined:
        text = folded.encode().translate(_JOINED, _JOINER_BYTES).decode()
    else:
        text = folded.encode().translate(_SPACED).decode()
    if not text.isascii():
        text = "".join(b if b.isascii() else _split_block(b) for b in _blocks(text))
    for mark in _MARKS:
        if mark in text:
            text = text.replace(mark, f" {mark} ")
    text = f" {text} "
    while "  " in text:  # cheaper than split and join: most text has no double space
        text = text.replace("  ", " ")
    return text


def _split_block(block: str) -> str:
    """Spaces around non-ASCII symbols and at ASCII/non-ASCII letter seams, word by
    word; words of letters of one other script (most of Russian prose) need nothing."""
    words = block.split(" ")
    for i, word in enumerate(words):
        if len(word) < 2 or word.isascii():  # one character is a word of its own already
            continue
        core = word.strip(_ASCII_PUNCTUATION)
        if not (core.isalpha() and not _ASCII_ALNUM(core)):
            words[i] = _split_marks(word)
    return " ".join(words)


def _blocks(text: str, size: int = 64) -> Iterable[str]:
    """``text`` in pieces of about ``size`` characters, each cut before a space (so that
    no word is cut)."""
    start = 0
    while start < len(text):
        end = text.find(" ", start + size)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end


def _split_marks(word: str) -> str:
    return _SCRIPT_SEAM.sub(" ", _NON_ASCII_MARK.sub(r" \g<0> ", word))


def _key_words(term: str) -> list[str]:
    return _words(normalize(term, casefold=True).text).split()


def _not_blank(term: str) -> str:
    if not _key_words(term):
        raise ValueError("a blocklist term must not be blank")
    return term


class BlocklistConfig(RailConfig):
    words: list[Annotated[str, AfterValidator(_not_blank)]] = Field(min_length=1)


class Matcher:
    """Every configured term as ``" w1 w2 "`` and, for phrases, ``" w1w2 "`` (searched
    in the spaced and joined forms of the text), and as ``"w1w2"`` (searched inside
    letter-spaced runs). ``pyahocorasick`` automatons: measured against ``ahocorasick-rs``
    and a regex alternation in ``bench/blocklist.py``."""

    def __init__(self, terms: Iterable[str]) -> None:
        spaced: dict[str, str] = {}
        bare: dict[str, str] = {}
        for term in terms:
            words = _key_words(term)
            for key in (f" {' '.join(words)} ", f" {''.join(words)} "):
                _keep_longest(spaced, key, term)
            _keep_longest(bare, "".join(words), term)
        self._spaced = _automaton(spaced)
        self._bare = _automaton(bare)

    def find(self, text: str) -> str | None:
        """The configured term found in ``text`` (the longest of those found), or None."""
        folded = normalize(text, casefold=True).text
        spaced = _words(folded)
        found = _search(self._spaced, spaced)
        if found is None and any(j in folded for j in _JOINERS):
            found = _search(self._spaced, _words(folded, joined=True))
        if found is None and (not spaced.isascii() or _ASCII_LETTER_RUN.search(spaced)):
            for run in _LETTER_RUN.finditer(spaced):
                if (found := _search(self._bare, run.group().replace(" ", ""))) is not None:
                    break
        return found


def _automaton(keys: dict[str, str]) -> Any:
    automaton = ahocorasick.Automaton()
    for key, term in keys.items():
        automaton.add_word(key, term)
    automaton.make_automaton()
    return automaton


def _search(automaton: Any, text: str) -> str | None:
    terms: list[str] = [term for _, term in automaton.iter(text)]
    return max(terms, key=len) if terms else None


def _keep_longest(keys: dict[str, str], key: str, term: str) -> None:
    """Two terms with one key (``Falcon``, ``falcon``): the reason names the first."""
    keys.setdefault(key, term)


class BlocklistRail:
    """Blocks on the first term found; the reason names the configured term."""

    type_name: ClassVar[str] = "blocklist"
    local: ClassVar[bool] = True  # never waits: the pipeline runs it inline
    Config: ClassVar[type[RailConfig]] = BlocklistConfig

    def __init__(self, name: str, config: BlocklistConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._matcher = Matcher(config.words)

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        term = self._matcher.find(text)
        if term is None:
            return Verdict.allow()
        return Verdict.block(f"matched blocklisted term {term!r}")
