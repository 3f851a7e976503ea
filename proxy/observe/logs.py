"""Logging set-up: one JSON object per line (or plain text), level from settings.

Both formats carry the same fields: the text format writes the ``extra`` fields after the
message as ``key=value`` (values with spaces, quotes or ``=`` JSON-quoted).

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
from rails.pipeline import log_monitor_text

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(extra_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message key=value ...``: the JSON format's fields as text."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = [f"{k}={_text_value(v)}" for k, v in extra_fields(record).items()]
        line = super().format(record)
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return " ".join([head, *fields]) + sep + tail


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed in ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if isinstance(value, str) and (not value or any(c in value for c in ' "=\n\t')):
        return orjson.dumps(value).decode()
    return text


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
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    log_monitor_text(settings.include_text)  # monitor mode's would-be blocks, for review
