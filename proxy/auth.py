"""Client authentication: ``Authorization: Bearer <key>`` against ``server.api_keys``.

Keys are compared in constant time (``hmac.compare_digest`` against every configured key,
whether or not an earlier one matched). Health and readiness stay open for probes, the
playground page too (it holds no secrets; its own requests carry the key typed in), and
``/metrics`` too unless ``server.metrics_auth`` is set. A missing or wrong key is a 401 in
OpenAI's error shape; the key a client sent is never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.errors import Unauthorized
from proxy.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/ui"})  # /ui: a static page, no secrets


def key_matches(presented: str, keys: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every key is compared, in full, every time."""
    candidate = presented.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def bearer(header: str | None) -> str:
    if not header:
        return ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class ApiKeyAuth:
    """The middleware for a fixed set of keys (built once at start-up)."""

    __middleware_version__ = 1  # what @web.middleware marks: a new-style middleware

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self._keys = keys

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (
            request.path == "/metrics" and not request.app[SETTINGS].server.metrics_auth
        ):
            return await handler(request)
        if not key_matches(bearer(request.headers.get("Authorization")), self._keys):
            raise Unauthorized(
                "Missing or invalid API key: send Authorization: Bearer <key>.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)
