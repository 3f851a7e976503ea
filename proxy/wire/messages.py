"""Anthropic ``/v1/messages``, as vLLM 0.32 and llama.cpp's server speak it, both sides.

Request: ``messages`` (each ``content`` a string or a list of content blocks) and
``system`` (a string or text blocks). Input rails judge them as chat messages (``tool_result``
blocks as ``tool`` messages, in the order vLLM converts them), and masks are written back
into the very strings they came from, so every block keeps its structure. What the model
reads besides (``tools``, and an assistant's ``tool_use`` input and ``thinking``) is judged
with ``rails.input.messages: all`` and never rewritten.

Response: named events, ``event: NAME`` + ``data`` whose ``type`` is ``NAME``:
``message_start``, then per content block ``content_block_start`` / ``_delta`` / ``_stop``
(``index`` counts blocks from 0, as the SDK lists them), ``message_delta`` (stop reason,
usage), ``message_stop``; ``ping`` anywhere; ``error`` ends the stream. Channels per block
``index``: ``thinking_delta`` -> reasoning, ``input_json_delta`` -> tool_arguments (judged
with JSON escapes resolved), a tool's ``name`` -> tool_names; every other string (ids,
model, stop reasons, signatures) on the ``OTHER`` channel. Text blocks are one text, on
one channel (``TEXT_INDEX``): the SDK's ``get_final_text()`` joins them, and vLLM splits a
model's text around a tool call; a whole answer with several is judged joined as well.

The anthropic SDK skips an event without ``event:`` and files deltas by list position, so
what it shows differs from what the bytes say whenever the stream breaks the protocol's
order. Such a stream is not relayed: an event without a known name, a ``type`` that is not
its name, anything before ``message_start`` or a second one, a block started out of order
(or a text block while another is open), a delta of another kind than its block, or
anything for a block already stopped or after ``message_delta`` ends the stream with our
``error`` event (which the SDK raises).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import BadRequest, anthropic_body
from proxy.wire import chat_extras
from proxy.wire.chat import all_strings, json_schema
from proxy.wire.client_json import client_json, dump_json, error_text, has_duplicate_keys
from proxy.wire.dialect import ERROR_INDEX, Dialect, Envelope, Kind, Parsed, validate_messages
from proxy.wire.fields import MAX_INDEX, Texts, add_rest, collect, collect_except
from proxy.wire.json_text import unescape
from proxy.wire.messages_request import (
    as_list,
    blocks,
    server_side,
    slots,
    unreadable,
    without,
)
from proxy.wire.sse import Event, data_only, encode
from rails.base import Blocked, ChannelKey, TextField
from rails.guard import InputContent
from rails.stream import CannotRewrite

BLOCKED_TYPE = "guardrails_violation"
STOP_REFUSAL = "refusal"  # the stop_reason the anthropic SDK knows for a refused answer
EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)
# A block type -> where its text goes: (field of the block, channel) pairs.
_BLOCK_TEXT: dict[str, tuple[tuple[str, TextField], ...]] = {
    "text": (("text", "content"),),
    "thinking": (("thinking", "reasoning"),),
    "tool_use": (("name", "tool_names"),),
    "redacted_thinking": (),
}
# A delta type -> (the block type it belongs to, its string field, its channel or None:
# the OTHER channel).
_DELTAS: dict[str, tuple[str, str, TextField | None]] = {
    "text_delta": ("text", "text", "content"),
    "thinking_delta": ("thinking", "thinking", "reasoning"),
    "input_json_delta": ("tool_use", "partial_json", "tool_arguments"),
    "signature_delta": ("thinking", "signature", None),
}
# Where a masked channel's text goes back: in a delta, and in a block.
_FIELD_OF: dict[str, str] = {
    "content": "text",
    "reasoning": "thinking",
    "tool_arguments": "partial_json",
}
_BLOCK_FIELD: dict[str, str] = {"content": "text", "reasoning": "thinking", "tool_names": "name"}
_TEXT = re.compile(rb'"(?:text|thinking|partial_json)"\s*:\s*"[^"]')
# The channel index of every text block's text (streamed): past any block index, so no
# block's end closes it; the stream's end does.
TEXT_INDEX = MAX_INDEX
_TYPE = frozenset({"type"})


# -- the envelope: what the client has seen ---------------------------------------------


@dataclass(slots=True)
class MessagesEnvelope(Envelope):
    """Our own events' id and model, and what the client has been sent so far (tracked as
    events are released, not as they arrive): whether it saw ``message_start``, the blocks
    it saw start, and which of them it saw stop. An abort closes what the client has open."""

    started: bool = False
    blocks: list[str] = field(default_factory=list)
    open: set[int] = field(default_factory=set)

    @classmethod
    def of_request(cls, request_id: str, body: dict[str, Any]) -> MessagesEnvelope:
        model = body.get("model")
        return cls(id=f"msg_{request_id}", model=model if isinstance(model, str) else "")

    def released(self, events: list[Event]) -> None:
        for ev in events:
            name = ev.event
            if name is None or ev.data is None or not name.startswith(("message_s", "content")):
                continue
            if name == "message_start":
                self.started = True
            elif name == "content_block_start":
                obj = client_json(ev.data)  # (read before: as the client reads it)
                self.blocks.append(obj["content_block"]["type"])
                self.open.add(obj["index"])
            elif name == "content_block_stop":
                self.open.discard(client_json(ev.data)["index"])


# -- one stream's order -------------------------------------------------------------------


class MessageOrder:
    """The protocol's order, checked event by event for one stream (module docstring)."""

    def __init__(self, dialect: Messages) -> None:
        self._parse = dialect.parse
        self.started = False
        self.blocks: list[str] = []  # the type of each block started, by index
        self.stopped: set[int] = set()
        # The text block started and not stopped, if any: text blocks share one channel,
        # so their texts must come one block after the other.
        self.open_text: int | None = None
        self.ended = False  # message_delta seen: only message_stop (or a ping) may follow

    def read(self, ev: Event) -> Parsed:
        p = self._parse(ev)
        if p.kind is not Kind.DATA or p.obj is None:
            return p
        p.kind = self._check(p.obj)
        return p

    def _check(self, obj: dict[str, Any]) -> Kind:
        kind = obj["type"]
        if kind == "ping":
            return Kind.DATA
        if kind == "message_start":
            if self.started:
                return Kind.OPAQUE
            self.started = True
            return Kind.DATA
        if not self.started:
            return Kind.OPAQUE
        if self.ended and kind != "message_stop":
            return Kind.LATE
        if kind == "message_delta":
            self.ended = True
        elif kind.startswith("content_block_"):
            return self._check_block(kind, obj)
        return Kind.DATA

    def _check_block(self, kind: str, obj: dict[str, Any]) -> Kind:
        index = obj["index"]
        if kind == "content_block_start":
            block = obj["content_block"]["type"]
            if index != len(self.blocks) or (block == "text" and self.open_text is not None):
                return Kind.OPAQUE
            self.blocks.append(block)
            if block == "text":
                self.open_text = index
            return Kind.DATA
        if index >= len(self.blocks):
            return Kind.OPAQUE
        if index in self.stopped:
            return Kind.LATE
        if kind == "content_block_stop":
            self.stopped.add(index)
            if index == self.open_text:
                self.open_text = None
        elif _DELTAS[obj["delta"]["type"]][0] != self.blocks[index]:
            return Kind.OPAQUE
        return Kind.DATA


