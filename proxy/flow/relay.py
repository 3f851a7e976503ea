"""The relay: upstream SSE bytes in, client SSE bytes out, the guard in between.

Two paths, one contract (what the client receives):

* pass-through (no output rails for this request): complete events are written as the
  bytes they arrived as, batched per read; only the end is inspected.
* guarded: a reader task decodes upstream events, tells the ``GuardedStream`` which text
  each carries, and the handler's task writes whatever the guard releases, in order.

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
from dataclasses import dataclass, field

import aiohttp

from proxy.flow.upstream_body import Unreadable, UpstreamBody
from proxy.flow.writer import SSEWriter
from proxy.observe.metrics import Metrics
from proxy.observe.record import RequestRecord
from proxy.playground.channel import DebugChannel, abort_event, report_event
from proxy.wire.dialect import Dialect, Envelope, Kind, Parsed
from proxy.wire.reader import EventReader
from proxy.wire.sse import Decoder, Event, SSEError, comment
from rails.base import Blocked
from rails.config import Abort
from rails.reports import Report
from rails.stream import GuardedStream, Idle, Release

log = logging.getLogger("railproxy.relay")


@dataclass(slots=True)
class RelayResult:
    """How a stream ended, for logs and metrics."""

    # ok | blocked | in_band_error | eof | timeout | disconnected | too_large | shutdown
    # | unreadable
    outcome: str = "ok"
    blocked: Blocked | None = None
    text_events: int = 0  # events carrying generated text written to the client
    tokens: int = 0  # guarded streams: tokens of generated text seen (tiktoken)
    windows: int = 0
    envelope: Envelope = field(default_factory=Envelope)


class _Ending:
    """What the upstream's last bytes told us: finished cleanly, errored, or cut off."""

    def __init__(self) -> None:
        self.done = False
        self.in_band_error = False
        self.failure: tuple[str, str] | None = None  # (message, code)

    def note(self, kind: Kind) -> None:
        if kind is Kind.DONE:
            self.done = True
        elif kind is Kind.ERROR:
            self.in_band_error = True

    def fail(self, message: str, code: str) -> None:
        """The first failure wins (a shutdown's close must not read as a disconnect)."""
        if self.failure is None:
            self.failure = (message, code)

    def closing_bytes(self, dialect: Dialect) -> bytes:
        """Bytes to add after the upstream's own so the client sees a proper end."""
        if self.done:
            return b""
        if self.failure is not None:
            return dialect.stream_error(*self.failure)
        if self.in_band_error:
            return dialect.done()
        return dialect.stream_error(
            "The upstream closed the stream before it ended.", "upstream_eof"
        )

    @property
    def outcome(self) -> str:
        """ok | in_band_error | eof | timeout | disconnected | too_large | shutdown"""
        if self.failure is not None:
            return _FAILURES.get(self.failure[1], "eof")
        if self.in_band_error:
            return "in_band_error"
        return "ok" if self.done else "eof"


_FAILURES = {
    "server_shutdown": "shutdown",
    "upstream_unreadable": "unreadable",
    "upstream_protocol_error": "unreadable",
    "event_too_large": "too_large",
    "upstream_timeout": "timeout",
    "upstream_disconnected": "disconnected",
}


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """What the handler decided for one stream."""

    dialect: Dialect
    max_event_bytes: int
    abort: Abort
    strip_usage: bool = False  # railproxy asked for usage; the client did not
    hold: bool = False  # stream_first false: time how long events are held
    debug: DebugChannel | None = None  # the playground's debug events (proxy/playground/channel.py)


