"""``GuardedStream``: release modes, ordering, verdicts, MODIFY, fields, cancellation.

Fake rails inside a real ``Pipeline``; items are strings (or ``(id, text)`` tuples where a
MODIFY rewrites them). Most tests count in the ``delta`` unit, where every non-empty push
is one token, so window boundaries are obvious from the pushes; tests about context text
use the ``token`` unit with words that are one cl100k token each.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import pytest

from rails.base import Blocked, ChannelKey, CheckContext, Rail, RailConfig, TextField, Verdict
from rails.config import OutputStreaming
from rails.pipeline import Pipeline
from rails.stream import GuardedStream, Rewrite
from rails.tokens import counter_for

T = TypeVar("T")
Unit = Literal["token", "delta"]
Judge = Callable[[str], Verdict]

KEY: ChannelKey = (0, "content", 0)
KEY_CHOICE1: ChannelKey = (1, "content", 0)
TOOL0: ChannelKey = (0, "tool_arguments", 0)
TOOL1: ChannelKey = (0, "tool_arguments", 1)
REASONING: ChannelKey = (0, "reasoning", 0)


# -- fake rails ------------------------------------------------------------------------


def allow_all(text: str) -> Verdict:
    return Verdict.allow()


def block_on(word: str) -> Judge:
    def judge(text: str) -> Verdict:
        return Verdict.block(f"saw {word}") if word in text else Verdict.allow()

    return judge


def mask(old: str, new: str) -> Judge:
    def judge(text: str) -> Verdict:
        return Verdict.modify(text.replace(old, new), "masked") if old in text else Verdict.allow()

    return judge


class FakeRail:
    """Records each call, waits on ``gate`` (if set, for texts ``gated`` accepts), then
    answers ``judge(text)``."""

    def __init__(
        self,
        judge: Judge = allow_all,
        *,
        name: str = "fake",
        fields: tuple[TextField, ...] = ("content",),
        gate: asyncio.Event | None = None,
        gated: Callable[[str], bool] = lambda text: True,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.config = RailConfig(timeout_s=30.0, fields=fields)
        self.judge = judge
        self.gate = gate
        self.gated = gated
        self.delay = delay
        self.calls: list[str] = []
        self.fields_seen: list[TextField] = []
        self.cancelled = 0

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        self.calls.append(text)
        self.fields_seen.append(ctx.field)
        try:
            await self.wait(text)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.judge(text)

    async def wait(self, text: str) -> None:
        if self.gate is not None and self.gated(text):
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)


class StepRail(FakeRail):
    """Each call waits for its own event: ``steps[i]`` lets call ``i`` answer."""

    def __init__(self, judge: Judge = allow_all) -> None:
        super().__init__(judge)
        self.steps: list[asyncio.Event] = []

    async def wait(self, text: str) -> None:
        step = asyncio.Event()
        self.steps.append(step)
        await step.wait()


class ConcurrencyRail(FakeRail):
    """Counts calls in flight per channel; a text's channel is its first character."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.active: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.most_overall = 0

    async def wait(self, text: str) -> None:
        channel = text[0]
        self.active[channel] += 1
        self.most[channel] = max(self.most[channel], self.active[channel])
        self.most_overall = max(self.most_overall, sum(self.active.values()))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active[channel] -= 1


# -- the stream, its consumer, and cleanup ---------------------------------------------


class Collector(Generic[T]):
    """Consumes ``releases()`` in a task of its own, keeping every event in order."""

    def __init__(self, stream: GuardedStream[T]) -> None:
        self.events: list[list[T] | Blocked] = []
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: GuardedStream[T]) -> None:
        async for event in stream.releases():
            self.events.append(event)

    @property
    def items(self) -> list[T]:
        return [item for e in self.events if isinstance(e, list) for item in e]

    @property
    def blocked(self) -> Blocked | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, Blocked) else None

    async def finished(self) -> None:
        await asyncio.wait_for(asyncio.shield(self.task), 5.0)


class MakeStream(Protocol):
    def __call__(
        self,
        *rails: Rail,
        chunk_size: int = ...,
        context_size: int = ...,
        stream_first: bool = ...,
        unit: Unit = ...,
        keepalive_s: float = ...,
        parallel: bool = ...,
        rewrite: Rewrite[Any] | None = ...,
    ) -> GuardedStream[Any]: ...


