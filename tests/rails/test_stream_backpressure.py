"""``GuardedStream.room()``: the producer waits while too much is held, and never when
waiting could not end."""

from __future__ import annotations

import asyncio

import pytest

from rails.base import ChannelKey, CheckContext, RailConfig, Verdict
from rails.config import OutputStreaming
from rails.pipeline import Pipeline
from rails.stream import GuardedStream
from rails.tokens import counter_for

KEY: ChannelKey = (0, "content", 0)


class Gated:
    """Allows everything, but each check waits for ``gate``."""

    def __init__(self) -> None:
        self.name = "gated"
        self.config = RailConfig()
        self.gate = asyncio.Event()

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        await self.gate.wait()
        return Verdict.allow()


def stream(rail: Gated, stream_first: bool, chunk: int = 4) -> GuardedStream[str]:
    cfg = OutputStreaming(
        enabled=True,
        chunk_size=chunk,
        context_size=0,
        stream_first=stream_first,
        token_unit="delta",
        max_held_events=16,
    )
    return GuardedStream(Pipeline([rail], "output"), cfg, counter_for("delta"))


async def waits(coro: asyncio.Future[None] | asyncio.Task[None], seconds: float = 0.05) -> bool:
    done, _ = await asyncio.wait([coro], timeout=seconds)
    return not done


async def test_producer_waits_while_a_check_holds_many_events() -> None:
    rail = Gated()
    s = stream(rail, stream_first=False)
    for i in range(40):
        s.push(str(i), [(KEY, str(i))])
    room = asyncio.ensure_future(s.room())
    assert await waits(room)  # 40 held > 16 and checks are running: wait
    rail.gate.set()
    out: list[str] = []
    async for batch in s.releases():
        assert isinstance(batch, list)
        out += batch
        if len(out) >= 36:
            break
    await asyncio.wait_for(room, 1)
    assert out == [str(i) for i in range(len(out))]
    await s.aclose()


async def test_a_window_needing_more_input_closes_early_under_pressure() -> None:
    rail = Gated()
    s = stream(rail, stream_first=False, chunk=100)
    for i in range(40):  # one open window of 100: nothing could be released without input
        s.push(str(i), [(KEY, str(i))])
    room = asyncio.ensure_future(s.room())
    assert await waits(room)  # the partial window was closed early and is being judged
    rail.gate.set()
    out: list[str] = []
    async with asyncio.timeout(1):
        async for batch in s.releases():
            assert isinstance(batch, list)
            out += batch
            if len(out) == 40:
                break
        await room
    assert out == [str(i) for i in range(40)]
    await s.aclose()


@pytest.mark.parametrize("other", ["none", "unguarded_field"])
@pytest.mark.parametrize("stream_first", [False, True])
async def test_held_items_stay_bounded_whatever_they_carry(other: str, stream_first: bool) -> None:
    """A held head whose window needs more text, then a flood of items carrying no
    guarded text (empty deltas) or text of a field no rail judges (tool arguments with
    ``fields: [content]``): the producer never gets far past ``max_held_events``."""
    s = GuardedStream(Pipeline([Allow()], "output"), config(stream_first), counter_for("delta"))
    consumer = asyncio.create_task(_drain(s))
    s.push("head", [(KEY, "head")])
    most = 0
    for i in range(5000):
        texts = [] if other == "none" else [((0, "tool_arguments", 0), f'"{i}",')]
        s.push(f"i{i}", texts)
        most = max(most, s.held)
        await asyncio.wait_for(s.room(), 1)
    s.finish()
    released = await asyncio.wait_for(consumer, 5)
    assert most <= 16 + 1
    assert released == 5001


class Allow:
    name = "allow"

    def __init__(self) -> None:
        self.config = RailConfig()

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        return Verdict.allow()


def config(stream_first: bool) -> OutputStreaming:
    return OutputStreaming(
        enabled=True,
        chunk_size=100,
        context_size=0,
        stream_first=stream_first,
        token_unit="delta",
        max_held_events=16,
    )


async def _drain(s: GuardedStream[str]) -> int:
    count = 0
    async for batch in s.releases():
        if isinstance(batch, list):
            count += len(batch)
    return count


async def test_producer_waits_for_a_slow_consumer_in_stream_first() -> None:
    rail = Gated()
    s = stream(rail, stream_first=True)
    for i in range(40):
        s.push(str(i), [(KEY, str(i))])
    room = asyncio.ensure_future(s.room())
    assert await waits(room)  # nobody consumed the 40 releasable items yet
    releases = s.releases()
    first = await anext(releases)
    assert first == [str(i) for i in range(40)]
    await asyncio.wait_for(room, 1)
    await releases.aclose()
    await s.aclose()


@pytest.mark.parametrize("n", [0, 16])
async def test_under_the_limit_there_is_no_wait(n: int) -> None:
    s = stream(Gated(), stream_first=False)
    for i in range(n):
        s.push(str(i), [(KEY, str(i))])
    await asyncio.wait_for(s.room(), 0.1)
    await s.aclose()
