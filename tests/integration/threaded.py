"""An upstream and the real proxy served by an event loop in a thread of their own.

Hypothesis drives sync tests, so property tests send plain blocking requests (urllib, raw
sockets) to a proxy whose loop runs beside them:

    served = Threaded(FakeUpstream(), {"rails": {...}})
    served.start()          # binds both on 127.0.0.1
    ... served.base ...
    served.stop()           # cleans both up and joins the thread
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol, TypeVar

from aiohttp import web

from proxy.app import create_app
from proxy.run.server import bound_port
from proxy.settings import Settings

T = TypeVar("T")


class Upstream(Protocol):
    base_url: str

    def start(self) -> Awaitable[None]: ...
    def close(self) -> Awaitable[None]: ...


class Threaded:
    def __init__(self, upstream: Upstream, config: dict[str, Any]) -> None:
        self.upstream = upstream
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the served loop and wait (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        await self.upstream.start()
        upstream = {"base_url": self.upstream.base_url + "/v1"}
        app = create_app(Settings.model_validate({"upstream": upstream, **self.config}))
        self.runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = bound_port(self.runner)

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.upstream.close()