# -- the protocol -------------------------------------------------------------------------


_TEMPLATE_FIELDS = ("chat_template_kwargs",)  # what vLLM's Messages request hands the template


def _output_schema(body: dict[str, Any]) -> Any:
    """``output_config.format`` when it is a JSON schema (vLLM's ``response_format``)."""
    config = body.get("output_config")
    given = config.get("format") if isinstance(config, dict) else None
    if isinstance(given, dict) and given.get("type", "json_schema") == "json_schema":
        return json_schema({**given, "type": "json_schema"})
    return None


class Messages(Dialect):
    name = "messages"
    asks_usage = False  # no stream_options here: vLLM reports usage in message_delta
    x_api_key = True  # Anthropic clients send their key as x-api-key

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        super().validate(body)
        validate_messages(body)
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            raise BadRequest("'system' must be a string or a list of blocks.", param="system")

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The slots' messages, then ``chat_template_kwargs`` (vLLM hands them to the chat
        template, as on chat: ``proxy.wire.chat_extras``) as a tool result."""
        messages = [slot.message for slot in slots(body)]
        return messages + [e.message for e in chat_extras.extras(body, _TEMPLATE_FIELDS)]

    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        """Each masked part back into the string it was read from."""
        found = slots(body)
        extras = chat_extras.extras(body, _TEMPLATE_FIELDS)
        for index, content in changes:
            if index >= len(found):
                extras[index - len(found)].write(content)
                continue
            slot = found[index]
            texts = [content] if isinstance(content, str) else [p["text"] for p in content]
            for write, text in zip(slot.writers, texts, strict=True):
                write(text)

    def input_definitions(self, body: dict[str, Any]) -> list[str]:
        """Each tool definition, each ``tool_use`` and ``thinking`` block of the
        conversation, and each ``tool_result`` block but its content (judged as a tool
        message): its ``tool_use_id``, which vLLM hands the template as the tool message's
        ``tool_call_id``; and ``output_config.format`` (vLLM makes it a ``json_schema``
        response format, which gpt-oss's template shows); each as one text (every string in
        it, keys included)."""
        out = ["\n".join(all_strings(t)) for t in as_list(body.get("tools"))]
        for m in as_list(body.get("messages")):
            for block in blocks(m):
                if block.get("type") in ("tool_use", "thinking"):
                    out.append("\n".join(all_strings(without(block, "signature"))))
                elif block.get("type") == "tool_result":
                    out.append("\n".join(all_strings(without(block, "content"))))
        out.append("\n".join(all_strings(_output_schema(body))))
        return [t for t in out if t]

    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        """Every block must be one whose text railproxy reads: text, image (no text),
        tool_use, tool_result (a string, or text and image blocks), thinking,
        redacted_thinking (opaque to the model server too), or a document whose source is
        text; anything else would reach the model unjudged. So would the results of a tool
        the server runs (``server_side``)."""
        odd = chat_extras.odd_key(body, _TEMPLATE_FIELDS)
        if odd is not None:
            raise BadRequest(
                f"Input rails judge text: every key in '{odd}' must be a name (a template "
                "may show it).",
                param=odd,
                code="input_not_judged",
            )
        tool = server_side(body)
        if tool is not None:
            raise BadRequest(
                f"Input rails judge text: '{tool}' runs on the server, and its results reach "
                "the model without passing input rails; offer it as a custom tool and send "
                "its results as tool_result blocks.",
                param=tool,
                code="input_not_judged",
            )
        where = unreadable(body)
        if where is not None:
            raise BadRequest(
                f"Input rails judge text: '{where}' is not a block railproxy can read as "
                "text (text, image, tool_use, tool_result, thinking, or a document with a "
                "text source).",
                param=where,
                code="input_not_judged",
            )

    def refusal_body(self, body: dict[str, Any], refusal: str) -> dict[str, Any] | None:
        model = body.get("model")
        return {
            "id": f"msg_railproxy-{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": refusal}],
            "model": model if isinstance(model, str) else "",
            "stop_reason": STOP_REFUSAL,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }

    def blocked_body(self, blocked: Blocked) -> dict[str, Any]:
        return anthropic_body(BLOCKED_TYPE, f"Blocked by {blocked.rail} rails.")

    def error_body(self, message: str, code: str) -> dict[str, Any]:
        return anthropic_body("api_error", message)

    # -- response side: parsing ------------------------------------------------------------

    def stream_parser(self) -> Callable[[Event], Parsed]:
        return MessageOrder(self).read

    def envelope(self, request_id: str, body: dict[str, Any]) -> Envelope:
        return MessagesEnvelope.of_request(request_id, body)

    def parse(self, ev: Event) -> Parsed:
        """One event on its own (its order: ``MessageOrder``)."""
        data, name = ev.data, ev.event
        if data is None:
            return Parsed(Kind.COMMENT)
        if name not in EVENTS:
            return Parsed(Kind.OPAQUE)
        try:
            obj = client_json(data)
        except ValueError:
            return Parsed(Kind.OPAQUE)
        if not isinstance(obj, dict) or obj.get("type") != name or has_duplicate_keys(obj, data):
            return Parsed(Kind.OPAQUE)
        if name == "error":
            texts: Texts = [((ERROR_INDEX, "content", 0), error_text(obj))]
            return Parsed(Kind.ERROR, obj, texts, end=True)
        if name == "ping" and len(obj) == 1:  # no text: flows in order, in any release mode
            return Parsed(Kind.DATA, obj)
        try:
            return self.parse_obj(obj)
        except (ValueError, KeyError, TypeError):
            return Parsed(Kind.OPAQUE)

    def parse_obj(self, obj: dict[str, Any]) -> Parsed:
        parsed = Parsed(Kind.DATA, obj)
        kind = obj["type"]
        if kind == "content_block_delta":
            _read_delta(obj, parsed)
        elif kind == "content_block_start":
            index = _index(obj)
            collect_except(obj, _START_KEYS, parsed.rest)
            _read_block(index, _object(obj, "content_block"), parsed.texts, parsed.rest, True)
        elif kind == "content_block_stop":
            parsed.ends.append(_index(obj))
            collect_except(obj, _STOP_KEYS, parsed.rest)
        elif kind == "message_start":
            _read_start(obj, parsed.rest)
        else:  # message_delta, message_stop, a ping with more than its type
            if kind == "message_delta":
                _object(obj, "delta")
            collect_except(obj, _TYPE, parsed.rest)
            parsed.end = kind != "ping"
            parsed.complete = kind == "message_stop"
        return parsed

    def fast_kind(self, ev: Event) -> Kind:
        name = ev.event
        if ev.data is None:
            return Kind.COMMENT
        if name == "message_stop":
            return Kind.DONE
        return Kind.ERROR if name == "error" else Kind.DATA

    @staticmethod
    def carries_text(ev: Event) -> bool:
        return (
            ev.event == "content_block_delta"
            and ev.data is not None
            and _TEXT.search(ev.data) is not None
        )

    @staticmethod
    def usage(ev: Event) -> tuple[int, int] | None:
        """(input_tokens, output_tokens) of a ``message_delta`` or a whole message, when it
        reports both (llama.cpp's ``message_delta`` has only the output: counted then)."""
        data = ev.data
        if data is None or b'"usage"' not in data:
            return None
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or obj.get("type") not in ("message_delta", "message"):
            return None
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return None
        tokens = usage.get("input_tokens"), usage.get("output_tokens")
        if all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            return tokens[0], tokens[1]  # type: ignore[return-value]
        return None

    @staticmethod
    def is_usage_only(ev: Event) -> bool:
        return False

    def client_form(self, ev: Event) -> Event:
        """The event as ``event: NAME`` and its ``data`` lines only (the name is checked:
        it is the data's ``type``); comments as ``data_only`` keeps them."""
        if ev.data is None or ev.event is None:
            return data_only(ev)
        head = b"event: " + ev.event.encode() + b"\ndata: "
        raw = ev.raw
        plain = raw.count(b"\n") == 3 and b"\r" not in raw
        if plain and raw.startswith(head) and raw.endswith(b"\n\n"):
            return ev
        out = Event(_frame(ev.event, ev.data), ev.data, ev.event)
        out.has_text, out.arrived, out.escaped = ev.has_text, ev.arrived, ev.escaped
        return out

    def final_texts(self, body: Any) -> Texts:
        if not isinstance(body, dict) or body.get("type") != "message":
            raise ValueError("the body is not a message")
        content = body.get("content")
        if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
            raise ValueError("'content' is not a list of blocks")
        texts: Texts = []
        rest: list[str] = []
        collect_except(body, _MESSAGE_KEYS, rest)
        for index, block in enumerate(content):
            _read_block(index, block, texts, rest, False)
        joined = [text for key, text in texts if key[1] == "content"]
        if len(joined) > 1:  # as the SDK joins them (after each block's own masks)
            texts.append(((TEXT_INDEX, "content", 0), "".join(joined)))
        add_rest(rest, texts)
        return texts

    # -- response side: rewriting (masks) ------------------------------------------------

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        index, name, _ = key
        if index == TEXT_INDEX:
            _check_joined(body, text)
            return
        if index < 0:
            raise CannotRewrite("a string railproxy reads only to judge")
        block = body["content"][index]
        if name != "tool_arguments":
            block[_block_field(name)] = text
            return
        try:
            value = json.loads(text)
        except ValueError:
            raise CannotRewrite("masked tool input is not JSON") from None
        if not isinstance(value, dict):
            raise CannotRewrite("masked tool input is not an object")
        block["input"] = value

    def rewrite_text(self, ev: Event, key: ChannelKey, new: str) -> Event:
        obj = client_json(ev.data or b"{}")
        if obj["type"] == "content_block_delta":
            obj["delta"][_FIELD_OF[key[1]]] = new
        else:
            obj["content_block"][_block_field(key[1])] = new
        data = dump_json(obj)
        return Event(_frame(obj["type"], data), data, obj["type"])

    # -- events we author ------------------------------------------------------------------

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        """``error`` (the SDK raises), or for ``content_filter`` the refusal as text and
        ``stop_reason: "refusal"``, closing whatever the client has open."""
        if style != "content_filter":
            return _frame("error", orjson.dumps(self.blocked_body(blocked)))
        seen = env if isinstance(env, MessagesEnvelope) else MessagesEnvelope(env.id)
        return b"".join(_refusal_events(seen, env, refusal, separator))

    def error_event(self, message: str, code: str) -> bytes:
        kind = _STREAM_ERROR_TYPES.get(code, "api_error")
        return _frame("error", orjson.dumps(anthropic_body(kind, message)))

    def done(self) -> bytes:
        return b""


MESSAGES = Messages()

_STREAM_ERROR_TYPES = {"server_shutdown": "overloaded_error", "upstream_timeout": "timeout_error"}
_START_KEYS = frozenset({"type", "index", "content_block"})
_STOP_KEYS = frozenset({"type", "index"})
_DELTA_KEYS = frozenset({"type", "index", "delta"})
_MESSAGE_KEYS = frozenset({"type", "content"})


def _frame(name: str, data: bytes) -> bytes:
    """``event: NAME`` and the data, one ``data:`` line per line of it (an event's data
    read on several lines goes out on as many: a bare line would be a field the client
    ignores)."""
    if b"\n" not in data:
        return encode(data, name)
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return b"event: " + name.encode() + b"\n" + lines + b"\n"


def _index(obj: dict[str, Any]) -> int:
    """A block's ``index``: an int the SDK can file it under (no bool, no float)."""
    value = obj["index"]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_INDEX:
        return value
    raise ValueError(f"unreadable index {value!r}")


def _object(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' is not an object")
    return value


def _string(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is not a string")
    return value


def _read_start(obj: dict[str, Any], rest: list[str]) -> None:
    """``message_start``: its message must hold no content yet (the SDK would show it
    under block indexes the stream then reuses)."""
    message = _object(obj, "message")
    if message.get("content") != []:
        raise ValueError("message_start with content")
    collect_except(obj, frozenset({"type", "message"}), rest)
    collect_except(message, frozenset({"content"}), rest)


def _read_block(
    index: int, block: dict[str, Any], texts: Texts, rest: list[str], start: bool
) -> None:
    """A content block (of ``content_block_start``, or of a whole message): its text per
    channel; every other string into ``rest``."""
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in _BLOCK_TEXT:
        raise ValueError(f"unknown block type {kind!r}")
    read = {"type"}
    for name, channel in _BLOCK_TEXT[kind]:
        read.add(name)
        if text := _string(block, name):
            texts.append(((_channel_index(index, channel, start), channel, 0), text))
    if kind == "tool_use":
        read.add("input")
        tool_input = block.get("input", {} if start else None)  # (llama.cpp's start has none)
        if not isinstance(tool_input, dict):
            raise ValueError("tool_use 'input' is not an object")
        if tool_input:
            arguments = json.dumps(tool_input, ensure_ascii=False)
            if start:  # the SDK shows it until a delta replaces it: judged, never masked
                rest.append(unescape(arguments))  # (keys too: argument names it wrote)
            else:
                texts.append(((index, "tool_arguments", 0), arguments))
    collect_except(block, frozenset(read), rest)


def _check_joined(body: dict[str, Any], text: str) -> None:
    """The text blocks joined, masked, must read as they do once each block was masked on
    its own (judged before the join): a mask across two blocks cannot be written back."""
    blocks = [b for b in body["content"] if b.get("type") == "text"]
    if "".join(_string(b, "text") for b in blocks) != text:
        raise CannotRewrite("a mask across text blocks")


def _channel_index(index: int, channel: TextField, streamed: bool) -> int:
    """A streamed text block's text goes on the one text channel; every other text on its
    block's (and a whole answer's text blocks each on their own, to be masked there)."""
    return TEXT_INDEX if streamed and channel == "content" else index


def _read_delta(obj: dict[str, Any], parsed: Parsed) -> None:
    index = _index(obj)
    delta = _object(obj, "delta")
    kind = delta.get("type")
    if not isinstance(kind, str) or kind not in _DELTAS:
        raise ValueError(f"unknown delta type {kind!r}")
    _, name, channel = _DELTAS[kind]
    text = _string(delta, name)
    if channel is None:
        collect("", text, parsed.rest)
    elif text:
        parsed.texts.append(((_channel_index(index, channel, True), channel, 0), text))
    collect_except(obj, _DELTA_KEYS, parsed.rest)
    collect_except(delta, frozenset({"type", name}), parsed.rest)


def _block_field(channel: str) -> str:
    """The field of a content block holding a channel's text."""
    name = _BLOCK_FIELD.get(channel)
    if name is None:
        raise CannotRewrite(f"no {channel} text in a content block")
    return name


def _refusal_events(
    seen: MessagesEnvelope, env: Envelope, refusal: str, separator: str
) -> Iterator[bytes]:
    if not seen.started:
        message: dict[str, Any] = {
            "id": env.id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": env.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        yield _event({"type": "message_start", "message": message})
    open_blocks = set(seen.open)
    if refusal:
        texts = [i for i in open_blocks if seen.blocks[i] == "text"]
        if texts:
            index, text = max(texts), separator + refusal
        else:
            index, text = len(seen.blocks), refusal
            open_blocks.add(index)
            block = {"type": "text", "text": ""}
            yield _event({"type": "content_block_start", "index": index, "content_block": block})
        delta = {"type": "text_delta", "text": text}
        yield _event({"type": "content_block_delta", "index": index, "delta": delta})
    for index in sorted(open_blocks):
        yield _event({"type": "content_block_stop", "index": index})
    stop = {"stop_reason": STOP_REFUSAL, "stop_sequence": None}
    yield _event({"type": "message_delta", "delta": stop, "usage": {"output_tokens": 0}})
    yield _event({"type": "message_stop"})


def _event(obj: dict[str, Any]) -> bytes:
    return _frame(obj["type"], orjson.dumps(obj))
