"""Running a stage's rails on one text: the one place rail failures are handled.

Rails only judge. Here, and nowhere else: each call is bounded by the rail's
``timeout_s``; exceptions, timeouts and answers that are not a ``Verdict`` become an
error verdict that the rail's ``on_error`` turns into allow or block; every call is timed
and reported to the observers (the shared one set at start-up, for metrics, and the
optional one a ``check`` call brings, for a stream's debug view); parallel calls are
cancelled once one blocks.

Local rails judge texts over ``rails.offload.INLINE_CHARS`` in a worker process, so that a
huge prompt cannot stall the event loop; their answers and failures are handled the same.

Failures never carry exception text into a reason (it may quote user text); the log
line names the rail and the exception type only.

Per call, each observer hears one of these verdicts::

    allow | block | modify     the rail answered
    timeout                    timeout_s passed first
    error                      it raised, or answered something that is not a Verdict
                               (or MODIFY without text)
    (nothing)                  it was cancelled: another rail blocked first, or the
                               caller cancelled the check

with the rail's mode. Rails in ``monitor`` mode (``rails.base.Mode``) judge every text the
same way, but off the caller's path: ``check`` starts them in tasks the pipeline owns and
answers from the ``enforce`` rails alone, so their verdicts are counted and logged (a
would-be block or mask as one ``railproxy.rails`` line) but never block, mask or delay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeGuard, get_args

from rails import offload
from rails.base import (
    Action,
    CheckContext,
    Mode,
    OpenSpan,
    Rail,
    Stage,
    TextField,
    Verdict,
)

log = logging.getLogger("railproxy.rails")
_LOG_TEXT = [False]  # see log_monitor_text


def log_monitor_text(on: bool) -> None:
    """Whether a monitor-mode rail's would-be block or mask is logged with the text it
    judged (field ``text``), for reviewing false blocks. Off by default; railproxy's server
    sets it from ``logging.include_text`` when it configures logging."""
    _LOG_TEXT[0] = on


_Failure = Literal["error", "timeout"]


class PipelineObserver(Protocol):
    """Told about every rail call that finished (metrics live behind this)."""

    def rail_done(self, rail: str, stage: Stage, verdict: str, seconds: float, mode: Mode) -> None:
        """``verdict``: "allow", "block", "modify", "error" or "timeout"; ``mode``: the
        rail's, "enforce" or "monitor"."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """The stage's answer for one text.

    ``action`` is MODIFY only when ``text`` differs from the checked text. ``text`` is the
    text after modifications (on BLOCK: as it stood when the blocking rail judged it).
    ``rail`` names the blocking rail, or the last rail that modified the text.
    ``spans``: the masks left open at the end of the text, by rail (``OpenSpan``).
    """

    action: Action
    text: str
    rail: str | None = None
    reason: str = ""
    spans: Mapping[str, OpenSpan] = dataclasses.field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK


class Pipeline:
    """The rails of one stage, in config order; built once at start-up, shared by streams.

    Only rails whose ``config.fields`` include ``ctx.field`` run. Sequential mode runs
    them in order, feeding each MODIFY's text to the next and stopping at the first
    BLOCK. Parallel mode runs them concurrently on the same text; the first BLOCK (in
    completion order) cancels the rest and wins. If several rails modified, their
    changes are composed: the first modifier's text (in config order) is kept and the
    other modifiers run again, sequentially in config order, over the evolving text.
    """

    def __init__(
        self,
        rails: Sequence[Rail],
        stage: Stage,
        parallel: bool = False,
        observer: PipelineObserver | None = None,
        mode: Mode = "enforce",
    ) -> None:
        self._rails = tuple(rails)
        self._stage: Stage = stage
        self._parallel = parallel
        self._observer = observer
        self._modes: dict[str, Mode] = {r.name: r.config.mode or mode for r in self._rails}
        enforced = [r for r in self._rails if self._modes[r.name] == "enforce"]
        watched = [r for r in self._rails if self._modes[r.name] == "monitor"]
        self._by_field: dict[TextField, tuple[Rail, ...]] = {
            f: tuple(r for r in enforced if f in r.config.fields) for f in get_args(TextField)
        }
        self._watched: dict[TextField, tuple[Rail, ...]] = {
            f: tuple(r for r in watched if f in r.config.fields) for f in get_args(TextField)
        }
        self._shadow: set[asyncio.Task[None]] = set()
        self._local_fields = frozenset(
            f for f, rails in self._by_field.items() if rails and all(map(_is_local, rails))
        )

    def observe(self, observer: PipelineObserver | None) -> None:
        """Attach the observer (metrics); done once at start-up, before serving."""
        self._observer = observer

    @property
    def rails(self) -> tuple[Rail, ...]:
        return self._rails

    def mode(self, rail: str) -> Mode:
        return self._modes[rail]

    @property
    def enforcing(self) -> bool:
        """Whether any rail of this stage is in enforce mode (can block, mask or hold)."""
        return any(self._by_field.values())

    def wants(self, field: TextField) -> bool:
        """Whether any enforcing rail judges this field: only those gate its text."""
        return bool(self._by_field.get(field))

    def watches(self, field: TextField) -> bool:
        """Whether any monitor-mode rail judges this field (see ``monitor``)."""
        return bool(self._watched.get(field))

    def is_local(self, field: TextField) -> bool:
        """Whether every rail judging this field is local (never waits): checking it then
        costs less than scheduling a task for it."""
        return field in self._local_fields

    async def check(
        self, text: str, ctx: CheckContext, *, observer: PipelineObserver | None = None
    ) -> Outcome:
        """Judge ``text`` with the rails for ``ctx.field``. Never raises for a rail's fault.

        No rails: ALLOW at once. One rail, or sequential mode: no task is created.
        Cancelling ``check`` cancels (and awaits) any rail tasks it started.
        ``observer`` hears this call's rail calls too, after the shared observer (a
        stream's debug view uses it; None costs nothing). Monitor-mode rails for the
        field are started on the same text (``monitor``) and take no part in the answer.
        """
        self.monitor(text, ctx)
        rails = self._by_field.get(ctx.field, ())
        if not rails:
            return Outcome(Action.ALLOW, text)
        spans: dict[str, OpenSpan] = {}
        if self._parallel and len(rails) > 1:
            outcome = await self._run_parallel(rails, text, ctx, observer, spans)
        else:
            outcome = await self._run_sequential(rails, ctx, text, text, None, observer, spans)
        if spans and not outcome.blocked:
            return Outcome(outcome.action, outcome.text, outcome.rail, outcome.reason, spans)
        return outcome

    def monitor(self, text: str, ctx: CheckContext) -> None:
        """Start the monitor-mode rails for ``ctx.field`` on ``text`` in a task of the
        pipeline's own, and return at once: the caller neither waits for them nor hears
        their verdicts. The task outlives the caller's stream (each call is still bounded
        by its ``timeout_s``), so a stream's last window is counted too; ``aclose`` ends it."""
        rails = self._watched.get(ctx.field, ())
        if rails:
            task = asyncio.create_task(self._watch(rails, text, ctx))
            self._shadow.add(task)
            task.add_done_callback(self._shadow.discard)

    async def settle(self) -> None:
        """Wait for every monitor-mode check started so far (tests, the Python API)."""
        while self._shadow:
            await asyncio.wait(list(self._shadow))

    async def aclose(self) -> None:
        """Cancel the monitor-mode checks still running and wait for them to end."""
        await _cancel(list(self._shadow))

    async def _watch(self, rails: Sequence[Rail], text: str, ctx: CheckContext) -> None:
        """Every monitor rail judges ``text`` (none is cancelled by another's block); each
        answer that would have acted is logged: rail, stage, field and reason (the text only
        with ``log_monitor_text``)."""
        if self._parallel and len(rails) > 1:
            calls = [self._call(rail, text, ctx, None) for rail in rails]
            verdicts = await asyncio.gather(*calls)
        else:
            verdicts = [await self._call(rail, text, ctx, None) for rail in rails]
        for rail, verdict in zip(rails, verdicts, strict=True):
            if verdict.action is not Action.ALLOW:
                would = "block" if verdict.action is Action.BLOCK else "modify"
                fields = {"rail": rail.name, "stage": self._stage, "verdict": would}
                fields |= {"mode": "monitor", "field": ctx.field, "reason": verdict.reason}
                if _LOG_TEXT[0]:
                    fields["text"] = text
                log.info(
                    "monitor: %s rail %s would %s", self._stage, rail.name, would, extra=fields
                )

    async def _run_sequential(
        self,
        rails: Sequence[Rail],
        ctx: CheckContext,
        original: str,
        text: str,
        modified_by: tuple[str, str] | None = None,
        observer: PipelineObserver | None = None,
        spans: dict[str, OpenSpan] | None = None,
    ) -> Outcome:
        """Run ``rails`` in order on the evolving ``text``; stop at the first BLOCK.

        ``original`` is the text the stage was asked to check; ``modified_by`` the
        (rail, reason) of the last modification made before these rails ran.
        """
        if text is not original:
            ctx = _shifted(ctx, original, text)
        for rail in rails:
            verdict = await self._call(rail, text, ctx, observer, spans)
            if verdict.action is Action.BLOCK:
                return Outcome(Action.BLOCK, text, rail.name, verdict.reason)
            if verdict.action is Action.MODIFY and verdict.text is not None:
                ctx = _shifted(ctx, text, verdict.text)
                text, modified_by = verdict.text, (rail.name, verdict.reason)
        return _finish(original, text, modified_by)

    async def _run_parallel(
        self,
        rails: Sequence[Rail],
        text: str,
        ctx: CheckContext,
        observer: PipelineObserver | None,
        spans: dict[str, OpenSpan],
    ) -> Outcome:
        """All rails at once on ``text``; the first BLOCK cancels the others and wins.

        Local rails (``local = True`` on the class: pattern matchers that never wait) run
        first, inline: a task each would cost more than their check. The others run
        concurrently, only if no local rail blocked.
        """
        verdicts: dict[str, Verdict] = {}
        for rail in rails:
            if _is_local(rail):
                verdict = await self._call(rail, text, ctx, observer, spans)
                verdicts[rail.name] = verdict
                if verdict.action is Action.BLOCK:
                    return Outcome(Action.BLOCK, text, rail.name, verdict.reason)
        remote = [rail for rail in rails if rail.name not in verdicts]
        blocked = await self._run_concurrently(remote, text, ctx, observer, verdicts)
        if blocked is not None:
            return blocked
        for rail in remote:
            _keep_span(spans, rail.name, verdicts[rail.name])
        ordered = [verdicts[rail.name] for rail in rails]
        return await self._compose(rails, ordered, text, ctx, observer, spans)

    async def _run_concurrently(
        self,
        rails: Sequence[Rail],
        text: str,
        ctx: CheckContext,
        observer: PipelineObserver | None,
        verdicts: dict[str, Verdict],
    ) -> Outcome | None:
        """Run ``rails`` as tasks, filling ``verdicts``; the first BLOCK cancels the rest
        and is returned."""
        if len(rails) <= 1:  # nothing to overlap: no task
            for rail in rails:
                verdict = verdicts[rail.name] = await self._call(rail, text, ctx, observer)
                if verdict.action is Action.BLOCK:
                    return Outcome(Action.BLOCK, text, rail.name, verdict.reason)
            return None
        tasks = [asyncio.create_task(self._call(rail, text, ctx, observer)) for rail in rails]
        try:
            pending: set[asyncio.Task[Verdict]] = set(tasks)
            while pending:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for rail, task in zip(rails, tasks, strict=True):
                    answer = task.result() if task.done() else None
                    if answer is not None and answer.action is Action.BLOCK:
                        return Outcome(Action.BLOCK, text, rail.name, answer.reason)
        finally:
            await _cancel(tasks)
        verdicts.update((rail.name, task.result()) for rail, task in zip(rails, tasks, strict=True))
        return None

    async def _compose(
        self,
        rails: Sequence[Rail],
        verdicts: list[Verdict],
        text: str,
        ctx: CheckContext,
        observer: PipelineObserver | None,
        spans: dict[str, OpenSpan],
    ) -> Outcome:
        """Combine parallel answers (none blocked) so that every modification applies.

        The first modifier's text (config order) stands; the other modifiers run again,
        in config order, over the evolving text, each seeing the changes before it.
        """
        modifiers = [
            (rail, verdict.text, verdict.reason)
            for rail, verdict in zip(rails, verdicts, strict=True)
            if verdict.action is Action.MODIFY and verdict.text is not None
        ]
        if not modifiers:
            return Outcome(Action.ALLOW, text)
        (first, first_text, reason), *rest = modifiers
        again = [rail for rail, _, _ in rest]
        modified_by = (first.name, reason)
        return await self._run_sequential(
            again, ctx, text, first_text, modified_by, observer, spans
        )

    async def _call(
        self,
        rail: Rail,
        text: str,
        ctx: CheckContext,
        observer: PipelineObserver | None,
        spans: dict[str, OpenSpan] | None = None,
    ) -> Verdict:
        """One bounded, timed, reported rail call; a failure becomes its policy's verdict.
        ``spans`` gets the rail's open span (or loses the rail's entry when it has none)."""
        started = time.perf_counter()
        deadline = None
        try:
            if _is_local(rail):  # no deadline, as none could interrupt it inline
                if offload.inline(text):  # the common case: no extra frame
                    answer: object = await rail.check(text, ctx)
                else:
                    answer = await offload.check_local(rail, text, ctx)
            else:
                async with (deadline := asyncio.timeout(rail.config.timeout_s)):
                    answer = await rail.check(text, ctx)
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                return self._failed(rail, "timeout", started, "timed out", observer)
            # The rail's own TimeoutError (say, from its HTTP client), not our deadline.
            detail = f"raised {type(exc).__name__}"
            return self._failed(rail, "error", started, detail, observer)
        except Exception as exc:
            return self._failed(rail, "error", started, f"raised {type(exc).__name__}", observer)
        if not _is_valid(answer):
            detail = f"returned an invalid answer ({type(answer).__name__})"
            return self._failed(rail, "error", started, detail, observer)
        self._report(rail, answer.action.value, started, observer)
        if spans is not None:
            _keep_span(spans, rail.name, answer)
        return answer

    def _failed(
        self,
        rail: Rail,
        kind: _Failure,
        started: float,
        detail: str,
        observer: PipelineObserver | None,
    ) -> Verdict:
        """Report and log a failed call; the verdict its ``on_error`` policy gives.

        ``detail`` names what went wrong without any exception message: those may
        quote the judged text.
        """
        self._report(rail, kind, started, observer)
        policy = rail.config.on_error
        log.warning("%s rail %s %s; on_error=%s", self._stage, rail.name, detail, policy)
        if policy == "allow":
            return Verdict.allow()
        return Verdict.block("rail timed out" if kind == "timeout" else "rail error")

    def _report(
        self, rail: Rail, verdict: str, started: float, extra: PipelineObserver | None
    ) -> None:
        """Tell the shared observer, then the call's own one, what a rail answered."""
        shared = self._observer
        if shared is None and extra is None:
            return
        seconds = time.perf_counter() - started
        mode = self._modes.get(rail.name, "enforce")
        if shared is not None:
            shared.rail_done(rail.name, self._stage, verdict, seconds, mode)
        if extra is not None:
            extra.rail_done(rail.name, self._stage, verdict, seconds, mode)


