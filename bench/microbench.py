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
  of its releases (buffer, counting, task scheduling, the check);
- what the default ``fields`` (every text a client is shown or acts on) costs against
  ``fields: [content]``: ``CHUNK_SIZE`` vLLM chat chunks (id, model, created, one
  content delta each; then again with ``logprobs`` and 5 ``top_logprobs`` per token)
  read as the relay reads them (``EventReader``) and pushed through the engine, in both
  release modes; the ratio all / content is printed beside each pair.

Run on its own: ``python -m bench.microbench`` (``--budget`` seconds per measure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.scenarios import CHUNK_SIZE, CONTEXT_SIZE, LOCAL_FLOWS, LOCAL_RAIL_CONFIG
from bench.text import deltas
from proxy.wire.chat import CHAT
from proxy.wire.reader import EventReader
from proxy.wire.sse import Event
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


def local_guard(
    parallel: bool,
    stream_first: bool = True,
    blocklist: bool = False,
    fields: list[str] | None = None,
) -> Guard:
    config = {**LOCAL_RAIL_CONFIG, "blocklist": BLOCKLIST} if blocklist else LOCAL_RAIL_CONFIG
    flows = [*LOCAL_FLOWS, "blocklist"] if blocklist else LOCAL_FLOWS
    if fields is not None:  # each rail narrowed (the default: every field)
        config = {f: {"type": f, **config.get(f, {}), "fields": fields} for f in flows}
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


def chat_events(pieces: tuple[str, ...], logprobs: bool) -> list[bytes]:
    """vLLM's chat chunks (the data of each SSE event), one content delta each; with
    ``logprobs``, each carries its token and 5 alternatives, as ``top_logprobs: 5`` asks."""
    out = []
    for i, piece in enumerate(pieces):
        choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        if logprobs:
            tops = [{"token": f"{piece}{k}", "logprob": -1.0 - k, "bytes": None} for k in range(5)]
            token = {"token": piece, "logprob": -0.1, "bytes": None, "top_logprobs": tops}
            choice["logprobs"] = {"content": [token]}
        chunk = {
            "id": "chatcmpl-8f2a1c",
            "object": "chat.completion.chunk",
            "created": 1733270000 + i // 50,
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "choices": [choice],
        }
        out.append(json.dumps(chunk).encode())
    stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
    out.append(json.dumps({"id": "chatcmpl-8f2a1c", "choices": [stop]}).encode())
    return out


async def _relay_window(guard: Guard, datas: list[bytes]) -> None:
    """What the relay does with one window of events, minus the sockets: read each as the
    client reads it, push it with its texts, drain the releases."""
    reader = EventReader(CHAT)
    engine = guard.open_stream("Tell me about the countryside.", CHAT.rewrite)
    for data in datas:
        ev = Event(b"", data)
        p = reader.read(ev)
        engine.push(ev, p.texts, ends=p.ends, end=p.end)
    engine.finish()
    async for released in engine.releases():
        if isinstance(released, Blocked):
            raise RuntimeError(f"the benchmark events were not simply released: {released!r}")
    await engine.aclose()


async def _pair(
    a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], budget_s: float
) -> tuple[float, float]:
    """Median µs per call of ``a`` and of ``b``, their batches interleaved (``a``, ``b``,
    ``a``, ...) so that a busy machine slows both alike and their ratio holds."""
    t0 = time.perf_counter()
    for _ in range(3):
        await a()
        await b()
    one = (time.perf_counter() - t0) / 6
    iterations = max(3, int(budget_s / (2 * REPEATS) / max(one, 1e-7)))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for fn, seen in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            for _ in range(iterations):
                await fn()
            seen.append((time.perf_counter() - t0) / iterations * 1e6)
    return statistics.median(times[0]), statistics.median(times[1])


async def fields_cost(budget_s: float, pieces: tuple[str, ...]) -> list[Measure]:
    """The default ``fields`` against ``fields: [content]``, one window of chat events."""
    out = []
    for logprobs in (False, True):
        datas = chat_events(pieces, logprobs)
        for stream_first in (True, False):
            every = local_guard(True, stream_first)
            content = local_guard(True, stream_first, fields=["content"])
            us = dict(
                zip(
                    ("all", "content"),
                    await _pair(
                        lambda: _relay_window(every, datas),  # noqa: B023 (awaited here)
                        lambda: _relay_window(content, datas),  # noqa: B023
                        2 * budget_s,
                    ),
                    strict=True,
                )
            )
            await every.aclose()
            await content.aclose()
            what = "chat events with logprobs (5 top)" if logprobs else "chat events"
            mode = f"stream_first {str(stream_first).lower()}"
            ratio = f"fields all / [content]: {us['all'] / us['content']:.2f}x"
            out.append(Measure(f"{what}, read + engine, fields: all, {mode}", us["all"], ratio))
            name = f"{what}, read + engine, fields: [content], {mode}"
            out.append(Measure(name, us["content"]))
    return out


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
    out += await fields_cost(budget_s, new_pieces)
    for g in (parallel, sequential):
        await g.aclose()
    return out


def run(budget_s: float) -> list[Measure]:
    return asyncio.run(measure(budget_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measure")
    args = parser.parse_args()
    print("| measure | µs per window | note |\n|---|---:|---|")
    for m in run(args.budget):
        print(f"| {m.name} | {m.us_per_window:.1f} | {m.note} |")


if __name__ == "__main__":
    main()
