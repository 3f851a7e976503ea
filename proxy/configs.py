"""The rails configs a server offers, by id, and how a request picks one.

``--config FILE`` gives one config (id ``default``). ``--config DIR`` gives every
``*.yaml``/``*.yml`` in that directory, id = file stem, with ``default`` (if present)
as the fallback. A request picks one with ``guardrails.config_id`` in the body (NeMo's
server field), a top-level ``config_id``, or the ``X-Rails-Config`` header; the fields
are removed before the body goes upstream. Ids are looked up in the loaded mapping only,
so no id can reach a file outside the directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from proxy.clients import ANONYMOUS, Client
from proxy.errors import BadRequest, Forbidden
from rails.config import RailsConfig
from rails.guard import Guard
from rails.pipeline import PipelineObserver
from rails.resources import Resources
from rails.tokens import counter_for

DEFAULT_ID = "default"
HEADER = "X-Rails-Config"


class ConfigSet:
    """Immutable mapping of config id -> Guard, built at start-up."""

    def __init__(self, guards: Mapping[str, Guard], default: str | None) -> None:
        self._guards = dict(guards)
        self.default = default

    @classmethod
    def single(cls, config: RailsConfig, resources: Resources | None = None) -> ConfigSet:
        return cls({DEFAULT_ID: Guard(config, resources)}, DEFAULT_ID)

    @property
    def ids(self) -> list[str]:
        return sorted(self._guards)

    def get(self, config_id: str) -> Guard:
        return self._guards[config_id]

    def pick(
        self, body: dict[str, Any] | None, header: str | None, client: Client = ANONYMOUS
    ) -> tuple[str, Guard, bool]:
        """Return (id, guard, body_changed). Strips the selector fields from ``body``.

        A client key bound to configs gets its first config when the request names none,
        and 403 for a config outside its list (whether or not that config exists)."""
        wanted, changed = _take_id(body)
        wanted = wanted or header or client.default_config or self.default
        known = [i for i in self.ids if client.may_use(i)]
        if wanted is None:
            raise BadRequest(
                f"Choose a rails config with {HEADER} or config_id; known: {known}",
                param="config_id",
                code="config_required",
            )
        if not client.may_use(wanted):
            raise Forbidden(
                f"This API key may not use rails config {wanted!r}; it may use: {known}",
                param="config_id",
                code="config_not_allowed",
            )
        guard = self._guards.get(wanted)
        if guard is None:
            raise BadRequest(
                f"Unknown rails config {wanted!r}; known: {known}",
                param="config_id",
                code="unknown_config",
            )
        return wanted, guard, changed

    def peek(self, body: bytes, header: str | None, client: Client = ANONYMOUS) -> Guard:
        """The guard a request with this raw body would pick, without changing the body
        (a body that is not a JSON object names no config)."""
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        return self.pick(parsed if isinstance(parsed, dict) else None, header, client)[1]

    def warm(self) -> None:
        """Load the token encoding now (~0.5 s) rather than in the first request's path
        (guards count generated text; every request's prompt is counted for usage)."""
        counter_for("token").count("warm")
        for guard in self._guards.values():
            if guard.guards_output:
                _ = guard.counter

    def observe(self, observer: PipelineObserver) -> None:
        for guard in self._guards.values():
            guard.observe(observer)

    async def aclose(self) -> None:
        for guard in self._guards.values():
            await guard.aclose()


def _take_id(body: dict[str, Any] | None) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    found: Any = None
    changed = False
    rails = body.get("guardrails")
    if isinstance(rails, dict):
        found = rails.get("config_id")
        body.pop("guardrails")
        changed = True
    if "config_id" in body:
        found = found or body.pop("config_id")
        changed = True
    if found is not None and not isinstance(found, str):
        raise BadRequest("config_id must be a string.", param="config_id")
    return found, changed


def config_files(directory: Path) -> dict[str, Path]:
    """``*.yaml``/``*.yml`` files of a directory by stem (not recursive)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return {p.stem: p for p in files if p.is_file()}
