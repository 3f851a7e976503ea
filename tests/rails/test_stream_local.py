"""``GuardedStream`` with local rails (``local = True``: pattern matchers that never wait):
their windows are judged inside ``releases()``, between batches, with no task per window;
the release rules are the same as for rails judged in tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rails.base import Blocked, ChannelKey, CheckContext, Rail, RailConfig, TextField, Verdict
from rails.config import OutputStreaming
from rails.pipeline import Pipeline
from rails.stream import GuardedStream
from rails.tokens import counter_for

KEY: ChannelKey = (0, "content", 0)
TOOL: ChannelKey = (0, "tool_arguments", 0)


class Words:
    """Blocks a window holding ``bad``; records what it judged and in which task."""

    local = True

    def __init__(self, name: str = "words", fields: tuple[TextField, ...] = ("content",)) -> None:
        self.name = name
        self.config = RailConfig(fields=fields)
        self.calls: list[str] = []
        self.tasks: list[asyncio.Task[object] | None] = []

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        self.calls.append(text)
        self.tasks.append(asyncio.current_task())
        return Verdict.block("bad word") if "bad" in text else Verdict.allow()


class Remote(Words):
    """The same judge, but not local: judged in a task of its own."""

    local = False


def make(
    *rails: Rail,
    stream_first: bool,
    max_held: int = 2048,
    chunk_size: int = 2,
    keepalive_s: float = 10.0,
) -> GuardedStream[str]:
    cfg = OutputStreaming(
        enabled=True,
        chunk_size=chunk_size,
        keepalive_s=keepalive_s,
        context_size=0,
        stream_first=stream_first,
        token_unit="delta",
        max_held_events=max_held,
    )
    return GuardedStream(Pipeline(rails, "output"), cfg, counter_for("delta"))


@pytest.fixture
async def consumer() -> AsyncIterator[list[asyncio.Task[list[object]]]]:
    tasks: list[asyncio.Task[list[object]]] = []
    yield tasks
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks)


def consume(
    stream: GuardedStream[str], tasks: list[asyncio.Task[list[object]]]
) -> asyncio.Task[list[object]]:
    async def run() -> list[object]:
        return [event async for event in stream.releases()]

    task = asyncio.create_task(run())
    tasks.append(task)
    return task


def push(stream: GuardedStream[str], words: list[str], key: ChannelKey = KEY) -> None:
    for w in words:
        stream.push(w, [(key, w)])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("stream_first", [False, True])
async def test_local_windows_are_judged_in_the_consumers_task(
    stream_first: bool, consumer: list[asyncio.Task[list[object]]]
) -> None:
    rail = Words()
    s = make(rail, stream_first=stream_first)
    task = consume(s, consumer)
    push(s, ["a", "b", "c", "d", "e"])
    assert rail.calls == []  # nothing judged inside push
    s.push("END", end=True)
    s.finish()
    events = await asyncio.wait_for(task, 2)
    assert rail.calls == ["ab", "cd", "e"]
    assert all(t is task for t in rail.tasks)
    assert [i for e in events if isinstance(e, list) for i in e] == ["a", "b", "c", "d", "e", "END"]


async def test_held_events_go_out_in_one_batch_once_their_window_passes(
    consumer: list[asyncio.Task[list[object]]],
) -> None:
    s = make(Words(), stream_first=False)
    task = consume(s, consumer)
    push(s, ["a"])
    await settle()
    assert s.held == 1  # its window is not closed yet
    push(s, ["b", "c"])
    await settle()
    assert s.held == 1  # a and b went out; c waits for its window
    s.finish()
    events = await asyncio.wait_for(task, 2)
    assert events == [["a", "b"], ["c"]]


@pytest.mark.parametrize("stream_first", [False, True])
async def test_a_local_block_ends_the_stream_as_a_task_judged_one_does(
    stream_first: bool, consumer: list[asyncio.Task[list[object]]]
) -> None:
    outcomes = []
    for rail in (Words(), Remote()):
        s = make(rail, stream_first=stream_first)
        task = consume(s, consumer)
        push(s, ["a", "b", "c", "bad", "e", "f"])
        s.finish()
        outcomes.append(await asyncio.wait_for(task, 2))
        assert rail.calls == ["ab", "cbad"]  # nothing judged after the block
        await s.aclose()
    local, remote = outcomes
    assert local == remote
    assert local[-1] == Blocked("words", "bad word", 2, KEY, released=stream_first)
    released = [i for e in local if isinstance(e, list) for i in e]
    assert released == (["a", "b", "c", "bad", "e", "f"] if stream_first else ["a", "b"])


async def test_local_and_task_judged_fields_in_one_stream(
    consumer: list[asyncio.Task[list[object]]],
) -> None:
    local, remote = Words(), Remote("tools", fields=("tool_arguments",))
    s = make(local, remote, stream_first=False)
    task = consume(s, consumer)
    push(s, ["a", "b"])
    push(s, ["{", "}"], key=TOOL)
    s.finish()
    events = await asyncio.wait_for(task, 2)
    assert local.calls == ["ab"]
    assert remote.calls == ["{}"]
    assert local.tasks == [task]
    assert remote.tasks[0] is not task  # a task of its own
    assert sorted(i for e in events if isinstance(e, list) for i in e) == ["a", "b", "{", "}"]


async def test_producer_waits_for_the_consumer_to_judge_held_windows() -> None:
    """Backpressure: held events over the limit with local windows still to judge make
    ``room()`` wait until the consumer judged and released them."""
    s = make(Words(), stream_first=False, max_held=16)
    push(s, [str(i) for i in range(40)])
    room = asyncio.ensure_future(s.room())
    done, _ = await asyncio.wait([room], timeout=0.05)
    assert not done  # nobody consumes: the windows are not judged, the producer waits
    releases = s.releases()
    first = await asyncio.wait_for(anext(releases), 1)
    assert first == [str(i) for i in range(40)]
    await asyncio.wait_for(room, 1)
    await releases.aclose()


@pytest.mark.parametrize("stream_first", [False, True])
async def test_a_stream_pushed_at_once_goes_out_in_one_batch(stream_first: bool) -> None:
    """A short stream that arrived in one read (text, the end) is judged before anything
    goes out, so the client gets it in one write; ``done`` says nothing follows it."""
    rail = Words()
    s = make(rail, stream_first=stream_first)
    push(s, ["a", "b", "c"])
    s.push("END", end=True)
    s.finish()
    releases = s.releases()
    first = await asyncio.wait_for(anext(releases), 2)
    assert first == ["a", "b", "c", "END"]
    assert rail.calls == ["ab", "c"]
    assert s.done
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(releases), 2)


async def test_done_is_false_while_a_window_or_the_input_is_pending() -> None:
    s = make(Words(), stream_first=False)
    push(s, ["a"])
    assert not s.done  # input not finished
    s.finish()
    assert not s.done  # its last window not judged yet, "a" held
    releases = s.releases()
    assert await asyncio.wait_for(anext(releases), 2) == ["a"]
    assert s.done
    await releases.aclose()


async def test_done_is_false_after_a_block() -> None:
    s = make(Words(), stream_first=True)
    push(s, ["bad", "x"])
    s.finish()
    releases = s.releases()
    seen = [r async for r in releases]
    assert isinstance(seen[-1], Blocked)
    assert not s.done  # the block is what the consumer gets last, not a batch
