"""The few fields railproxy reads from each wire dialect, and the events it authors.

Dialects (``reference/wire-formats.md``):

* ``chat``: OpenAI ``/v1/chat/completions`` chunks as vLLM, TGI, llama.cpp send them.
  Guarded text: ``delta.content``, ``delta.reasoning`` / ``delta.reasoning_content``,
  ``delta.tool_calls[].function.arguments``. Ends with ``[DONE]``.
* ``completions``: OpenAI ``/v1/completions``: ``choices[].text``. TGI sends
  ``finish_reason: ""`` on intermediate chunks, so only a non-empty string ends a choice.
* ``tgi``: TGI's native ``/generate_stream``: ``token.text`` (special tokens skipped); the
  last event has a non-null ``generated_text``; errors are ``{"error", "error_type"}``;
  there is no ``[DONE]``.

Everything is read with orjson from the event's data bytes; events are never re-serialized
unless railproxy changes them (masking) or authors them (aborts, errors).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.sse import Event, encode
from rails.base import ChannelKey
from rails.stream import Blocked

_TEXT = re.compile(rb'"(?:content|reasoning|reasoning_content|arguments|text)"\s*:\s*"[^"]')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"


class Kind(enum.Enum):
    DATA = "data"
    DONE = "done"
    ERROR = "error"
    COMMENT = "comment"
    OPAQUE = "opaque"  # data we cannot read (not JSON): passed through untouched


@dataclass(slots=True)
class Parsed:
    kind: Kind
    obj: dict[str, Any] | None = None
    texts: list[tuple[ChannelKey, str]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    end: bool = False


@dataclass(slots=True)
class Envelope:
    """What our own chunks copy from the upstream's: id, created, model, choice indexes."""

    id: str = ""
    created: int = 0
    model: str = ""
    choices: set[int] = field(default_factory=set)

    def learn(self, obj: dict[str, Any]) -> None:
        if not self.id and isinstance(obj.get("id"), str):
            self.id = obj["id"]
        if not self.created and isinstance(obj.get("created"), int):
            self.created = obj["created"]
        if not self.model and isinstance(obj.get("model"), str):
            self.model = obj["model"]


