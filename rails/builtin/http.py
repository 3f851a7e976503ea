"""The ``http`` rail: ask your own service, and the JSON POST every network rail uses.

Request (``POST url``, JSON)::

    {"text": "...", "stage": "input"|"output", "rail": "<flow name>", "field": "content"}

Expected answer (2xx, JSON)::

    {"allowed": true|false, "reason": "optional", "text": "optional replacement"}

``allowed: false`` blocks with ``reason``; ``allowed: true`` with a ``text`` different
from the judged one modifies (masks). Any other status or body raises
``RailResponseError``, and the pipeline applies the rail's ``on_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import aiohttp
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
)

from rails.base import CheckContext, RailConfig, Verdict
from rails.resources import Resources

M = TypeVar("M", bound=BaseModel)


class RailResponseError(RuntimeError):
    """A guard service answered with a non-2xx status or a body of the wrong shape.

    The message names the URL and the status or shape problem, never the body (it may
    echo the judged text).
    """


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, Any],
    model: type[M],
    headers: Mapping[str, str] | None = None,
) -> M:
    """POST ``payload`` as JSON and return the 2xx answer validated as ``model``.

    Raises ``RailResponseError`` on another status or a body ``model`` rejects; lets
    ``aiohttp.ClientError`` through. No timeout here: the pipeline owns timeouts.
    """
    async with session.post(url, json=payload, headers=headers) as resp:
        if not 200 <= resp.status < 300:
            raise RailResponseError(f"POST {url} answered HTTP {resp.status}")
        body = await resp.read()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise RailResponseError(f"POST {url} answered an unexpected body: {problems}") from None


class Decision(BaseModel):
    """The answer of an ``http`` rail service; unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    allowed: StrictBool
    reason: str = ""
    text: str | None = None


class HttpConfig(RailConfig):
    url: AnyHttpUrl
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)


class HttpRail:
    """Delegates the verdict to a service at ``url`` (one pooled session, shared)."""

    type_name: ClassVar[str] = "http"
    Config: ClassVar[type[RailConfig]] = HttpConfig

    def __init__(self, name: str, config: HttpConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._url = str(config.url)
        self._headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        self._resources = resources

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        payload = {"text": text, "stage": ctx.stage, "rail": self.name, "field": ctx.field}
        session = self._resources.http()
        answer = await post_json(session, self._url, payload, Decision, self._headers)
        if not answer.allowed:
            return Verdict.block(answer.reason or f"rejected by {self._url}")
        if answer.text is not None and answer.text != text:
            return Verdict.modify(answer.text, answer.reason)
        return Verdict.allow()
