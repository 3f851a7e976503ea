"""Client authentication against ``server.api_keys``.

The key arrives as ``Authorization: Bearer <key>`` (OpenAI's clients) or ``x-api-key: <key>``
(Anthropic's); Authorization wins when it carries a bearer token. Keys are compared in
constant time (``hmac.compare_digest`` against every configured key, whether or not an
earlier one matched). The matching key's ``Client`` (name, operator flag, allowed configs) is
stored as ``request[CLIENT]``. Health and readiness stay open for probes, the playground
page too (it holds no secrets; its own requests carry the key typed in), and ``/metrics``
too unless ``server.metrics_auth`` is set. A missing or wrong key is a 401 in the error
shape of the route's API (Anthropic's on ``/v1/messages``); the key a client sent is never
logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from proxy.clients import CLIENT, Client
from proxy.errors import Unauthorized
from proxy.settings import ApiKey, SettingsError
from proxy.state import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/ui"})  # /ui: a static page, no secrets


def key_matches(presented: str, keys: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every key is compared, in full, every time."""
    return _match(presented, keys) is not None


def _match(presented: str, keys: Sequence[bytes]) -> int | None:
    """The index of the key equal to ``presented``; every key is compared, in full."""
    candidate = presented.encode("utf-8", "surrogateescape")
    found: int | None = None
    for i, key in enumerate(keys):
        if hmac.compare_digest(candidate, key) and found is None:
            found = i
    return found


def bearer(header: str | None) -> str:
    if not header:
        return ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a request carries: its bearer token, else its ``x-api-key``."""
    return bearer(headers.get("Authorization")) or headers.get("x-api-key", "").strip()


def client_for(key: ApiKey) -> Client:
    return Client(key.name, key.operator, key.configs)


def check_bindings(keys: Sequence[ApiKey], config_ids: Sequence[str]) -> None:
    """Every config a key is bound to exists (SettingsError naming the key, not its value)."""
    for k in keys:
        unknown = [c for c in k.configs or () if c not in config_ids]
        if unknown:
            raise SettingsError(
                f"server.api_keys[{k.name}].configs: unknown config {unknown[0]!r}; "
                f"known: {list(config_ids)}"
            )


class ApiKeyAuth:
    """The middleware for a fixed set of keys (built once at start-up)."""

    __middleware_version__ = 1  # what @web.middleware marks: a new-style middleware

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = tuple(k.key.get_secret_value().encode() for k in keys)
        self._clients = tuple(client_for(k) for k in keys)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (
            request.path == "/metrics" and not request.app[SETTINGS].server.metrics_auth
        ):
            return await handler(request)
        found = _match(presented_key(request.headers), self._keys)
        if found is None:
            raise Unauthorized(
                "Missing or invalid API key: send Authorization: Bearer <key> "
                "(or x-api-key: <key>).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request[CLIENT] = self._clients[found]
        return await handler(request)