class Dialect:
    """Base: OpenAI chat completions."""

    name = "chat"
    has_done = True
    object_name = "chat.completion.chunk"

    def parse(self, ev: Event) -> Parsed:
        data = ev.data
        if data is None:
            return Parsed(Kind.COMMENT)
        if data == DONE:
            return Parsed(Kind.DONE, end=True)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return Parsed(Kind.OPAQUE)
        if not isinstance(obj, dict):
            return Parsed(Kind.OPAQUE)
        if is_error(obj):
            return Parsed(Kind.ERROR, obj, end=True)
        return self._parse_obj(obj)

    def _parse_obj(self, obj: dict[str, Any]) -> Parsed:
        parsed = Parsed(Kind.DATA, obj)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return parsed
        if not choices and obj.get("usage"):
            parsed.end = True  # the usage chunk follows every choice's finish
        for choice in choices:
            if isinstance(choice, dict):
                self._read_choice(choice, parsed)
        return parsed

    def _read_choice(self, choice: dict[str, Any], parsed: Parsed) -> None:
        index = _int(choice.get("index"))
        delta = choice.get("delta")
        if isinstance(delta, dict):
            _read_delta(index, delta, parsed.texts)
        if choice.get("finish_reason"):
            parsed.ends.append(index)

    def fast_kind(self, ev: Event) -> Kind:
        """Cheap classification for the pass-through path (no JSON parse for content)."""
        data = ev.data
        if data is None:
            return Kind.COMMENT
        if data == DONE:
            return Kind.DONE
        if b'"error"' in data[:48] or b'"object":"error"' in data:
            return self.parse(ev).kind
        return Kind.DATA

    @staticmethod
    def carries_text(ev: Event) -> bool:
        """Whether an event holds generated text, judged from its bytes without parsing
        (the pass-through path's timing and counting only)."""
        return ev.data is not None and _TEXT.search(ev.data) is not None

    @staticmethod
    def usage(ev: Event) -> tuple[int, int] | None:
        """(prompt_tokens, completion_tokens) if the event reports usage."""
        if ev.data is None or _USAGE.search(ev.data) is None:
            return None
        try:
            usage = orjson.loads(ev.data).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion
        return None

    @staticmethod
    def is_usage_only(ev: Event) -> bool:
        """A ``choices: []`` chunk carrying usage (vLLM's and TGI's final usage chunk)."""
        data = ev.data
        if data is None or _USAGE.search(data) is None:
            return False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        return isinstance(obj, dict) and obj.get("choices") == [] and bool(obj.get("usage"))

    def final_text(self, body: dict[str, Any]) -> list[tuple[int, str]]:
        """(choice index, text) of a non-streaming response."""
        out = []
        for choice in body.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                content = choice["message"].get("content")
                if isinstance(content, str):
                    out.append((_int(choice.get("index")), content))
        return out

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        for choice in body.get("choices") or []:
            if _int(choice.get("index")) == index:
                choice["message"]["content"] = text
                _drop_logprobs(choice)

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        """The event with the guarded text of ``key`` replaced (masking)."""
        obj = orjson.loads(ev.data or b"{}")
        for choice in obj.get("choices") or []:
            if _int(choice.get("index")) == key[0]:
                _replace(choice, key, new, self.name)
        data = orjson.dumps(obj)
        return Event(encode(data), data)

    # -- events we author ------------------------------------------------------------

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        if style == "content_filter":
            return self._content_filter(refusal, env, separator) + DONE_EVENT
        return encode(json.dumps(abort_body(blocked)).encode()) + DONE_EVENT

    def _content_filter(self, refusal: str, env: Envelope, separator: str) -> bytes:
        """``separator`` goes before the refusal of each choice whose text was sent."""
        out = b""
        for index in sorted(env.choices or {0}):
            if refusal:
                text = (separator if index in env.choices else "") + refusal
                out += encode(orjson.dumps(self._chunk(env, index, text, None)))
            out += encode(orjson.dumps(self._chunk(env, index, None, "content_filter")))
        return out

    def _chunk(
        self, env: Envelope, index: int, text: str | None, finish: str | None
    ) -> dict[str, Any]:
        delta: dict[str, Any] = {} if text is None else {"content": text}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope(env, choice)

    def _envelope(self, env: Envelope, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": env.id,
            "object": self.object_name,
            "created": env.created,
            "model": env.model,
            "choices": [choice],
        }

    def stream_error(self, message: str, code: str) -> bytes:
        """An error event of ours followed by ``[DONE]`` (e.g. upstream EOF)."""
        body = {
            "error": {"message": message, "type": "upstream_error", "param": None, "code": code}
        }
        return encode(orjson.dumps(body)) + DONE_EVENT

    def done(self) -> bytes:
        return DONE_EVENT


class Completions(Dialect):
    name = "completions"
    object_name = "text_completion"

    def _read_choice(self, choice: dict[str, Any], parsed: Parsed) -> None:
        index = _int(choice.get("index"))
        text = choice.get("text")
        if isinstance(text, str) and text:
            parsed.texts.append(((index, "content", 0), text))
        if choice.get("finish_reason"):
            parsed.ends.append(index)

    def final_text(self, body: dict[str, Any]) -> list[tuple[int, str]]:
        return [
            (_int(c.get("index")), c["text"])
            for c in body.get("choices") or []
            if isinstance(c, dict) and isinstance(c.get("text"), str)
        ]

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        for choice in body.get("choices") or []:
            if _int(choice.get("index")) == index:
                choice["text"] = text
                _drop_logprobs(choice)

    def _chunk(
        self, env: Envelope, index: int, text: str | None, finish: str | None
    ) -> dict[str, Any]:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return self._envelope(env, choice)


