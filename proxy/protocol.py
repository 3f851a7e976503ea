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

Everything is read from the event's data bytes as the openai SDK reads it (Python's
``json``: ``NaN``, ``Infinity``, lone surrogate escapes; ``error`` only when truthy;
content as a string or a list of parts; integral float indexes), with orjson as the fast
path; events are never re-serialized unless railproxy changes them (masking) or authors
them (aborts, errors). What cannot be read that way is ``Kind.OPAQUE``: the guarded relay
ends the stream there rather than relay it unjudged.
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
    OPAQUE = "opaque"  # data we cannot read as the client would: ends a guarded stream


ERROR_INDEX = -1  # the channel of an in-band error's text (error text is output too)


@dataclass(slots=True)
class Parsed:
    kind: Kind
    obj: dict[str, Any] | None = None
    texts: list[tuple[ChannelKey, str]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    end: bool = False
    complete: bool = False  # the stream's last event (TGI's final event; chat's [DONE])


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
            return Parsed(Kind.DONE, end=True, complete=True)
        try:
            obj = client_json(data)
        except ValueError:
            return Parsed(Kind.OPAQUE)
        if not isinstance(obj, dict):
            return Parsed(Kind.OPAQUE)
        if is_error(obj):
            return Parsed(
                Kind.ERROR, obj, [((ERROR_INDEX, "content", 0), error_text(obj))], end=True
            )
        try:
            return self._parse_obj(obj)
        except ValueError:  # a field the client reads, of a type it would misread
            return Parsed(Kind.OPAQUE)

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
        index = index_of(choice)
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

    def final_text(self, body: Any) -> list[tuple[int, str]]:
        """(choice index, text) of a non-streaming response; ``ValueError`` when the body
        is not of a shape the client would read as this API's answer."""
        out = []
        for choice in _choices(body):
            message = choice.get("message")
            if message is None:
                continue
            if not isinstance(message, dict):
                raise ValueError("'message' is not an object")
            content = content_text(message.get("content"))
            if content is not None:
                out.append((index_of(choice), content))
        return out

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        for choice in body.get("choices") or []:
            if index_of(choice) == index:
                choice["message"]["content"] = text
                _drop_logprobs(choice)

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        """The event with the guarded text of ``key`` replaced (masking)."""
        if key[0] == ERROR_INDEX:
            return Event(self.error_event(new, "upstream_error"))
        obj = client_json(ev.data or b"{}")
        for choice in obj.get("choices") or []:
            if index_of(choice) == key[0]:
                _replace(choice, key, new, self.name)
        data = dump_json(obj)
        return Event(encode(data), data)

    # -- events we author ------------------------------------------------------------

    def abort(self, blocked: Blocked, style: str, refusal: str, env: Envelope) -> bytes:
        if style == "content_filter":
            return self._content_filter(refusal, env) + DONE_EVENT
        return encode(json.dumps(abort_body(blocked)).encode()) + DONE_EVENT

    def _content_filter(self, refusal: str, env: Envelope) -> bytes:
        out = b""
        for index in sorted(env.choices or {0}):
            if refusal:
                out += encode(orjson.dumps(self._chunk(env, index, refusal, None)))
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
        return self.error_event(message, code) + DONE_EVENT

    def error_event(self, message: str, code: str) -> bytes:
        """An error event of ours, alone."""
        body = {
            "error": {"message": message, "type": "upstream_error", "param": None, "code": code}
        }
        return encode(orjson.dumps(body))

    def done(self) -> bytes:
        return DONE_EVENT


class Completions(Dialect):
    name = "completions"
    object_name = "text_completion"

    def _read_choice(self, choice: dict[str, Any], parsed: Parsed) -> None:
        index = index_of(choice)
        text = content_text(choice.get("text"))
        if text:
            parsed.texts.append(((index, "content", 0), text))
        if choice.get("finish_reason"):
            parsed.ends.append(index)

    def final_text(self, body: Any) -> list[tuple[int, str]]:
        out = []
        for choice in _choices(body):
            text = content_text(choice.get("text"))
            if text is not None:
                out.append((index_of(choice), text))
        return out

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        for choice in body.get("choices") or []:
            if index_of(choice) == index:
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
            text = content_text(token.get("text"))
            if text:
                parsed.texts.append(((0, "content", 0), text))
        final = obj.get("generated_text")
        if final is not None:
            if not isinstance(final, str):
                raise ValueError("'generated_text' is not a string")
            parsed.ends.append(0)
            parsed.end = parsed.complete = True  # TGI sends nothing after it
        return parsed

    def fast_kind(self, ev: Event) -> Kind:
        if ev.data is not None and b'"generated_text":null' in ev.data:
            return Kind.DATA
        parsed = self.parse(ev)
        return Kind.DONE if parsed.end and parsed.kind is Kind.DATA else parsed.kind

    def final_text(self, body: Any) -> list[tuple[int, str]]:
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        text = body.get("generated_text")
        if text is None:
            return []
        if not isinstance(text, str):
            raise ValueError("'generated_text' is not a string")
        return [(0, text)]

    def set_final_text(self, body: dict[str, Any], index: int, text: str) -> None:
        body["generated_text"] = text
        details = body.get("details")
        if isinstance(details, dict):  # the tokens repeat the original text
            for name in ("tokens", "top_tokens", "best_of_sequences"):
                if name in details:
                    details[name] = []

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        if key[0] == ERROR_INDEX:
            return Event(self.error_event(new, "upstream_error"))
        obj = client_json(ev.data or b"{}")
        obj["token"]["text"] = new
        if obj.get("top_tokens"):  # they repeat the original text
            obj["top_tokens"] = []
        data = dump_json(obj)
        return Event(b"data:" + data + b"\n\n", data)

    def abort(self, blocked: Blocked, style: str, refusal: str, env: Envelope) -> bytes:
        body = {"error": f"Blocked by {blocked.rail} rails.", "error_type": "guardrails_violation"}
        return b"data:" + json.dumps(body).encode() + b"\n\n"

    def stream_error(self, message: str, code: str) -> bytes:
        body = {"error": message, "error_type": "incomplete_generation_stream"}
        return b"data:" + orjson.dumps(body) + b"\n\n"

    def error_event(self, message: str, code: str) -> bytes:
        return b"data:" + orjson.dumps({"error": message, "error_type": code}) + b"\n\n"

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
    {"message", "http_status_code"}}`` or native ``{"error": str, "error_type"}``).
    ``"error": null`` (or any falsy value) is no error: the openai SDK reads the chunk."""
    return bool(obj.get("error")) or obj.get("object") == "error"


def client_json(data: bytes) -> Any:
    """Parse JSON as the openai SDK does: strict UTF-8, then Python's ``json`` (which takes
    ``NaN``, ``Infinity`` and lone surrogate escapes); orjson first, as the fast path.
    Lone surrogates become U+FFFD (the rails' tokenizer takes only valid text).
    ``ValueError`` when the client could not read it either."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return _scrub(json.loads(data.decode("utf-8")))
    except UnicodeDecodeError as e:
        raise ValueError("not UTF-8") from e


def dump_json(obj: Any) -> bytes:
    """Serialize an event or body we changed (orjson; Python's ``json`` for the NaN and
    infinities orjson would turn into null)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj).encode()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if not _has_surrogate(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def index_of(choice: dict[str, Any]) -> int:
    """A choice's (or tool call's) ``index`` as the client groups by it: an int, a bool
    (Python's ``True == 1``) or an integral float; missing means 0. ``ValueError`` for
    anything else (a client would group that text under a key we cannot predict)."""
    value = choice.get("index", 0)
    if value is None:
        return 0
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"unreadable index {value!r}")


def content_text(value: Any) -> str | None:
    """The text a client shows for a content field: a string, or a list of parts whose
    ``text`` (or ``refusal``) strings it joins. None when there is none; ``ValueError``
    for any other type."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                texts.extend(v for k in ("text", "refusal") if isinstance(v := part.get(k), str))
        return "".join(texts)
    raise ValueError(f"unreadable content of type {type(value).__name__}")


def error_text(obj: Any) -> str:
    """Every string in an error body, keys included, one per line: what any client (raw
    SSE readers print the whole body) could show. Error text is judged as output."""
    out: list[str] = []
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                out.append(str(k))
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
    return "\n".join(out)


def _choices(body: Any) -> list[dict[str, Any]]:
    """A whole answer's choices, checked to be of the shape the client reads."""
    if not isinstance(body, dict):
        raise ValueError("the body is not an object")
    choices = body.get("choices")
    if choices is None:
        return []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ValueError("'choices' is not a list of objects")
    return choices


def _read_delta(index: int, delta: dict[str, Any], texts: list[tuple[ChannelKey, str]]) -> None:
    content = content_text(delta.get("content"))
    if content:
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
                texts.append(((index, "tool_arguments", index_of(call)), args))


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
        parts = isinstance(delta.get("content"), list)
        delta["content"] = [{"type": "text", "text": new}] if parts else new
    elif field_name == "reasoning":
        name = "reasoning" if "reasoning" in delta else "reasoning_content"
        delta[name] = new
    else:
        for call in delta.get("tool_calls") or []:
            if index_of(call) == call_index and isinstance(call.get("function"), dict):
                call["function"]["arguments"] = new
