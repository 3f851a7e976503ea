"""Graceful drain: stop listening, let the requests in flight finish, then cut the rest.

Kubernetes' order (deploy/README.md): the pod turns terminating and leaves the Service's
endpoints, preStop sleeps while every node catches up, then SIGTERM reaches railproxy, and
``Drain.run`` does:

1. ``ServerState.draining = True`` (``/readyz`` answers 503); the listening sockets close, so
   new connections are refused; idle keep-alive connections close, busy ones close once
   their response ends.
2. Requests in flight (streams included) run on, up to ``drain_timeout_s``.
3. At the deadline ``ServerState.stopping`` is set, so a stream can end itself with an error
   event; ``grace_s`` later the handler tasks still running are cancelled (the relay's
   finally-blocks close their upstream requests, which stops generation there).

Why not just ``AppRunner.cleanup()`` with ``shutdown_timeout``: aiohttp waits up to that long
per connection for the handler, then cancels only the request's *payload* (which does not
end a handler waiting on its upstream) and waits that long again, rounds waits over 5 s up to
whole seconds, and offers no hook at the deadline. So the server drains first and calls
``cleanup()`` only when nothing is left in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.state import InFlight, ServerState

log = logging.getLogger("railproxy.drain")

GRACE_S = 1.0  # between ``stopping`` and cancelling, and for the cancelled to unwind
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class DrainReport:
    """How a drain went: requests in flight at the start, how many were cut, how long."""

    in_flight: int
    cut: int
    seconds: float


class Drain:
    """One drain of one runner; ``run`` once. ``hurry`` ends the wait early (second Ctrl-C)."""

    def __init__(
        self,
        runner: web.AppRunner,
        inflight: InFlight,
        state: ServerState,
        timeout_s: float,
        grace_s: float = GRACE_S,
    ) -> None:
        self._runner = runner
        self._inflight = inflight
        self._state = state
        self._timeout_s = timeout_s
        self._grace_s = grace_s
        self._hurry = asyncio.Event()

    def hurry(self) -> None:
        """Skip the rest of the wait: the deadline steps run now."""
        self._hurry.set()

    async def run(self) -> DrainReport:
        """Steps 1-3 of the module docstring. Returns within about
        ``timeout_s + 2 * grace_s``; the caller then runs ``runner.cleanup()``."""
        started = time.monotonic()
        await self._stop_accepting()
        in_flight = len(self._inflight)
        log.info("draining", extra={"in_flight": in_flight, "timeout_s": self._timeout_s})
        cut = 0
        if not await self._wait(self._timeout_s):
            self._state.stop()
            if not await self._wait(self._grace_s, hurry=False):
                cut = self._inflight.cancel_all()
                log.warning("drain deadline passed: requests cut", extra={"cut": cut})
                await self._wait(self._grace_s, hurry=False)
        report = DrainReport(in_flight, cut, time.monotonic() - started)
        log.info("drained", extra={"cut": cut, "seconds": round(report.seconds, 3)})
        return report

    async def _stop_accepting(self) -> None:
        self._state.draining = True
        for site in list(self._runner.sites):
            await site.stop()
        if self._runner.server is not None:
            self._runner.server.pre_shutdown()

    async def _wait(self, timeout_s: float, hurry: bool = True) -> bool:
        """Wait until idle, ``timeout_s`` or (when ``hurry``) ``hurry()``; True when idle."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._inflight.wait_idle())]
        if hurry:
            waiters.append(asyncio.ensure_future(self._hurry.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w
        return len(self._inflight) == 0
