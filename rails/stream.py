"""The per-stream engine: text pieces in, release / hold / abort decisions out.

A ``GuardedStream`` is fed *items* (for the proxy: SSE events; for the Python API: text
pieces) in arrival order, each carrying the guarded text it contains per *channel*
(choice index x field x tool-call index). It keeps one ``RollingBuffer`` per channel,
checks each closed window with the output ``Pipeline`` (one check at a time per channel,
so a window's context is final when it is judged; channels run concurrently), and tells
the consumer, through ``releases()``, which items may now be written. A field whose rails
are all local (pattern matchers that never wait) is judged inside ``releases()`` itself,
between batches, in window order; other fields' windows are judged in tasks.

Release rules (DESIGN.md, "Release"):

* ``stream_first: true``: an item is released as soon as every item before it is. Only the
  end of a choice (its finish item) and the end of the stream wait for the verdicts of
  every window of the channels they end, so every stream ends with a verdict.
* ``stream_first: false``: an item is held until every window holding its text passed,
  then released in order. Items without guarded text follow the same FIFO (so output
  order is input order); ``bypass`` items (SSE comments) are released at once.

Items are released strictly in order. A block (or an error whose policy is block) ends
the stream: ``releases()`` yields a ``Blocked`` and stops; held items are dropped.
A MODIFY verdict rewrites the held items of that window through the caller's ``rewrite``
callback; where the text was already released (stream_first true), or the callback raises
``CannotRewrite``, it counts as a block.

Open spans: a rail's verdict may leave a mask open at the end of a window (``OpenSpan``:
a private key whose END line has not come). The channel keeps it and hands it back to that
rail with its next window (``CheckContext.spans``, with ``new_at`` where the new text
starts), so the mask goes on although the window no longer sees where it began; a channel
that ends with a span open is blocked (its last window is not released). Monitor-mode rails
are given none.

Rails in monitor mode never gate: a field judged only by them is released as if unguarded,
its windows handed to ``Pipeline.monitor`` as they close; with enforcing rails too, the
window check starts them (``Pipeline.check``) and its verdict is the enforcing rails' alone.

Reports (opt-in, for a debug view): ``releases(reports=True)`` also yields, in order with
the releases, a ``WindowReport`` per judged window (offsets, verdict, each rail's verdict
and latency; never text) before the items that window released, and, with
``stream_first: false``, a ``Holding`` whenever the number of held items changed. Without
it nothing is recorded: no observer, no report objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, overload

from rails.base import AT_ONCE, Action, Blocked, ChannelKey, CheckContext, OpenSpan
from rails.buffer import RollingBuffer, Window
from rails.config import OutputStreaming
from rails.pipeline import Outcome, Pipeline
from rails.reports import CallLog, Holding, RailCall, Report, WindowReport
from rails.tokens import TokenCounter

log = logging.getLogger("railproxy.guard")
T = TypeVar("T")

Rewrite = Callable[[T, ChannelKey, str], T]


class CannotRewrite(Exception):
    """Raised by a ``Rewrite`` callback for an item whose text it cannot replace (the item
    shows the text in a form the judged text does not map back to): the modification
    becomes a block, as it does where the text was already released."""


class KnownStrings:
    """Strings of the ``AT_ONCE`` fields a config's rails already allowed, shared by its
    streams (bounded: the oldest go first)."""

    def __init__(self, limit: int = 4096) -> None:
        self._seen: dict[str, None] = {}
        self._limit = limit

    def __contains__(self, text: object) -> bool:
        return text in self._seen

    def add(self, texts: Sequence[str]) -> None:
        for text in texts:
            self._seen[text] = None
        while len(self._seen) > self._limit:
            del self._seen[next(iter(self._seen))]


Release = list[T] | Blocked


@dataclass(slots=True)
class _Held(Generic[T]):
    item: T
    gates: list[tuple[_Channel[T], int]]


@dataclass(slots=True)
class _Piece(Generic[T]):
    entry: _Held[T]
    start: int
    end: int
    text: str = ""


@dataclass(slots=True)
class _Channel(Generic[T]):
    key: ChannelKey
    buffer: RollingBuffer
    passed: int = 0
    pending: list[_Piece[T]] = field(default_factory=list)
    last: asyncio.Task[None] | None = None
    closed: bool = False
    modified_tail: str | None = None
    checked: deque[str] = field(default_factory=deque)  # delta unit: checked pieces
    spans: Mapping[str, OpenSpan] = field(default_factory=dict)  # left open
    out_chars: int = 0  # reports only: chars of judged windows as the client gets them


class GuardedStream(Generic[T]):
    """One stream's state. Build with ``rails.guard.Guard.open_stream``."""

    def __init__(
        self,
        pipeline: Pipeline,
        streaming: OutputStreaming,
        counter: TokenCounter,
        user_message: str = "",
        rewrite: Rewrite[T] | None = None,
        known: KnownStrings | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._known = known if known is not None else KnownStrings()
        self._cfg = streaming
        self._counter = counter
        self._user_message = user_message
        self._rewrite = rewrite
        self._queue: deque[_Held[T]] = deque()
        self._bypass: list[T] = []
        self._channels: dict[ChannelKey, _Channel[T]] = {}
        # The same channels by choice index: ending a choice touches its own channels only
        # (an Anthropic stream has a choice per content block, as many as the upstream sends).
        self._by_choice: dict[int, list[_Channel[T]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inline: deque[tuple[_Channel[T], Window]] = deque()  # local rails' windows
        self._changed = asyncio.Event()
        self._progress = asyncio.Event()  # a release happened or a check finished
        self._finished = False
        self._reports: list[Report] | None = None  # None: nobody asked for reports
        self._held_seen = 0
        self.blocked: Blocked | None = None
        self.windows_checked = 0

    # -- input side --------------------------------------------------------------------

    def push(
        self,
        item: T,
        texts: Sequence[tuple[ChannelKey, str]] = (),
        *,
        ends: Sequence[int] = (),
        end: bool = False,
        bypass: bool = False,
    ) -> None:
        """Add one item. ``ends`` lists choice indexes this item finishes; ``end`` marks the
        end of the whole stream (usage chunk, ``[DONE]``, an error event)."""
        if self.blocked is not None:
            return
        if bypass:
            self._bypass.append(item)
            self._changed.set()
            return
        entry: _Held[T] = _Held(item, [])
        for key, text in texts:
            self._feed(entry, self._channel(key), text)
        if end:
            self._close(list(self._channels.values()), entry)
        elif ends:
            self._close([c for i in dict.fromkeys(ends) for c in self._by_choice.get(i, ())], entry)
        # Wake the consumer only when this item may go out now: behind a held head it
        # waits for that head's verdict, which wakes the consumer itself.
        if not self._queue or self._reports is not None:
            self._changed.set()
        if self.blocked is None:  # (closing a channel may have blocked: _unclosed)
            self._queue.append(entry)

    def finish(self) -> None:
        """No more input: check every channel's final partial window."""
        if not self._finished:
            self._finished = True
            self._close(list(self._channels.values()), None)
            self._changed.set()

    async def aclose(self) -> None:
        """Cancel every pending check and wait for them (nothing may outlive the stream)."""
        self._inline.clear()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    @property
    def tokens_seen(self) -> int:
        """Tokens of generated text pushed so far, over every choice's channels (for
        accounting; a negative choice index is not generated text: an error's, ids')."""
        return sum(ch.buffer.total_tokens for ch in self._channels.values() if ch.key[0] >= 0)

    @property
    def held(self) -> int:
        return len(self._queue)

    @property
    def done(self) -> bool:
        """Nothing more will be released: the input finished, and every item and check
        is through (what ``releases()`` yielded last was the last)."""
        return (
            self._finished
            and not self._queue
            and not self._bypass
            and not self._busy()
            and self.blocked is None
        )

    # -- output side -------------------------------------------------------------------

    @overload
    def releases(self) -> AsyncGenerator[Release[T], None]: ...

    @overload
    def releases(self, reports: Literal[True]) -> AsyncGenerator[Release[T] | Report, None]: ...

    def releases(self, reports: bool = False) -> AsyncGenerator[Release[T] | Report, None]:
        """Yield batches of releasable items in order; a ``Blocked`` ends the iteration.
        ``reports``: also yield ``WindowReport`` and ``Holding`` (module docstring); ask
        before any push. (Keep-alives while items are held are the writer's:
        ``held`` says whether any are, ``proxy.flow.writer``.)"""
        if reports:
            self._reports = []
        return self._releases()

    async def _releases(self) -> AsyncGenerator[Release[T] | Report, None]:
        while True:
            self._changed.clear()
            if self._inline and self.blocked is None and self._reports is None:
                # Local rails first: microseconds, and then what they pass goes out in the
                # same batch as what was already releasable (one write, not two). A debug
                # view (reports) sees the items held before the check, as they were.
                await self._check_inline()
            batch = self._ready()  # items whose windows passed go out even if a later one blocked
            if self._reports is not None:
                for note in self._notes():  # before the items the reported windows released
                    yield note
            if batch:
                yield batch
                continue
            if self._inline and self.blocked is None:
                await self._check_inline()
                continue
            if self.blocked is not None:
                yield self.blocked
                return
            if self._finished and not self._queue and not self._busy():
                return
            await self._changed.wait()

    def _ready(self) -> list[T]:
        out, self._bypass = self._bypass, []
        q = self._queue
        while q and self._passed(q[0]):
            out.append(q.popleft().item)
        if out:
            self._progress.set()
        return out

    def _notes(self) -> list[Report]:
        """Window reports made since the last call, then a ``Holding`` if the count of
        held items changed (``stream_first: false`` only)."""
        assert self._reports is not None
        notes, self._reports = self._reports, []
        held = len(self._queue)
        if held != self._held_seen and not self._cfg.stream_first:
            self._held_seen = held
            tokens = sum(max(0, c.buffer.total_tokens - c.passed) for c in self._channels.values())
            notes.append(Holding(held, tokens))
        return notes

    @staticmethod
    def _passed(entry: _Held[T]) -> bool:
        for ch, off in entry.gates:  # noqa: SIM110 (all() over a generator costs 4x)
            if ch.passed < off:
                return False
        return True

    async def room(self) -> None:
        """Backpressure for the producer: wait while more than ``max_held_events`` items
        are held, until the consumer or the rails catch up. When the head item waits for
        a window that needs more text (the upstream sends deltas of another field, or
        none at all), that window closes early, so what is held stays bounded whatever
        the held items carry; the next window starts after it."""
        limit = self._cfg.max_held_events
        while len(self._queue) > limit and self.blocked is None:
            head = self._queue[0]
            if not self._passed(head) and not self._busy() and not self._close_early(head):
                return
            self._progress.clear()
            await self._progress.wait()

    def _close_early(self, entry: _Held[T]) -> bool:
        """Judge now the partial windows ``entry`` waits for; False if there were none."""
        scheduled = False
        for ch, offset in entry.gates:
            if ch.passed >= offset:
                continue
            window = ch.buffer.flush()
            if window is not None and self._pipeline.wants(ch.key[1]):
                self._schedule(ch, window)
                scheduled = True
        return scheduled

    def _busy(self) -> bool:
        return bool(self._inline) or any(not t.done() for t in self._tasks)

    # -- channels and windows -----------------------------------------------------------

    def _channel(self, key: ChannelKey) -> _Channel[T]:
        ch = self._channels.get(key)
        if ch is None:
            s = self._cfg
            buf = RollingBuffer(s.chunk_size, s.context_size, self._counter, s.token_unit)
            ch = self._channels[key] = _Channel(key, buf, checked=deque(maxlen=s.context_size))
            self._by_choice.setdefault(key[0], []).append(ch)
        return ch

    def _feed(self, entry: _Held[T], ch: _Channel[T], text: str) -> None:
        if ch.closed:
            return
        start = ch.buffer.total_tokens
        window = ch.buffer.push(text)
        end = ch.buffer.total_tokens
        if not self._pipeline.wants(ch.key[1]):  # no enforcing rail: nothing to hold
            ch.passed = end
            if window is not None:
                self._watch(ch, window)
            return
        if self._rewrite is not None and not self._cfg.stream_first:
            ch.pending.append(_Piece(entry, start, end, text))
        if not self._cfg.stream_first:
            entry.gates.append((ch, end))
        if window is None and ch.key[1] in AT_ONCE:
            window = ch.buffer.flush()
        if window is not None:
            self._schedule(ch, window)

    def _close(self, channels: list[_Channel[T]], entry: _Held[T] | None) -> None:
        for ch in channels:
            if not ch.closed:
                ch.closed = True
                window = ch.buffer.flush()
                if window is not None and self._pipeline.wants(ch.key[1]):
                    self._schedule(ch, window)
                elif window is not None:
                    self._watch(ch, window)
                elif ch.spans and ch.passed >= ch.buffer.total_tokens:
                    self._unclosed(ch)  # the last window, judged already, left a span open
            if entry is not None:
                entry.gates.append((ch, ch.buffer.total_tokens))

    def _unclosed(self, ch: _Channel[T]) -> None:
        """The channel ended inside a span a rail masks (a private key with no END line):
        fail closed. Its last window, masked, may have gone out; nothing after it does."""
        rail, span = next(iter(ch.spans.items()))
        offset = ch.buffer.total_tokens
        self.blocked = Blocked(rail, span.reason, offset, ch.key, self._cfg.stream_first)
        self._changed.set()

    def _watch(self, ch: _Channel[T], window: Window) -> None:
        """A window no enforcing rail judges: monitor-mode rails, if any, judge it off the
        stream's path (``Pipeline.monitor``); it gates nothing."""
        if self._pipeline.watches(ch.key[1]):
            ctx = CheckContext("output", ch.key[1], self._user_message)
            self._pipeline.monitor(window.context + window.new, ctx)

    def _schedule(self, ch: _Channel[T], window: Window) -> None:
        if self._pipeline.is_local(ch.key[1]):
            self._inline.append((ch, window))
            self._changed.set()
            return
        task = asyncio.create_task(self._check(ch, window, ch.last))
        ch.last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check_inline(self) -> None:
        """Judge the windows of local rails in the consumer's task, in order: one loop
        turn sooner than a task per window, and no task to create."""
        while self._inline and self.blocked is None:
            ch, window = self._inline.popleft()
            await self._check(ch, window, None)

    async def _check(
        self, ch: _Channel[T], window: Window, prev: asyncio.Task[None] | None
    ) -> None:
        if prev is not None and not prev.done():
            await asyncio.wait([prev])
        if self.blocked is not None:
            return
        try:
            await self._judge(ch, window)
        except Exception:
            # An engine fault must not leave items gated forever: fail closed.
            log.exception("guard engine failure")
            self.blocked = Blocked("railproxy", "internal guard error", window.start, ch.key)
        self._changed.set()
        self._progress.set()

    async def _judge(self, ch: _Channel[T], window: Window) -> None:
        if ch.key[1] in AT_ONCE:
            await self._judge_at_once(ch, window)
            return
        context = window.context
        if ch.modified_tail is not None and self._cfg.context_size:
            if self._cfg.token_unit == "delta":
                context = "".join(ch.checked)
            else:
                context = self._counter.tail(ch.modified_tail, self._cfg.context_size)
        ctx = CheckContext("output", ch.key[1], self._user_message, {}, len(context), ch.spans)
        calls = CallLog() if self._reports is not None else None
        started = time.perf_counter() if calls is not None else 0.0
        outcome = await self._pipeline.check(context + window.new, ctx, observer=calls)
        self.windows_checked += 1
        outcome = self._apply(ch, window, context, outcome)
        if calls is not None:
            modified = outcome.action is Action.MODIFY
            chars = len(outcome.text) - len(context) if modified else len(window.new)
            seconds = time.perf_counter() - started
            self._report(ch, window, chars, outcome.action.value, calls.calls, seconds)

    async def _judge_at_once(self, ch: _Channel[T], window: Window) -> None:
        """Each line judged on its own, once per config: lines already allowed (the model
        name, a finish reason) cost nothing; a change is a block (nothing maps back)."""
        lines = [line for line in window.new.split("\n") if line and line not in self._known]
        if lines:
            text = "\n".join(lines)
            ctx = CheckContext("output", ch.key[1], self._user_message)
            outcome = await self._pipeline.check(text, ctx)  # (not a window: not counted)
            if outcome.action is Action.MODIFY:
                reason = outcome.reason or "text modified where it cannot be rewritten"
                outcome = Outcome(Action.BLOCK, outcome.text, outcome.rail, reason)
            if outcome.blocked:
                released = self._cfg.stream_first
                self.blocked = Blocked(
                    outcome.rail or "", outcome.reason, window.start, ch.key, released
                )
                return
            self._known.add(lines)
        ch.passed = window.end
        ch.pending = [p for p in ch.pending if p.end > window.end]

    def _report(
        self,
        ch: _Channel[T],
        window: Window,
        chars: int,
        verdict: str,
        calls: list[RailCall],
        seconds: float,
    ) -> None:
        """Record a ``WindowReport`` for ``releases(reports=True)`` to yield."""
        assert self._reports is not None
        where = (ch.key, window.index, window.start, window.end, ch.out_chars, chars)
        self._reports.append(WindowReport(*where, verdict, tuple(calls), seconds))
        ch.out_chars += chars

    def _apply(self, ch: _Channel[T], window: Window, context: str, outcome: Outcome) -> Outcome:
        """Act on a window's outcome; returns it as acted on (a refused modify: block; a
        channel's last window that leaves a span open: block)."""
        if outcome.spans and ch.closed and window.end >= ch.buffer.total_tokens:
            rail, span = next(iter(outcome.spans.items()))
            outcome = Outcome(Action.BLOCK, outcome.text, rail, span.reason)
        if outcome.action is Action.MODIFY:
            outcome = self._modify(ch, window, context, outcome)
        if outcome.blocked:
            self.blocked = Blocked(
                outcome.rail or "",
                outcome.reason,
                window.start,
                ch.key,
                released=self._cfg.stream_first,
                text=outcome.text,
            )
            return outcome
        ch.passed = window.end
        ch.spans = outcome.spans
        ch.checked.extend(p.text for p in ch.pending if p.end <= window.end and p.text)
        ch.pending = [p for p in ch.pending if p.end > window.end]
        if ch.modified_tail is not None and outcome.action is Action.ALLOW:
            ch.modified_tail = self._trim(ch.modified_tail + window.new)
        return outcome

    def _modify(self, ch: _Channel[T], window: Window, context: str, outcome: Outcome) -> Outcome:
        """Rewrite the held items of a modified window, or turn the modify into a block."""
        new = outcome.text[len(context) :] if outcome.text.startswith(context) else None
        if new is None or self._rewrite is None or self._cfg.stream_first:
            reason = outcome.reason or "text modified after release"
            return Outcome(Action.BLOCK, outcome.text, outcome.rail, reason)
        pieces = [p for p in ch.pending if p.end <= window.end]
        try:
            items = [
                self._rewrite(p.entry.item, ch.key, new if i == 0 else "")
                for i, p in enumerate(pieces)
            ]
        except CannotRewrite:
            reason = outcome.reason or "text modified where it cannot be rewritten"
            return Outcome(Action.BLOCK, outcome.text, outcome.rail, reason)
        for i, (piece, item) in enumerate(zip(pieces, items, strict=True)):
            piece.text = new if i == 0 else ""
            piece.entry.item = item
        tail = (ch.modified_tail if ch.modified_tail is not None else context) + new
        ch.modified_tail = self._trim(tail)
        return outcome

    def _trim(self, tail: str) -> str:
        return tail[-max(4096, 16 * self._cfg.context_size) :]
