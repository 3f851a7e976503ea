"""The Responses API's request as input rails read it: ``instructions`` and ``input`` (a
string, or a list of items) as chat messages, each with where its mask goes back.

=========================  ===========  =================================================
item                       role         text judged (and masked in place)
=========================  ===========  =================================================
``instructions``           system       the string
``input`` (a string)       user         the string
message (``role``)         its role     ``content``: a string or parts with ``text``
  its ``refusal`` parts    assistant    each part's ``refusal``
``function_call_output``   tool         ``output``: a string or parts with ``text``
``function_call``          assistant    ``arguments``
``reasoning``              assistant    ``content`` and ``summary`` parts' ``text``
``item_reference``         (none)       no text: a stored item the client already has
=========================  ===========  =================================================

Any other item type, a part whose ``text`` is not a string, ``encrypted_content``, a
stored ``prompt`` template and a stored ``conversation`` are input railproxy cannot read as
text: refused while an input rail enforces (``refusal``). ``previous_response_id`` is
forwarded (the previous turn passed the rails when it was made).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.errors import BadRequest

Setter = Callable[[Any], None]


@dataclass(slots=True)
class Slot:
    """One judged input: the chat message rails read, and how to write a mask back."""

    message: dict[str, Any]
    write: Setter


def slots(body: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        out.append(Slot(_msg("system", instructions), _setter(body, "instructions")))
    given = body.get("input")
    if isinstance(given, str):
        out.append(Slot(_msg("user", given), _setter(body, "input")))
    elif isinstance(given, list):
        for item in given:
            if isinstance(item, dict):
                _item_slots(item, out)
    return out


def _item_slots(item: dict[str, Any], out: list[Slot]) -> None:
    kind = item_type(item)
    if kind == "message":
        role = item.get("role")
        out.append(
            Slot(
                _msg(role if isinstance(role, str) else "", item.get("content")),
                _setter(item, "content"),
            )
        )
        for part in _list(item.get("content")):
            if isinstance(part, dict) and isinstance(part.get("refusal"), str):
                out.append(Slot(_msg("assistant", part["refusal"]), _setter(part, "refusal")))
    elif kind == "function_call_output":
        out.append(Slot(_msg("tool", item.get("output")), _setter(item, "output")))
    elif kind == "function_call":
        out.append(Slot(_msg("assistant", item.get("arguments")), _setter(item, "arguments")))
    elif kind == "reasoning":
        for name in ("content", "summary"):
            if isinstance(item.get(name), list):
                out.append(Slot(_msg("assistant", item[name]), _setter(item, name)))


def item_type(item: dict[str, Any]) -> Any:
    """An input item's type; an item with a ``role`` and no ``type`` is a message."""
    kind = item.get("type")
    return "message" if kind is None and "role" in item else kind


def _msg(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def _setter(holder: dict[str, Any], name: str) -> Setter:
    def write(value: Any) -> None:
        holder[name] = value

    return write


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_READABLE = frozenset({"message", "function_call_output", "function_call", "reasoning"})


def refusal(body: dict[str, Any]) -> None:
    """``BadRequest`` for input the rails cannot read as text."""
    if body.get("prompt") is not None:
        raise _unjudged("'prompt' (a stored prompt template) cannot be judged", "prompt")
    if body.get("conversation") is not None:
        raise _unjudged(
            "'conversation' (items stored on the server) cannot be judged", "conversation"
        )
    given = body.get("input")
    if given is None or isinstance(given, str):
        return
    for i, item in enumerate(given):
        where = f"input[{i}]"
        kind = item_type(item)
        if kind == "item_reference":
            continue
        if kind not in _READABLE:
            raise _unjudged(f"'{where}' is an item of type {kind!r}", where)
        _check_item(item, kind, where)


def _check_item(item: dict[str, Any], kind: str, where: str) -> None:
    if kind == "function_call":
        if not isinstance(item.get("arguments"), str):
            raise _unjudged(f"'{where}.arguments' must be a string", f"{where}.arguments")
        return
    if kind == "reasoning":
        if item.get("encrypted_content"):
            raise _unjudged(f"'{where}.encrypted_content' cannot be read", where)
        for name in ("content", "summary"):
            _check_content(item.get(name), f"{where}.{name}", text_only=True)
        return
    name = "content" if kind == "message" else "output"
    _check_content(item.get(name), f"{where}.{name}")


def _check_content(content: Any, where: str, text_only: bool = False) -> None:
    if content is None or (isinstance(content, str) and not text_only):
        return
    if not isinstance(content, list) or not all(_readable_part(p) for p in content):
        raise _unjudged(
            f"'{where}' must be a string or a list of content parts (objects) with string 'text'",
            where,
        )


def _readable_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    return isinstance(part.get("text", ""), str) and isinstance(part.get("refusal", ""), str)


def _unjudged(what: str, param: str) -> BadRequest:
    return BadRequest(f"Input rails judge text: {what}.", param=param, code="input_not_judged")