@pytest.fixture
async def make() -> AsyncIterator[MakeStream]:
    """Builds streams and closes every one of them after the test."""
    made: list[GuardedStream[Any]] = []

    def build(
        *rails: Rail,
        chunk_size: int = 2,
        context_size: int = 0,
        stream_first: bool = True,
        unit: Unit = "delta",
        keepalive_s: float = 10.0,
        parallel: bool = False,
        rewrite: Rewrite[Any] | None = None,
    ) -> GuardedStream[Any]:
        cfg = OutputStreaming(
            enabled=True,
            chunk_size=chunk_size,
            context_size=context_size,
            stream_first=stream_first,
            token_unit=unit,
            keepalive_s=keepalive_s,
        )
        pipeline = Pipeline(rails, "output", parallel=parallel)
        stream: GuardedStream[Any] = GuardedStream(
            pipeline, cfg, counter_for(unit), rewrite=rewrite
        )
        made.append(stream)
        return stream

    yield build
    for stream in made:
        await stream.aclose()


async def settle() -> None:
    """Let every runnable task run until nothing more happens (no wall-clock wait)."""
    for _ in range(50):
        await asyncio.sleep(0)


def push_words(stream: GuardedStream[str], words: Sequence[str], key: ChannelKey = KEY) -> None:
    for word in words:
        stream.push(word, [(key, word)])


async def drain(stream: GuardedStream[T]) -> Collector[T]:
    collector = Collector(stream)
    await collector.finished()
    return collector


def rewrite_pair(item: tuple[str, str], key: ChannelKey, new: str) -> tuple[str, str]:
    return (item[0], new)


# -- stream_first: true -----------------------------------------------------------------


async def test_stream_first_releases_before_the_check_completes(make: MakeStream) -> None:
    gate = asyncio.Event()
    rail = FakeRail(gate=gate)
    stream = make(rail, chunk_size=2, stream_first=True)
    col = Collector(stream)
    push_words(stream, ["a", "b", "c"])
    await settle()
    assert col.items == ["a", "b", "c"]
    assert rail.calls == ["ab"]  # the first window's check is running, held at the gate
    assert not col.task.done()

    stream.push("END", [], end=True)
    stream.finish()
    await settle()
    assert col.items == ["a", "b", "c"]  # the end of the stream waits for the verdicts

    gate.set()
    await col.finished()
    assert col.events[-1] == ["END"]
    assert col.items == ["a", "b", "c", "END"]
    assert rail.calls == ["ab", "c"]
    assert stream.blocked is None


async def test_stream_first_choice_end_waits_only_for_its_choice(make: MakeStream) -> None:
    gate = asyncio.Event()
    rail = FakeRail(gate=gate, gated=lambda text: text.startswith("y"))  # choice 1 waits
    stream = make(rail, chunk_size=1, stream_first=True)
    col = Collector(stream)
    stream.push("x", [(KEY, "x")])
    stream.push("y", [(KEY_CHOICE1, "y")])
    stream.push("finish0", [], ends=[0])
    await settle()
    assert col.items == ["x", "y", "finish0"]

    stream.push("finish1", [], ends=[1])
    stream.push("DONE", [], end=True)
    stream.finish()
    await settle()
    assert col.items == ["x", "y", "finish0"]  # choice 1's verdict is still pending

    gate.set()
    await col.finished()
    assert col.items == ["x", "y", "finish0", "finish1", "DONE"]


@pytest.mark.parametrize("terminal", ["end", "ends"])
async def test_stream_first_block_releases_what_came_before(
    make: MakeStream, terminal: str
) -> None:
    rail = FakeRail(block_on("bad"), name="words")
    stream = make(rail, chunk_size=2, stream_first=True)
    push_words(stream, ["a", "b", "bad", "c"])
    if terminal == "end":
        stream.push("END", [], end=True)
    else:
        stream.push("END", [], ends=[0])
    stream.finish()
    col = await drain(stream)
    assert col.items == ["a", "b", "bad", "c"]  # released on arrival; END is dropped
    assert col.blocked == Blocked("words", "saw bad", offset=2, channel=KEY, released=True)
    assert rail.calls == ["ab", "badc"]