class Relay:
    """One streamed response. ``run`` returns when the client's stream is complete."""

    def __init__(
        self,
        upstream: UpstreamBody,
        writer: SSEWriter,
        spec: RelaySpec,
        record: RequestRecord,
        metrics: Metrics,
        guard: GuardedStream[Event] | None = None,
    ) -> None:
        self._body = upstream
        self._up = upstream.resp
        self._writer = writer
        self._spec = spec
        self._dialect = spec.dialect
        self._decoder = Decoder(spec.max_event_bytes)
        self._record = record
        self._metrics = metrics
        self._guard = guard
        self._ending = _Ending()
        self._reader = EventReader(spec.dialect)
        self.result = RelayResult()

    def shut_down(self) -> None:
        """The server is stopping (drain deadline): end this stream with an error event
        telling the client to retry, and close the upstream request."""
        self._ending.fail("railproxy is shutting down; retry the request.", "server_shutdown")
        self._up.close()

    async def run(self) -> RelayResult:
        try:
            if self._spec.debug is not None:
                await self._writer.send(self._spec.debug.start())
            if self._guard is None:
                await self._passthrough()
            else:
                await self._guarded(self._guard)
        finally:
            if self._ending.done and self.result.outcome == "ok":
                self._up.release()
            else:
                self._up.close()
        return self.result

    # -- pass-through ---------------------------------------------------------------

    async def _passthrough(self) -> None:
        fast_kind, note, ending = self._dialect.fast_kind, self._ending.note, self._ending
        carries = self._dialect.carries_text
        async with contextlib.aclosing(self._events()) as batches:
            async for events in batches:
                out: list[bytes] = []
                texts = 0
                for ev in events:
                    kind = fast_kind(ev)
                    note(kind)
                    if kind is Kind.DATA:
                        if carries(ev):
                            texts += 1
                        if self._usage(ev):
                            continue
                    out.append(ev.raw)
                if texts:
                    self._record.upstream_content()
                await self._write(b"".join(out), texts)
                if ending.done:
                    break
        await self._write(ending.closing_bytes(self._dialect), 0)
        self.result.outcome = ending.outcome

    def _usage(self, ev: Event) -> bool:
        """Record usage the event reports; True when the event must not reach the client
        (a usage-only chunk railproxy asked for on the client's behalf)."""
        data = ev.data
        if data is None or (b'"usage":{' not in data and b'"usage": {' not in data):
            return False
        found = self._dialect.usage(ev)
        if found is not None:
            self._record.prompt_tokens, self._record.completion_tokens = found
        return self._spec.strip_usage and self._dialect.is_usage_only(ev)

    # -- guarded ----------------------------------------------------------------------

    async def _guarded(self, guard: GuardedStream[Event]) -> None:
        # Ask for reports before the reader task can push anything.
        releases: AsyncGenerator[Release[Event] | Report, None] = (
            guard.releases(reports=True) if self._spec.debug is not None else guard.releases()
        )
        reader = asyncio.create_task(self._read_into(guard))
        try:
            async with contextlib.aclosing(releases):
                async for released in releases:
                    if isinstance(released, list):
                        await self._write_released(released)
                    elif isinstance(released, Blocked):
                        await self._block(released, reader)
                        return
                    elif isinstance(released, Idle):
                        await self._writer.send(comment("keep-alive"))
                    else:
                        await self._writer.send(report_event(released))
            self.result.outcome = self._ending.outcome
        finally:
            reader.cancel()
            await asyncio.wait([reader])  # (a cancel aimed at us still propagates)
            if not reader.cancelled() and reader.exception() is not None:
                log.error("stream reader failed", exc_info=reader.exception())
            self.result.windows = guard.windows_checked
            self.result.tokens = guard.tokens_seen
            await guard.aclose()

    async def _write_released(self, events: list[Event]) -> None:
        now = time.monotonic()
        texts = sum(1 for ev in events if ev.has_text)
        await self._write(b"".join(ev.raw for ev in events), texts)
        if self._spec.hold:  # after the write: the client need not wait for metrics
            observe = self._metrics.holdback.observe
            for ev in events:
                if ev.arrived:
                    observe(now - ev.arrived)

    async def _read_into(self, guard: GuardedStream[Event]) -> None:
        try:
            async with contextlib.aclosing(self._events()) as batches:
                async for events in batches:
                    if not self._push_all(guard, events):
                        break
                    if guard.blocked is not None:
                        return
                    await guard.room()
            closing = self._ending.closing_bytes(self._dialect)
            if closing:
                guard.push(Event(closing), end=True)
        finally:
            guard.finish()

    def _push_all(self, guard: GuardedStream[Event], events: list[Event]) -> bool:
        """Push one read's events; False once nothing more may be read (the stream ended,
        errored, or sent what we cannot judge)."""
        read, env, ending = self._reader.read, self.result.envelope, self._ending
        client_form = self._dialect.client_form
        for ev in events:
            p = read(ev)
            ev = client_form(ev)
            if p.kind is Kind.COMMENT:
                guard.push(ev, bypass=True)
                continue
            refusal = self._refuse(p)
            if refusal is not None:
                ending.fail(*refusal)
                return False
            ending.note(p.kind)
            if p.obj is not None and p.kind is Kind.DATA:
                env.learn(p.obj)
                env.choices.update(key[0] for key, _ in p.texts if key[0] >= 0)
                if self._usage(ev):
                    continue
            if any(key[0] >= 0 for key, _ in p.texts):  # generated text, not envelope
                self._mark_text(ev)
            guard.push(ev, p.texts, ends=p.ends, end=p.end)
            if p.complete:
                ending.done = True
            if ending.done or ending.in_band_error:
                return False
        return True

    def _refuse(self, p: Parsed) -> tuple[str, str] | None:
        """Why this event must end the stream instead of reaching the client, or None."""
        if p.kind is Kind.OPAQUE:
            return (
                "The upstream sent an event railproxy cannot read, so cannot judge.",
                "upstream_unreadable",
            )
        if p.kind is Kind.LATE:
            return (
                "The upstream sent text after that choice (or the stream) had ended.",
                "upstream_protocol_error",
            )
        return None

    def _mark_text(self, ev: Event) -> None:
        ev.has_text = True
        self._record.upstream_content()
        if self._spec.hold:
            ev.arrived = time.monotonic()

    async def _block(self, blocked: Blocked, reader: asyncio.Task[None]) -> None:
        reader.cancel()
        self._up.close()  # stop the upstream generating for nobody, before we write
        self.result.outcome = "blocked"
        self.result.blocked = blocked
        s = self._spec.abort
        env = self.result.envelope
        data = self._dialect.abort(blocked, s.style, s.refusal_message, env, s.separator)
        if self._spec.debug is not None:
            data = abort_event(blocked) + data
        await self._writer.send(data)

    # -- shared -----------------------------------------------------------------------

    async def _events(self) -> AsyncGenerator[list[Event], None]:
        """Complete upstream events, batched per network read; read failures become the
        ending's ``failure`` instead of exceptions."""
        decoder = self._decoder
        try:
            async for chunk in self._body.chunks():
                events = decoder.feed(chunk)
                if events:
                    yield events
            tail = decoder.flush()
            if tail:
                yield tail
        except SSEError as e:
            self._ending.fail(str(e), "event_too_large")
        except Unreadable as e:
            self._ending.fail(e.message, "upstream_unreadable")
        except TimeoutError:
            self._ending.fail("The upstream stopped sending (read timeout).", "upstream_timeout")
        except aiohttp.ClientError as e:
            # (after our own shut_down() closed it, the shutdown is what is reported)
            message = f"The upstream connection failed mid-stream ({type(e).__name__})."
            self._ending.fail(message, "upstream_disconnected")

    async def _write(self, data: bytes, texts: int) -> None:
        """Write bytes; ``texts`` counts the events among them that carry generated text."""
        if not data:
            return
        await self._writer.send(data)
        if texts:
            self.result.text_events += texts
            self._record.client_content(self._metrics)
