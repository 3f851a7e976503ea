"""Monitor mode: a rail judges and is counted and logged, but blocks, masks and holds
nothing; a rail's own ``mode`` wins over the config's ``rails.mode``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rails.base import (
    Blocked,
    ChannelKey,
    CheckContext,
    Mode,
    RailConfig,
    Stage,
    TextField,
    Verdict,
)
from rails.config import OutputStreaming
from rails.guard import Guard
from rails.pipeline import Pipeline, log_monitor_text
from rails.stream import GuardedStream
from rails.tokens import counter_for

KEY: ChannelKey = (0, "content", 0)
CTX = CheckContext("output")


class Judge:
    """Blocks text holding ``bad``, masks ``mail``; waits for ``gate`` when given one."""

    def __init__(
        self,
        name: str,
        mode: Mode | None = None,
        gate: asyncio.Event | None = None,
        fields: tuple[TextField, ...] = ("content",),
    ) -> None:
        self.name = name
        self.config = RailConfig(mode=mode, fields=fields)
        self.gate = gate
        self.calls: list[str] = []

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        self.calls.append(text)
        if self.gate is not None:
            await self.gate.wait()
        if "bad" in text:
            return Verdict.block("bad word")
        if "mail" in text:
            return Verdict.modify(text.replace("mail", "****"), "masked")
        return Verdict.allow()


class Counts:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Stage, str, str]] = []

    def rail_done(self, rail: str, stage: Stage, verdict: str, seconds: float, mode: Mode) -> None:
        self.calls.append((rail, stage, verdict, mode))


def stream(pipeline: Pipeline, stream_first: bool) -> GuardedStream[str]:
    cfg = OutputStreaming(
        enabled=True, chunk_size=2, context_size=0, stream_first=stream_first, token_unit="delta"
    )
    return GuardedStream(pipeline, cfg, counter_for("delta"), rewrite=lambda _i, _k, new: new)


async def released(s: GuardedStream[str], limit: int) -> list[str | Blocked]:
    """What ``releases()`` yields, until ``limit`` items are out (bounded in time)."""
    out: list[str | Blocked] = []
    async with asyncio.timeout(5):
        async for batch in s.releases():
            if isinstance(batch, Blocked):
                out.append(batch)
                break
            out.extend(batch)
            if len(out) >= limit:
                break
    return out


async def test_a_monitor_block_is_counted_but_the_answer_is_allow() -> None:
    counts = Counts()
    p = Pipeline([Judge("shadow", "monitor")], "output", observer=counts)
    outcome = await p.check("a bad word", CTX)
    assert not outcome.blocked
    assert outcome.text == "a bad word"
    await p.settle()
    assert counts.calls == [("shadow", "output", "block", "monitor")]


async def test_a_monitor_mask_changes_nothing() -> None:
    counts = Counts()
    p = Pipeline([Judge("pii", "monitor")], "output", observer=counts)
    outcome = await p.check("my mail", CTX)
    assert outcome.text == "my mail"
    await p.settle()
    assert counts.calls == [("pii", "output", "modify", "monitor")]


async def test_the_config_default_applies_and_a_rails_own_mode_wins() -> None:
    counts = Counts()
    rails = [Judge("own", "enforce"), Judge("inherits")]
    p = Pipeline(rails, "output", observer=counts, mode="monitor")
    assert (p.mode("own"), p.mode("inherits")) == ("enforce", "monitor")
    outcome = await p.check("bad", CTX)
    assert outcome.blocked
    assert outcome.rail == "own"
    await p.settle()
    assert sorted(counts.calls) == [
        ("inherits", "output", "block", "monitor"),
        ("own", "output", "block", "enforce"),
    ]


@pytest.mark.parametrize("parallel", [False, True])
async def test_every_monitor_rail_judges_even_after_one_would_block(parallel: bool) -> None:
    counts = Counts()
    rails = [Judge("a", "monitor"), Judge("b", "monitor")]
    p = Pipeline(rails, "output", parallel=parallel, observer=counts)
    assert not (await p.check("bad", CTX)).blocked
    await p.settle()
    assert sorted(counts.calls) == [
        ("a", "output", "block", "monitor"),
        ("b", "output", "block", "monitor"),
    ]


async def test_the_caller_does_not_wait_for_monitor_rails() -> None:
    gate = asyncio.Event()
    shadow = Judge("shadow", "monitor", gate)
    p = Pipeline([shadow], "output")
    outcome = await p.check("bad", CTX)  # returns while the monitor rail still waits
    assert not outcome.blocked
    await asyncio.sleep(0)
    assert shadow.calls == ["bad"]
    gate.set()
    await p.settle()


async def test_aclose_cancels_monitor_checks_still_running() -> None:
    p = Pipeline([Judge("shadow", "monitor", asyncio.Event())], "output")
    await p.check("text", CTX)
    await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await p.aclose()
        await p.settle()  # nothing left


async def test_a_would_be_block_is_logged_without_text(caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline([Judge("shadow", "monitor")], "output")
    with caplog.at_level(logging.INFO, logger="railproxy.rails"):
        await p.check("a bad secret", CTX)
        await p.settle()
    [record] = [r for r in caplog.records if r.name == "railproxy.rails"]
    assert record.getMessage() == "monitor: output rail shadow would block"
    fields: dict[str, Any] = vars(record)
    assert (fields["rail"], fields["mode"], fields["verdict"]) == ("shadow", "monitor", "block")
    assert "secret" not in record.getMessage()
    assert "secret" not in str(fields["reason"])
    assert "text" not in fields


@pytest.mark.parametrize("stream_first", [True, False])
async def test_all_monitor_rails_hold_nothing_and_block_nothing(stream_first: bool) -> None:
    gate = asyncio.Event()  # the monitor rail never answers while the stream runs
    shadow = Judge("shadow", "monitor", gate)
    counts = Counts()
    pipeline = Pipeline([shadow], "output", observer=counts)
    s = stream(pipeline, stream_first)
    words = ["a ", "bad ", "my ", "mail ", "end"]
    for w in words:
        s.push(w, [(KEY, w)])
    s.push("[DONE]", end=True)
    s.finish()
    assert await released(s, len(words) + 1) == [*words, "[DONE]"]  # unchanged, all out
    assert s.blocked is None
    await s.aclose()  # the stream is over; its monitor checks are not cancelled with it
    gate.set()
    await pipeline.settle()
    assert ("shadow", "output", "block", "monitor") in counts.calls
    assert ("shadow", "output", "modify", "monitor") in counts.calls
    assert "".join(shadow.calls) == "".join(words)  # every window judged, the last too


async def test_mixed_modes_hold_only_for_the_enforcing_rail() -> None:
    gate = asyncio.Event()
    enforce = Judge("tools", "enforce", fields=("tool_arguments",))
    shadow = Judge("shadow", "monitor", gate)  # content: judged, never waited for
    pipeline = Pipeline([enforce, shadow], "output")
    s = stream(pipeline, stream_first=False)
    tool: ChannelKey = (0, "tool_arguments", 0)
    s.push("c1", [(KEY, "bad ")])
    s.push("c2", [(KEY, "words")])
    s.push("t1", [(tool, "{bad")])
    s.push("t2", [(tool, "}")])
    s.finish()
    out = await released(s, 3)
    # Content went out without waiting for the monitor rail; the tool window the
    # enforcing rail blocked was never released.
    assert out[:2] == ["c1", "c2"]
    assert isinstance(out[-1], Blocked)
    assert out[-1].rail == "tools"
    assert "t1" not in out
    await s.aclose()
    gate.set()
    await pipeline.settle()


async def test_guard_config_mode_monitor_streams_everything() -> None:
    config: dict[str, Any] = {
        "streaming": True,
        "rails": {
            "mode": "monitor",
            "config": {"banned": {"type": "blocklist", "words": ["falcon"]}},
            "output": {
                "flows": ["banned"],
                "streaming": {"enabled": True, "chunk_size": 2, "stream_first": False},
            },
        },
    }
    guard = Guard.from_config(config)
    assert not guard.holds_output

    async def chunks() -> Any:
        for piece in ["the ", "falcon ", "flies"]:
            yield piece

    out = [piece async for piece in guard.stream(chunks())]
    assert out == ["the ", "falcon ", "flies"]
    assert not (await guard.check_output("the falcon")).blocked
    await guard.settle()
    await guard.aclose()


def test_mode_is_validated_per_rail_and_per_config() -> None:
    with pytest.raises(ValueError, match="mode"):
        Guard.from_config({"rails": {"mode": "shadow"}})
    with pytest.raises(ValueError, match="mode"):
        Guard.from_config(
            {"rails": {"config": {"b": {"type": "blocklist", "words": ["x"], "mode": "off"}}}}
        )


async def test_the_text_is_logged_only_when_opted_in(caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline([Judge("shadow", "monitor")], "output")
    try:
        log_monitor_text(True)
        with caplog.at_level(logging.INFO, logger="railproxy.rails"):
            await p.check("a bad secret", CTX)
            await p.settle()
    finally:
        log_monitor_text(False)
    [record] = [r for r in caplog.records if r.name == "railproxy.rails"]
    assert vars(record)["text"] == "a bad secret"