async def test_stream_first_final_partial_window_gives_the_verdict(make: MakeStream) -> None:
    rail = FakeRail(block_on("bad"))
    stream = make(rail, chunk_size=5, stream_first=True)
    push_words(stream, ["a", "bad"])
    stream.finish()
    col = await drain(stream)
    assert col.items == ["a", "bad"]
    assert col.blocked is not None
    assert (col.blocked.offset, col.blocked.released) == (0, True)


# -- stream_first: false ----------------------------------------------------------------


async def test_held_until_the_window_passes_then_released_in_order(make: MakeStream) -> None:
    rail = StepRail()
    stream = make(rail, chunk_size=2, stream_first=False)
    col = Collector(stream)
    push_words(stream, ["a", "b", "c"])
    await settle()
    assert col.items == []
    assert stream.held == 3
    assert rail.calls == ["ab"]

    rail.steps[0].set()
    await settle()
    assert col.items == ["a", "b"]  # c's window is not even closed yet
    assert stream.held == 1

    stream.finish()
    await settle()
    assert rail.calls == ["ab", "c"]
    assert col.items == ["a", "b"]
    rail.steps[1].set()
    await col.finished()
    assert col.items == ["a", "b", "c"]
    assert stream.held == 0


async def test_fifo_order_across_choices(make: MakeStream) -> None:
    """Choice 1's window passes first, but its item waits behind choice 0's."""
    rail = StepRail()
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    stream.push("x0", [(KEY, "x0")])
    stream.push("y0", [(KEY_CHOICE1, "y0")])
    stream.push("x1", [(KEY, "x1")])
    stream.push("y1", [(KEY_CHOICE1, "y1")])
    await settle()
    assert sorted(rail.calls) == ["x0", "y0"]  # one check per channel at a time

    rail.steps[rail.calls.index("y0")].set()
    await settle()
    assert col.items == []
    assert sorted(rail.calls) == ["x0", "y0", "y1"]
    rail.steps[rail.calls.index("y1")].set()
    await settle()
    assert col.items == []

    rail.steps[rail.calls.index("x0")].set()
    await settle()
    assert col.items == ["x0", "y0"]  # x1 is held, and y1 stays behind it
    rail.steps[rail.calls.index("x1")].set()
    stream.finish()
    await col.finished()
    assert col.items == ["x0", "y0", "x1", "y1"]


async def test_items_without_text_keep_their_place_in_line(make: MakeStream) -> None:
    rail = StepRail()
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    stream.push("role", [])
    stream.push("a", [(KEY, "a")])
    stream.push("no-text", [])
    await settle()
    assert col.items == ["role"]
    rail.steps[0].set()
    stream.finish()
    await col.finished()
    assert col.items == ["role", "a", "no-text"]


async def test_bypass_items_go_out_while_others_are_held(make: MakeStream) -> None:
    rail = StepRail()
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    stream.push("a", [(KEY, "a")])
    stream.push(": comment", [], bypass=True)
    await settle()
    assert col.events == [[": comment"]]
    assert stream.held == 1
    rail.steps[0].set()
    stream.finish()
    await col.finished()
    assert col.items == [": comment", "a"]


async def test_reading_continues_while_a_check_runs(make: MakeStream) -> None:
    gate = asyncio.Event()
    rail = FakeRail(gate=gate)
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    words = [f"w{i}" for i in range(10)]
    for n, word in enumerate(words, 1):
        stream.push(word, [(KEY, word)])  # push is synchronous: it never waits for a check
        await settle()
        assert stream.held == n
    assert rail.calls == ["w0"]
    assert col.items == []
    gate.set()
    stream.finish()
    await col.finished()
    assert col.items == words
    assert rail.calls == words


@pytest.mark.parametrize(
    ("words", "k"),
    [
        (["bad", "b", "c", "d", "e", "f"], 0),
        (["a", "b", "c", "bad", "e", "f"], 1),
        (["a", "b", "c", "d", "bad", "f"], 2),
        (["a", "b", "c", "d", "e", "bad"], 2),
    ],
)
async def test_block_at_window_k_releases_nothing_from_window_k_on(
    make: MakeStream, words: list[str], k: int
) -> None:
    rail = FakeRail(block_on("bad"), name="words")
    stream = make(rail, chunk_size=2, stream_first=False)
    push_words(stream, [*words, "g", "h"])
    stream.push("DONE", [], end=True)
    stream.finish()
    col = await drain(stream)
    assert col.items == words[: 2 * k]
    assert col.blocked == Blocked("words", "saw bad", offset=2 * k, channel=KEY, released=False)
    assert len(rail.calls) == k + 1  # no window after the blocked one is checked
    assert stream.blocked == col.blocked


