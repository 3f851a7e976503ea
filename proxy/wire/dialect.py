"""What every wire protocol shares, and the contract each one's class fulfils.

One class per API protocol owns both of its sides (DESIGN.md, "The boundary fails
closed"): on the request side, validation, the messages input rails judge and where their
masks go back, and the answers railproxy writes itself (block and refusal bodies); on the
response side, parsing an event into text pieces per channel, the texts of a whole answer,
rewriting both for masks, and the events railproxy authors (abort, errors, the end).
Protocols: ``proxy.wire.chat`` (``/v1/chat/completions``), ``proxy.wire.completions``
(``/v1/completions``), ``proxy.wire.responses`` (``/v1/responses``), ``proxy.wire.messages``
(Anthropic's ``/v1/messages``), ``proxy.wire.tgi`` (TGI's ``/generate`` and
``/generate_stream``).

Everything is read from the event's data bytes as the client reads it
(``proxy.wire.client_json``); events are never re-serialized unless railproxy changes
them (masking) or authors them (aborts, errors). What cannot be read that way is
``Kind.OPAQUE``: the guarded relay ends the stream there rather than relay it unjudged.
"""

from __future__ import annotations

import abc
import enum
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import BadRequest, error_body
from proxy.wire.client_json import client_json, error_text, has_duplicate_keys, is_error
from proxy.wire.fields import OTHER_INDEX, Texts
from proxy.wire.sse import Event, data_only, encode
from rails.base import Blocked, ChannelKey
from rails.guard import InputContent, message_role, message_text
from rails.stream import CannotRewrite

TEXT_MARK = re.compile(rb'"(?:content|reasoning|reasoning_content|arguments|text)"\s*:\s*"[^"]')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
ERROR_INDEX = -1  # the channel of an in-band error's text (error text is output too)


class Kind(enum.Enum):
    DATA = "data"
    DONE = "done"
    ERROR = "error"
    COMMENT = "comment"
    OPAQUE = "opaque"  # data we cannot read as the client would: ends a guarded stream
    LATE = "late"  # text after its choice or the stream ended (proxy.wire.reader): ends it too


@dataclass(slots=True)
class Parsed:
    kind: Kind
    obj: dict[str, Any] | None = None
    texts: Texts = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    end: bool = False
    complete: bool = False  # the stream's last event (TGI's final event; chat's [DONE])
    rest: list[str] = field(default_factory=list)  # every other string (proxy.wire.fields)


@dataclass(slots=True)
class Envelope:
    """What our own chunks carry: our id and the model the client asked for (never the
    upstream's strings: the event they came in may be the one a rail blocked), the
    upstream's ``created`` (a number), and the choice indexes that carried text."""

    id: str = ""
    created: int = 0
    model: str = ""
    choices: set[int] = field(default_factory=set)

    @classmethod
    def of_request(cls, request_id: str, body: dict[str, Any]) -> Envelope:
        model = body.get("model")
        return cls(id=f"chatcmpl-{request_id}", model=model if isinstance(model, str) else "")

    def learn(self, obj: dict[str, Any]) -> None:
        created = obj.get("created")
        if not self.created and isinstance(created, int) and not isinstance(created, bool):
            self.created = created

    def released(self, events: list[Event]) -> None:
        """Events just written to the client (a protocol whose abort must close what the
        client has open tracks them here)."""


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


def common_envelope(body: dict[str, Any]) -> dict[str, Any]:
    """id, created and model for a whole answer railproxy writes itself."""
    return {
        "id": f"railproxy-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": str(body.get("model", "")),
    }


def decoded(ev: Event) -> dict[str, Any] | Parsed:
    """An event's data as the JSON object the client reads, or what it is instead: a
    comment, ``[DONE]``, or ``Kind.OPAQUE`` (not JSON, not an object, a key twice)."""
    data = ev.data
    if data is None:
        return Parsed(Kind.COMMENT)
    if data == DONE:
        return Parsed(Kind.DONE, end=True, complete=True)
    try:
        obj = client_json(data)
    except ValueError:
        return Parsed(Kind.OPAQUE)
    if not isinstance(obj, dict) or has_duplicate_keys(obj, data):
        return Parsed(Kind.OPAQUE)
    return obj


