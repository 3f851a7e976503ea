"""Where the Responses API puts text: the input items input rails judge, and the output
items, parts and events whose strings are shown to a client (``proxy.wire.responses``).

Output channels (``rails.base.ChannelKey``): the choice index is a *slot* of one output
item, ``output_index * SLOTS + part``, so each content part is a channel of its own that its
``.done`` event can close without closing its item's other parts:

======================================  ==============================================
``content``, slot (oi, ci)              a message's ``output_text`` part
``refusal``, slot (oi, ci)              a message's ``refusal`` part
``reasoning`` 0, slot (oi, ci)          a reasoning item's ``reasoning_text`` part
``reasoning`` 1, slot (oi, 32 + si)     a reasoning item's ``summary_text`` part
``tool_arguments`` / ``tool_names``,    a ``function_call`` item's ``arguments`` / ``name``
slot (oi, 0)
======================================  ==============================================

Every other string (ids, statuses, annotations, items of other types, unknown fields) goes
to ``rest`` and is judged on the ``OTHER`` channel. Token logprobs are not read: a text part
carrying any is unreadable (``ValueError``).

Events (``reading``): a delta continues its channel; a ``.done`` event, a part, an item or a
lifecycle event's ``response`` repeats channels' texts (``Spot.delta`` false); ``.done``
events close their part's slot, ``output_item.done`` its item, ``response.completed`` /
``incomplete`` / ``failed`` the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.wire.chat import all_strings
from proxy.wire.fields import MAX_INDEX, collect, collect_except
from rails.base import ChannelKey, TextField

DeltaSpec = tuple[TextField, int, str | None, int]  # field, sub-channel, index field, offset

SLOTS = 64  # slots per output item: content parts 0..31, reasoning summaries 32..63
SUMMARY = 32
MAX_OUTPUT = MAX_INDEX // SLOTS


@dataclass(slots=True)
class Spot:
    """One text in a parsed event or answer: channel, the object holding it and its field.
    ``delta``: the text continues its channel (else it repeats the channel's whole text)."""

    key: ChannelKey
    holder: dict[str, Any]
    name: str
    delta: bool = False

    @property
    def text(self) -> str:
        value = self.holder.get(self.name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"'{self.name}' is not a string")
        return value


def number(obj: dict[str, Any], name: str, limit: int) -> int:
    """An index field as the client reads it: an int from 0 below ``limit``."""
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise ValueError(f"unreadable {name} {value!r}")
    return value


def slot(output_index: int, part: int) -> int:
    return output_index * SLOTS + part


def output_of(slot_index: int) -> int:
    return slot_index // SLOTS


_PART_FIELDS: dict[str, tuple[TextField, int, str]] = {
    "output_text": ("content", 0, "text"),
    "refusal": ("refusal", 0, "refusal"),
    "reasoning_text": ("reasoning", 0, "text"),
    "summary_text": ("reasoning", 1, "text"),
}


def part_spot(oi: int, index: int, part: Any, spots: list[Spot], rest: list[str]) -> None:
    """A content (or summary) part: its text as a spot, every other string into ``rest``."""
    if not isinstance(part, dict):
        collect("", part, rest)
        return
    known = _PART_FIELDS.get(part.get("type"))  # type: ignore[arg-type]
    if known is None:
        collect("", part, rest)
        return
    field, sub, name = known
    base = SUMMARY if sub == 1 else 0
    if index >= SUMMARY:
        raise ValueError(f"part index {index} out of range")
    if part.get("logprobs"):
        raise ValueError("token logprobs are not judged")
    spots.append(Spot((slot(oi, base + index), field, sub), part, name))
    collect_except(part, frozenset({name, "logprobs"}), rest)


def item_spots(oi: int, item: Any, spots: list[Spot], rest: list[str]) -> None:
    """An output item's texts (message, reasoning, function call); any other item's
    strings all go to ``rest``."""
    if oi >= MAX_OUTPUT:
        raise ValueError(f"output index {oi} out of range")
    if not isinstance(item, dict):
        collect("", item, rest)
        return
    kind = item.get("type")
    if kind == "function_call":
        spots.append(Spot((slot(oi, 0), "tool_arguments", 0), item, "arguments"))
        spots.append(Spot((slot(oi, 0), "tool_names", 0), item, "name"))
        collect_except(item, frozenset({"arguments", "name"}), rest)
        return
    lists = {"message": ("content",), "reasoning": ("content", "summary")}.get(kind)  # type: ignore[arg-type]
    if lists is None:
        collect("", item, rest)
        return
    for name in lists:
        parts = item.get(name)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise ValueError(f"'{name}' is not a list")
        for index, part in enumerate(parts):
            part_spot(oi, index, part, spots, rest)
    collect_except(item, frozenset(lists), rest)


def output_spots(
    response: Any, spots: list[Spot], rest: list[str], request: dict[str, Any] | None = None
) -> None:
    """A whole response object (a non-streamed answer, or the one ``response.*`` lifecycle
    events carry): the texts of every output item, every other string into ``rest``, but
    the fields that only echo the ``request`` (``echoes``)."""
    if not isinstance(response, dict):
        raise ValueError("the response is not an object")
    output = response.get("output")
    if output is not None and not isinstance(output, list):
        raise ValueError("'output' is not a list")
    for oi, item in enumerate(output or []):
        item_spots(oi, item, spots, rest)
    collect_except(response, frozenset({"output", *echoes(response, request or {})}), rest)


def echoes(response: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """The fields of a response object that repeat the request as sent upstream (after
    input rails' masks): ``instructions``, ``tools``, ``metadata``, ``model``... A field is
    an echo when every string in it (keys included) is a string of the request's field of
    that name: the client's own text, not generated (servers add defaults, reorder keys).
    Their strings are not judged as output (an e-mail address in the instructions would
    otherwise make an output mask block every stream)."""
    out = []
    for name, value in response.items():
        asked = request.get(name)
        if name == "output" or asked is None:
            continue
        if value == asked:
            out.append(name)
            continue
        said = set(all_strings(asked))
        if all(s in said for s in all_strings(value)):
            out.append(name)
    return out


# -- events ------------------------------------------------------------------------------

UNKNOWN_DELTA = 2  # the content sub-channel of delta events no reader knows
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
# delta event type -> (field, sub-channel, index field, slot offset)
DELTAS: dict[str, DeltaSpec] = {
    "response.output_text.delta": ("content", 0, "content_index", 0),
    "response.refusal.delta": ("refusal", 0, "content_index", 0),
    "response.reasoning_text.delta": ("reasoning", 0, "content_index", 0),
    "response.reasoning_summary_text.delta": ("reasoning", 1, "summary_index", SUMMARY),
    "response.function_call_arguments.delta": ("tool_arguments", 0, None, 0),
}
# done event type -> (field, sub-channel, index field, slot offset, text field)
_DONES: dict[str, tuple[TextField, int, str | None, int, str]] = {
    "response.output_text.done": ("content", 0, "content_index", 0, "text"),
    "response.refusal.done": ("refusal", 0, "content_index", 0, "refusal"),
    "response.reasoning_text.done": ("reasoning", 0, "content_index", 0, "text"),
    "response.reasoning_summary_text.done": ("reasoning", 1, "summary_index", SUMMARY, "text"),
    "response.function_call_arguments.done": ("tool_arguments", 0, None, 0, "arguments"),
}
_PARTS = {
    "response.content_part.added": "content_index",
    "response.content_part.done": "content_index",
    "response.reasoning_summary_part.added": "summary_index",
    "response.reasoning_summary_part.done": "summary_index",
}
_KNOWN_INDEXES = frozenset({"type", "sequence_number", "output_index"})
DELTA_KEYS = _KNOWN_INDEXES | {"content_index", "summary_index", "delta", "logprobs"}
LIFECYCLE_OR_TERMINAL = LIFECYCLE | TERMINAL


@dataclass(slots=True)
class Reading:
    spots: list[Spot] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    closes_item: int | None = None
    terminal: bool = False


def delta_spec(obj: dict[str, Any], kind: str) -> DeltaSpec | None:
    """How a delta event continues its channel: a known one, or any other ``*.delta``
    event with a string ``delta`` (judged in windows as text of its own, sub-channel
    ``UNKNOWN_DELTA`` of ``content``: a phrase split over its deltas is still seen)."""
    spec = DELTAS.get(kind)
    if spec is None and kind.endswith(".delta") and isinstance(obj.get("delta"), str):
        index = "content_index" if "content_index" in obj else None
        spec = ("content", UNKNOWN_DELTA, index, 0)
    return spec


def reading(obj: dict[str, Any], request: dict[str, Any]) -> Reading:
    """Where an event's texts are, what it closes, and its other strings."""
    r = Reading()
    kind = obj.get("type")
    if not isinstance(kind, str):
        collect("", obj, r.rest)
    elif kind in DELTAS:
        field_, sub, index_name, base = DELTAS[kind]
        oi = number(obj, "output_index", MAX_OUTPUT)
        part = number(obj, index_name, SUMMARY) if index_name else 0
        if obj.get("logprobs"):
            raise ValueError("token logprobs are not judged")
        r.spots.append(Spot((slot(oi, base + part), field_, sub), obj, "delta", delta=True))
        collect_except(obj, _KNOWN_INDEXES | {"delta", "logprobs", index_name or ""}, r.rest)
    elif kind in _DONES:
        field_, sub, index_name, base, name = _DONES[kind]
        oi = number(obj, "output_index", MAX_OUTPUT)
        part = number(obj, index_name, SUMMARY) if index_name else 0
        if obj.get("logprobs"):
            raise ValueError("token logprobs are not judged")
        key = (slot(oi, base + part), field_, sub)
        r.spots.append(Spot(key, obj, name))
        read = {name, "logprobs", index_name or ""}
        if kind == "response.function_call_arguments.done" and "name" in obj:
            r.spots.append(Spot((key[0], "tool_names", 0), obj, "name"))
            read.add("name")
        r.ends.append(key[0])
        collect_except(obj, _KNOWN_INDEXES | read, r.rest)
    elif kind in _PARTS:
        index_name = _PARTS[kind]
        oi = number(obj, "output_index", MAX_OUTPUT)
        part = number(obj, index_name, SUMMARY)
        before = len(r.spots)
        part_spot(oi, part, obj.get("part"), r.spots, r.rest)
        if kind.endswith(".done"):
            base = SUMMARY if index_name == "summary_index" else 0
            found = len(r.spots) > before
            r.ends.append(r.spots[before].key[0] if found else slot(oi, base + part))
        collect_except(obj, _KNOWN_INDEXES | {"part", index_name}, r.rest)
    elif kind in ("response.output_item.added", "response.output_item.done"):
        oi = number(obj, "output_index", MAX_OUTPUT)
        item_spots(oi, obj.get("item"), r.spots, r.rest)
        if kind == "response.output_item.done":
            r.closes_item = oi
        collect_except(obj, _KNOWN_INDEXES | {"item"}, r.rest)
    elif kind in LIFECYCLE or kind in TERMINAL:
        output_spots(obj.get("response"), r.spots, r.rest, request)
        r.terminal = kind in TERMINAL
        collect_except(obj, _KNOWN_INDEXES | {"response"}, r.rest)
    else:  # an event no reader knows: every string of it is judged
        collect("", obj, r.rest)
    return r
