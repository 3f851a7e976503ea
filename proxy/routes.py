"""Which paths railproxy guards, which it passes through, and which it refuses.

* **Guarded** (``GUARDED``): the generating routes railproxy judges. They match exactly,
  method and path; another method is 405 with ``Allow``, a variant of the path (trailing
  slash, other case, ``;params``) is 404. Never the pass-through.
* **Pass-through** (``PassRoute``): routes that generate no text, relayed byte for byte
  whatever the rails: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/embeddings``,
  plus the operator's ``server.passthrough_routes`` ("METHOD /v1/path/{param}").
* **Everything else under /v1**: refused with 404 ``route_not_guarded`` when the config the
  request resolves to has input or output rails (railproxy cannot judge what it does not
  understand); relayed as before when that config has no rails at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GUARDED: dict[str, str] = {
    "/v1/chat/completions": "POST",
    "/v1/completions": "POST",
    "/v1/responses": "POST",
    "/generate": "POST",
    "/generate_stream": "POST",
    "/": "POST",
    "/v1/messages": "POST",
}
# Stored responses (``GET /v1/responses/{id}``, ``.../input_items``, ``.../cancel``) hand
# back generated text outside any stream's rails: refused whenever the config has rails.
STORED = "stored responses are refused while a config has rails: their text was not judged"
_STORED = re.compile(r"^/v1/responses/[^/]+(?:/[^/]+)?$")


def is_stored_response(path: str) -> bool:
    return _STORED.match(path) is not None


# railproxy's own routes under /v1 (the /v1 pass-through must not shadow their variants).
OWN_V1: dict[str, str] = {"/v1/rails/configs": "GET"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PARAM = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$")


@dataclass(frozen=True, slots=True)
class PassRoute:
    """One allow-listed pass-through route: a method and a path pattern whose ``{name}``
    segments match exactly one non-empty segment. ``stream``: responses may be streams
    (counted toward ``server.max_concurrent_streams``)."""

    method: str
    segments: tuple[str, ...]
    stream: bool = True

    @classmethod
    def parse(cls, text: str, stream: bool = True) -> PassRoute:
        """``"POST /v1/audio/transcriptions"``; ValueError naming what is wrong."""
        method, _, path = text.strip().partition(" ")
        method, path = method.upper(), path.strip()
        if method not in METHODS:
            raise ValueError(f"{text!r}: the method must be one of {', '.join(METHODS)}")
        if not path.startswith("/v1/"):
            raise ValueError(f"{text!r}: only paths under /v1/ can be passed through")
        segments = tuple(path.split("/")[1:])
        for s in segments:
            if not (_PARAM.match(s) or (_LITERAL.match(s) and s not in (".", ".."))):
                raise ValueError(f"{text!r}: bad path segment {s!r} (literal or {{name}})")
        route = cls(method, segments, stream)
        if route.segments[:2] == ("v1", "responses") and len(route.segments) > 2:
            raise ValueError(f"{text!r}: stored responses hold generated text ({STORED})")
        for guarded in (*GUARDED, *OWN_V1):
            if route.matches_path(guarded):
                raise ValueError(f"{text!r}: would shadow railproxy's route {guarded}")
        return route

    @property
    def template(self) -> str:
        return "/" + "/".join(self.segments)

    def matches(self, method: str, path: str) -> bool:
        wanted = "GET" if method == "HEAD" else method
        return wanted == self.method and self.matches_path(path)

    def matches_path(self, path: str) -> bool:
        parts = path.split("/")[1:]
        if len(parts) != len(self.segments):
            return False
        return all(
            (p != "" if _PARAM.match(s) else p == s)
            for p, s in zip(parts, self.segments, strict=True)
        )


BUILTIN = (
    PassRoute.parse("GET /v1/models", stream=False),
    PassRoute.parse("GET /v1/models/{id}", stream=False),
    PassRoute.parse("POST /v1/embeddings", stream=False),
)


def allowed(routes: tuple[PassRoute, ...], method: str, path: str) -> PassRoute | None:
    """The first allow-listed route matching ``method`` and the raw ``path``."""
    for route in routes:
        if route.matches(method, path):
            return route
    return None


def variant_of(path: str) -> tuple[str, str] | None:
    """(exact path, its method) when ``path`` is one of railproxy's own /v1 routes or a
    variant of one (trailing slash, other case, ``;params``)."""
    exact = {**GUARDED, **OWN_V1}
    if path in exact:
        return path, exact[path]
    core = path.split(";", 1)[0].rstrip("/").lower()
    for known, method in exact.items():
        if core == known.lower():
            return known, method
    return None


def anthropic_path(path: str) -> bool:
    """The Messages API's path, or one under it: errors there are in Anthropic's shape."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def describe(passthrough: tuple[PassRoute, ...]) -> dict[str, list[str]]:
    """The routes as an operator reads them at start-up (``serve``'s first log line)."""
    return {
        "guarded": [f"{m} {p}" for p, m in GUARDED.items()],
        "passthrough": [f"{r.method} {r.template}" for r in passthrough],
        "refused": ["any other /v1 path, when the request's config has rails"],
    }
