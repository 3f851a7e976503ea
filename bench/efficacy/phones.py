"""The pii rail's phone pattern beside Google's ``phonenumbers`` library (issue 16: "phone
numbers through ``phonenumbers`` (regions configurable) instead of a hand pattern, if it
measures well"). Bench only; ``phonenumbers`` is not a dependency of railproxy.

``python -m bench.efficacy.phones`` prints, in one run:

- recall per number format and evasion class on a set of phone numbers in carrier
  sentences (national and international forms of 8 countries, fictitious or reserved
  numbers), each found by the ``pii`` rail (``entities: [phone]``, whole text) and by
  ``phonenumbers.PhoneNumberMatcher`` (``Leniency.VALID``) over the same normalized text
  (``rails.normalize``, as the rail matches) for each of ``REGIONS`` in turn;
- false positives of each on every benign text of the efficacy corpus (prose with dates,
  versions, order numbers, ISBNs, coordinates, ...);
- the cost of each per 200-token window (with 50 of context, as the microbenchmark) on
  text with no digits, text with a year every 20 words, and text with a phone number,
  medians of interleaved batches.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable

from bench.efficacy.corpus import benign
from bench.text import deltas
from rails.base import Action, CheckContext, Verdict
from rails.builtin.pii import PiiConfig, PiiRail
from rails.normalize import normalize
from rails.resources import Resources

REGIONS = ("US", "GB", "DE", "FR", "IN", "JP", "AU", "BR")

# (format, number as written); fictitious or reserved numbers (555-01xx, Ofcom's drama
# ranges, ...). National forms are only phones in their region.
NUMBERS: tuple[tuple[str, str], ...] = (
    ("us_parens", "(415) 555-2671"),
    ("us_dashes", "415-555-2671"),
    ("us_dots", "415.555.2671"),
    ("us_toll_free", "1-800-555-0199"),
    ("us_bare_10_digits", "4155552671"),
    ("us_e164", "+14155552671"),
    ("us_international", "+1 415 555 2671"),
    ("gb_london", "020 7946 0958"),
    ("gb_mobile", "07700 900123"),
    ("gb_international", "+44 20 7946 0958"),
    ("de_national", "089 1234567"),
    ("de_international", "+49 89 1234567"),
    ("fr_national", "01 42 68 53 00"),
    ("fr_international", "+33 1 42 68 53 00"),
    ("in_mobile", "+91 98765 43210"),
    ("jp_international", "+81 3-1234-5678"),
    ("au_international", "+61 2 9374 4000"),
    ("br_international", "+55 11 91234-5678"),
)

_FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
_ARABIC_INDIC = {str(d): chr(0x0660 + d) for d in range(10)}
EVASIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "fullwidth_digits": lambda s: "".join(_FULLWIDTH.get(c, c) for c in s),
    "arabic_indic_digits": lambda s: "".join(_ARABIC_INDIC.get(c, c) for c in s),
    "zero_width_space": lambda s: s[:4] + "\u200b" + s[4:],
    "nbsp": lambda s: s.replace(" ", "\u00a0"),
    "double_space": lambda s: s.replace(" ", "  "),
}


def attacks() -> list[tuple[str, str, str]]:
    """(format, evasion, text) for every number and evasion."""
    return [
        (fmt, name, f"Call me on {evade(number)} tonight.")
        for fmt, number in NUMBERS
        for name, evade in EVASIONS.items()
    ]


def benign_texts() -> list[str]:
    return sorted({c.text for c in benign()})


class Library:
    """``phonenumbers`` over the normalized text, one matcher per region."""

    def __init__(self, regions: tuple[str, ...] = REGIONS) -> None:
        import phonenumbers

        self._matcher = phonenumbers.PhoneNumberMatcher
        self._valid = phonenumbers.Leniency.VALID
        self._regions = regions

    def finds(self, text: str) -> bool:
        folded = normalize(text, casefold=False).text
        if not any(d in folded for d in "0123456789"):  # the rail's fast path, kept
            return False
        return any(
            next(iter(self._matcher(folded, region, leniency=self._valid)), None) is not None
            for region in self._regions
        )


class Pattern:
    """The ``pii`` rail as configured with ``entities: [phone]``."""

    def __init__(self) -> None:
        self._rail = PiiRail("pii", PiiConfig(entities=["phone"]), Resources())
        self._ctx = CheckContext("output")

    def finds(self, text: str) -> bool:
        # The rail never awaits: run its coroutine to the end without a loop, so that the
        # cost measured is the rail's alone.
        coroutine = self._rail.check(text, self._ctx)
        try:
            coroutine.send(None)
        except StopIteration as done:
            verdict: Verdict = done.value
        else:  # pragma: no cover (a rail that waits: not the pii rail)
            coroutine.close()
            raise RuntimeError("the pii rail awaited something")
        return verdict.action is not Action.ALLOW


def _windows() -> dict[str, str]:
    words = deltas("words", 250)
    plain = "".join(words)
    years = "".join(f" {1900 + i}" if i % 20 == 19 else w for i, w in enumerate(words))
    phone = "".join(" (415) 555-2671" if i == 120 else w for i, w in enumerate(words))
    return {"no digits": plain, "a year every 20 words": years, "one phone number": phone}


def _pair_us(
    a: Callable[[], object], b: Callable[[], object], budget_s: float
) -> tuple[float, float]:
    """Median µs per call of ``a`` and ``b``, batches interleaved."""
    t0 = time.perf_counter()
    for _ in range(3):
        a()
        b()
    one = (time.perf_counter() - t0) / 6
    n = max(3, int(budget_s / 10 / max(one, 1e-7)))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(5):
        for fn, seen in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            seen.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per cost measure")
    args = parser.parse_args()
    ours, lib, us_only = Pattern(), Library(), Library(("US",))
    found: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for fmt, evasion, text in attacks():
        for key in (f"format {fmt}", f"evasion {evasion}"):
            row = found[key]
            row[0] += ours.finds(text)
            row[1] += lib.finds(text)
            row[2] += us_only.finds(text)
            row[3] += 1
    print(f"Recall ({len(attacks())} numbers in carrier sentences):\n")
    print("| class | pii rail pattern | phonenumbers, 8 regions | phonenumbers, US |")
    print("|---|---:|---:|---:|")
    for key in sorted(found):
        a, b, c, n = found[key]
        print(f"| {key} | {a}/{n} | {b}/{n} | {c}/{n} |")
    totals = [sum(row[i] for k, row in found.items() if k.startswith("format")) for i in range(4)]
    print(
        f"| **all** | {totals[0]}/{totals[3]} | {totals[1]}/{totals[3]} | {totals[2]}/{totals[3]} |"
    )
    texts = benign_texts()
    false = [[t for t in texts if d.finds(t)] for d in (ours, lib, us_only)]
    print(
        f"\nFalse positives on {len(texts)} benign texts: pattern {len(false[0])}, "
        f"phonenumbers (8 regions) {len(false[1])}, phonenumbers (US) {len(false[2])}"
    )
    for name, hits in zip(("pattern", "phonenumbers 8", "phonenumbers US"), false, strict=True):
        for text in hits:
            print(f"  {name}: {text}")
    print("\nCost per 200-token window (+50 context), µs, medians of interleaved batches:\n")
    print("| window | pii rail pattern (phone) | phonenumbers, 8 regions | ratio |")
    print("|---|---:|---:|---:|")
    for label, window in _windows().items():
        a, b = _pair_us(lambda w=window: ours.finds(w), lambda w=window: lib.finds(w), args.budget)
        print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.1f}x |")


if __name__ == "__main__":
    main()
