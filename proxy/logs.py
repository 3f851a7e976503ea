"""Logging set-up: one JSON object per line (or plain text), level from settings.

Nothing here logs request or response text; callers pass only ids, sizes, timings and
names in ``extra``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from proxy.settings import LoggingSettings

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class RedactServerErrors(logging.Filter):
    """aiohttp's server logs a malformed request with the parser's exception, whose text
    quotes the offending bytes: a request line or header (``Authorization: Bearer <key>``).
    Keep only the exception's type and status code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            status = getattr(exc, "code", None)
            record.msg = "malformed request refused (%s, status %s)"
            record.args = (type(exc).__name__, status if isinstance(status, int) else "-")
            record.exc_info = None
            record.exc_text = None
        return True


_REDACT = RedactServerErrors()


def redact_parse_errors() -> None:
    """Install ``RedactServerErrors`` on aiohttp's server logger (idempotent)."""
    server = logging.getLogger("aiohttp.server")
    if _REDACT not in server.filters:
        server.addFilter(_REDACT)


def configure_logging(settings: LoggingSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
