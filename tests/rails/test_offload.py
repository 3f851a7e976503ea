"""Huge texts leave the event loop: token counts and local rails in the worker process.

Where work ran is asserted, not how long it took: the worker's pid, a tiktoken spy in this
process, and ``offload.pending()`` while the loop goes on running this test's code.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fakes.offload_jobs import RaisingLocalRail, WhereRail, die, hold_until
from rails import Guard, offload
from rails.base import Action, CheckContext, RailConfig, Verdict
from rails.pipeline import Pipeline
from rails.resources import Resources
from rails.tokens import _encoding

BIG = offload.INLINE_CHARS + 1


@pytest.fixture(autouse=True)
def _enabled() -> Iterator[None]:
    """The server enables the worker at start-up; the library leaves it off."""
    offload.enable()
    yield
    offload.enable(False)


CTX = CheckContext("input", "content", "")


@pytest.fixture(autouse=True, scope="module")
def _stop_worker() -> Iterator[None]:
    """One worker for the module (starting one takes seconds on a busy machine)."""
    yield
    offload.shutdown()


@pytest.fixture
def tiktoken_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(thread id, text length) of every tiktoken encode in this process."""
    enc = _encoding()
    calls: list[tuple[int, int]] = []
    real = enc.encode_ordinary

    def spy(text: str) -> list[int]:
        calls.append((threading.get_ident(), len(text)))
        return real(text)

    monkeypatch.setattr(enc, "encode_ordinary", spy)
    return calls


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` for up to 30 s (the worker may be starting)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def where(verdict: Any) -> tuple[int, int, int]:
    pid, thread, length = verdict.reason.split()
    return int(pid), int(thread), int(length)


def rail(cls: type[WhereRail] = WhereRail, name: str = "where") -> WhereRail:
    return cls(name, RailConfig(), Resources())


# -- token counts -------------------------------------------------------------------------


async def test_a_short_prompt_is_counted_inline(tiktoken_calls: list[tuple[int, int]]) -> None:
    text = " a" * (offload.INLINE_CHARS // 2)
    assert await offload.count_tokens(text) == offload.INLINE_CHARS // 2
    assert tiktoken_calls == [(threading.get_ident(), len(text))]
    assert offload.pending() == 0


async def test_a_huge_prompt_is_counted_exactly_outside_this_process(
    tiktoken_calls: list[tuple[int, int]],
) -> None:
    text = " a" * 1_000_000  # 2 MB, a million tokens: the 4-chars estimate would say 500,000
    assert await offload.count_tokens(text) == 1_000_000
    assert tiktoken_calls == []  # not encoded here, in any thread


@pytest.mark.parametrize(
    "tail", ["<|endoftext|>", "\ud800 lone surrogate", " 😀 界世", "\r\n\t  x"]
)
async def test_worker_counts_equal_tiktoken_in_process(tail: str) -> None:
    text = "word " * (BIG // 5) + tail
    expected = len(_encoding().encode_ordinary(text))
    assert await offload.count_tokens(text) == expected


# -- local rails --------------------------------------------------------------------------


async def test_local_rail_judges_a_short_text_inline() -> None:
    verdict = await offload.check_local(rail(), "x" * offload.INLINE_CHARS, CTX)
    assert where(verdict) == (os.getpid(), threading.get_ident(), offload.INLINE_CHARS)


async def test_local_rail_judges_a_huge_text_in_the_worker() -> None:
    verdict = await offload.check_local(rail(), "x" * BIG, CTX)
    pid, _, length = where(verdict)
    assert pid != os.getpid()
    assert length == BIG  # the whole text was judged


async def test_the_loop_runs_while_the_worker_judges(tmp_path: Path) -> None:
    """While the worker is held busy, the check waits there and this test's code runs on;
    it finishes once the worker is free."""
    gate = tmp_path / "open"
    hold = asyncio.create_task(offload.run(hold_until, str(gate)))
    await until(lambda: offload.pending() == 1, "the holding job was sent")
    pipeline = Pipeline([rail()], "input")
    check = asyncio.create_task(pipeline.check("y" * BIG, CTX))
    await until(lambda: offload.pending() == 2, "the check was sent to the worker")
    assert not check.done()
    await asyncio.to_thread(gate.touch)
    assert await hold is True  # the gate opened; the job did not give up waiting
    outcome = await check
    assert outcome.blocked
    assert where(Verdict(Action.BLOCK, outcome.reason))[0] != os.getpid()
    assert offload.pending() == 0


async def test_a_rail_failing_in_the_worker_gets_its_on_error_policy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = RaisingLocalRail("raiser", RailConfig(on_error="block"), Resources())
    outcome = await Pipeline([failing], "input").check("secret " * BIG, CTX)
    assert (outcome.action, outcome.rail, outcome.reason) == (Action.BLOCK, "raiser", "rail error")
    assert "secret" not in caplog.text
    allowing = RaisingLocalRail("raiser", RailConfig(on_error="allow"), Resources())
    outcome = await Pipeline([allowing], "input").check("secret " * BIG, CTX)
    assert outcome.action is Action.ALLOW


async def test_a_rail_that_cannot_be_sent_is_judged_inline() -> None:
    class Unshippable:  # a local class does not pickle by reference
        local: ClassVar[bool] = True
        name = "here"
        config = RailConfig()

        async def check(self, text: str, ctx: CheckContext) -> Verdict:
            return Verdict.block(f"{os.getpid()}")

    verdict = await offload.check_local(Unshippable(), "z" * BIG, CTX)  # type: ignore[arg-type]
    assert verdict == Verdict.block(f"{os.getpid()}")


async def test_a_dead_worker_fails_its_jobs_and_the_next_job_gets_a_new_one() -> None:
    with pytest.raises(BrokenProcessPool):
        await offload.run(die)
    verdict = await offload.check_local(rail(), "x" * BIG, CTX)
    assert where(verdict)[0] != os.getpid()


async def test_shutdown_then_work_again() -> None:
    first = where(await offload.check_local(rail(), "x" * BIG, CTX))[0]
    await offload.aclose()
    second = where(await offload.check_local(rail(), "x" * BIG, CTX))[0]
    assert os.getpid() not in (first, second)
    assert first != second


# -- built-in rails on a huge prompt: fail closed, and masks come back whole ------------------

HUGE = "All quiet on the western front. " * (2_000_000 // 32)  # 2 MB


def input_guard(**rail_config: Any) -> Guard:
    config = {"banned": {"type": "blocklist", "words": ["project falcon"]}, **rail_config}
    return Guard.from_config({"rails": {"config": config, "input": {"flows": list(config)}}})


@pytest.mark.parametrize(
    ("tail", "rail_name"),
    [(" Project\nFALCON", "banned"), (" write to jo@example.com", "pii"), ("", None)],
)
async def test_builtin_input_rails_judge_all_of_a_huge_prompt(
    tail: str, rail_name: str | None
) -> None:
    guard = input_guard(pii={"type": "pii"}, secrets={"type": "secrets"})
    outcome, changes = await guard.check_input([{"role": "user", "content": HUGE + tail}])
    assert outcome.rail == rail_name
    assert outcome.blocked is (rail_name is not None)
    assert changes == []


async def test_a_huge_prompt_masked_in_the_worker_comes_back_whole() -> None:
    guard = input_guard(pii={"type": "pii", "action": "mask"})
    text = "jo@example.com " + HUGE + " ann@example.org"
    outcome, changes = await guard.check_input([{"role": "user", "content": text}])
    assert outcome.action is Action.MODIFY
    assert changes == [(0, "[EMAIL] " + HUGE + " [EMAIL]")]


async def test_the_library_judges_in_its_own_process_unless_enabled() -> None:
    offload.enable(False)
    assert offload.inline("x" * BIG)
    verdict = await offload.check_local(rail(), "x" * BIG, CTX)
    assert where(verdict)[0] == os.getpid()  # no worker: no spawn of the caller's main


async def test_an_open_key_span_goes_to_the_worker_and_back() -> None:
    """A window over ``INLINE_CHARS`` is judged in the worker: the span a key leaves open
    travels there in the context and comes back in the verdict (both pickle)."""
    from rails.builtin.secrets import SecretsConfig, SecretsRail

    secrets = SecretsRail("s", SecretsConfig(action="mask"), Resources())
    pipeline = Pipeline([secrets], "output")
    lines = "\n".join(f"MIIE{i:05d}" + "QUJD" * 14 for i in range(BIG // 60))
    opened = await pipeline.check("x -----BEGIN PRIVATE KEY-----\n" + lines, CheckContext("output"))
    assert (opened.action, opened.text, list(opened.spans)) == (
        Action.MODIFY,
        "x [REDACTED]",
        ["s"],
    )
    ctx = CheckContext("output", new_at=len("x [REDACTED]"), spans=opened.spans)
    closed = await pipeline.check(f"x [REDACTED]{lines}\n-----END PRIVATE KEY----- ok", ctx)
    assert (closed.text, dict(closed.spans)) == ("x [REDACTED] ok", {})
    assert not offload.inline(lines)  # both windows went to the worker