class TGI(Dialect):
    """TGI's native ``/generate_stream`` and ``/generate``."""

    name = "tgi"
    has_done = False

    def _parse_obj(self, obj: dict[str, Any]) -> Parsed:
        parsed = Parsed(Kind.DATA, obj)
        token = obj.get("token")
        if isinstance(token, dict) and not token.get("special"):
            text = token.get("text")
            if isinstance(text, str) and text:
                parsed.texts.append(((0, "content", 0), text))
        if obj.get("generated_text") is not None:
            parsed.ends.append(0)
            parsed.end = True
        return parsed

    def fast_kind(self, ev: Event) -> Kind:
        if ev.data is not None and b'"generated_text":null' in ev.data:
            return Kind.DATA
        parsed = self.parse(ev)
        return Kind.DONE if parsed.end and parsed.kind is Kind.DATA else parsed.kind

    def final_text(self, body: dict[str, Any]) -> list[tuple[int, str]]:
        text = body.get("generated_text")
        return [(0, text)] if isinstance(text, str) else []

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        body["generated_text"] = text
        details = body.get("details")
        if isinstance(details, dict):  # the tokens repeat the original text
            for name in ("tokens", "top_tokens", "best_of_sequences"):
                if name in details:
                    details[name] = []

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        obj = orjson.loads(ev.data or b"{}")
        obj["token"]["text"] = new
        if obj.get("top_tokens"):  # they repeat the original text
            obj["top_tokens"] = []
        data = orjson.dumps(obj)
        return Event(b"data:" + data + b"\n\n", data)

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        body = {"error": f"Blocked by {blocked.rail} rails.", "error_type": "guardrails_violation"}
        return b"data:" + json.dumps(body).encode() + b"\n\n"

    def stream_error(self, message: str, code: str) -> bytes:
        body = {"error": message, "error_type": "incomplete_generation_stream"}
        return b"data:" + orjson.dumps(body) + b"\n\n"

    def done(self) -> bytes:
        return b""


CHAT = Dialect()
COMPLETIONS = Completions()
TGI_NATIVE = TGI()


def abort_body(blocked: Blocked) -> dict[str, Any]:
    """NeMo Guardrails' block payload, which the openai SDK raises as ``APIError``."""
    return {
        "error": {
            "message": f"Blocked by {blocked.rail} rails.",
            "type": "guardrails_violation",
            "param": blocked.rail,
            "code": "content_blocked",
        }
    }


def is_error(obj: dict[str, Any]) -> bool:
    """vLLM (``{"error": {...}}``, older flat ``{"object": "error"}``), TGI (``{"error":
    {"message", "http_status_code"}}`` or native ``{"error": str, "error_type"}``)."""
    return "error" in obj or obj.get("object") == "error"


def _read_delta(index: int, delta: dict[str, Any], texts: list[tuple[ChannelKey, str]]) -> None:
    content = delta.get("content")
    if isinstance(content, str) and content:
        texts.append(((index, "content", 0), content))
    for name in ("reasoning", "reasoning_content"):
        value = delta.get(name)
        if isinstance(value, str) and value:
            texts.append(((index, "reasoning", 0), value))
            break  # some servers send both names with the same text
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            args = _arguments(call)
            if args:
                texts.append(((index, "tool_arguments", _int(call.get("index"))), args))


def _arguments(call: Any) -> str:
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        args = call["function"].get("arguments")
        if isinstance(args, str):
            return args
    return ""


def _drop_logprobs(choice: dict[str, Any]) -> None:
    """Masked text has no logprobs of its own, and the original ones spell out the text
    that was masked (tokens, UTF-8 bytes, alternatives): they go, as ``null``."""
    if choice.get("logprobs") is not None:
        choice["logprobs"] = None


def _replace(choice: dict[str, Any], key: ChannelKey, new: str, dialect: str) -> None:
    _drop_logprobs(choice)
    _, field_name, call_index = key
    if dialect == "completions":
        choice["text"] = new
        return
    delta = choice.get("delta") or {}
    if field_name == "content":
        delta["content"] = new
    elif field_name == "reasoning":
        name = "reasoning" if "reasoning" in delta else "reasoning_content"
        delta[name] = new
    else:
        for call in delta.get("tool_calls") or []:
            if _int(call.get("index")) == call_index and isinstance(call.get("function"), dict):
                call["function"]["arguments"] = new


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
