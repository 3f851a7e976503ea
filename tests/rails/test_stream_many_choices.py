"""``GuardedStream`` with many choices (an Anthropic stream's blocks: one per content block,
as many as the upstream sends): ending one choice touches that choice's channels only, so
a stream of n blocks costs O(n), not O(n^2) (a hostile upstream's 12 000 tool blocks in
2.8 MB held the event loop for over 6 s, scanning every channel at every block's end)."""

from __future__ import annotations

from typing import Any

from rails.base import Blocked, CheckContext, RailConfig, Verdict
from rails.config import OutputStreaming
from rails.pipeline import Pipeline
from rails.stream import GuardedStream
from rails.tokens import counter_for

BLOCKS = 2000


class Bad:
    """Blocks a window holding ``bad``."""

    local = True
    name = "bad"
    config = RailConfig(fields=("tool_names",))

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        return Verdict.block("bad") if "bad" in text else Verdict.allow()


def engine() -> GuardedStream[str]:
    cfg = OutputStreaming(
        enabled=True, chunk_size=4, context_size=0, stream_first=False, token_unit="delta"
    )
    return GuardedStream(Pipeline([Bad()], "output"), cfg, counter_for("delta"))


class Scanned(dict[Any, Any]):
    """The engine's channels, counting every channel a scan of them visits."""

    visits = 0

    def values(self) -> Any:
        for value in super().values():
            self.visits += 1
            yield value


async def released(s: GuardedStream[str]) -> list[Any]:
    out: list[Any] = []
    async for batch in s.releases():
        out.extend(batch if isinstance(batch, list) else [batch])
    return out


async def test_ending_one_of_many_choices_touches_its_channels_only() -> None:
    s = engine()
    channels = s._channels = Scanned()
    for i in range(BLOCKS):
        s.push(f"start {i}", [((i, "tool_names", 0), "get_weather")])
        s.push(f"stop {i}", ends=[i])
    s.push("end", end=True)
    s.finish()
    out = await released(s)
    assert len(out) == 2 * BLOCKS + 1
    assert channels.visits <= 3 * BLOCKS  # the stream's end and finish: every channel once


async def test_a_block_among_many_still_ends_the_stream() -> None:
    s = engine()
    for i in range(BLOCKS):
        s.push(f"start {i}", [((i, "tool_names", 0), "bad" if i == BLOCKS - 1 else "ok")])
        s.push(f"stop {i}", ends=[i])
    s.finish()
    out = await released(s)
    assert isinstance(out[-1], Blocked)
    assert f"start {BLOCKS - 1}" not in out
