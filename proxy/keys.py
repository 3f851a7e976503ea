"""Typed keys for what the application shares (``web.AppKey``), and the server's state."""

from __future__ import annotations

from aiohttp import web

from proxy.configs import ConfigSet
from proxy.settings import Settings
from proxy.upstream import Upstream


class ServerState:
    """The few counters the server itself keeps (admission, readiness)."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.draining = False


SETTINGS = web.AppKey("settings", Settings)
UPSTREAM = web.AppKey("upstream", Upstream)
CONFIGS = web.AppKey("configs", ConfigSet)
STATE = web.AppKey("state", ServerState)
