"""Typed keys for what the application shares (``web.AppKey``), and the server's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from proxy.configs import ConfigSet
from proxy.observe.metrics import Metrics
from proxy.routes import PassRoute
from proxy.settings import Settings
from proxy.upstream import Upstream

ReloadHook = Callable[[str, ConfigSet | None], None]


class ServerState:
    """What the server itself keeps: admission, readiness, drain, the live rails configs."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.draining = False
        # Set when the drain deadline passes: streams still running should end themselves
        # now (proxy.run.drain cancels them a moment later).
        self.stopping = asyncio.Event()
        # The rails configs new requests pick from after a reload (None: the app's CONFIGS).
        self.configs: ConfigSet | None = None
        # Called after each reload attempt: ("ok", the new set, before it serves) or
        # ("error", None). Feeds railproxy_config_reloads_total{result}.
        self.reload_hooks: list[ReloadHook] = []


SETTINGS = web.AppKey("settings", Settings)
UPSTREAM = web.AppKey("upstream", Upstream)
CONFIGS = web.AppKey("configs", ConfigSet)
STATE = web.AppKey("state", ServerState)
METRICS = web.AppKey("metrics", Metrics)
# The pass-through allow-list (proxy.routes): built-in routes, then the operator's.
PASS_ROUTES = web.AppKey("pass_routes", tuple[PassRoute, ...])


def live_configs(app: web.Application) -> ConfigSet:
    """The rails configs a new request picks from: the last reload's, else the start-up set.

    Read it once per request; a reload never changes the set a request already holds.
    """
    configs = app[STATE].configs
    return configs if configs is not None else app[CONFIGS]
