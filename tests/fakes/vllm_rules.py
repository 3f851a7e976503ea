"""The requests a real vLLM 0.32.0 refuses before streaming, with its exact error bodies.

Checked in vLLM's order: request validation (FastAPI/pydantic: `"type":"Bad Request"`,
`param` the dotted location, as `validation_exception_handler` words it), the model (404,
`param: "model"`), `max_tokens` against `max_model_len` (400, `param: "max_tokens"`), then
`n > 1` with greedy sampling (400, `param: null`). Bodies are `JSONResponse` output: compact.
"""

from __future__ import annotations

from typing import Any

from .dialects import Json

GREEDY_EPS = 1e-5  # vLLM's _SAMPLING_EPS: a temperature below it means greedy sampling
MODEL_ATTRIBUTES = "Input should be a valid dictionary or object to extract fields from"


def refusal(
    body: Any, chat: bool, model: str, max_model_len: int, strict_model: bool
) -> tuple[int, Json] | None:
    """(status, error body) when vLLM would refuse this request, else None."""
    invalid = validation(body, chat)
    if invalid is not None:
        return 400, invalid
    asked = body.get("model")
    if strict_model and isinstance(asked, str) and asked != model:
        message = f"The model `{asked}` does not exist. Valid aliases: {model}."
        return 404, error(message, "NotFoundError", 404, "model")
    too_long = _max_tokens(body, max_model_len)
    if too_long is not None:
        return 400, too_long
    n, temperature = body.get("n"), body.get("temperature")
    if _number(n) and n > 1 and _number(temperature) and temperature < GREEDY_EPS:
        message = f"n must be 1 when using greedy sampling, got {n}."
        return 400, error(message, "BadRequestError", 400, None)
    return None


def error(message: str, kind: str, status: int, param: str | None) -> Json:
    """vLLM's `ErrorResponse` (`ErrorInfo` field order: message, type, param, code)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def validation(body: Any, chat: bool) -> Json | None:
    """The first of the few pydantic errors the fake checks for, as vLLM reports it."""
    if not isinstance(body, dict):
        return validation_error("body", "model_attributes_type", MODEL_ATTRIBUTES, body)
    if chat and "messages" not in body:
        return validation_error("body.messages", "missing", "Field required", body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return validation_error(
            "body.stream_options", "model_attributes_type", MODEL_ATTRIBUTES, options
        )
    if "stream" in body and not isinstance(body["stream"], bool):
        message = "Input should be a valid boolean"
        return validation_error("body.stream", "bool_type", message, body["stream"])
    return None


def validation_error(loc: str, kind: str, msg: str, value: Any) -> Json:
    """One pydantic error as `validation_exception_handler` renders it (`str()` of the error
    dict, `input` summarised)."""
    detail = {"type": kind, "loc": loc, "msg": msg, "input": _summary(value)}
    return error(f"1 validation error:\n  {detail}", "Bad Request", 400, loc)


def _summary(value: Any) -> str:
    """`_summarize_error_input`: containers described, other values as their string."""
    if isinstance(value, list | tuple | dict | set):
        return f"<{type(value).__name__} of {len(value)} items>"
    return value if isinstance(value, str) else str(value)


def _max_tokens(body: Json, max_model_len: int) -> Json | None:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else ""
    name = name or "max_tokens"
    asked: Any = body.get(name)
    if not _number(asked) or asked <= max_model_len:
        return None
    message = (
        f"{name}={asked} cannot be greater than max_model_len={max_model_len}. "
        f"Please request fewer output tokens. (parameter={name}, value={asked})"
    )
    return error(message, "BadRequestError", 400, name)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
