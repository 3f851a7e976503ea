"""``Guard``: built from a config dict with built-in rails; ``check_output``,
``check_input`` and the Python streaming API ``Guard.stream``.

Small windows (chunk 8, context 4 tokens unless a test says otherwise) so that every
text here spans several windows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rails import Action, Blocked, BlockedError, CheckContext, Guard, Verdict
from rails.buffer import RollingBuffer
from rails.guard import _WORDS as WORD_SPLIT
from rails.guard import YIELD_EVERY_WORDS
from rails.pipeline import Outcome
from rails.tokens import TiktokenCounter

EMAIL_1 = "jane.doe@example.com"
EMAIL_2 = "bob@example.org"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
FILLER = " the quiet river runs past the old stone mill"  # 9 tokens
RAILS: dict[str, dict[str, Any]] = {
    "banned": {"type": "blocklist", "words": ["project falcon", "forbidden"]},
    "pii": {"type": "pii", "entities": ["email", "phone"], "action": "mask"},
    "secrets": {"type": "secrets"},
}


def config(
    output: Sequence[str] = ("banned", "pii", "secrets"),
    *,
    input_flows: Sequence[str] = (),
    messages: str = "last_user",
    stream_first: bool = True,
    chunk_size: int = 8,
    context_size: int = 4,
    parallel: bool = False,
) -> dict[str, Any]:
    return {
        "server": {"ignored": True},  # keys besides streaming/rails are not the guard's
        "rails": {
            "config": RAILS,
            "input": {"flows": list(input_flows), "messages": messages},
            "output": {
                "flows": list(output),
                "parallel": parallel,
                "streaming": {
                    "enabled": True,
                    "chunk_size": chunk_size,
                    "context_size": context_size,
                    "stream_first": stream_first,
                },
            },
        },
    }


def words(text: str) -> list[str]:
    """``text`` as word deltas (each word with its leading space), as LLMs stream."""
    out: list[str] = []
    for part in text.split(" "):
        out.append(f" {part}" if out else part)
    return out


class Source:
    """An async iterator of chunks that records how far it was read and whether it was
    closed. ``forever`` repeats the last chunk endlessly; ``fail_at`` raises there."""

    def __init__(
        self, chunks: Iterable[str], *, forever: bool = False, fail_at: int | None = None
    ) -> None:
        self.chunks = list(chunks)
        self.forever = forever
        self.fail_at = fail_at
        self.read = 0
        self.closed = False

    async def gen(self) -> AsyncIterator[str]:
        try:
            i = 0
            while self.forever or i < len(self.chunks):
                if i == self.fail_at:
                    raise RuntimeError("upstream broke")
                await asyncio.sleep(0)  # a real source waits for the network
                self.read += 1
                yield self.chunks[min(i, len(self.chunks) - 1)]
                i += 1
        finally:
            self.closed = True


async def collect(
    guard: Guard, chunks: AsyncIterator[str], **kwargs: Any
) -> tuple[list[str], Blocked | None]:
    """Everything ``guard.stream`` yields: the texts, and the ``Blocked`` that ended it."""
    texts: list[str] = []
    blocked: Blocked | None = None
    async with contextlib.aclosing(guard.stream(chunks, **kwargs)) as stream:
        async for piece in stream:
            assert blocked is None, "nothing may follow a Blocked"
            if isinstance(piece, Blocked):
                blocked = piece
            else:
                texts.append(piece)
    return texts, blocked


async def read_texts(
    guard: Guard, chunks: AsyncIterator[str], texts: list[str], **kwargs: Any
) -> None:
    """Append what ``guard.stream`` yields to ``texts`` (so a caller can check it after
    an exception); every item must be text."""
    async with contextlib.aclosing(guard.stream(chunks, **kwargs)) as stream:
        async for piece in stream:
            assert isinstance(piece, str)
            texts.append(piece)


@pytest.fixture
async def guards() -> AsyncIterator[list[Guard]]:
    made: list[Guard] = []
    yield made
    for guard in made:
        await guard.aclose()


def build(made: list[Guard], cfg: Mapping[str, Any]) -> Guard:
    guard = Guard.from_config(cfg)
    made.append(guard)
    return guard


# -- check_output -----------------------------------------------------------------------

CLEAN = "The weather is nice today and the sky is blue over the hills." + FILLER * 2


@pytest.mark.parametrize(
    ("text", "action", "rail", "reason", "expected"),
    [
        pytest.param(CLEAN, Action.ALLOW, None, "", CLEAN, id="allow"),
        pytest.param("", Action.ALLOW, None, "", "", id="empty"),
        pytest.param(
            FILLER * 3 + " about project falcon" + FILLER,
            Action.BLOCK,
            "banned",
            "matched blocklisted term 'project falcon'",
            None,
            id="blocklist-late-window",
        ),
        pytest.param(
            FILLER + f" key {AWS_KEY} here" + FILLER,
            Action.BLOCK,
            "secrets",
            "secret detected: AWS access key ID",
            None,
            id="secret",
        ),
        pytest.param(
            f"mail {EMAIL_1} now" + FILLER * 3 + f" or {EMAIL_2} later" + FILLER,
            Action.MODIFY,
            "pii",
            "PII detected: email address",
            "mail [EMAIL] now" + FILLER * 3 + " or [EMAIL] later" + FILLER,
            id="mask-in-two-windows",
        ),
    ],
)
async def test_check_output(
    guards: list[Guard],
    text: str,
    action: Action,
    rail: str | None,
    reason: str,
    expected: str | None,
) -> None:
    guard = build(guards, config())
    outcome = await guard.check_output(text)
    assert (outcome.action, outcome.rail, outcome.reason) == (action, rail, reason)
    if expected is not None:
        assert outcome.text == expected


async def test_check_output_masks_are_far_apart(guards: list[Guard]) -> None:
    """The two emails of the mask case cannot share a window (else it proves nothing)."""
    guard = build(guards, config())
    between = TiktokenCounter().count(" now" + FILLER * 3 + " or ")
    assert between > guard.streaming.chunk_size + guard.streaming.context_size


async def test_check_output_field_no_rail_wants(guards: list[Guard]) -> None:
    narrowed = config()
    narrowed["rails"]["config"] = {k: {**v, "fields": ["content"]} for k, v in RAILS.items()}
    guard = build(guards, narrowed)
    text = f'{{"to": "{EMAIL_1}", "note": "forbidden"}}'
    outcome = await guard.check_output(text, field="tool_arguments")
    assert (outcome.action, outcome.text) == (Action.ALLOW, text)


async def test_check_output_masks_an_entity_across_a_window_boundary(
    guards: list[Guard],
) -> None:
    """A phone number is several word pieces; at some leads it straddles a boundary."""
    guard = build(guards, config(context_size=16))
    results: dict[int, tuple[Action, str]] = {}
    for lead in range(guard.streaming.chunk_size):
        outcome = await guard.check_output(" word" * lead + " call (415) 555-2671 ok" + FILLER)
        results[lead] = (outcome.action, outcome.text)
    assert results == {
        lead: (Action.MODIFY, " word" * lead + " call [PHONE] ok" + FILLER) for lead in results
    }


# -- check_output on long texts: the loop runs, the result is the same ---------------------


async def reference_check_output(guard: Guard, text: str) -> Outcome:
    """``check_output`` as it was before it paused for the loop and bounded its context
    tail (it joined and re-encoded the whole judged text for every window after a mask):
    the new one must agree with it wherever the text is shorter than the bound."""
    s = guard.streaming
    buf = RollingBuffer(s.chunk_size, s.context_size, guard.counter, s.token_unit)
    ctx = CheckContext("output", "content", "")
    out: list[str] = []
    modified: Outcome | None = None
    pieces = [w for w in (buf.push(p) for p in WORD_SPLIT.findall(text)) if w] + [buf.flush()]
    for window in pieces:
        if window is None:
            continue
        context = window.context
        if modified is not None and context:
            context = guard.counter.tail("".join(out), s.context_size)
        result = await guard.output.check(context + window.new, ctx)
        if result.blocked:
            return result
        if result.action is Action.MODIFY:
            done = "".join(out)
            out = [done[: len(done) - len(context)], result.text]
            modified = result
        else:
            out.append(window.new)
    final = "".join(out)
    if modified is None:
        return Outcome(Action.ALLOW, final)
    return Outcome(Action.MODIFY, final, modified.rail, modified.reason)


PIECES = ["word", " ", "  ", "\n", EMAIL_1, "(415) 555-2671", "forbidden", "Ünïcode", "x" * 40]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=80),
    st.sampled_from([(1, 0), (3, 2), (8, 4), (20, 50)]),
)
async def test_check_output_agrees_with_the_whole_text_algorithm(
    pieces: list[str], sizes: tuple[int, int]
) -> None:
    chunk_size, context_size = sizes
    guard = Guard.from_config(config(chunk_size=chunk_size, context_size=context_size))
    text = "".join(pieces)
    assert await guard.check_output(text) == await reference_check_output(guard, text)


async def test_check_output_masks_a_long_text_in_every_window(guards: list[Guard]) -> None:
    """150 KB with an e-mail every 60 words: every one masked (the whole-text algorithm
    joined and re-encoded all text judged so far for each of these 200 windows)."""
    guard = build(guards, config(output=["pii"], chunk_size=200, context_size=50))
    part = FILLER * 6 + f" mail {EMAIL_1} now"
    outcome = await guard.check_output(part * 500)
    assert outcome.action is Action.MODIFY
    assert outcome.text == part.replace(EMAIL_1, "[EMAIL]") * 500


async def test_check_output_lets_other_tasks_run_on_a_long_text(guards: list[Guard]) -> None:
    """Other tasks get turns while a long text is judged; a short one is judged without
    a pause, as before."""
    guard = build(guards, config(chunk_size=200, context_size=50))
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    try:
        await asyncio.sleep(0)
        before = turns
        short = FILLER * 20  # 180 words
        assert (await guard.check_output(short)).text == short
        assert turns == before
        long = FILLER * (4 * YIELD_EVERY_WORDS // 9 + 1)  # 9 words each: 4 pauses' worth
        assert (await guard.check_output(long)).text == long
        assert turns - before >= 4
    finally:
        task.cancel()


# -- check_input ------------------------------------------------------------------------

CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "Never mention project falcon."},
    {"role": "user", "content": f"My mail is {EMAIL_1}"},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text"}]},
]


@pytest.mark.parametrize(
    ("messages", "flows", "action", "rail", "changes"),
    [
        pytest.param("last_user", ["banned", "pii"], Action.ALLOW, None, [], id="last-user"),
        pytest.param("all", ["banned", "pii"], Action.BLOCK, "banned", [], id="all-block"),
        pytest.param(
            "all", ["pii"], Action.MODIFY, "pii", [(1, "My mail is [EMAIL]")], id="all-mask"
        ),
        pytest.param("all", [], Action.ALLOW, None, [], id="no-input-rails"),
    ],
)
async def test_check_input(
    guards: list[Guard],
    messages: str,
    flows: list[str],
    action: Action,
    rail: str | None,
    changes: list[tuple[int, str]],
) -> None:
    guard = build(guards, config(input_flows=flows, messages=messages))
    outcome, replacements = await guard.check_input(CHAT)
    assert (outcome.action, outcome.rail) == (action, rail)
    assert replacements == changes


async def test_check_input_last_user_message_is_judged(guards: list[Guard]) -> None:
    guard = build(guards, config(input_flows=["banned", "pii"]))
    chat = [*CHAT, {"role": "user", "content": f"again {EMAIL_2}, about project falcon"}]
    outcome, replacements = await guard.check_input(chat)
    assert (outcome.action, outcome.rail) == (Action.BLOCK, "banned")
    assert replacements == []
    chat[-1] = {"role": "user", "content": f"write to {EMAIL_2} and {EMAIL_1}"}
    outcome, replacements = await guard.check_input(chat)
    assert (outcome.action, outcome.rail) == (Action.MODIFY, "pii")
    assert replacements == [(4, "write to [EMAIL] and [EMAIL]")]


# -- stream(): allowed text -------------------------------------------------------------

TEXT = "Once upon a time, a small robot\nlearned to paint. " + FILLER * 4


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize(
    "split",
    [
        pytest.param(words, id="words"),
        pytest.param(list, id="chars"),
        pytest.param(lambda t: [t], id="whole"),
        pytest.param(lambda t: ["", *words(t), ""], id="with-empty"),
    ],
)
async def test_stream_yields_the_text_unchanged(
    guards: list[Guard], stream_first: bool, split: Any
) -> None:
    guard = build(guards, config(stream_first=stream_first))
    chunks: list[str] = split(TEXT)
    assert "".join(chunks) == TEXT
    source = Source(chunks)
    texts, blocked = await collect(guard, source.gen())
    assert blocked is None
    assert "".join(texts) == TEXT
    assert all(texts)  # empty pieces are not yielded
    assert source.closed


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_masks_only_when_holding(guards: list[Guard], stream_first: bool) -> None:
    """A MODIFY is honoured while the text is held; once released it is a block."""
    guard = build(guards, config(stream_first=stream_first))
    text = "Write to me at" + FILLER + f" {EMAIL_1} today" + FILLER
    texts, blocked = await collect(guard, Source(words(text)).gen())
    if stream_first:
        assert blocked is not None
        assert (blocked.rail, blocked.released) == ("pii", True)
    else:
        assert blocked is None
        assert "".join(texts) == "Write to me at" + FILLER + " [EMAIL] today" + FILLER


# -- stream(): blocks -------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    ("bad", "rail", "reason"),
    [
        (" forbidden", "banned", "matched blocklisted term 'forbidden'"),
        (f" {AWS_KEY}", "secrets", "secret detected: AWS access key ID"),
    ],
)
async def test_stream_block_stops_reading_the_source(
    guards: list[Guard], stream_first: bool, parallel: bool, bad: str, rail: str, reason: str
) -> None:
    guard = build(guards, config(stream_first=stream_first, parallel=parallel))
    source = Source([*words(FILLER.strip() + FILLER), bad, " more"], forever=True)
    texts, blocked = await collect(guard, source.gen())
    assert blocked is not None
    assert (blocked.rail, blocked.reason, blocked.released) == (rail, reason, stream_first)
    assert blocked.channel == (0, "content", 0)
    assert source.closed
    assert source.read < 100  # an endless source: reading stopped soon after the block
    joined = "".join(texts)
    if stream_first:
        assert bad in joined  # already out when the window was judged
    else:
        assert bad.strip() not in joined
        assert FILLER.strip() in joined  # the windows before it did pass


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_raise_on_block(guards: list[Guard], stream_first: bool) -> None:
    guard = build(guards, config(stream_first=stream_first))
    source = Source([*words(FILLER.strip()), " project", " falcon", " next"], forever=True)
    texts: list[str] = []
    with pytest.raises(BlockedError, match="Blocked by banned rails") as info:
        await read_texts(guard, source.gen(), texts, raise_on_block=True)
    assert info.value.blocked.rail == "banned"
    assert info.value.blocked.reason == "matched blocklisted term 'project falcon'"
    assert source.closed
    assert ("falcon" in "".join(texts)) is stream_first


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_blocks_on_the_final_partial_window(
    guards: list[Guard], stream_first: bool
) -> None:
    guard = build(guards, config(stream_first=stream_first, chunk_size=50))
    texts, blocked = await collect(guard, Source(words("a short forbidden text")).gen())
    assert blocked is not None
    assert blocked.offset == 0
    assert ("".join(texts) == "a short forbidden text") is stream_first


# -- stream(): errors, early exit, cleanup ----------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_source_error_propagates(guards: list[Guard], stream_first: bool) -> None:
    guard = build(guards, config(stream_first=stream_first))
    chunks = words(FILLER.strip() + FILLER)
    source = Source(chunks, fail_at=12)
    texts: list[str] = []
    with pytest.raises(RuntimeError, match="upstream broke"):
        await read_texts(guard, source.gen(), texts)
    assert "".join(texts) == "".join(chunks[:12])  # what came before was checked and sent
    assert source.closed


async def test_stream_source_error_after_a_block_is_the_block(guards: list[Guard]) -> None:
    guard = build(guards, config(stream_first=False, chunk_size=50))
    source = Source(words("this is forbidden text"), fail_at=4)
    texts, blocked = await collect(guard, source.gen())
    assert blocked is not None
    assert blocked.rail == "banned"
    assert texts == []


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_consumer_leaving_early_closes_the_source(
    guards: list[Guard], stream_first: bool
) -> None:
    guard = build(guards, config(stream_first=stream_first))
    source = Source(words(FILLER.strip()), forever=True)
    async with contextlib.aclosing(guard.stream(source.gen())) as stream:
        async for _ in stream:
            break
    assert source.closed
    assert 0 < source.read < 100


@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_leaves_no_task_behind_when_it_completes(
    guards: list[Guard], stream_first: bool
) -> None:
    before = asyncio.all_tasks()
    guard = build(guards, config(stream_first=stream_first))
    texts, blocked = await collect(guard, Source(words(TEXT)).gen())
    assert ("".join(texts), blocked) == (TEXT, None)
    assert asyncio.all_tasks() == before


async def _leave_by_break(guard: Guard, chunks: AsyncIterator[str]) -> None:
    async with contextlib.aclosing(guard.stream(chunks)) as stream:
        async for _ in stream:
            break


async def _leave_by_block(guard: Guard, chunks: AsyncIterator[str]) -> None:
    _, blocked = await collect(guard, chunks)
    assert blocked is not None


async def _leave_by_raise(guard: Guard, chunks: AsyncIterator[str]) -> None:
    with pytest.raises(BlockedError):
        await read_texts(guard, chunks, [], raise_on_block=True)


@pytest.mark.parametrize("leave", [_leave_by_break, _leave_by_block, _leave_by_raise])
@pytest.mark.parametrize("stream_first", [True, False])
async def test_stream_leaves_no_task_behind_when_left_early(
    guards: list[Guard], stream_first: bool, leave: Callable[..., Awaitable[None]]
) -> None:
    before = asyncio.all_tasks()
    guard = build(guards, config(stream_first=stream_first))
    source = Source([*words(FILLER.strip()), " forbidden", " more"], forever=True)
    await leave(guard, source.gen())
    assert source.closed
    assert asyncio.all_tasks() == before


async def test_stream_passes_the_user_message(guards: list[Guard]) -> None:
    """The user message reaches the rails' context (a judge rail puts it in its prompt)."""
    guard = build(guards, config(output=["banned"]))
    seen: list[str] = []
    rail = guard.output.rails[0]
    original = rail.check

    async def spy(text: str, ctx: CheckContext) -> Verdict:
        seen.append(ctx.user_message)
        return await original(text, ctx)

    rail.check = spy  # type: ignore[method-assign]
    texts, blocked = await collect(guard, Source(["hi there"]).gen(), user_message="why?")
    assert (texts, blocked) == (["hi there"], None)
    assert seen == ["why?"]


async def test_from_config_reads_a_yaml_file(guards: list[Guard], tmp_path: Path) -> None:
    path = tmp_path / "rails.yaml"
    path.write_text(
        "upstream: {url: http://x}\n"
        "rails:\n"
        "  config: {banned: {type: blocklist, words: [forbidden]}}\n"
        "  output: {flows: [banned], streaming: {enabled: true, chunk_size: 8}}\n",
        encoding="utf-8",
    )
    guard = Guard.from_config(path)
    guards.append(guard)
    assert guard.streaming.chunk_size == 8
    assert guard.guards_output
    assert not guard.guards_input
    outcome = await guard.check_output("this is forbidden")
    assert (outcome.action, outcome.rail) == (Action.BLOCK, "banned")
