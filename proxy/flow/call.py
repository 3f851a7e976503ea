"""One guarded request as the handlers pass it around, and the request id rule."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.observe.record import RequestRecord
from proxy.wire.dialect import Dialect
from rails.guard import Guard

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


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


def request_id(request: web.Request) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a new one."""
    rid = request.headers.get("X-Request-Id", "")
    return rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
