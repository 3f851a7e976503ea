"""One guarded request as the flow passes it around.

``Call`` is what the request *is* (its dialect, body, config's guard) and, through its
``record`` (``proxy.observe.record``), what it *did* (id, config, stream flag, timings,
outcome, counts). The record exists first, for every request (refusals and pass-through
included), so the call holds it rather than copying its fields: id, config and stream are
stored once, there. The texts the rails and the token count need are computed once here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.observe.record import RequestRecord
from proxy.wire.dialect import Dialect
from rails.guard import Guard


@dataclass(slots=True)
class Call:
    request: web.Request
    dialect: Dialect
    path: str
    body: dict[str, Any]
    raw: bytes
    guard: Guard
    record: RequestRecord
    strip_usage: bool = False  # railproxy asked for a usage chunk the client did not
    _user_text: str | None = None

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def config_id(self) -> str:
        return self.record.config

    @property
    def stream(self) -> bool:
        return self.record.stream

    @property
    def user_text(self) -> str:
        """The last user message (the context output rails see), read once the input rails
        are done with the body."""
        if self._user_text is None:
            self._user_text = self.dialect.last_user_text(self.body)
        return self._user_text

    def prompt_text(self) -> str:
        """Every input message's text (prompt token counting)."""
        return "\n".join(self.dialect.message_texts(self.body))

    def body_changed(self) -> None:
        """The body was rewritten (input masks, usage request): re-serialize it."""
        self._user_text = None
        self.raw = orjson.dumps(self.body)
