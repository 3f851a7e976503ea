"""Running an app: the event loop (uvloop when installed), the listening socket, and
shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion with uvloop when it is installed (see bench/)."""
    factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(main)


async def serve_forever(
    app: web.Application, host: str, port: int, ready: Callable[[int], None]
) -> None:
    """Serve until SIGINT/SIGTERM, then shut down cleanly. ``ready`` gets the bound port.

    ``handler_cancellation`` makes aiohttp cancel a handler whose client went away, so a
    stream waiting on a slow upstream notices the disconnect at once, not at its next write.
    """
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        ready(bound_port(runner))
        await _wait_for_signal()
    finally:
        await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    raise RuntimeError("server has no TCP address")


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
