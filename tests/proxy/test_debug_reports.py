"""What feeds the debug channel: ``GuardedStream.releases(reports=True)`` and the per-call
observer of ``Pipeline.check``. Real built-in rails, counted in upstream deltas (one push,
one token) so window boundaries are plain from the pushes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rails.base import Action, Blocked, ChannelKey, CheckContext, Stage, Verdict
from rails.guard import Guard
from rails.pipeline import Pipeline
from rails.reports import Holding, WindowReport
from rails.stream import GuardedStream

KEY: ChannelKey = (0, "content", 0)
Seen = list[Any]


def guard(stream_first: bool, *flows: str, parallel: bool = False, chunk: int = 2) -> Guard:
    config = {
        "banned": {"type": "blocklist", "words": ["falcon"]},
        "pii": {"type": "pii", "entities": ["email"], "action": "mask"},
    }
    streaming = {
        "enabled": True,
        "chunk_size": chunk,
        "context_size": 0,
        "stream_first": stream_first,
        "token_unit": "delta",
    }
    output = {"flows": list(flows or ["banned"]), "parallel": parallel, "streaming": streaming}
    return Guard.from_config({"rails": {"config": config, "output": output}})


def rewrite(item: str, key: ChannelKey, new: str) -> str:
    return new


async def run(g: Guard, pieces: list[str], reports: bool = True) -> Seen:
    """Push every piece, finish, and collect what ``releases`` yields (bounded)."""
    stream: GuardedStream[str] = g.open_stream(rewrite=rewrite)
    releases = stream.releases(reports=True) if reports else stream.releases()
    for piece in pieces:
        stream.push(piece, [(KEY, piece)])
    stream.finish()
    seen: Seen = []
    try:
        async with asyncio.timeout(5):
            seen.extend([r async for r in releases])
    finally:
        await stream.aclose()
    return seen


def windows(seen: Seen) -> list[WindowReport]:
    return [s for s in seen if isinstance(s, WindowReport)]


def released(seen: Seen) -> list[tuple[int, str]]:
    """(position in ``seen``, item) of every released item."""
    return [(i, item) for i, s in enumerate(seen) if isinstance(s, list) for item in s]


@pytest.mark.parametrize("stream_first", [True, False])
async def test_each_window_is_reported_with_offsets_and_rail_verdicts(stream_first: bool) -> None:
    seen = await run(guard(stream_first), ["ab ", "c ", "dé ", "f"])
    got = [(w.index, w.start, w.end, w.char_start, w.chars, w.verdict) for w in windows(seen)]
    assert got == [(0, 0, 2, 0, 5, "allow"), (1, 2, 4, 5, 4, "allow")]
    for w in windows(seen):
        assert w.channel == KEY
        assert [(c.rail, c.verdict) for c in w.rails] == [("banned", "allow")]
        assert 0 <= w.rails[0].seconds <= w.seconds < 5


async def test_a_held_window_is_reported_before_the_items_it_releases() -> None:
    seen = await run(guard(False), ["a ", "b ", "c ", "d"])
    first, second = windows(seen)
    where = dict((item, i) for i, item in released(seen))
    assert seen.index(first) < min(where["a "], where["b "])
    assert seen.index(second) < min(where["c "], where["d"])


async def test_held_counts_rise_and_end_at_zero_before_the_last_release() -> None:
    seen = await run(guard(False, chunk=3), ["a ", "b ", "c ", "d "])
    held = [s for s in seen if isinstance(s, Holding)]
    assert held[0] == Holding(4, 4)  # everything pushed before the first check finished
    assert held[-1] == Holding(0, 0)
    last_batch = max(i for i, s in enumerate(seen) if isinstance(s, list))
    assert seen.index(held[-1]) < last_batch


async def test_stream_first_true_reports_no_holding() -> None:
    seen = await run(guard(True), ["a ", "b ", "c "])
    assert not any(isinstance(s, Holding) for s in seen)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_the_blocking_window_is_reported_before_the_block(stream_first: bool) -> None:
    seen = await run(guard(stream_first), ["a ", "b ", "Falcon ", "d ", "e ", "f "])
    last = windows(seen)[-1]
    assert (last.index, last.start, last.verdict) == (1, 2, "block")
    assert [(c.rail, c.verdict) for c in last.rails] == [("banned", "block")]
    blocked = seen[-1]
    assert isinstance(blocked, Blocked)
    assert seen.index(last) < len(seen) - 1
    assert (blocked.offset, blocked.released) == (last.start, stream_first)


async def test_a_masked_window_reports_the_length_the_client_gets() -> None:
    pieces = ["mail ", "jo@example.com ", "now ", "ok"]
    seen = await run(guard(False, "pii"), pieces)
    first, second = windows(seen)
    assert "".join(item for _, item in released(seen)) == "mail [EMAIL] now ok"
    assert (first.verdict, first.chars) == ("modify", len("mail [EMAIL] "))
    assert (second.char_start, second.chars) == (len("mail [EMAIL] "), len("now ok"))
    assert [(c.rail, c.verdict) for c in first.rails] == [("pii", "modify")]


async def test_a_modify_after_release_is_reported_as_a_block() -> None:
    seen = await run(guard(True, "pii"), ["mail ", "jo@example.com ", "now"])
    assert windows(seen)[0].verdict == "block"
    assert [(c.rail, c.verdict) for c in windows(seen)[0].rails] == [("pii", "modify")]


async def test_parallel_rails_are_each_reported() -> None:
    seen = await run(guard(False, "banned", "pii", parallel=True), ["a ", "b "])
    (w,) = windows(seen)
    assert sorted((c.rail, c.verdict) for c in w.rails) == [("banned", "allow"), ("pii", "allow")]


async def test_without_reports_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    observers: list[object] = []
    check = Pipeline.check

    async def spy(self: Pipeline, text: str, ctx: CheckContext, **kw: Any) -> Any:
        observers.append(kw.get("observer"))
        return await check(self, text, ctx, **kw)

    monkeypatch.setattr(Pipeline, "check", spy)
    seen = await run(guard(False), ["a ", "b ", "Falcon"], reports=False)
    assert observers == [None, None]
    assert all(isinstance(s, list | Blocked) for s in seen)


class Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Stage, str]] = []

    def rail_done(
        self, rail: str, stage: Stage, verdict: str, seconds: float, mode: str = "enforce"
    ) -> None:
        assert seconds >= 0
        self.calls.append((rail, stage, verdict))


class Raises:
    name = "broken"
    config = guard(True).output.rails[0].config

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        raise RuntimeError(text)


async def test_check_tells_both_the_shared_and_the_call_observer() -> None:
    g = guard(True, "banned", "pii")
    shared, own = Log(), Log()
    pipeline = Pipeline([*g.output.rails, Raises()], "output", observer=shared)
    outcome = await pipeline.check("hi", CheckContext("output"), observer=own)
    assert outcome.action is Action.BLOCK
    expected = [("banned", "output", "allow"), ("pii", "output", "allow")]
    assert own.calls == shared.calls == [*expected, ("broken", "output", "error")]
    await pipeline.check("hi", CheckContext("output"))
    assert len(shared.calls) == 6
    assert len(own.calls) == 3  # a call's observer hears only the calls of its check
