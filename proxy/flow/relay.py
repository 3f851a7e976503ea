"""The relay: upstream SSE bytes in, client SSE bytes out, the guard in between.

This module is the I/O shell: it reads the upstream body, runs the guard's release loop
and writes; every decision about the upstream's bytes is made by the sans-IO core
(``proxy.flow.relay_core``), and every metric by the request record.

Two paths, one contract (what the client receives):

* pass-through (no output rails for this request): complete events are written as the
  bytes they arrived as, batched per read; only the end is inspected.
* guarded: the upstream events are decoded and told to the ``GuardedStream`` with the text
  each carries (the first read in the handler's task, every later one in a reader task),
  and the handler's task writes whatever the guard releases, in order.

Either way the stream always ends well-framed: ``[DONE]`` from upstream, or our own error
event (then ``[DONE]``) when the upstream ended early, timed out or sent an event over the
size cap; or the abort event when a rail blocked.

The guarded path fails closed (DESIGN.md, "The boundary fails closed"): an event it cannot
read as the client would (``Kind.OPAQUE``), or text for a choice that already finished or
after the stream's end, ends the stream with our error event instead of being relayed; an
in-band error event's text is judged like any output (on its own channel) and nothing after
it is read. On a block, a client disconnect or any
exit, the upstream response is closed at once, which makes vLLM and TGI stop generating.

With a debug channel (the playground's, ``proxy.playground.channel``), the same task that writes the
released events also writes, in order with them, a ``start`` event, the guard's window
and held reports, and an ``abort`` event just before the abort bytes. Without one, not a
byte differs and the pass-through path is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp

from proxy.flow.relay_core import RelayCore
from proxy.flow.upstream_body import Unreadable, UpstreamBody
from proxy.flow.writer import SSEWriter
from proxy.observe.record import RequestRecord
from proxy.playground.channel import DebugChannel, abort_event, report_event
from proxy.wire.sse import Event
from rails.base import Blocked
from rails.config import Abort
from rails.reports import Report
from rails.stream import GuardedStream, Release

log = logging.getLogger("railproxy.relay")


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """What the handler decided for one stream, besides what the core decides."""

    abort: Abort
    keepalive_s: float = 10.0  # a comment after this long without a write, while holding
    debug: DebugChannel | None = None  # the playground's debug events (playground/channel.py)


class Relay:
    """One streamed response. ``run`` returns when the client's stream is complete; the
    outcome and counts are in the request record."""

    def __init__(
        self,
        upstream: UpstreamBody,
        writer: SSEWriter,
        core: RelayCore,
        spec: RelaySpec,
        record: RequestRecord,
        guard: GuardedStream[Event] | None = None,
    ) -> None:
        self._body = upstream
        self._up = upstream.resp
        self._writer = writer
        self._core = core
        self._spec = spec
        self._record = record
        self._guard = guard
        self.blocked: Blocked | None = None
        self._flushed = False  # the body ended and the decoder's tail was taken
        self._tail: list[bytes] = []  # the last bytes, kept to go out with the end
        self._tail_texts = 0

    def shut_down(self) -> None:
        """The server is stopping (drain deadline): end this stream with an error event
        telling the client to retry, and close the upstream request."""
        self._core.fail("railproxy is shutting down; retry the request.", "server_shutdown")
        self._up.close()

    async def run(self) -> str:
        """Relay the stream; its outcome (``ok``, ``blocked``, ``eof``... see
        ``relay_core.Ending``)."""
        try:
            if self._spec.debug is not None:
                await self._writer.send(self._spec.debug.start())
            if self._guard is None:
                await self._passthrough()
            else:
                await self._guarded(self._guard)
        finally:
            if self._core.outcome == "ok" and self.blocked is None:
                self._up.release()
            else:
                self._up.close()
        return self.outcome

    @property
    def outcome(self) -> str:
        return "blocked" if self.blocked is not None else self._core.outcome

    # -- pass-through ---------------------------------------------------------------

    async def _passthrough(self) -> None:
        core = self._core
        while not core.stopped:
            chunk = await self._read()
            if chunk is None:  # the end of the body (or a failure: nothing to flush)
                data, texts = core.passthrough(core.flush())
                await self._write(data, texts, last=True)
                break
            data, texts = core.relay_read(chunk)
            await self._write(data, texts, last=core.ending.done)
        await self._write(core.closing_bytes(), 0)

    # -- guarded ----------------------------------------------------------------------

    async def _guarded(self, guard: GuardedStream[Event]) -> None:
        # Ask for reports before anything is pushed.
        releases: AsyncGenerator[Release[Event] | Report, None] = (
            guard.releases(reports=True) if self._spec.debug is not None else guard.releases()
        )
        reader: asyncio.Task[None] | None = None
        self._writer.send_keep_alives(self._spec.keepalive_s, lambda: guard.held > 0)
        try:
            # The first read in this task: a stream that came whole in it (a short answer)
            # needs no reader task; any other goes on reading in one.
            if await self._read_step(guard):
                reader = asyncio.create_task(self._read_into(guard))
            else:
                self._input_ended(guard)
            async with contextlib.aclosing(releases):
                async for released in releases:
                    if isinstance(released, list):
                        last = guard.done and self._spec.debug is None  # (reports may follow)
                        await self._write_released(released, last)
                    elif isinstance(released, Blocked):
                        await self._block(released, reader)
                        return
                    else:
                        await self._writer.send(report_event(released))
        finally:
            await self._writer.stop_keep_alives()
            if reader is not None:
                reader.cancel()
                await asyncio.wait([reader])  # (a cancel aimed at us still propagates)
                if not reader.cancelled() and reader.exception() is not None:
                    log.error("stream reader failed", exc_info=reader.exception())
            self._record.windows = guard.windows_checked
            self._record.tokens = guard.tokens_seen
            await guard.aclose()

    async def _write_released(self, events: list[Event], last: bool) -> None:
        texts = sum(1 for ev in events if ev.has_text)
        self._core.envelope.released(events)
        await self._write(b"".join(ev.raw for ev in events), texts, last)
        if self._core.holds:  # after the write: the client need not wait for metrics
            now = time.monotonic()
            held_for = self._record.held_for
            for ev in events:
                if ev.arrived:
                    held_for(now - ev.arrived)

    async def _read_into(self, guard: GuardedStream[Event]) -> None:
        """The reader task: the reads after the first, each after the held events are
        within bounds (``room``)."""
        try:
            while True:
                await guard.room()
                if not await self._read_step(guard):
                    break
            self._input_ended(guard)
        finally:
            guard.finish()

    async def _read_step(self, guard: GuardedStream[Event]) -> bool:
        """One read's events before the rails; False once nothing more is to be read (the
        body ended, the stream ended or failed, or a rail blocked)."""
        events = await self._events()
        if events is None:
            return False
        return self._core.judge(guard, events) and guard.blocked is None

    def _input_ended(self, guard: GuardedStream[Event]) -> None:
        """Nothing more comes from upstream: our closing bytes, if the stream needs them
        (none after a block), then the end of the input."""
        if guard.blocked is None:
            closing = self._core.closing_bytes()
            if closing:
                guard.push(Event(closing), end=True)
        guard.finish()

    async def _block(self, blocked: Blocked, reader: asyncio.Task[None] | None) -> None:
        if reader is not None:
            reader.cancel()
        self._up.close()  # stop the upstream generating for nobody, before we write
        self.blocked = blocked
        s = self._spec.abort
        core = self._core
        data = core.dialect.abort(blocked, s.style, s.refusal_message, core.envelope, s.separator)
        if self._spec.debug is not None:
            data = abort_event(blocked) + data
        await self._writer.send(data)

    # -- shared -----------------------------------------------------------------------

    async def _events(self) -> list[Event] | None:
        """The complete upstream events of the next network read (or reads), or None
        once there are no more. (No async generator: one that is left early is
        finalized by the loop in a task of its own.)"""
        core = self._core
        while not core.stopped and not self._flushed:
            chunk = await self._read()
            if chunk is None:  # the end of the body (or a failure: nothing to flush)
                self._flushed = True
                return core.flush() or None
            events = core.feed(chunk)
            if events:
                return events
        return None

    async def _read(self) -> bytes | None:
        """The next piece of the upstream body; None at its end, or when reading failed
        (the failure is then the core's, not an exception)."""
        core = self._core
        try:
            return await self._body.chunk() or None
        except Unreadable as e:
            core.fail(e.message, "upstream_unreadable")
        except TimeoutError:
            core.fail("The upstream stopped sending (read timeout).", "upstream_timeout")
        except aiohttp.ClientError as e:
            # (after our own shut_down() closed it, the shutdown is what is reported)
            message = f"The upstream connection failed mid-stream ({type(e).__name__})."
            core.fail(message, "upstream_disconnected")
        return None

    async def _write(self, data: bytes, texts: int, last: bool = False) -> None:
        """Write bytes; ``texts`` counts the events among them that carry generated text.
        ``last``: nothing can follow but closing bytes, so they wait for ``finish`` and go
        out with the end of the body, in one write."""
        if not data:
            return
        if last or self._tail:
            self._tail.append(data)
            self._tail_texts += texts
            return
        await self._writer.send(data)
        if texts:
            self._record.client_content(texts)

    async def finish(self) -> None:
        """End the client's body, with the last bytes ``run`` kept for it. The record
        hears of them, and of the stream's end, before they go (a client that reads the
        metrics once its stream ended sees them); a client that goes away while they are
        written did not get its end: it left (``ConnectionResetError`` or the
        cancellation propagates), as during any other write."""
        data, texts = b"".join(self._tail), self._tail_texts
        self._tail.clear()
        record = self._record
        if texts:
            record.client_content(texts)
        if self.blocked is not None:
            record.block(self.blocked)
        record.stream_ended(self.outcome, self._core.holds)
        try:
            await self._writer.end(data)
        except (ConnectionResetError, asyncio.CancelledError):
            record.client_left()
            raise
