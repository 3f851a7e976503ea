"""What llama-cpp-python's server (0.3.36) refuses, and with which bytes.

- `X-Request-Id` (starlette-context's `RequestIdPlugin`, before routing): a value that
  `uuid.UUID(value, version=4)` rejects gets `400` with an empty body; an absent or empty one
  is replaced by `uuid4().hex`; a valid one is echoed as sent.
- Request validation (FastAPI/pydantic, in field order: `messages`, `max_tokens`, `stream`):
  caught by `RouteErrorHandler` and answered `500`, `internal_server_error`, with the
  validation error's `str()`, which names the endpoint's source file and line.
- A prompt of `n_ctx` tokens or more: `400 context_length_exceeded` for a non-streaming
  request; a streaming one has already answered `200`, and its body ends with no event.

Only the few validation errors the fake checks for are modelled (each captured from the real
server: `llamacpp_python_samples.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

from .dialects import LLAMACPP_PYTHON_APP_PY, Json, llamacpp_python_error

CHAT_ROUTE = ("create_chat_completion", 376, "/v1/chat/completions")
COMPLETIONS_ROUTE = ("create_completion", 264, "/v1/completions")
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
COMPLETIONS_MAX_TOKENS = 16  # CreateCompletionRequest's default (chat's is None)


def request_id(value: str | None) -> str | None:
    """The id the server works with (and echoes in `x-request-id`), or None: refused."""
    if not value:
        return uuid.uuid4().hex
    try:
        uuid.UUID(value, version=4)
    except ValueError:
        return None
    return value


def lax_bool(value: Any) -> bool | None:
    """pydantic's lax `bool` (None: not a boolean)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    return None


def lax_int(value: Any) -> int | None:
    """pydantic's lax `int` for the cases the fake meets (None: not an integer)."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def validation_errors(body: Json, chat: bool) -> list[Json]:
    """pydantic's error dicts for the fields the fake reads, in the model's field order."""
    errors: list[Json] = []
    if chat and "messages" in body and not isinstance(body["messages"], list):
        errors.append(_error("list_type", "messages", "Input should be a valid list", body))
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and lax_int(max_tokens) is None:
        if isinstance(max_tokens, str):
            msg = "Input should be a valid integer, unable to parse string as an integer"
            errors.append(_error("int_parsing", "max_tokens", msg, body))
        else:
            errors.append(_error("int_type", "max_tokens", "Input should be a valid integer", body))
    if "stream" in body and lax_bool(body["stream"]) is None:
        if isinstance(body["stream"], str | int):
            msg = "Input should be a valid boolean, unable to interpret input"
            errors.append(_error("bool_parsing", "stream", msg, body))
        else:
            errors.append(_error("bool_type", "stream", "Input should be a valid boolean", body))
    return errors


def _error(kind: str, name: str, msg: str, body: Json) -> Json:
    return {"type": kind, "loc": ("body", name), "msg": msg, "input": body[name]}


def schema_error(errors: list[Json], chat: bool) -> Json:
    """The 500 body: `str(RequestValidationError)` with FastAPI's endpoint context."""
    function, line, path = CHAT_ROUTE if chat else COMPLETIONS_ROUTE
    count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''}:"
    listed = "".join(f"\n  {e}" for e in errors)
    where = f'\n\n  File "{LLAMACPP_PYTHON_APP_PY}", line {line}, in {function}\n    POST {path}'
    return llamacpp_python_error(count + listed + where, 500)


def context_error(body: Json, chat: bool, prompt_tokens: int, n_ctx: int) -> Json:
    """`ErrorResponseFormatters.context_length_exceeded` (chat and completions wording)."""
    default = None if chat else COMPLETIONS_MAX_TOKENS
    asked = lax_int(body["max_tokens"]) if "max_tokens" in body else default
    total = (asked or 0) + prompt_tokens
    if chat:
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested "
            f"{total} tokens ({prompt_tokens} in the messages, {asked} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {n_ctx} tokens, however you requested "
            f"{total} tokens ({prompt_tokens} in your prompt; {asked} for the completion). "
            "Please reduce your prompt; or completion length."
        )
    return llamacpp_python_error(message, 400, "context_length_exceeded")


def logprobs_asked(body: Json, chat: bool) -> int | None:
    """Alternatives per token the request gets, or None for `"logprobs": null`. Chat needs
    `logprobs: true` *and* `top_logprobs` (the server passes `top_logprobs if logprobs`);
    completions take `logprobs` as the count."""
    if chat:
        return lax_int(body.get("top_logprobs")) if body.get("logprobs") else None
    return lax_int(body.get("logprobs"))
