"""``GET /ui``: the playground, one static page that streams a chat through railproxy.

Served only with ``server.playground: true`` (else 404, as if the route did not exist).
The page is a single HTML file shipped in the package (``proxy/static/playground.html``):
no build step, no external assets. It reads the debug channel (``proxy.playground.channel``) of the
streams it starts, so it can draw window boundaries, verdicts, held events and the abort.

The response's Content-Security-Policy allows exactly the page's own inline script and
style (by hash) and requests to this origin, so the page can load nothing from elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from aiohttp import web

from proxy.errors import NotFound
from proxy.state import SETTINGS

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


@functools.cache
def _page() -> tuple[bytes, str]:
    """The page's bytes and its Content-Security-Policy (read once, then kept)."""
    html = (resources.files("proxy") / "static" / "playground.html").read_text("utf-8")
    return html.encode(), content_security_policy(html)


def content_security_policy(html: str) -> str:
    """A CSP that allows the page's own inline ``<script>`` and ``<style>`` blocks by
    their SHA-256, fetches to this origin, and nothing else."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[tag].append(f"'sha256-{digest}'")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(hashes["script"] or ["'none'"]),
            "style-src " + " ".join(hashes["style"] or ["'none'"]),
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def page(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].server.playground:
        raise NotFound("Not Found")  # the same answer as a route that does not exist
    body, csp = _page()
    headers = {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)
