"""The one pooled connection to the upstream LLM server.

Owns the app's single ``aiohttp.ClientSession``, decides which headers cross in each
direction, and turns aiohttp's connection failures into our errors: unreachable -> 502,
connect or read timeout -> 504. Errors after the response headers arrived are the relay's
business (they become in-band error events).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.settings import UpstreamSettings

# RFC 9110 7.6.1 hop-by-hop headers, plus ones the transport recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Headers of ours that must not reach the upstream. Content-Encoding: railproxy forwards
# request bodies decoded (proxy.flow.request_body).
PRIVATE_REQUEST = frozenset(
    {"x-rails-config", "x-railproxy-debug", "accept-encoding", "cookie", "content-encoding"}
)
# Where clients send their key (OpenAI's and Anthropic's clients).
CLIENT_AUTH = frozenset({"authorization", "x-api-key"})
# The upstream's framing headers we replace with our own on the way back.
PRIVATE_RESPONSE = frozenset({"content-encoding", "server", "date", "set-cookie"})


def request_headers(
    incoming: Mapping[str, str],
    api_key: str | None,
    request_id: str,
    keep_client_auth: bool = True,
    x_api_key: bool = False,
) -> CIMultiDict[str]:
    """Headers to send upstream: drop hop-by-hop and ours, set auth and X-Request-Id.

    The client's key (``Authorization`` and ``x-api-key``) is replaced by
    ``upstream.api_key`` when one is configured; else it is forwarded, unless it was
    railproxy's own client key (``keep_client_auth`` false when railproxy authenticates
    clients: their key is not the upstream's business). ``x_api_key`` (the Messages API):
    the key goes in both forms, ``Authorization: Bearer`` (vLLM and llama.cpp check it)
    and ``x-api-key`` (Anthropic's form), whichever of them the client sent.
    We always ask for an uncompressed body so the SSE decoder sees plain bytes.
    """
    out: CIMultiDict[str] = CIMultiDict()
    drop_auth = not keep_client_auth or api_key is not None
    for k, v in incoming.items():
        lk = k.lower()
        if lk in HOP_BY_HOP or lk in PRIVATE_REQUEST:
            continue
        if lk in CLIENT_AUTH and drop_auth:
            continue
        out.add(k, v)
    key = api_key
    if key is None and x_api_key and keep_client_auth:
        key = bearer_token(out.get("Authorization")) or out.get("x-api-key")
    if key is not None:
        out["Authorization"] = f"Bearer {key}"
        if x_api_key:
            out["x-api-key"] = key
    out["X-Request-Id"] = request_id
    out["Accept-Encoding"] = "identity"
    return out


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def response_headers(
    upstream: CIMultiDictProxy[str], judged: bool = False
) -> Iterable[tuple[str, str]]:
    """Upstream response headers worth relaying to the client. ``judged`` (output rails
    on): only those whose value carries no text, checked against their expected form (a
    media type, a number, a rate-limit figure); header values are not judged by the rails,
    so any other header could carry generated text past them."""
    for k, v in upstream.items():
        lk = k.lower()
        if lk in HOP_BY_HOP or lk in PRIVATE_RESPONSE:
            continue
        if judged and not _textless(lk, v):
            continue
        yield k, v


_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;\s*[\w-]+=\"?[\w.-]+\"?)*")
_FIGURE = re.compile(r"[0-9][0-9.]{0,19}[a-z]{0,3}")
_VARY = frozenset({"origin", "accept", "accept-encoding", "authorization", "cookie"})
_FIGURE_HEADERS = frozenset({"retry-after", "openai-processing-ms", "x-should-retry"})


def _textless(name: str, value: str) -> bool:
    if name == "content-type":
        return _MEDIA_TYPE.fullmatch(value) is not None
    if name == "vary":  # CORS servers (vLLM, uvicorn) send "Vary: Origin"
        return all(v.strip().lower() in _VARY for v in value.split(","))
    if name in _FIGURE_HEADERS or name.startswith("x-ratelimit-"):
        return _FIGURE.fullmatch(value) is not None or value in ("true", "false")
    return False


class Upstream:
    """The pooled upstream client. Create in ``cleanup_ctx``; never mutated while serving."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._probe_at = -1e9
        self._probe_ok = False
        self._probe_lock = asyncio.Lock()

    async def start(self) -> None:
        s = self.settings
        connector = aiohttp.TCPConnector(
            limit=s.max_connections, limit_per_host=s.max_connections, ttl_dns_cache=60
        )
        # sock_connect, not connect: aiohttp's connect also bounds the wait for a free
        # pooled connection, and a full pool is not an upstream that failed to answer (it
        # was a 504). A request waits for the pool as long as the request holding it runs.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=s.connect_timeout_s, sock_read=s.read_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            read_bufsize=1 << 16,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() was not called")
        return self._session

    def headers(
        self,
        incoming: Mapping[str, str],
        request_id: str,
        client_keys: bool,
        x_api_key: bool = False,
    ) -> CIMultiDict[str]:
        """``request_headers`` with this upstream's key; ``client_keys``: railproxy
        authenticates its clients (so their key is not forwarded)."""
        return request_headers(incoming, self.api_key, request_id, not client_keys, x_api_key)

    @property
    def api_key(self) -> str | None:
        key = self.settings.api_key
        return key.get_secret_value() if key is not None else None

    def url(self, path: str, native: bool = False) -> str:
        """``/chat/completions`` -> ``{base_url}/chat/completions``; native routes use the
        server root (``/generate_stream`` on TGI)."""
        base = self.settings.root_url if native else self.settings.base_url
        return base + path

    async def open(
        self, method: str, url: str | URL, headers: CIMultiDict[str], body: bytes | None
    ) -> aiohttp.ClientResponse:
        """Send the request and wait for the response headers."""
        try:
            return await self.session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeout("The upstream server did not answer in time.") from e
        except aiohttp.ClientError as e:
            raise UpstreamUnreachable(
                f"The upstream server could not be reached ({type(e).__name__})."
            ) from e

    async def ready(self) -> bool:
        """GET ``{base_url}{probe_path}``; cached for ``probe_ttl_s`` seconds."""
        ttl = self.settings.probe_ttl_s
        if time.monotonic() - self._probe_at < ttl:
            return self._probe_ok
        async with self._probe_lock:
            if time.monotonic() - self._probe_at >= ttl:
                self._probe_ok = await self._probe()
                self._probe_at = time.monotonic()
        return self._probe_ok

    async def _probe(self) -> bool:
        headers = request_headers({}, self.api_key, "readyz")
        timeout = aiohttp.ClientTimeout(total=min(5.0, self.settings.connect_timeout_s + 2))
        try:
            async with self.session.get(
                self.url(self.settings.probe_path), headers=headers, timeout=timeout
            ) as resp:
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False
