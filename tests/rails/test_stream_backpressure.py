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


async def test_producer_does_not_wait_when_the_window_needs_more_input() -> None:
    rail = Gated()
    s = stream(rail, stream_first=False, chunk=100)
    for i in range(40):  # one open window of 100: nothing can be released without input
        s.push(str(i), [(KEY, str(i))])
    await asyncio.wait_for(s.room(), 0.5)
    await s.aclose()


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
