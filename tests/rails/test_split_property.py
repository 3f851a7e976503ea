"""The split property (LiteLLM issue #41611 is exactly this miss):

    a blocklisted phrase, a PII entity or a secret split across deltas and across a
    window boundary at every possible position is still caught whenever it is shorter
    than ``context_size`` tokens.

Each target is embedded in filler made of one-token words. For every way of cutting it
into two deltas (and for cutting it into single characters), and for every lead of
filler words modulo ``chunk_size`` (so that a window boundary falls at the cut), the
stream is run through ``Guard.stream`` in both release modes. It must end with a
``Blocked`` from the target's rail and, with ``stream_first: false``, the client must
never have received the whole target. A window boundary is proven to fall at every
cut, and a negative control with ``context_size: 0`` shows that the same loops do
catch a guard that drops its context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from rails import Blocked, Guard
from rails.buffer import RollingBuffer
from rails.tokens import TiktokenCounter

CHUNK = 8
CONTEXT = 16
TIK = TiktokenCounter()
FILLER = (" cat", " dog", " sun", " tree", " red", " blue", " green", " stone", " river")
AFTER = [FILLER[i % len(FILLER)] for i in range(2 * CHUNK + 1)]
Split = Literal["two", "chars"]


@dataclass(frozen=True)
class Target:
    """A text one rail must catch, with the rails config that catches it."""

    text: str
    rail: str
    spec: dict[str, Any]


TARGETS = {
    "blocklist": Target(
        " project falcon", "banned", {"type": "blocklist", "words": ["project falcon"]}
    ),
    "pii": Target(" jane.doe@example.com", "pii", {"type": "pii", "action": "block"}),
    "secret": Target(" AKIAIOSFODNN7EXAMPLE", "secrets", {"type": "secrets"}),
}


def guard_for(target: Target, context_size: int, stream_first: bool) -> Guard:
    return Guard.from_config(
        {
            "rails": {
                "config": {target.rail: target.spec},
                "output": {
                    "flows": [target.rail],
                    "streaming": {
                        "enabled": True,
                        "chunk_size": CHUNK,
                        "context_size": context_size,
                        "stream_first": stream_first,
                    },
                },
            }
        }
    )


def cuts(text: str, split: Split) -> Iterator[list[str]]:
    """The target as deltas: every cut into two pieces, or one piece per character."""
    if split == "chars":
        yield list(text)
        return
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]


def leads() -> range:
    """Filler words before the target: two whole windows, then every residue mod CHUNK
    (each filler word is one token), so later windows carry a truncated context."""
    return range(2 * CHUNK, 3 * CHUNK)


def stream_of(lead: int, parts: Sequence[str]) -> list[str]:
    before = [FILLER[i % len(FILLER)] for i in range(lead)]
    return [*before, *parts, *AFTER]


def boundaries_in_target(lead: int, parts: Sequence[str]) -> set[int]:
    """Char positions inside the target (1..len-1) where a window boundary falls."""
    pieces = stream_of(lead, parts)
    start = sum(len(p) for p in pieces[:lead])
    end = start + sum(len(p) for p in parts)
    buf = RollingBuffer(CHUNK, CONTEXT, TIK)
    windows = [w for w in map(buf.push, pieces) if w is not None]
    return {w.char_start - start for w in windows if start < w.char_start < end}


async def chunks(pieces: Sequence[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def run(guard: Guard, pieces: Sequence[str]) -> tuple[str, Blocked | None]:
    texts: list[str] = []
    blocked: Blocked | None = None
    async for item in guard.stream(chunks(pieces)):
        if isinstance(item, Blocked):
            blocked = item
        else:
            texts.append(item)
    return "".join(texts), blocked


async def misses(target: Target, context_size: int, stream_first: bool, split: Split) -> list[str]:
    """Every (cut, lead) where the guard failed the property, described."""
    guard = guard_for(target, context_size, stream_first)
    failures: list[str] = []
    try:
        for parts in cuts(target.text, split):
            for lead in leads():
                sent, blocked = await run(guard, stream_of(lead, parts))
                case = f"cut={parts!r} lead={lead}"
                if blocked is None or blocked.rail != target.rail:
                    failures.append(f"{case}: not blocked ({blocked})")
                elif not stream_first and target.text.strip() in sent:
                    failures.append(f"{case}: target released before the block")
    finally:
        await guard.aclose()
    return failures


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_targets_fit_in_the_context(target: Target) -> None:
    assert all(TIK.count(word) == 1 for word in FILLER)
    assert TIK.count("".join(FILLER)) == len(FILLER)
    assert TIK.count(target.text) < CONTEXT
    assert TIK.count(target.text) <= CHUNK  # so one lead per residue reaches every cut


@pytest.mark.parametrize("split", ["two", "chars"])
@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_a_window_boundary_falls_at_every_cut(target: Target, split: Split) -> None:
    covered: set[int] = set()
    for parts in cuts(target.text, split):
        found = set().union(*(boundaries_in_target(lead, parts) for lead in leads()))
        if split == "two":
            assert found == {len(parts[0])}, parts  # the boundary can only be at the cut
        covered |= found
    assert covered == set(range(1, len(target.text)))


@pytest.mark.parametrize("split", ["two", "chars"])
@pytest.mark.parametrize("stream_first", [True, False], ids=["stream_first", "hold"])
@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
async def test_split_target_is_caught(target: Target, stream_first: bool, split: Split) -> None:
    assert await misses(target, CONTEXT, stream_first, split) == []


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
async def test_negative_control_without_context_misses(target: Target) -> None:
    """With ``context_size: 0`` a target cut at a window boundary is seen only in halves:
    the loops above would report it, so they do test the context handling."""
    failures = await misses(target, 0, stream_first=False, split="two")
    assert failures
    assert all("not blocked" in f for f in failures)
