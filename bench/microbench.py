"""The local rails' cost per window, measured in-process (no HTTP, no other process).

A window is what the streaming engine checks: ``CONTEXT_SIZE`` tokens of context plus
``CHUNK_SIZE`` new tokens of the benchmark text. Measured, each as the median over
``REPEATS`` batches of calls (about ``budget_s`` seconds per measure):

- the configured output pipeline (regex+pii+secrets, ``parallel: true``) on one window:
  ``await guard.output.check(window, CheckContext("output"))``, the goal's number;
- the same rails with ``parallel: false``, and each rail on its own;
- the pipeline on the same window with a year every 20 words (the benchmark text has no
  digits, so ``pii``'s digit patterns never scan it; real text often has some);
- the four local rails (the three above plus ``blocklist``) on the window, with a year
  every 20 words, and with a curly apostrophe and an em dash every 20 words (non-ASCII
  text takes the normalization's slow path; see ``rails.normalize``);
- token counting of one window in the engine: ``count`` of each of its ``CHUNK_SIZE``
  deltas plus the ``tail`` that cuts the next window's context;
- the whole engine per window: a ``GuardedStream`` fed ``CHUNK_SIZE`` pieces and drained
  of its releases (buffer, counting, task scheduling, the check).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.scenarios import CHUNK_SIZE, CONTEXT_SIZE, LOCAL_FLOWS, LOCAL_RAIL_CONFIG
from bench.text import deltas
from rails import CheckContext, Guard
from rails.base import Blocked
from rails.stream import ChannelKey
from rails.tokens import TiktokenCounter

REPEATS = 5
_KEY: ChannelKey = (0, "content", 0)


@dataclass(frozen=True)
class Measure:
    name: str
    us_per_window: float
    note: str = ""


BLOCKLIST = {"type": "blocklist", "words": ["forbidden phrase", "falcon"]}


def local_guard(parallel: bool, stream_first: bool = True, blocklist: bool = False) -> Guard:
    config = {**LOCAL_RAIL_CONFIG, "blocklist": BLOCKLIST} if blocklist else LOCAL_RAIL_CONFIG
    flows = [*LOCAL_FLOWS, "blocklist"] if blocklist else LOCAL_FLOWS
    return Guard.from_config(
        {
            "streaming": True,
            "rails": {
                "config": config,
                "output": {
                    "flows": flows,
                    "parallel": parallel,
                    "streaming": {
                        "enabled": True,
                        "chunk_size": CHUNK_SIZE,
                        "context_size": CONTEXT_SIZE,
                        "stream_first": stream_first,
                    },
                },
            },
        }
    )


async def _per_call(fn: Callable[[], Awaitable[Any]], budget_s: float) -> float:
    """Median over REPEATS batches of the wall time of one call, in µs; the batches
    together take about ``budget_s`` seconds (after ten warm-up calls)."""
    t0 = time.perf_counter()
    for _ in range(10):
        await fn()
    one = (time.perf_counter() - t0) / 10
    iterations = max(5, int(budget_s / REPEATS / max(one, 1e-7)))
    batches = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(iterations):
            await fn()
        batches.append((time.perf_counter() - t0) / iterations)
    return statistics.median(batches) * 1e6


async def _engine_window(guard: Guard, pieces: tuple[str, ...]) -> None:
    engine = guard.open_stream("Tell me about the countryside.")
    for piece in pieces:
        engine.push(piece, [(_KEY, piece)])
    engine.finish()
    async for released in engine.releases():
        if isinstance(released, Blocked):
            raise RuntimeError(f"the benchmark text was not simply released: {released!r}")
    await engine.aclose()


async def measure(budget_s: float) -> list[Measure]:
    words = deltas("words", CONTEXT_SIZE + CHUNK_SIZE)
    window = "".join(words)
    new_pieces = words[CONTEXT_SIZE:]
    ctx = CheckContext("output", "content", "Tell me about the countryside.")
    parallel, sequential = local_guard(parallel=True), local_guard(parallel=False)
    counter = TiktokenCounter()
    for g in (parallel, sequential):
        outcome = await g.output.check(window, ctx)
        if outcome.blocked or outcome.text != window:
            raise RuntimeError(f"the local rails did not pass the benchmark text: {outcome}")

    out = [
        Measure(
            "output pipeline, parallel: true (as benchmarked)",
            await _per_call(lambda: parallel.output.check(window, ctx), budget_s),
            "the goal's number",
        ),
        Measure(
            "output pipeline, parallel: false",
            await _per_call(lambda: sequential.output.check(window, ctx), budget_s),
        ),
    ]
    numbers = "".join(
        f" {1900 + i}" if i % 20 == 19 else w for i, w in enumerate(words)
    )  # a year every 20 words: pii's digit patterns must scan
    outcome = await parallel.output.check(numbers, ctx)
    if outcome.blocked:
        raise RuntimeError(f"the local rails did not pass the text with numbers: {outcome}")
    out.append(
        Measure(
            "output pipeline, parallel: true, text with numbers",
            await _per_call(lambda: parallel.output.check(numbers, ctx), budget_s),
            "a year every 20 words",
        )
    )
    four = local_guard(parallel=True, blocklist=True)
    quotes = "".join(
        f"{w}\u2019s \u2014" if i % 20 == 19 else w for i, w in enumerate(words)
    )  # a curly apostrophe and an em dash every 20 words: normalization's slow path
    for text, note in ((window, ""), (numbers, "a year every 20 words"), (quotes, "curly quotes")):
        if (await four.output.check(text, ctx)).blocked:
            raise RuntimeError("the four local rails did not pass the benchmark text")
        us = await _per_call(lambda t=text: four.output.check(t, ctx), budget_s)  # type: ignore[misc]
        name = "output pipeline + blocklist (regex+pii+secrets+blocklist), parallel: true"
        out.append(Measure(name, us, note or "issue 16's goal: under 100 µs"))
    await four.aclose()
    for rail in sequential.output.rails:
        us = await _per_call(lambda r=rail: r.check(window, ctx), budget_s)  # type: ignore[misc]
        out.append(Measure(f"rail {rail.name} alone", us))

    async def count_window() -> None:
        for piece in new_pieces:
            counter.count(piece)
        counter.tail(window, CONTEXT_SIZE)

    out.append(
        Measure(
            f"token counting ({CHUNK_SIZE} deltas + context tail)",
            await _per_call(count_window, budget_s),
        )
    )
    for stream_first in (True, False):
        guard = local_guard(parallel=True, stream_first=stream_first)
        us = await _per_call(lambda g=guard: _engine_window(g, new_pieces), budget_s)  # type: ignore[misc]
        name = f"whole engine per window, stream_first {str(stream_first).lower()}"
        out.append(Measure(name, us, f"{CHUNK_SIZE} pushes + check + releases"))
    for g in (parallel, sequential):
        await g.aclose()
    return out


def run(budget_s: float) -> list[Measure]:
    return asyncio.run(measure(budget_s))
