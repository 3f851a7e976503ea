"""Every error body railproxy writes, in OpenAI's shape, or in Anthropic's on the Messages
API's paths (``proxy.routes.anthropic_path``).

``{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}``
``{"type": "error", "error": {"type": str, "message": str}}`` (Anthropic: the type by status)

Exceptions::

    ProxyError(status, message, type, code, param)   raise anywhere in a handler
     ├── BadRequest        400 invalid_request_error
     ├── PayloadTooLarge   413
     ├── Unauthorized      401
     ├── Forbidden         403
     ├── NotFound          404
     ├── MethodNotAllowed  405 (Allow)
     ├── RequestTimeout    408
     ├── UnsupportedMediaType 415
     ├── TooManyRequests   429 (Retry-After)
     ├── UpstreamUnreachable 502
     └── UpstreamTimeout   504

The error middleware in ``proxy.app`` turns any ProxyError into a JSON response and any
other exception into a 500 without a stack trace or message text in the body.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class ProxyError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self, anthropic: bool = False) -> web.Response:
        if anthropic:
            body = anthropic_body(anthropic_type(self.status), self.message)
            return json_error(self.status, body, self.headers)
        return json_error(self.status, self.body(), self.headers)


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PayloadTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class Unauthorized(ProxyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(ProxyError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class MethodNotAllowed(ProxyError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(ProxyError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class UnsupportedMediaType(ProxyError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_content_encoding"


class TooManyRequests(ProxyError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_streams"


class UpstreamUnreachable(ProxyError):
    status = 502
    type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeout(ProxyError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_body(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


# Anthropic's error types by HTTP status (its API reference, "Errors").
ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def anthropic_type(status: int) -> str:
    default = "invalid_request_error" if status < 500 else "api_error"
    return ANTHROPIC_TYPES.get(status, default)


def json_error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def internal_error(anthropic: bool = False) -> web.Response:
    """A 500 that reveals nothing about the failure (the log has the details)."""
    if anthropic:
        return json_error(500, anthropic_body("api_error", "Internal proxy error."))
    return json_error(500, error_body("Internal proxy error.", "server_error"))
