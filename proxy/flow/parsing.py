"""Reading client requests: body parsing and validation, the messages input rails judge,
and the few request-shaped responses we author (refusals). Every failure is a 400 in
OpenAI's error shape naming the offending field.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from proxy.errors import BadRequest
from rails.guard import message_text


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (invalid UTF-8 is invalid JSON too)."""
    if not raw.strip():
        raise BadRequest("The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON (UTF-8).") from None
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, not {_kind(body)}.")
    return body


def validate(dialect: str, body: dict[str, Any], path: str) -> None:
    """Check the few fields railproxy itself relies on; the upstream checks the rest."""
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    if dialect == "chat":
        _check_messages(body.get("messages"))
    elif dialect == "completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, str | list):
            raise BadRequest("'prompt' must be a string or a list.", param="prompt")
    elif not isinstance(body.get("inputs"), str):
        raise BadRequest("'inputs' must be a string.", param="inputs")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list.", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(
                f"'messages[{i}]' must be an object with a string 'role'.",
                param=f"messages[{i}]",
            )


def input_messages(dialect: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """What input rails judge, as chat messages (a prompt is one user message)."""
    if dialect == "chat":
        return [m for m in body["messages"]]
    if dialect == "completions":
        prompt = body["prompt"]
        text = (
            prompt
            if isinstance(prompt, str)
            else "\n".join(p for p in prompt if isinstance(p, str))
        )
        return [{"role": "user", "content": text}]
    return [{"role": "user", "content": body["inputs"]}]


def apply_input_changes(dialect: str, body: dict[str, Any], changes: list[tuple[int, str]]) -> None:
    """Write input rails' modifications (masking) back into the request body."""
    for index, text in changes:
        if dialect == "chat":
            body["messages"][index]["content"] = text
        elif dialect == "completions":
            body["prompt"] = text
        else:
            body["inputs"] = text


def message_texts(dialect: str, body: dict[str, Any]) -> list[str]:
    """The text of every input message (prompt token accounting)."""
    return [message_text(m) for m in input_messages(dialect, body)]


def last_user_text(dialect: str, body: dict[str, Any]) -> str:
    users = [m for m in input_messages(dialect, body) if m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def refusal_response(dialect: str, body: dict[str, Any], refusal: str) -> dict[str, Any]:
    """A complete 200 response whose only choice is the refusal (content_filter style)."""
    common = {"id": f"railproxy-{uuid.uuid4().hex}", "created": int(time.time())}
    common["model"] = str(body.get("model", ""))
    if dialect == "completions":
        choice = {"index": 0, "text": refusal, "logprobs": None, "finish_reason": "content_filter"}
        return {**common, "object": "text_completion", "choices": [choice]}
    message = {"role": "assistant", "content": refusal}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}
    return {**common, "object": "chat.completion", "choices": [choice]}


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