def _is_local(rail: Rail) -> bool:
    """Pattern matchers that never wait (``local = True`` on the class)."""
    return bool(getattr(rail, "local", False))


def _keep_span(spans: dict[str, OpenSpan], rail: str, verdict: Verdict) -> None:
    if verdict.span is not None:
        spans[rail] = verdict.span
    elif spans:
        spans.pop(rail, None)


def _shifted(ctx: CheckContext, before: str, after: str) -> CheckContext:
    """``ctx`` for a rail judging ``after``, which an earlier rail made of ``before``: the
    new text starts where it did if the text before it is unchanged, else (a mask reached
    into the context) at the first change, so no later rail takes new text for context."""
    at = ctx.new_at
    if not at or after.startswith(before[:at]):
        return ctx
    pairs = zip(before[:at], after, strict=False)
    same = next((i for i, (a, b) in enumerate(pairs) if a != b), at)
    return dataclasses.replace(ctx, new_at=min(same, len(after)))


def _is_valid(answer: object) -> TypeGuard[Verdict]:
    """A Verdict with an Action and a str reason; a MODIFY must carry its text; a span
    must be an ``OpenSpan``."""
    if not isinstance(answer, Verdict) or not isinstance(answer.reason, str):
        return False
    span: object = answer.span  # a user's rail may set anything
    if span is not None and not isinstance(span, OpenSpan):
        return False
    if answer.action is Action.MODIFY:
        return isinstance(answer.text, str)
    return answer.action is Action.ALLOW or answer.action is Action.BLOCK


def _finish(original: str, text: str, modified_by: tuple[str, str] | None) -> Outcome:
    """ALLOW when the text came out unchanged, else MODIFY naming the last modifier."""
    if text == original or modified_by is None:
        return Outcome(Action.ALLOW, original)
    return Outcome(Action.MODIFY, text, *modified_by)


async def _cancel(tasks: Sequence[asyncio.Task[Verdict]] | Sequence[asyncio.Task[None]]) -> None:
    """Cancel unfinished tasks and wait until they have ended, so none outlives check."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