async def test_pushes_after_a_block_are_ignored(make: MakeStream) -> None:
    rail = FakeRail(block_on("bad"))
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    push_words(stream, ["bad"])
    await settle()
    assert stream.blocked is not None
    push_words(stream, ["late"])
    stream.push(": comment", [], bypass=True)
    stream.finish()
    await col.finished()
    assert col.items == []
    assert rail.calls == ["bad"]
    assert stream.held == 1


# -- what is held (the writer's keep-alives ask) -----------------------------------------


@pytest.mark.parametrize("stream_first", [False, True])
async def test_held_while_a_window_is_judged(make: MakeStream, stream_first: bool) -> None:
    """``held`` counts the items waiting for a verdict: with ``stream_first: false`` the
    item whose window is being judged; with ``true`` nothing (text goes out first)."""
    gate = asyncio.Event()
    rail = FakeRail(gate=gate)
    stream = make(rail, chunk_size=1, stream_first=stream_first)
    col = Collector(stream)
    push_words(stream, ["a"])
    for _ in range(20):  # let the consumer take whatever may go out (bounded)
        await asyncio.sleep(0)
    assert stream.held == (0 if stream_first else 1)
    assert col.items == (["a"] if stream_first else [])
    gate.set()
    stream.finish()
    await col.finished()
    assert col.items == ["a"]
    assert stream.held == 0


# -- MODIFY -----------------------------------------------------------------------------


async def test_modify_rewrites_the_held_items_of_the_window(make: MakeStream) -> None:
    rail = FakeRail(mask("bad", "***"))
    stream = make(rail, chunk_size=3, stream_first=False, rewrite=rewrite_pair)
    for n, text in enumerate(["x ", "bad ", "y ", "z ", "w"]):
        stream.push((str(n), text), [(KEY, text)])
    stream.finish()
    col = await drain(stream)
    assert col.items == [("0", "x *** y "), ("1", ""), ("2", ""), ("3", "z "), ("4", "w")]
    assert col.blocked is None
    assert rail.calls == ["x bad y ", "z w"]


async def test_modified_text_is_the_next_windows_context(make: MakeStream) -> None:
    """A masking rail must not see the original (unmasked) text again as context: it
    would mask it once more, and a change to the context is a block."""
    rail = FakeRail(mask(" bad", " fine"))
    stream = make(
        rail, chunk_size=2, context_size=2, unit="token", stream_first=False, rewrite=rewrite_pair
    )
    words = [" alpha", " bad", " gamma", " delta", " omega", " beta"]
    for n, word in enumerate(words):
        stream.push((str(n), word), [(KEY, word)])
    stream.finish()
    col = await drain(stream)
    assert col.blocked is None
    assert rail.calls == [
        " alpha bad",
        " alpha fine gamma delta",
        " gamma delta omega beta",
    ]
    texts = [text for _, text in col.items]
    assert texts == [" alpha fine", "", " gamma", " delta", " omega", " beta"]


async def test_second_modify_uses_the_modified_context(make: MakeStream) -> None:
    rail = FakeRail(mask(" bad", " fine"))
    stream = make(
        rail, chunk_size=2, context_size=2, unit="token", stream_first=False, rewrite=rewrite_pair
    )
    words = [" alpha", " bad", " bad", " delta"]
    for n, word in enumerate(words):
        stream.push((str(n), word), [(KEY, word)])
    stream.finish()
    col = await drain(stream)
    assert col.blocked is None
    assert rail.calls == [" alpha bad", " alpha fine bad delta"]
    assert "".join(text for _, text in col.items) == " alpha fine fine delta"


