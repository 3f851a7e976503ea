"""The ``regex`` rail, and the pattern scanning it shares with ``pii`` and ``secrets``.

A scan runs every ``Detector`` over the text, keeps the matches its validator accepts,
and merges overlapping matches into one ``Span`` (so masking never leaves part of a match
visible). Empty matches are ignored: a pattern such as ``x*`` cannot mask every position.

```yaml
rails:
  config:
    ticket_ids: {type: regex, patterns: ['\\bTCK-\\d{6}\\b'], action: mask}
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from rails.base import CheckContext, RailConfig, Verdict
from rails.normalize import normalize
from rails.resources import Resources

Action = Literal["block", "mask"]


def accept_all(_: str) -> bool:
    """The validator of detectors whose pattern alone is proof enough."""
    return True


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of finding: ``kind`` names it in masks, ``label`` in verdict reasons.

    ``valid`` sees each match (the ``secret`` group if the pattern has one) and may reject
    it, e.g. a Luhn check. Detector order is priority when two matches start together.
    """

    kind: str
    label: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = accept_all
    # A cheap test any text with a match passes, e.g. ``re.compile("eyJ").search``.
    # Patterns that open with a lookbehind or a character class defeat the regex engine's
    # literal prefix scan and cost ~40 µs per KB even when nothing matches; a literal
    # gate costs ~1 µs.
    gate: Callable[[str], object] | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` was found by the detector labelled ``label``."""

    start: int
    end: int
    kind: str
    label: str


def scan(text: str, detectors: Sequence[Detector]) -> list[Span]:
    """All accepted matches, ordered and merged so that no two spans overlap."""
    found = [
        (span, priority)
        for priority, detector in enumerate(detectors)
        for span in _matches(text, detector)
    ]
    found.sort(key=lambda item: (item[0].start, -item[0].end, item[1]))
    return _merge(span for span, _ in found)


def _matches(text: str, detector: Detector) -> Iterable[Span]:
    if detector.gate is not None and not detector.gate(text):
        return
    group = "secret" if "secret" in detector.pattern.groupindex else 0
    for match in detector.pattern.finditer(text):
        found = group if match.start(group) >= 0 else 0  # an alternative without it
        start, end = match.span(found)
        if end > start and detector.valid(match.group(found)):
            yield Span(start, end, detector.kind, detector.label)


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        last = merged[-1] if merged else None
        if last is not None and span.start < last.end:
            merged[-1] = Span(last.start, max(last.end, span.end), last.kind, last.label)
        else:
            merged.append(span)
    return merged


def redact(text: str, spans: Sequence[Span], replacement: Callable[[Span], str]) -> str:
    """``text`` with each (non-overlapping, ordered) span replaced."""
    parts: list[str] = []
    pos = 0
    for span in spans:
        parts += (text[pos : span.start], replacement(span))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def normalized_scan(text: str, detectors: Sequence[Detector]) -> list[Span]:
    """``scan`` of ``text`` normalized (``rails.normalize``, case kept), with the spans
    mapped back to ``text``: a masked finding covers every character that made it up."""
    folded = normalize(text, casefold=False)
    spans = scan(folded.text, detectors)
    if folded.table is None:
        return spans
    return [Span(*folded.span(s.start, s.end), s.kind, s.label) for s in spans]


def judge(
    text: str,
    detectors: Sequence[Detector],
    action: Action,
    what: str,
    replacement: Callable[[Span], str],
    normalized: bool = False,
) -> Verdict:
    """Allow if nothing is found; else block, or modify with every finding replaced.

    ``normalized``: detectors see the normalized text (see ``normalized_scan``).
    The reason is ``"<what>: <label>, <label>"`` with labels in order of first appearance;
    it never contains the matched text.
    """
    spans = normalized_scan(text, detectors) if normalized else scan(text, detectors)
    if not spans:
        return Verdict.allow()
    reason = reason_for(what, spans)
    if action == "block":
        return Verdict.block(reason)
    return Verdict.modify(redact(text, spans, replacement), reason)


def reason_for(what: str, spans: Sequence[Span]) -> str:
    """``"<what>: <label>, <label>"``, labels in order of first appearance."""
    return f"{what}: {', '.join(dict.fromkeys(s.label for s in spans))}"


_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
    return pattern


_PLAIN = re.compile(r"[\w ]+")


def _gate(pattern: str, flags: re.RegexFlag) -> Callable[[str], object] | None:
    """For a case-blind plain phrase (``(?i)forbidden phrase``), a substring test on the
    casefolded text: the regex engine has no fast scan for case-blind literals."""
    blind = pattern.startswith("(?i)") or flags & re.IGNORECASE
    body = pattern.removeprefix("(?i)")
    if not blind or not _PLAIN.fullmatch(body) or flags & ~re.IGNORECASE:
        return None
    needle = body.casefold()
    return lambda text: needle in text.casefold()


class RegexConfig(RailConfig):
    patterns: list[Annotated[str, AfterValidator(_compiles)]] = Field(min_length=1)
    flags: list[Literal["IGNORECASE", "MULTILINE", "DOTALL"]] = Field(default_factory=list)
    action: Action = "block"
    mask_with: str = "[REDACTED]"
    # Match against normalized text (rails.normalize: ignorables and marks removed,
    # compatibility forms, ASCII digits, look-alike letters folded; case kept). Off by
    # default: an operator's pattern may mean a script or form that normalization folds.
    normalize: bool = False


class RegexRail:
    """Blocks text matching any of ``patterns``, or masks each match with ``mask_with``
    (inserted literally: no backreferences). The reason names the pattern, not the text."""

    type_name: ClassVar[str] = "regex"
    local: ClassVar[bool] = True  # never waits: the pipeline runs it inline
    Config: ClassVar[type[RailConfig]] = RegexConfig

    def __init__(self, name: str, config: RegexConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        flags = re.RegexFlag(0)
        for flag in config.flags:
            flags |= _FLAGS[flag]
        self._detectors = tuple(
            Detector("pattern", f"pattern {p!r}", re.compile(p, flags), gate=_gate(p, flags))
            for p in config.patterns
        )
        self._action = config.action
        self._mask = config.mask_with
        self._normalize = config.normalize

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        return judge(
            text, self._detectors, self._action, "matched", lambda _: self._mask, self._normalize
        )
