"""One guarded request as the handlers pass it around."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.observe.record import RequestRecord
from proxy.wire.dialect import Dialect
from rails.guard import Guard


@dataclass(slots=True)
class Call:
    """One guarded request, as the handlers pass it around."""

    request: web.Request
    dialect: Dialect
    path: str
    body: dict[str, Any]
    raw: bytes
    stream: bool
    request_id: str
    config_id: str
    guard: Guard
    record: RequestRecord
    strip_usage: bool = False