@pytest.mark.parametrize(
    ("stream_first", "with_rewrite"), [(True, True), (True, False), (False, False)]
)
async def test_modify_that_cannot_be_honoured_is_a_block(
    make: MakeStream, stream_first: bool, with_rewrite: bool
) -> None:
    rail = FakeRail(mask("bad", "***"), name="masker")
    rewrite = rewrite_pair if with_rewrite else None
    stream = make(rail, chunk_size=2, stream_first=stream_first, rewrite=rewrite)
    for n, text in enumerate(["a", "b", "bad", "c"]):
        stream.push((str(n), text), [(KEY, text)])
    stream.finish()
    col = await drain(stream)
    assert col.blocked == Blocked("masker", "masked", offset=2, channel=KEY, released=stream_first)
    released = [text for _, text in col.items]
    assert released == (["a", "b", "bad", "c"] if stream_first else ["a", "b"])


async def test_modify_that_changes_the_context_is_a_block(make: MakeStream) -> None:
    def shout(text: str) -> Verdict:
        return Verdict.modify(text.upper(), "shouted") if "trigger" in text else Verdict.allow()

    rail = FakeRail(shout, name="shouter")
    stream = make(
        rail, chunk_size=1, context_size=2, unit="token", stream_first=False, rewrite=rewrite_pair
    )
    for n, word in enumerate([" alpha", " trigger", " omega"]):
        stream.push((str(n), word), [(KEY, word)])
    stream.finish()
    col = await drain(stream)
    assert col.items == [("0", " alpha")]
    assert col.blocked == Blocked("shouter", "shouted", offset=1, channel=KEY, released=False)
    assert rail.calls == [" alpha", " alpha trigger"]


async def test_delta_unit_context_after_modify_is_context_size_deltas(make: MakeStream) -> None:
    rail = FakeRail(mask("bad", "***"))
    stream = make(rail, chunk_size=1, context_size=1, stream_first=False, rewrite=rewrite_pair)
    for n, text in enumerate(["a ", "bad ", "c ", "d ", "e "]):
        stream.push((str(n), text), [(KEY, text)])
    stream.finish()
    col = await drain(stream)
    assert [text for _, text in col.items] == ["a ", "*** ", "c ", "d ", "e "]
    assert rail.calls == ["a ", "a bad ", "*** c ", "c d ", "d e "]


# -- fields and channels ----------------------------------------------------------------


async def test_tool_argument_rail_sees_only_tool_argument_channels(make: MakeStream) -> None:
    rail = StepRail()
    rail.config = RailConfig(fields=("tool_arguments",))
    stream = make(rail, chunk_size=2, stream_first=False)
    col = Collector(stream)
    stream.push("c1", [(KEY, "hello")])
    stream.push("t0a", [(TOOL0, '{"a"')])
    stream.push("t1a", [(TOOL1, '{"b"')])
    stream.push("c2", [(KEY, " world")])
    stream.push("t0b", [(TOOL0, ": 1}")])
    stream.push("t1b", [(TOOL1, ": 2}")])
    await settle()
    assert col.items == ["c1"]  # content: no rail wants it, so it is not held
    assert sorted(rail.calls) == ['{"a": 1}', '{"b": 2}']  # one buffer per tool call
    assert rail.fields_seen == ["tool_arguments", "tool_arguments"]
    for step in rail.steps:
        step.set()
    stream.finish()
    await col.finished()
    assert col.items == ["c1", "t0a", "t1a", "c2", "t0b", "t1b"]
    assert len(rail.calls) == 2


@pytest.mark.parametrize("key", [REASONING, TOOL0])
async def test_unwanted_field_passes_at_once(make: MakeStream, key: ChannelKey) -> None:
    rail = FakeRail(block_on("x"))
    stream = make(rail, chunk_size=100, stream_first=False)
    col = Collector(stream)
    stream.push("item", [(key, "xxx")])
    await settle()
    assert col.items == ["item"]  # released before finish(): no window to wait for
    stream.finish()
    await col.finished()
    assert rail.calls == []
    assert stream.windows_checked == 0
    assert col.blocked is None


async def test_one_item_with_text_in_two_channels_waits_for_both(make: MakeStream) -> None:
    rail = StepRail()
    stream = make(rail, chunk_size=1, stream_first=False)
    col = Collector(stream)
    stream.push("both", [(KEY, "x"), (KEY_CHOICE1, "y")])
    await settle()
    rail.steps[rail.calls.index("y")].set()
    await settle()
    assert col.items == []
    rail.steps[rail.calls.index("x")].set()
    stream.finish()
    await col.finished()
    assert col.items == ["both"]


# -- scheduling and cancellation --------------------------------------------------------


