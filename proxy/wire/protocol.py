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

from proxy.wire.fields import (
    ALT_SEPARATOR,
    Texts,
    content_text,
    drop_repeats,
    index_of,
    read_chat_logprobs,
    read_completion_logprobs,
    read_message,
    replace_in,
    spelled,
)
from proxy.wire.sse import Event, encode
from rails.base import ChannelKey
from rails.stream import Blocked, CannotRewrite

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
    LATE = "late"  # text after its choice or the stream ended (proxy.wire.reader): ends it too


ERROR_INDEX = -1  # the channel of an in-band error's text (error text is output too)
GENERATED = 1  # TGI's sub-channel for the final event's generated_text


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
            read_message(index, delta, parsed.texts)
        if choice.get("logprobs") is not None:
            read_chat_logprobs(index, choice, spelled(parsed.texts, index), parsed.texts)
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

    def final_texts(self, body: Any) -> Texts:
        """Every judged text of a non-streaming answer, per channel, read as the same answer
        streamed would be; ``ValueError`` when the body is not of a shape the client
        would read as this API's answer."""
        texts: Texts = []
        for choice in _choices(body):
            message = choice.get("message")
            if message is None:
                continue
            if not isinstance(message, dict):
                raise ValueError("'message' is not an object")
            index = index_of(choice)
            read_message(index, message, texts)
            if choice.get("logprobs") is not None:
                read_chat_logprobs(index, choice, spelled(texts, index), texts)
        return texts

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        for choice in body.get("choices") or []:
            if index_of(choice) == key[0]:
                self._set(choice, "message", key, text)

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        """The event with the guarded text of ``key`` replaced (masking). Tool arguments
        judged with their escapes resolved cannot be mapped back: ``CannotRewrite``."""
        if key[0] == ERROR_INDEX:
            return Event(self.error_event(new, "upstream_error"))
        if key[1] == "tool_arguments" and ev.escaped:
            raise CannotRewrite("tool arguments with JSON escapes")
        obj = client_json(ev.data or b"{}")
        for choice in obj.get("choices") or []:
            if index_of(choice) == key[0]:
                self._set(choice, "delta", key, new)
        data = dump_json(obj)
        return Event(encode(data), data)

    def _set(self, choice: dict[str, Any], where: str, key: ChannelKey, new: str) -> None:
        if key[1] == "logprobs":
            drop_repeats(choice)
        else:
            replace_in(choice, choice.setdefault(where, {}), key, new)

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
        self._read_text(index, choice, parsed.texts)
        if choice.get("finish_reason"):
            parsed.ends.append(index)

    @staticmethod
    def _read_text(index: int, choice: dict[str, Any], texts: Texts) -> None:
        text = content_text(choice.get("text"))
        if text:
            texts.append(((index, "content", 0), text))
        if choice.get("logprobs") is not None:
            read_completion_logprobs(index, choice, text or "", texts)

    def final_texts(self, body: Any) -> Texts:
        texts: Texts = []
        for choice in _choices(body):
            self._read_text(index_of(choice), choice, texts)
        return texts

    def _set(self, choice: dict[str, Any], where: str, key: ChannelKey, new: str) -> None:
        drop_repeats(choice)
        if key[1] != "logprobs":
            choice["text"] = new

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
        text = content_text(token.get("text")) if isinstance(token, dict) else None
        if text:  # special tokens too: the client shows their text
            parsed.texts.append(((0, "content", 0), text))
        _read_top_tokens(0, obj.get("top_tokens"), parsed.texts)
        final = obj.get("generated_text")
        if final is not None:
            if not isinstance(final, str):
                raise ValueError("'generated_text' is not a string")
            if final:  # repeats the text, but a client shows it: judged as it reads
                parsed.texts.append(((0, "content", GENERATED), final))
            parsed.ends.append(0)
            parsed.end = parsed.complete = True  # TGI sends nothing after it
        return parsed

    def fast_kind(self, ev: Event) -> Kind:
        if ev.data is not None and b'"generated_text":null' in ev.data:
            return Kind.DATA
        parsed = self.parse(ev)
        return Kind.DONE if parsed.end and parsed.kind is Kind.DATA else parsed.kind

    def final_texts(self, body: Any) -> Texts:
        """``generated_text``, and in ``details`` the tokens (when they do not spell it),
        ``top_tokens``, and each of ``best_of_sequences`` as choice 1, 2, ..."""
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        texts: Texts = []
        _read_generation(0, body, body.get("details"), texts)
        details = body.get("details")
        if isinstance(details, dict):
            for k, seq in enumerate(_list(details.get("best_of_sequences")), 1):
                if isinstance(seq, dict):
                    _read_generation(k, seq, seq, texts)
        return texts

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        index, name, _ = key
        target = body if index == 0 else body["details"]["best_of_sequences"][index - 1]
        if name == "content":
            target["generated_text"] = text
        details = body.get("details") if index == 0 else target
        if isinstance(details, dict):  # the tokens repeat the original text
            for field_name in ("tokens", "top_tokens", "best_of_sequences"):
                if field_name in details:
                    details[field_name] = []

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        if key[0] == ERROR_INDEX:
            return Event(self.error_event(new, "upstream_error"))
        obj = client_json(ev.data or b"{}")
        if key[1] == "content" and key[2] == GENERATED:
            obj["generated_text"] = new
        elif key[1] == "content":
            obj["token"]["text"] = new
        if obj.get("top_tokens"):  # they repeat the original text
            obj["top_tokens"] = []
        data = dump_json(obj)
        return Event(b"data:" + data + b"\n\n", data)

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
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


def _read_generation(index: int, gen: dict[str, Any], details: Any, texts: Texts) -> None:
    """One TGI generation: its text, and its details' tokens and top tokens."""
    text = gen.get("generated_text")
    if text is not None and not isinstance(text, str):
        raise ValueError("'generated_text' is not a string")
    if text:
        texts.append(((index, "content", 0), text))
    if not isinstance(details, dict):
        return
    tokens = [t for t in _list(details.get("tokens")) if isinstance(t, dict)]
    chosen = "".join(t["text"] for t in tokens if isinstance(t.get("text"), str))
    if chosen and chosen != text:
        texts.append(((index, "logprobs", 0), chosen))
    for top in _list(details.get("top_tokens")):
        _read_top_tokens(index, top, texts)


def _read_top_tokens(index: int, top: Any, texts: Texts) -> None:
    alts = [t["text"] for t in _list(top) if isinstance(t, dict) and isinstance(t.get("text"), str)]
    if alts := [a for a in alts if a]:
        texts.append(((index, "logprobs", 1), ALT_SEPARATOR.join(alts) + ALT_SEPARATOR))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
