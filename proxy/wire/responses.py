"""OpenAI's Responses API (``POST /v1/responses``), as vLLM 0.32 speaks it, both sides.

Request: ``instructions`` and ``input`` judged by input rails (``proxy.wire.responses_input``,
which also says what is refused while they enforce: files, audio, stored turns such as
``previous_response_id``); ``tools`` judged as definitions; everything else forwarded
untouched. With output rails on, ``background: true`` (its text would come back through
``GET /v1/responses/{id}``, which railproxy refuses) and token logprobs (not judged) are
refused (``refuse_unguarded_output``).

Response: named events (``event: response.output_text.delta`` + ``data`` whose ``type`` must
be the same name: an event whose name and type differ is unreadable), each with a strictly
increasing ``sequence_number``. Channels per output item and part
(``proxy.wire.responses_items``). Deltas continue their channel; every other event that
carries a channel's text (``*.done``, ``content_part.*``, ``output_item.*``, the ``response``
of ``response.created`` / ``completed`` / ...) *repeats* it: the repeat must equal what was
streamed, or continue it (the continuation is judged as new text); anything else is
unreadable and ends the stream. ``.done`` events close their part's channel, and
``output_item.done`` its item's, so they are released only once those windows passed; a
mask rewrites the deltas and every repeat of the masked channel (a stream therefore keeps
per-channel state: ``for_request()`` gives each answer its own instance). Any other ``*.delta``
event with a string ``delta`` (``response.custom_tool_call_input.delta``, ...) is judged in
windows too, as text of its own; every other string of any event goes to ``OTHER``. Memory
per channel stays bounded whatever the stream's length: a length and a digest of the text
(what a repeat is checked against), where the last ``KEEP`` pieces lie, and the masks.

Events railproxy writes: a block is an ``error`` event (``type: error`` with ``code``,
``message``, ``param``, the next ``sequence_number``, and an OpenAI ``error`` object the
openai SDKs raise as ``APIError``); ``abort.style: content_filter`` is the refusal as a
message item of its own (when ``refusal_message`` is set) and ``response.incomplete`` with
``incomplete_details.reason: "content_filter"``. A stream ends with its last event (no
``[DONE]``).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from proxy.errors import BadRequest
from proxy.wire import responses_input
from proxy.wire.chat import all_strings, json_schema
from proxy.wire.client_json import client_json, dump_json, error_text, is_error
from proxy.wire.dialect import (
    DONE,
    ERROR_INDEX,
    Dialect,
    Envelope,
    Kind,
    Parsed,
    abort_body,
    decoded,
)
from proxy.wire.fields import OTHER_INDEX, Texts, add_rest, collect
from proxy.wire.responses_items import (
    DELTA_KEYS,
    LIFECYCLE_OR_TERMINAL,
    MAX_OUTPUT,
    SUMMARY,
    TERMINAL,
    UNKNOWN_DELTA,
    Reading,
    Spot,
    delta_spec,
    number,
    output_of,
    output_spots,
    reading,
    slot,
)
from proxy.wire.responses_state import MAX_SNAPSHOTS, Channel, Snap
from proxy.wire.sse import Event, data_only
from rails.base import Blocked, ChannelKey, TextField
from rails.guard import InputContent
from rails.stream import CannotRewrite

_DELTA_TEXT = re.compile(rb'"delta"\s*:\s*"[^"]')
_SEQUENCE = re.compile(rb'"sequence_number":\s*(\d{1,18})')
_TERMINAL_DATA = re.compile(rb'"type"\s*:\s*"(response\.(?:completed|incomplete|failed)|error)"')


class Responses(Dialect):
    name = "responses"
    asks_usage = False  # usage always comes in response.completed; no stream_options

    def __init__(self, request: dict[str, Any] | None = None) -> None:
        self._request = request or {}  # the request as sent upstream (echoes are not judged)
        self._chans: dict[ChannelKey, Channel] = {}
        self._seq = -1
        self._done_items: set[int] = set()
        self._item_slots: dict[int, set[int]] = {}
        self._response: dict[str, Any] = {}
        self._outputs = 0

    def for_request(self, body: dict[str, Any]) -> Responses:
        return Responses(body)

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        super().validate(body)
        given = body.get("input")
        if given is not None and not isinstance(given, (str, list)):
            raise BadRequest("'input' must be a string or a list of items.", param="input")
        for i, item in enumerate(given if isinstance(given, list) else []):
            if not isinstance(item, dict):
                raise BadRequest(f"'input[{i}]' must be an object.", param=f"input[{i}]")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise BadRequest("'instructions' must be a string.", param="instructions")

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [s.message for s in responses_input.slots(body)]

    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        found = responses_input.slots(body)
        for index, content in changes:
            found[index].write(content)

    def input_definitions(self, body: dict[str, Any]) -> list[str]:
        """Each tool as one text; ``text`` (its format's JSON schema, which gpt-oss's
        template shows the model); and every input item's fields besides the text judged
        as its message (``responses_input.unjudged_fields``: a function call's ``name`` and
        ``call_id``, which vLLM hands the template as a tool call's), as one text, as chat
        judges every field of its messages."""
        tools = body.get("tools")
        out = ["\n".join(all_strings(t)) for t in (tools if isinstance(tools, list) else [])]
        text = body.get("text")
        schema = json_schema(text.get("format") if isinstance(text, dict) else None)
        out.append("\n".join(all_strings(schema)))
        out.append("\n".join(all_strings(responses_input.unjudged_fields(body))))
        return [t for t in out if t]

    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        responses_input.refusal(body, allow_token_ids)

    def refuse_unguarded_output(self, body: dict[str, Any]) -> None:
        if body.get("background"):
            raise BadRequest(
                "background: true cannot be used while output rails are configured: a "
                "background response is read later through GET /v1/responses/{id}, which "
                "railproxy refuses (it would hand back text outside the rails). Send "
                "background: false.",
                param="background",
                code="background_not_guarded",
            )
        include = body.get("include")
        asked = isinstance(include, list) and "message.output_text.logprobs" in include
        if asked or body.get("top_logprobs"):
            raise BadRequest(
                "Token logprobs cannot be asked for on /v1/responses while output rails are "
                "configured: railproxy does not judge them.",
                param="top_logprobs" if body.get("top_logprobs") else "include",
                code="logprobs_not_guarded",
            )

    def refusal_body(self, body: dict[str, Any], refusal: str) -> dict[str, Any] | None:
        model = body.get("model")
        output = [_refusal_item(f"msg_{uuid.uuid4().hex}", refusal)] if refusal else []
        return _response(f"resp_{uuid.uuid4().hex}", model, "incomplete", output)

    # -- response side: parsing ------------------------------------------------------------

    def parse(self, ev: Event) -> Parsed:
        obj = decoded(ev)
        if isinstance(obj, Parsed):
            return obj
        if ev.event is not None and ev.event != obj.get("type"):
            return Parsed(Kind.OPAQUE)  # a client may go by either: they must agree
        try:
            self._sequence(obj)
            if is_error(obj) or obj.get("type") == "error":
                texts: Texts = [((ERROR_INDEX, "content", 0), error_text(obj))]
                return Parsed(Kind.ERROR, obj, texts, end=True)
            parsed = self._read(obj, ev)
        except ValueError:
            return Parsed(Kind.OPAQUE)
        return parsed

    def parse_obj(self, obj: dict[str, Any]) -> Parsed:
        return self._read(obj, None)

    def _sequence(self, obj: dict[str, Any]) -> None:
        seq = obj.get("sequence_number")
        if seq is None:
            return
        if isinstance(seq, bool) or not isinstance(seq, int) or seq <= self._seq:
            raise ValueError("sequence_number is not increasing")
        self._seq = seq

    def _read(self, obj: dict[str, Any], ev: Event | None) -> Parsed:
        kind = obj.get("type")
        delta = delta_spec(obj, kind) if isinstance(kind, str) else None
        if delta is not None:  # most events: the fast path
            return self._read_delta(obj, delta)
        found = reading(obj, self._request)
        parsed = Parsed(Kind.DATA, obj, ends=found.ends, rest=found.rest)
        parsed.end = parsed.complete = found.terminal
        lifecycle = obj.get("response")
        if isinstance(lifecycle, dict) and kind in LIFECYCLE_OR_TERMINAL:
            self._learn(lifecycle)
        snap = Snap(ev, ev.data or b"") if ev is not None else None
        seq = obj.get("sequence_number")
        seen: set[ChannelKey] = set()
        for spot in found.spots:
            if spot.key in seen:
                raise ValueError("one channel twice in one event")
            seen.add(spot.key)
            piece = self._take(spot, snap, seq if isinstance(seq, int) else None)
            if piece:
                if output_of(spot.key[0]) in self._done_items:
                    return Parsed(Kind.LATE)
                parsed.texts.append((spot.key, piece))
        self._close_items(found, parsed)
        if snap is not None and snap.counts and any(self._chans[k].masks for k in snap.counts):
            self._render(snap)
        return parsed

    def _read_delta(
        self, obj: dict[str, Any], spec: tuple[TextField, int, str | None, int]
    ) -> Parsed:
        """A delta event: what ``_read`` does for one, without the general machinery."""
        field_, sub, index_name, base = spec
        if sub == UNKNOWN_DELTA and "output_index" not in obj:
            oi = MAX_OUTPUT - 1  # a delta of no output item (a transcript, ...)
        else:
            oi = number(obj, "output_index", MAX_OUTPUT)
        part = number(obj, index_name, SUMMARY) if index_name else 0
        if obj.get("logprobs"):
            raise ValueError("token logprobs are not judged")
        text = obj.get("delta")
        if not isinstance(text, str):
            if text is not None:
                raise ValueError("'delta' is not a string")
            text = ""
        rest: list[str] = []
        for k, v in obj.items():
            if k not in DELTA_KEYS:
                collect(k, v, rest)
        parsed = Parsed(Kind.DATA, obj, rest=rest)
        if not text:
            return parsed
        if oi in self._done_items:
            return Parsed(Kind.LATE)
        key: ChannelKey = (slot(oi, base + part), field_, sub)
        ch = self._chans.get(key)
        if ch is None:
            ch = self._chans[key] = Channel()
            self._item_slots.setdefault(oi, set()).add(key[0])
        seq = obj.get("sequence_number")
        ch.add(text, seq if isinstance(seq, int) else None)
        parsed.texts.append((key, text))
        return parsed

    def _take(self, spot: Spot, snap: Snap | None, seq: int | None) -> str:
        """The new text a spot carries (a delta, or what a repeat adds to the channel)."""
        text = spot.text
        ch = self._chans.get(spot.key)
        if ch is None:
            if not text:
                return ""
            ch = self._chans[spot.key] = Channel()
        piece = text
        if not spot.delta:
            if not ch.repeats(text):
                raise ValueError("a repeated text differs from the streamed one")
            piece = text[ch.size :]
        if piece:
            ch.add(piece, seq)
        if not spot.delta and snap is not None and ch.size:
            if len(ch.snaps) >= MAX_SNAPSHOTS:
                raise ValueError("too many repeats of one text")
            snap.counts[spot.key] = ch.size
            ch.snaps.append(snap)
        return piece

    def _close_items(self, found: Reading, parsed: Parsed) -> None:
        for s in found.ends:
            self._item_slots.setdefault(output_of(s), set()).add(s)
        for key, _ in parsed.texts:
            self._item_slots.setdefault(output_of(key[0]), set()).add(key[0])
        oi = found.closes_item
        if oi is not None:
            self._done_items.add(oi)
            parsed.ends.extend(self._item_slots.get(oi, {slot(oi, 0)}))
            self._outputs = max(self._outputs, oi + 1)

    def _learn(self, response: dict[str, Any]) -> None:
        if not self._response:
            self._response = {
                k: response.get(k) for k in ("id", "created_at", "model") if k in response
            }
        output = response.get("output")
        if isinstance(output, list):
            self._outputs = max(self._outputs, len(output))

    def fast_kind(self, ev: Event) -> Kind:
        """The pass-through path's look at an event (no JSON parse): its end, errors, and
        its ``sequence_number`` (so an error event of ours continues the numbering)."""
        data = ev.data
        if data is None:
            return Kind.COMMENT
        kind = self._fast_kind(ev, data)
        at = data.rfind(b'"sequence_number":')
        found = _SEQUENCE.match(data, at) if at >= 0 else None
        if found is not None:
            self._seq = max(self._seq, int(found.group(1)))
        return kind

    def _fast_kind(self, ev: Event, data: bytes) -> Kind:
        if data == DONE:
            return Kind.DONE
        name = ev.event
        if name is None:
            found = _TERMINAL_DATA.search(data)
            name = found.group(1).decode() if found is not None else None
        if name in TERMINAL:
            return Kind.DONE
        if name == "error" or b'"error"' in data[:48]:
            return Kind.ERROR if self.parse(ev).kind is Kind.ERROR else Kind.DATA
        return Kind.DATA

    @staticmethod
    def carries_text(ev: Event) -> bool:
        return ev.data is not None and _DELTA_TEXT.search(ev.data) is not None

    @staticmethod
    def usage(ev: Event) -> tuple[int, int] | None:
        """``usage`` of a whole answer, or of the ``response`` a terminal event carries."""
        if ev.data is None or b'"usage"' not in ev.data:
            return None
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return None
        if isinstance(obj, dict) and isinstance(obj.get("response"), dict):
            obj = obj["response"]
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion
        return None

    @staticmethod
    def is_usage_only(ev: Event) -> bool:
        return False

    def client_form(self, ev: Event) -> Event:
        """The event itself (a mask may still rewrite it in place), as ``event:`` and
        ``data:`` lines only; an event without a name, as ``data_only``."""
        if ev.data is None or ev.event is None:
            return data_only(ev)
        _canonical(ev)
        return ev

    def final_texts(self, body: Any) -> Texts:
        spots: list[Spot] = []
        rest: list[str] = []
        output_spots(body, spots, rest, self._request)
        texts: Texts = []
        keys: set[ChannelKey] = set()
        for spot in spots:
            if spot.key in keys:
                raise ValueError("one channel twice in one answer")
            keys.add(spot.key)
            if text := spot.text:
                texts.append((spot.key, text))
        add_rest(rest, texts)
        return texts

    # -- response side: rewriting (masks) ------------------------------------------------

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        if key[0] == OTHER_INDEX:
            raise CannotRewrite("a string railproxy reads only to judge")
        spots: list[Spot] = []
        output_spots(body, spots, [])
        for spot in spots:
            if spot.key == key:
                spot.holder[spot.name] = text

    def rewrite_text(self, ev: Event, key: ChannelKey, new: str) -> Event:
        ch = self._chans.get(key)
        obj = client_json(ev.data or b"{}")
        span = ch.span(obj.get("sequence_number")) if ch is not None else None
        if ch is None or span is None:
            raise CannotRewrite("an event railproxy cannot map back to its text")
        ch.masks[span[0]] = (span[1], new)
        kind = obj.get("type")
        if isinstance(kind, str) and delta_spec(obj, kind) is not None:
            obj["delta"] = new
            _set_data(ev, dump_json(obj))
        for snap in ch.snaps:
            self._render(snap)
        return ev

    def _render(self, snap: Snap) -> None:
        """Write the shown texts of its channels into an event that repeats them (from its
        data as it came: the masks apply to the text as it came)."""
        obj = client_json(snap.data)
        for spot in reading(obj, {}).spots:
            count = snap.counts.get(spot.key)
            if count is not None and not spot.delta:
                spot.holder[spot.name] = self._chans[spot.key].shown(spot.text[:count])
        _set_data(snap.ev, dump_json(obj))

    # -- events we author ------------------------------------------------------------------

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        if style == "content_filter":
            return self._content_filter(refusal, env)
        return self._error(abort_body(blocked)["error"])

    def stream_error(self, message: str, code: str) -> bytes:
        return self.error_event(message, code)

    def error_event(self, message: str, code: str) -> bytes:
        error = {"message": message, "type": "upstream_error", "param": None, "code": code}
        return self._error(error)

    def done(self) -> bytes:
        return b""

    def _error(self, error: dict[str, Any]) -> bytes:
        """``type: error`` as the API sends it, plus the ``error`` object the SDKs raise."""
        fields = {"code": error["code"], "message": error["message"], "param": error["param"]}
        return self._event("error", {**fields, "error": error})

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        self._seq += 1
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **body})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _content_filter(self, refusal: str, env: Envelope) -> bytes:
        out = b""
        if not self._response:
            rid = "resp_" + (env.id.partition("-")[2] or uuid.uuid4().hex)
            self._response = {"id": rid, "created_at": int(time.time()), "model": env.model}
            created = self._lifecycle("in_progress", None)
            out += self._event("response.created", {"response": created})
        if refusal:
            out += self._refusal_events(refusal)
        incomplete = self._lifecycle("incomplete", {"reason": "content_filter"})
        return out + self._event("response.incomplete", {"response": incomplete})

    def _lifecycle(self, status: str, details: dict[str, Any] | None) -> dict[str, Any]:
        """The response object of a lifecycle event of ours: ``output`` left out, so the
        SDK's stream helper fills it with the items the client was sent."""
        body = {**self._response, "object": "response", "status": status}
        return {**body, "incomplete_details": details, "error": None}

    def _refusal_events(self, refusal: str) -> bytes:
        oi, item_id = self._outputs, f"msg_{uuid.uuid4().hex}"
        self._outputs += 1
        at = {"output_index": oi, "item_id": item_id, "content_index": 0}
        opening = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress"}
        done = _refusal_item(item_id, refusal)
        return b"".join(
            [
                self._event(
                    "response.output_item.added",
                    {"output_index": oi, "item": {**opening, "content": []}},
                ),
                self._event(
                    "response.content_part.added",
                    {**at, "part": {"type": "refusal", "refusal": ""}},
                ),
                self._event("response.refusal.delta", {**at, "delta": refusal}),
                self._event("response.refusal.done", {**at, "refusal": refusal}),
                self._event("response.content_part.done", {**at, "part": done["content"][0]}),
                self._event("response.output_item.done", {"output_index": oi, "item": done}),
            ]
        )


def _canonical(ev: Event) -> None:
    """The event as it goes to a guarded client: its ``event`` name (when it has one) and
    its ``data``, nothing else (comments, ``id`` and unknown fields are not judged)."""
    name, data, raw = ev.event, ev.data, ev.raw
    if name is None or data is None:
        return
    # The usual case, already canonical: "event: <name>\ndata: <data>\n\n", two lines
    # whose lengths leave no room for anything else (ASCII names: vLLM's event types).
    size = 16 + len(name) + len(data)
    canonical = len(raw) == size and raw.startswith(b"event: ") and raw.count(b"\n") == 3
    if canonical and b"\r" not in raw:
        return
    ev.raw = _frame(name, data)


def _frame(name: str, data: bytes) -> bytes:
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return b"event: " + name.encode() + b"\n" + lines + b"\n"


def _set_data(ev: Event, data: bytes) -> None:
    ev.data = data
    ev.raw = _frame(ev.event, data) if ev.event is not None else b"data: " + data + b"\n\n"


def _refusal_item(item_id: str, refusal: str) -> dict[str, Any]:
    part = {"type": "refusal", "refusal": refusal}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [part],
    }


def _response(rid: str, model: Any, status: str, output: list[Any]) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "model": model if isinstance(model, str) else "",
        "status": status,
        "incomplete_details": {"reason": "content_filter"},
        "error": None,
        "output": output,
    }


RESPONSES = Responses()