async def test_one_check_per_channel_channels_concurrent(make: MakeStream) -> None:
    rail = ConcurrencyRail(delay=0.01)
    stream = make(rail, chunk_size=1, context_size=1, stream_first=False)
    for i in range(4):
        stream.push(f"x{i}", [(KEY, f"x{i}")])
        stream.push(f"y{i}", [(KEY_CHOICE1, f"y{i}")])
    stream.finish()
    col = await drain(stream)
    assert len(col.items) == 8
    assert rail.most == Counter({"x": 1, "y": 1})
    assert rail.most_overall == 2
    assert len(rail.calls) == 8
    assert stream.windows_checked == 8


@pytest.mark.parametrize("parallel", [False, True])
async def test_aclose_cancels_pending_checks(make: MakeStream, parallel: bool) -> None:
    before = asyncio.all_tasks()
    hang = asyncio.Event()  # never set
    rails = [FakeRail(gate=hang, name="one"), FakeRail(gate=hang, name="two")]
    stream = make(*rails, chunk_size=1, stream_first=False, parallel=parallel)
    push_words(stream, ["a", "b", "c"])
    stream.push("y", [(KEY_CHOICE1, "y")])
    await settle()
    assert len(asyncio.all_tasks() - before) >= 4  # 3 chained on choice 0, 1 on choice 1
    await stream.aclose()
    assert asyncio.all_tasks() == before
    in_flight = 2 if parallel else 1  # per channel: rails at the gate
    assert sum(r.cancelled for r in rails) == 2 * in_flight
    assert stream.windows_checked == 0


async def test_aclose_does_not_swallow_its_callers_cancellation(make: MakeStream) -> None:
    class SlowToCancel(FakeRail):
        async def wait(self, text: str) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)  # cleanup that takes a while
                raise

    stream = make(SlowToCancel(), chunk_size=1)
    push_words(stream, ["a"])
    await settle()

    async def closer() -> str:
        await stream.aclose()
        return "returned"

    task = asyncio.create_task(closer())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_engine_fault_fails_closed(make: MakeStream) -> None:
    def explode(item: str, key: ChannelKey, new: str) -> str:
        raise RuntimeError("rewrite failed")

    rail = FakeRail(mask("a", "b"))
    stream = make(rail, chunk_size=1, stream_first=False, rewrite=explode)
    push_words(stream, ["a"])
    stream.finish()
    col = await drain(stream)
    assert col.items == []
    assert col.blocked == Blocked("railproxy", "internal guard error", 0, KEY, False)


async def test_rail_timeout_with_on_error_block_blocks(make: MakeStream) -> None:
    rail = FakeRail(gate=asyncio.Event(), name="slow")
    rail.config = RailConfig(timeout_s=0.01, on_error="block")
    stream = make(rail, chunk_size=1, stream_first=False)
    push_words(stream, ["a"])
    stream.finish()
    col = await drain(stream)
    assert col.items == []
    assert col.blocked == Blocked("slow", "rail timed out", 0, KEY, False)


# -- edges ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_empty_stream_ends_with_nothing(make: MakeStream, stream_first: bool) -> None:
    rail = FakeRail()
    stream = make(rail, stream_first=stream_first)
    stream.finish()
    col = await drain(stream)
    assert col.events == []
    assert rail.calls == []
    assert stream.windows_checked == 0


@pytest.mark.parametrize("stream_first", [True, False])
async def test_short_stream_gets_exactly_one_final_check(
    make: MakeStream, stream_first: bool
) -> None:
    rail = FakeRail()
    stream = make(rail, chunk_size=8, context_size=4, unit="token", stream_first=stream_first)
    push_words(stream, [" hello", " world", ""])
    await settle()
    assert rail.calls == []  # 2 tokens < chunk_size: no window before the end
    stream.finish()
    col = await drain(stream)
    assert col.items == [" hello", " world", ""]
    assert rail.calls == [" hello world"]
    assert stream.windows_checked == 1


async def test_empty_pieces_do_not_make_windows(make: MakeStream) -> None:
    rail = FakeRail()
    stream = make(rail, chunk_size=1, stream_first=False)
    push_words(stream, ["", "a", "", ""])
    stream.finish()
    col = await drain(stream)
    assert col.items == ["", "a", "", ""]
    assert rail.calls == ["a"]
