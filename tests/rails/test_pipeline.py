"""The pipeline: order, parallelism, cancellation, timeouts, fail policy, observer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, cast

import pytest

from rails.base import Action, CheckContext, RailConfig, Stage, TextField, Verdict
from rails.pipeline import Outcome, Pipeline

CTX = CheckContext(stage="output")
Answer = Verdict | BaseException | object | Callable[[str], Verdict]


class Fake:
    """A rail that answers ``answer`` (or raises it, or computes it) after ``delay`` s."""

    def __init__(
        self,
        name: str,
        answer: Answer = None,
        *,
        delay: float = 0.0,
        fields: tuple[TextField, ...] = ("content",),
        on_error: Literal["allow", "block"] = "block",
        timeout_s: float = 0.2,
        log: list[str] | None = None,
    ) -> None:
        self.name = name
        self.config = RailConfig(timeout_s=timeout_s, on_error=on_error, fields=fields)
        self.answer = Verdict.allow() if answer is None else answer
        self.delay = delay
        self.calls: list[str] = []
        self.tasks: list[asyncio.Task[object] | None] = []
        self.cancelled = False
        self.log = log

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        self.calls.append(text)
        self.tasks.append(asyncio.current_task())
        if self.log is not None:
            self.log.append(self.name)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if isinstance(self.answer, BaseException):
            raise self.answer
        if callable(self.answer):
            return cast(Verdict, self.answer(text))
        return self.answer  # type: ignore[return-value]


def mask(old: str, new: str) -> Callable[[str], Verdict]:
    """A masking answer: replace ``old`` when present, else allow."""

    def answer(text: str) -> Verdict:
        return Verdict.modify(text.replace(old, new), "masked") if old in text else Verdict.allow()

    return answer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Stage, str]] = []
        self.seconds: list[float] = []

    def rail_done(
        self, rail: str, stage: Stage, verdict: str, seconds: float, mode: str = "enforce"
    ) -> None:
        self.calls.append((rail, stage, verdict))
        self.seconds.append(seconds)


def pipeline(*rails: Fake, parallel: bool = False, observer: Recorder | None = None) -> Pipeline:
    return Pipeline(rails, "output", parallel=parallel, observer=observer)


MODES = pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])


@MODES
@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        pytest.param([], Outcome(Action.ALLOW, "a cat"), id="no rails"),
        pytest.param([Verdict.allow()], Outcome(Action.ALLOW, "a cat"), id="allow"),
        pytest.param(
            [Verdict.allow(), Verdict.allow()], Outcome(Action.ALLOW, "a cat"), id="all allow"
        ),
        pytest.param(
            [Verdict.allow(), Verdict.block("bad")],
            Outcome(Action.BLOCK, "a cat", "r1", "bad"),
            id="block",
        ),
        pytest.param(
            [mask("a", "*"), Verdict.allow()],
            Outcome(Action.MODIFY, "* c*t", "r0", "masked"),
            id="modify",
        ),
        pytest.param(
            [Verdict.modify("a cat"), Verdict.allow()],
            Outcome(Action.ALLOW, "a cat"),
            id="modify to the same text is allow",
        ),
        pytest.param(
            [mask("a", "*"), mask("c", "#")],
            Outcome(Action.MODIFY, "* #*t", "r1", "masked"),
            id="modifications compose",
        ),
        pytest.param(
            [mask("a", "*"), Verdict.allow(), mask("t", "+")],
            Outcome(Action.MODIFY, "* c*+", "r2", "masked"),
            id="modifications compose around an allow",
        ),
    ],
)
async def test_outcome(answers: list[Answer], outcome: Outcome, parallel: bool) -> None:
    rails = [Fake(f"r{i}", a) for i, a in enumerate(answers)]
    assert await pipeline(*rails, parallel=parallel).check("a cat", CTX) == outcome


async def test_sequential_runs_in_order_and_stops_at_first_block() -> None:
    order: list[str] = []
    a, b, c = Fake("a", log=order), Fake("b", Verdict.block("no"), log=order), Fake("c", log=order)
    outcome = await pipeline(a, b, c).check("text", CTX)
    assert (outcome.blocked, outcome.rail, outcome.reason) == (True, "b", "no")
    assert order == ["a", "b"]
    assert c.calls == []


async def test_sequential_passes_modified_text_on() -> None:
    first, second = Fake("first", mask("x", "y")), Fake("second", mask("y", "z"))
    outcome = await pipeline(first, second).check("x", CTX)
    assert second.calls == ["y"]
    assert outcome == Outcome(Action.MODIFY, "z", "second", "masked")


async def test_parallel_runs_rails_concurrently() -> None:
    rails = [Fake(f"r{i}", delay=0.1) for i in range(3)]
    started = time.perf_counter()
    await pipeline(*rails, parallel=True).check("text", CTX)
    assert time.perf_counter() - started < 0.25


async def test_parallel_block_cancels_the_others() -> None:
    before = asyncio.all_tasks()
    slow, fast = Fake("slow", delay=0.2), Fake("fast", Verdict.block("no"), delay=0.01)
    observer = Recorder()
    started = time.perf_counter()
    outcome = await pipeline(slow, fast, parallel=True, observer=observer).check("t", CTX)
    assert time.perf_counter() - started < 0.15
    assert (outcome.blocked, outcome.rail) == (True, "fast")
    assert slow.cancelled
    assert asyncio.all_tasks() == before
    assert observer.calls == [("fast", "output", "block")]  # the cancelled rail is not reported


async def test_parallel_first_block_wins() -> None:
    late = Fake("late", Verdict.block("late"), delay=0.1)
    early = Fake("early", Verdict.block("early"), delay=0.01)
    outcome = await pipeline(late, early, parallel=True).check("t", CTX)
    assert (outcome.rail, outcome.reason) == ("early", "early")
    assert late.cancelled


async def test_parallel_error_under_block_policy_cancels_the_others() -> None:
    slow, broken = Fake("slow", delay=0.2), Fake("broken", RuntimeError("x"), delay=0.01)
    outcome = await pipeline(slow, broken, parallel=True).check("t", CTX)
    assert outcome == Outcome(Action.BLOCK, "t", "broken", "rail error")
    assert slow.cancelled


async def test_parallel_modifiers_rerun_in_config_order() -> None:
    upper_a, upper_b = Fake("A", mask("a", "A")), Fake("B", mask("b", "B"))
    allow = Fake("allow")
    outcome = await pipeline(upper_a, allow, upper_b, parallel=True).check("ab ab", CTX)
    assert outcome == Outcome(Action.MODIFY, "AB AB", "B", "masked")
    # The first modifier's answer stands; later modifiers run again on the evolving text.
    assert (upper_a.calls, allow.calls, upper_b.calls) == (["ab ab"], ["ab ab"], ["ab ab", "Ab Ab"])


async def test_parallel_single_modifier_is_not_rerun() -> None:
    masker, allow = Fake("m", mask("a", "*")), Fake("allow")
    outcome = await pipeline(allow, masker, parallel=True).check("a", CTX)
    assert outcome == Outcome(Action.MODIFY, "*", "m", "masked")
    assert masker.calls == ["a"]


async def test_parallel_rerun_may_block() -> None:
    first = Fake("first", mask("a", "b"))
    second = Fake("second", lambda t: Verdict.block("b!") if "b" in t else Verdict.modify(t + "!"))
    outcome = await pipeline(first, second, parallel=True).check("a", CTX)
    assert outcome == Outcome(Action.BLOCK, "b", "second", "b!")


async def test_cancelling_check_cancels_rail_tasks() -> None:
    before = asyncio.all_tasks() - {asyncio.current_task()}
    rails = [Fake(f"r{i}", delay=0.2) for i in range(3)]
    check = asyncio.create_task(pipeline(*rails, parallel=True).check("t", CTX))
    await asyncio.sleep(0.02)
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check
    assert all(r.cancelled for r in rails)
    assert asyncio.all_tasks() - {asyncio.current_task()} == before


@pytest.mark.parametrize("parallel", [False, True])
async def test_single_rail_and_sequential_create_no_task(parallel: bool) -> None:
    rails = [Fake("only")] if parallel else [Fake("a"), Fake("b")]
    await pipeline(*rails, parallel=parallel).check("t", CTX)
    assert all(task is asyncio.current_task() for r in rails for task in r.tasks)


@MODES
@pytest.mark.parametrize(
    ("fake", "outcome", "verdict"),
    [
        pytest.param(
            {"delay": 0.3, "timeout_s": 0.05, "on_error": "allow"},
            Outcome(Action.ALLOW, "t"),
            "timeout",
            id="timeout, allow",
        ),
        pytest.param(
            {"delay": 0.3, "timeout_s": 0.05},
            Outcome(Action.BLOCK, "t", "r", "rail timed out"),
            "timeout",
            id="timeout, block",
        ),
        pytest.param(
            {"answer": ValueError("secret user text"), "on_error": "allow"},
            Outcome(Action.ALLOW, "t"),
            "error",
            id="exception, allow",
        ),
        pytest.param(
            {"answer": ValueError("secret user text")},
            Outcome(Action.BLOCK, "t", "r", "rail error"),
            "error",
            id="exception, block",
        ),
        pytest.param(
            {"answer": TimeoutError("its own")},
            Outcome(Action.BLOCK, "t", "r", "rail error"),
            "error",
            id="the rail's own TimeoutError is an error",
        ),
        pytest.param({}, Outcome(Action.ALLOW, "t"), "allow", id="sanity: allow"),
        pytest.param(
            {"answer": "block"}, Outcome(Action.BLOCK, "t", "r", "rail error"), "error", id="a str"
        ),
        pytest.param(
            {"answer": lambda t: None},
            Outcome(Action.BLOCK, "t", "r", "rail error"),
            "error",
            id="None",
        ),
        pytest.param(
            {"answer": Verdict(Action.MODIFY)},
            Outcome(Action.BLOCK, "t", "r", "rail error"),
            "error",
            id="MODIFY without text",
        ),
        pytest.param(
            {"answer": Verdict("block", "x")},  # type: ignore[arg-type]
            Outcome(Action.BLOCK, "t", "r", "rail error"),
            "error",
            id="action not an Action",
        ),
        pytest.param(
            {"answer": Verdict(Action.BLOCK, None), "on_error": "allow"},  # type: ignore[arg-type]
            Outcome(Action.ALLOW, "t"),
            "error",
            id="reason not a str",
        ),
    ],
)
async def test_failures_follow_on_error(
    fake: dict[str, Any],
    outcome: Outcome,
    verdict: str,
    parallel: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = Recorder()
    rails = pipeline(Fake("r", **fake), Fake("other"), parallel=parallel, observer=observer)
    with caplog.at_level(logging.WARNING, logger="railproxy.rails"):
        assert await rails.check("t", CTX) == outcome
    assert ("r", "output", verdict) in observer.calls
    assert "secret" not in caplog.text
    if verdict in ("error", "timeout"):
        assert [r.name for r in caplog.records] == ["railproxy.rails"]
        assert "output rail r " in caplog.text


async def test_exception_is_logged_by_type_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="railproxy.rails"):
        await pipeline(Fake("pii", KeyError("alice@example.com"))).check("t", CTX)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "output rail pii raised KeyError; on_error=block"


@MODES
async def test_only_rails_for_the_field_run(parallel: bool) -> None:
    content = Fake("content", Verdict.block("c"))
    reasoning = Fake("reasoning", Verdict.block("r"), fields=("reasoning",))
    both = Fake("both", fields=("content", "reasoning"))
    rails = pipeline(content, both, reasoning, parallel=parallel)
    tools = CheckContext(stage="output", field="tool_arguments")
    assert await rails.check("t", tools) == Outcome(Action.ALLOW, "t")
    outcome = await rails.check("t", CheckContext(stage="output", field="reasoning"))
    assert outcome.rail == "reasoning"
    assert content.calls == []
    assert both.calls == ["t"]


@pytest.mark.parametrize(
    ("fields", "wants"),
    [
        ((), {"content": False, "tool_arguments": False, "reasoning": False}),
        ((("content",),), {"content": True, "tool_arguments": False, "reasoning": False}),
        (
            (("content",), ("reasoning", "tool_arguments")),
            {"content": True, "tool_arguments": True, "reasoning": True},
        ),
    ],
)
def test_wants(fields: tuple[tuple[TextField, ...], ...], wants: dict[TextField, bool]) -> None:
    rails = [Fake(f"r{i}", fields=f) for i, f in enumerate(fields)]
    p = pipeline(*rails)
    assert {f: p.wants(f) for f in wants} == wants
    assert p.rails == tuple(rails)


@MODES
async def test_observer_hears_every_call_once(parallel: bool) -> None:
    observer = Recorder()
    rails = [
        Fake("allow"),
        Fake("modify", mask("t", "T")),
        Fake("error", RuntimeError(), on_error="allow"),
        Fake("timeout", delay=0.3, timeout_s=0.05, on_error="allow"),
        Fake("block", Verdict.block(), delay=0.1),
    ]
    outcome = await pipeline(*rails, parallel=parallel, observer=observer).check("t", CTX)
    assert outcome.rail == "block"
    assert sorted(observer.calls) == [
        ("allow", "output", "allow"),
        ("block", "output", "block"),
        ("error", "output", "error"),
        ("modify", "output", "modify"),
        ("timeout", "output", "timeout"),
    ]
    assert all(0 <= s < 0.2 for s in observer.seconds)


def test_outcome_blocked() -> None:
    assert Outcome(Action.BLOCK, "t").blocked
    assert not Outcome(Action.MODIFY, "t").blocked
