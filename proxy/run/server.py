"""Running an app: the event loop (uvloop when installed), the listening socket, signals.

``serve_forever`` serves one app until SIGTERM or SIGINT, then drains (``proxy.run.drain``) and
returns; a second SIGINT during the drain cuts it short. SIGHUP reloads the config
(``proxy.run.reload``) when the app was started from a file, and is ignored otherwise. Several
worker processes (``server.workers``) are ``proxy.run.workers``' business; each runs this.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from proxy import routes
from proxy.run.drain import GRACE_S, Drain
from proxy.run.reload import Reloader, ReloadSource
from proxy.state import INFLIGHT, SETTINGS, STATE

log = logging.getLogger("railproxy")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T | None:
    """Run ``main`` to completion with uvloop when it is installed (see bench/); None when
    interrupted by a KeyboardInterrupt before ``main`` handles signals itself."""
    factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner, contextlib.suppress(KeyboardInterrupt):
        return runner.run(main)
    return None


async def serve_forever(
    app: web.Application,
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    reuse_port: bool = False,
    reload: ReloadSource | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, drain, clean up. ``ready`` gets the bound port.

    ``handler_cancellation`` makes aiohttp cancel a handler whose client went away, so a
    stream waiting on a slow upstream notices the disconnect at once, not at its next write.
    ``reuse_port`` lets several worker processes listen on one port (SO_REUSEPORT).
    """
    inflight = app[INFLIGHT]
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=GRACE_S
    )
    reloader: Reloader | None = None
    with _Signals() as signals:
        await runner.setup()
        # Everything built so far (aiohttp, pydantic models, rails, metrics: ~50k objects)
        # lives as long as the process; keep full collections from re-scanning it on the
        # event loop (measured: 55-106 ms pauses under load, ~0 ms after the freeze).
        gc.freeze()
        try:
            backlog = app[SETTINGS].server.backlog
            site = web.TCPSite(
                runner, host, port, backlog=backlog, reuse_address=True, reuse_port=reuse_port
            )
            await site.start()
            _announce(app)
            if reload is not None:
                reloader = Reloader(app, reload, inflight)
                signals.on_hangup = reloader.reload
            ready(bound_port(runner))
            async with _watching(reloader):
                await signals.stop.wait()
            timeout = app[SETTINGS].server.drain_timeout_s
            drain = Drain(runner, inflight, app[STATE], timeout)
            signals.on_interrupt = drain.hurry
            await drain.run()
        finally:
            await runner.cleanup()
            if reloader is not None:
                await reloader.aclose()


def _announce(app: web.Application) -> None:
    """What an operator should know once serving: the routes, and a development setting."""
    log.info("routes", extra=routes.describe(app[SETTINGS].server.pass_routes))
    server = app[SETTINGS].server
    if server.playground and not server.api_keys:
        log.warning(
            "playground on with no server.api_keys: a development setting; every client may "
            "ask for the debug channel (rail reasons). Set api_keys with an operator key."
        )


def bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    raise RuntimeError("server has no TCP address")


@contextlib.asynccontextmanager
async def _watching(reloader: Reloader | None) -> AsyncIterator[None]:
    """Poll the config file in the background while the body runs."""
    task = asyncio.create_task(reloader.watch()) if reloader is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Signals:
    """SIGTERM/SIGINT set ``stop``; later SIGINTs call ``on_interrupt``; SIGHUP calls
    ``on_hangup``. Installed on the running loop for the ``with`` block's duration."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.on_interrupt: Callable[[], object] = lambda: None
        self.on_hangup: Callable[[], object] = _no_reload

    def __enter__(self) -> _Signals:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._handle, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.remove_signal_handler(sig)

    def _handle(self, sig: signal.Signals) -> None:
        if sig is signal.SIGHUP:
            self.on_hangup()
        elif not self.stop.is_set():
            log.info("stopping", extra={"signal": sig.name})
            self.stop.set()
        elif sig is signal.SIGINT:
            self.on_interrupt()


def _no_reload() -> None:
    log.warning("SIGHUP ignored: railproxy was not started from a config file")