def validate_messages(body: dict[str, Any]) -> None:
    """``messages``: a non-empty list of objects with a string ``role`` (chat, Messages)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list.", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(
                f"'messages[{i}]' must be an object with a string 'role'.",
                param=f"messages[{i}]",
            )


class Dialect(abc.ABC):
    """The contract of one wire protocol, with what every protocol does the same way."""

    name = ""
    native = False  # served at the upstream's root (TGI's own routes), not under /v1
    # Whether input_messages are a batch of prompts, each its own conversation (so every
    # one is judged whatever rails.input.messages says), not one conversation.
    batch_input = False
    # Whether a streamed request takes ``stream_options.include_usage`` (railproxy asks for
    # usage on the client's behalf when it does).
    asks_usage = True
    # Whether the upstream key also goes as ``x-api-key`` (Anthropic's clients and servers).
    x_api_key = False
    # Whether pass-through may take a read of plain ``data:`` events as bytes, unsplit
    # (``RelayCore.relay_read``): true where ``fast_kind`` and ``carries_text`` are the
    # ones below, which the fast lane's byte checks stand for.
    plain_events = False

    def for_request(self, body: dict[str, Any]) -> Dialect:
        """The instance that reads the answer to one request (``body``, as sent upstream):
        protocols whose events are read against what came before, or against the request
        (the Responses API's repeated texts and echoed request), give each answer its own;
        stateless ones are their own."""
        return self

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        """Check the few fields railproxy itself relies on; the upstream checks the rest.
        ``BadRequest`` naming the field."""
        if "stream" in body and not isinstance(body["stream"], bool):
            raise BadRequest("'stream' must be a boolean.", param="stream")

    @abc.abstractmethod
    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """What input rails judge, as chat messages."""

    @abc.abstractmethod
    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        """Write input rails' modifications (masking) back into the request body, in
        place: the request keeps its structure."""

    def input_definitions(self, body: dict[str, Any]) -> list[str]:
        """Texts the model reads besides the messages (tool descriptions), judged with
        ``rails.input.messages: all``; never rewritten."""
        return []

    @abc.abstractmethod
    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        """``BadRequest`` when the request carries input that input rails cannot read
        as text (token ids, unknown shapes); called only while an input rail enforces."""

    def refuse_unguarded_output(self, body: dict[str, Any]) -> None:
        """``BadRequest`` when the request asks for output the output rails would not see
        (called only while output rails are on)."""
        return None

    def message_texts(self, body: dict[str, Any]) -> list[str]:
        """The text of every input message (prompt token accounting)."""
        return [message_text(m) for m in self.input_messages(body)]

    def last_user_text(self, body: dict[str, Any]) -> str:
        users = [m for m in self.input_messages(body) if message_role(m) == "user"]
        return message_text(users[-1]) if users else ""

    def refusal_body(self, body: dict[str, Any], refusal: str) -> dict[str, Any] | None:
        """A whole 200 answer carrying the refusal (``abort.style: content_filter``), or
        None when the protocol has no such answer (the block is an error then)."""
        return None

    def blocked_body(self, blocked: Blocked) -> dict[str, Any]:
        """A block as this protocol's error body."""
        return abort_body(blocked)

    def error_body(self, message: str, code: str) -> dict[str, Any]:
        """An error railproxy authors about the upstream, as this protocol's error body."""
        return error_body(message, "upstream_error", None, code)

    # -- response side: parsing ------------------------------------------------------------

    def stream_parser(self) -> Callable[[Event], Parsed]:
        """What reads one stream's events in turn (a protocol whose events must come in
        an order returns a fresh reader of that order per stream)."""
        return self.parse

    def envelope(self, request_id: str, body: dict[str, Any]) -> Envelope:
        """What our own events of one stream carry."""
        return Envelope.of_request(request_id, body)

    def parse(self, ev: Event) -> Parsed:
        obj = decoded(ev)
        if isinstance(obj, Parsed):
            return obj
        if is_error(obj):
            texts: Texts = [((ERROR_INDEX, "content", 0), error_text(obj))]
            return Parsed(Kind.ERROR, obj, texts, end=True)
        try:
            return self.parse_obj(obj)
        except ValueError:  # a field the client reads, of a type it would misread
            return Parsed(Kind.OPAQUE)

    @abc.abstractmethod
    def parse_obj(self, obj: dict[str, Any]) -> Parsed:
        """One event's JSON object: its text per channel and what it ends."""

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

    def client_form(self, ev: Event) -> Event:
        """The event as a guarded stream relays it: its data lines only (``data_only``; a
        protocol whose events are named keeps their checked names)."""
        return data_only(ev)

    @staticmethod
    def carries_text(ev: Event) -> bool:
        """Whether an event holds generated text, judged from its bytes without parsing
        (the pass-through path's timing and counting only)."""
        return ev.data is not None and TEXT_MARK.search(ev.data) is not None

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

    @abc.abstractmethod
    def final_texts(self, body: Any) -> Texts:
        """Every judged text of a non-streaming answer, per channel, read as the same answer
        streamed would be; ``ValueError`` when the body is not of a shape the client
        would read as this API's answer."""

    # -- response side: rewriting (masks) ------------------------------------------------

    @abc.abstractmethod
    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None: ...

    def rewrite(self, ev: Event, key: ChannelKey, new: str) -> Event:
        """The event with the guarded text of ``key`` replaced (masking);
        ``rails.stream.CannotRewrite`` where it cannot be: a string railproxy reads only to
        judge, or tool arguments judged with their JSON escapes resolved (they cannot be
        mapped back). An in-band error's text becomes our own error event."""
        if key[0] == ERROR_INDEX:
            return Event(self.error_event(new, "upstream_error"))
        if key[0] == OTHER_INDEX:
            raise CannotRewrite("a string railproxy reads only to judge")
        if key[1] == "tool_arguments" and ev.escaped:
            raise CannotRewrite("tool arguments with JSON escapes")
        return self.rewrite_text(ev, key, new)

    @abc.abstractmethod
    def rewrite_text(self, ev: Event, key: ChannelKey, new: str) -> Event:
        """``rewrite`` for a text this protocol carries (``key``: a choice's, a block's or an
        item's channel)."""

    # -- events we author ------------------------------------------------------------------

    @abc.abstractmethod
    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes: ...

    def stream_error(self, message: str, code: str) -> bytes:
        """An error event of ours that ends the stream (e.g. upstream EOF)."""
        return self.error_event(message, code) + self.done()

    def error_event(self, message: str, code: str) -> bytes:
        """An error event of ours, alone."""
        body = {
            "error": {"message": message, "type": "upstream_error", "param": None, "code": code}
        }
        return encode(orjson.dumps(body))

    def done(self) -> bytes:
        """What ends a stream of this protocol after our own last event."""
        return DONE_EVENT
