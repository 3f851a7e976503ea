"""Admission: every request that can open a stream takes one of ``max_concurrent_streams``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from proxy.errors import TooManyRequests
from proxy.state import SETTINGS, STATE


def admit(request: web.Request) -> None:
    """429 with Retry-After when every stream slot is taken."""
    limit = request.app[SETTINGS].server.max_concurrent_streams
    if request.app[STATE].active_streams >= limit:
        raise TooManyRequests(
            f"railproxy is serving its maximum of {limit} concurrent streams; retry shortly.",
            headers={"Retry-After": "1"},
        )


@contextmanager
def stream_slot(request: web.Request, stream: bool = True) -> Iterator[None]:
    """Hold one stream slot for the block (nothing when ``stream`` is false)."""
    if not stream:
        yield
        return
    admit(request)
    state = request.app[STATE]
    state.active_streams += 1
    try:
        yield
    finally:
        state.active_streams -= 1
