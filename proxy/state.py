"""Typed keys for what the application shares (``web.AppKey``), and the server's state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.configs import ConfigSet
from proxy.observe.metrics import Metrics
from proxy.routes import PassRoute
from proxy.settings import Settings
from proxy.upstream import Upstream

ReloadHook = Callable[[str, ConfigSet | None], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ServerState:
    """What the server itself keeps: admission, readiness, drain, the live rails configs."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.draining = False
        # Set when the drain deadline passes: streams still running should end themselves
        # now (proxy.run.drain cancels them a moment later). ``stop`` sets it and tells
        # every stream in ``streams`` (its shut-down callback) at once.
        self.stopping = asyncio.Event()
        self.streams: set[Callable[[], None]] = set()
        # The rails configs new requests pick from after a reload (None: the app's CONFIGS).
        self.configs: ConfigSet | None = None
        # Called after each reload attempt: ("ok", the new set, before it serves) or
        # ("error", None). Feeds railproxy_config_reloads_total{result}.
        self.reload_hooks: list[ReloadHook] = []

    def stop(self) -> None:
        """The drain deadline: every running stream ends itself with an error event."""
        self.stopping.set()
        for shut_down in list(self.streams):
            shut_down()


class InFlight:
    """The request handler tasks of one app that are running now (``proxy.run.drain``
    waits for them; a reload retires old configs after them)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def snapshot(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks running now (a reload waits for these before closing the old configs)."""
        return frozenset(self._tasks)

    async def wait_idle(self) -> None:
        """Return once no request is in flight (at once when none is)."""
        await self._idle.wait()

    def cancel_all(self) -> int:
        """Cancel every handler task; return how many were cancelled."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)

    def middleware(self) -> Middleware:
        """Tracks every request; ``create_app`` puts it first in the chain, so it spans
        the whole request, metrics included (a drain waits for these)."""
        tasks, idle = self._tasks, self._idle

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None  # aiohttp runs every handler in a task
            tasks.add(task)
            idle.clear()
            try:
                return await handler(request)
            finally:
                tasks.discard(task)
                if not tasks:
                    idle.set()

        return track


SETTINGS = web.AppKey("settings", Settings)
UPSTREAM = web.AppKey("upstream", Upstream)
CONFIGS = web.AppKey("configs", ConfigSet)
STATE = web.AppKey("state", ServerState)
INFLIGHT = web.AppKey("inflight", InFlight)
METRICS = web.AppKey("metrics", Metrics)
# The pass-through allow-list (proxy.routes): built-in routes, then the operator's.
PASS_ROUTES = web.AppKey("pass_routes", tuple[PassRoute, ...])


def live_configs(app: web.Application) -> ConfigSet:
    """The rails configs a new request picks from: the last reload's, else the start-up set.

    Read it once per request; a reload never changes the set a request already holds.
    """
    configs = app[STATE].configs
    return configs if configs is not None else app[CONFIGS]
