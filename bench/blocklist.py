"""Large blocklists: load time and cost per window of three matchers, in one run.

``python -m bench.blocklist [--terms 50000]`` builds a synthetic list of ``--terms``
terms (pronounceable made-up words, one in ten a two-word phrase; seeded, so every run
has the same list), then measures, for each matcher:

- **load**: building the matcher from the list (what start-up pays);
- **µs per window**: one check of a 200 + 50 token window of the benchmark text (no
  term in it: the common case, and the whole text is scanned), median of 5 batches;
- the same with a blocked phrase at its end (proof that the matcher works).

Matchers: ``pyahocorasick`` (the rail as shipped: ``BlocklistRail``), ``ahocorasick-rs``
on the same keys (if installed; not a dependency), and the previous rail's approach, one
regex alternation of all terms.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable

from bench.scenarios import CHUNK_SIZE, CONTEXT_SIZE
from bench.text import deltas
from rails.builtin import blocklist
from rails.builtin.blocklist import Matcher
from rails.normalize import normalize

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["qu", "sh", "th"]


def terms(n: int, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.1:
            word += " " + "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        out.add(word)
    return sorted(out)


def _per_call(fn: Callable[[], object], budget_s: float = 1.0) -> float:
    t0 = time.perf_counter()
    for _ in range(5):
        fn()
    one = (time.perf_counter() - t0) / 5
    n = max(5, int(budget_s / 5 / max(one, 1e-7)))
    batches = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - t0) / n)
    return statistics.median(batches) * 1e6


class _AhocorasickRs:
    """The shipped matcher's spaced search on ``ahocorasick-rs`` instead."""

    def __init__(self, words: list[str]) -> None:
        import ahocorasick_rs

        keys: dict[str, str] = {}
        for term in words:
            key_words = blocklist._key_words(term)
            for key in (f" {' '.join(key_words)} ", f" {''.join(key_words)} "):
                keys.setdefault(key, term)
        self._terms = list(keys.values())
        kind = ahocorasick_rs.MatchKind.LeftmostLongest
        self._a = ahocorasick_rs.AhoCorasick(list(keys), matchkind=kind)

    def find(self, text: str) -> str | None:
        spaced = blocklist._words(normalize(text, casefold=True).text)
        found = self._a.find_matches_as_indexes(spaced)
        return self._terms[found[0][0]] if found else None


class _Regex:
    """The previous rail: one alternation, longest first, over NFKC-casefolded text."""

    def __init__(self, words: list[str]) -> None:
        keys = sorted({" ".join(w.casefold().split()) for w in words}, key=len, reverse=True)
        body = "|".join(r"\s+".join(map(re.escape, k.split(" "))) for k in keys)
        self._p = re.compile(rf"(?<!\w)(?:{body})(?!\w)")

    def find(self, text: str) -> str | None:
        m = self._p.search(text.casefold())
        return m.group() if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--terms", type=int, default=50_000)
    args = parser.parse_args()
    words = terms(args.terms)
    window = "".join(deltas("words", CONTEXT_SIZE + CHUNK_SIZE))
    hit = window + " " + words[len(words) // 2].upper()
    print(f"{len(words)} terms; window of {len(window)} chars\n")
    print("| matcher | load (s) | µs per window, no hit | µs per window, a hit at the end |")
    print("|---|---:|---:|---:|")
    builders: list[tuple[str, Callable[[list[str]], object]]] = [
        ("pyahocorasick (shipped)", Matcher),
        ("ahocorasick-rs", _AhocorasickRs),
        ("regex alternation (before)", _Regex),
    ]
    for name, build in builders:
        t0 = time.perf_counter()
        try:
            matcher = build(words)
        except ImportError:
            print(f"| {name} | not installed | | |")
            continue
        load = time.perf_counter() - t0
        find = matcher.find  # type: ignore[attr-defined]
        if find(window) is not None or find(hit) is None:
            raise RuntimeError(f"{name} does not match as it should")
        miss_us = _per_call(lambda f=find: f(window))  # type: ignore[misc]
        hit_us = _per_call(lambda f=find: f(hit))  # type: ignore[misc]
        print(f"| {name} | {load:.2f} | {miss_us:.1f} | {hit_us:.1f} |")


if __name__ == "__main__":
    main()
