"""The relay: upstream SSE bytes in, client SSE bytes out, the guard in between.

Two paths, one contract (what the client receives):

* pass-through (no output rails for this request): complete events are written as the
  bytes they arrived as, batched per read; only the end is inspected.
* guarded: a reader task decodes upstream events, tells the ``GuardedStream`` which text
  each carries, and the handler's task writes whatever the guard releases, in order.

Either way the stream always ends well-framed: ``[DONE]`` from upstream, or our own error
event (then ``[DONE]``) when the upstream ended early, timed out or sent an event over the
size cap; or the abort event when a rail blocked. On a block, a client disconnect or any
exit, the upstream response is closed at once, which makes vLLM and TGI stop generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import aiohttp

from proxy.protocol import Dialect, Envelope, Kind
from proxy.sse import Decoder, Event, SSEError, comment
from proxy.writer import SSEWriter
from rails.config import Abort
from rails.stream import Blocked, GuardedStream, Idle

log = logging.getLogger("railproxy.relay")


@dataclass(slots=True)
class RelayResult:
    """How a stream ended, for logs and metrics."""

    outcome: str = "ok"  # ok | blocked | upstream_error | in_band_error | eof | too_large
    blocked: Blocked | None = None
    first_write_at: float | None = None
    events: int = 0
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
        if self.failure is not None:
            return "too_large" if self.failure[1] == "event_too_large" else "upstream_error"
        if self.in_band_error:
            return "in_band_error"
        return "ok" if self.done else "eof"


class Relay:
    """One streamed response. ``run`` returns when the client's stream is complete."""

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        writer: SSEWriter,
        dialect: Dialect,
        max_event_bytes: int,
        abort: Abort,
        guard: GuardedStream[Event] | None = None,
    ) -> None:
        self._up = upstream
        self._writer = writer
        self._dialect = dialect
        self._decoder = Decoder(max_event_bytes)
        self._abort = abort
        self._guard = guard
        self._ending = _Ending()
        self.result = RelayResult()

    async def run(self) -> RelayResult:
        try:
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
        async with contextlib.aclosing(self._events()) as batches:
            async for events in batches:
                for ev in events:
                    note(fast_kind(ev))
                await self._write(b"".join(ev.raw for ev in events), len(events))
                if ending.done:
                    break
        await self._write(ending.closing_bytes(self._dialect), 0)
        self.result.outcome = ending.outcome

    # -- guarded ----------------------------------------------------------------------

    async def _guarded(self, guard: GuardedStream[Event]) -> None:
        reader = asyncio.create_task(self._read_into(guard))
        try:
            async for released in guard.releases():
                if isinstance(released, Blocked):
                    await self._block(released, reader)
                    return
                if isinstance(released, Idle):
                    await self._writer.send(comment("keep-alive"))
                    continue
                await self._write(b"".join(ev.raw for ev in released), len(released))
            self.result.outcome = self._ending.outcome
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await guard.aclose()

    async def _read_into(self, guard: GuardedStream[Event]) -> None:
        parse, env, note = self._dialect.parse, self.result.envelope, self._ending.note
        try:
            async with contextlib.aclosing(self._events()) as batches:
                async for events in batches:
                    for ev in events:
                        p = parse(ev)
                        note(p.kind)
                        if p.kind is Kind.COMMENT:
                            guard.push(ev, bypass=True)
                            continue
                        if p.obj is not None:
                            env.learn(p.obj)
                            env.choices.update(key[0] for key, _ in p.texts)
                        guard.push(ev, p.texts, ends=p.ends, end=p.end)
                    if guard.blocked is not None or self._ending.done:
                        return
            closing = self._ending.closing_bytes(self._dialect)
            if closing:
                guard.push(Event(closing), end=True)
        finally:
            guard.finish()

    async def _block(self, blocked: Blocked, reader: asyncio.Task[None]) -> None:
        reader.cancel()
        self._up.close()  # stop the upstream generating for nobody, before we write
        self.result.outcome = "blocked"
        self.result.blocked = blocked
        s = self._abort
        await self._writer.send(
            self._dialect.abort(blocked, s.style, s.refusal_message, self.result.envelope)
        )

    # -- shared -----------------------------------------------------------------------

    async def _events(self) -> AsyncGenerator[list[Event], None]:
        """Complete upstream events, batched per network read; read failures become the
        ending's ``failure`` instead of exceptions."""
        decoder = self._decoder
        try:
            async for chunk in self._up.content.iter_any():
                events = decoder.feed(chunk)
                if events:
                    yield events
            tail = decoder.flush()
            if tail:
                yield tail
        except SSEError as e:
            self._ending.failure = (str(e), "event_too_large")
        except TimeoutError:
            self._ending.failure = (
                "The upstream stopped sending (read timeout).",
                "upstream_timeout",
            )
        except aiohttp.ClientError as e:
            message = f"The upstream connection failed mid-stream ({type(e).__name__})."
            self._ending.failure = (message, "upstream_disconnected")

    async def _write(self, data: bytes, events: int) -> None:
        if not data:
            return
        if self.result.first_write_at is None:
            self.result.first_write_at = time.monotonic()
        self.result.events += events
        await self._writer.send(data)
