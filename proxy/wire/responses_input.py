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
=========================  ===========  =================================================

While an input rail enforces, ``refusal`` refuses what input rails cannot read: any other
item type; a part other than text (``input_text``, ``output_text``, ``refusal``, ...) and
``input_image`` (images pass, as on chat: ``proxy.wire.chat_parts``), so ``input_file``
(``file_data``, ``file_id``, ``file_url``) and ``input_audio``; embeddings (as token ids);
``encrypted_content``; and input stored on the server, which reaches the model without
passing these rails (a turn may have been made under another rails config, or straight
against the upstream): a stored ``prompt`` template, a ``conversation``,
``previous_response_id`` and ``item_reference`` items (the client sends those turns
inline); vLLM's ``previous_input_messages`` and ``previous_response`` (earlier turns in a
field input rails do not read: the client sends them as ``input`` items); and built-in
tools (any but ``function`` and ``custom``), which the server runs, putting their results
(web pages, files, program output) in front of the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.errors import BadRequest
from proxy.wire import chat_parts

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


# The fields of each item whose text ``slots`` judges as a message.
_AS_MESSAGE = {
    "message": ("type", "role", "content"),
    "function_call_output": ("type", "output"),
    "function_call": ("type", "arguments"),
    "reasoning": ("type", "content", "summary"),
}


def unjudged_fields(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each input item's other fields (a function call's ``name`` and ``call_id``, an
    output's ``call_id``...): the template shows them too, so with ``messages: all`` input
    rails judge them as definitions (a mask there cannot be written back: a block)."""
    given = body.get("input")
    out: list[dict[str, Any]] = []
    for item in given if isinstance(given, list) else []:
        if isinstance(item, dict):
            judged = _AS_MESSAGE.get(item_type(item), ("type",))
            out.append({k: v for k, v in item.items() if k not in judged})
    return out


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
# Part types whose text input rails read, each with the key of its text (``input_image``
# passes, as images do on chat; ``input_file``, ``input_audio`` and the rest are refused).
_TEXT_PARTS = {
    "input_text": "text",
    "output_text": "text",
    "text": "text",
    "refusal": "refusal",
    "summary_text": "text",
    "reasoning_text": "text",
}


def refusal(body: dict[str, Any], allow_token_ids: bool = False) -> None:
    """``BadRequest`` for input the rails cannot read as text."""
    if body.get("prompt") is not None:
        raise _stored("prompt", "'prompt' (a prompt template stored on the server)")
    if body.get("conversation") is not None:
        raise _stored("conversation", "'conversation' (items stored on the server)")
    if body.get("previous_response_id") is not None:
        raise _stored("previous_response_id", "'previous_response_id' (turns stored on the server)")
    for name in _EARLIER_TURNS:
        if body.get(name) is not None:
            raise _unjudged(
                f"'{name}' (vLLM's earlier turns, which it puts in the prompt) is not read "
                "by input rails; send those turns as items of 'input'",
                name,
            )
    _check_tools(body.get("tools"))
    given = body.get("input")
    if given is None or isinstance(given, str):
        return
    for i, item in enumerate(given):
        where = f"input[{i}]"
        kind = item_type(item)
        if kind == "item_reference":
            raise _stored(where, f"'{where}' (an item_reference: an item stored on the server)")
        if kind not in _READABLE:
            raise _unjudged(f"'{where}' is an item of type {kind!r}", where)
        _check_item(item, kind, where, allow_token_ids)


# vLLM's own fields for stateless multi-turn: earlier turns (chat or harmony messages), or
# a whole previous response whose output becomes the history; gpt-oss reads both.
_EARLIER_TURNS = ("previous_input_messages", "previous_response")

_CLIENT_TOOLS = frozenset({"function", "custom"})  # run by the client: results come in input


def _check_tools(tools: Any) -> None:
    """A built-in tool (``web_search_preview``, ``code_interpreter``, ``mcp``, ...) runs on
    the server, which puts its results (web pages, files, program output) in front of the
    model: text no input rail reads."""
    for i, tool in enumerate(_list(tools)):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in _CLIENT_TOOLS:
            raise _unjudged(
                f"'tools[{i}]' is a tool of type {kind!r}, which runs on the server: its "
                "results reach the model without passing input rails; offer it as a function "
                "tool and send its results in 'input'",
                f"tools[{i}]",
            )


def _check_item(item: dict[str, Any], kind: str, where: str, allow_ids: bool) -> None:
    if kind == "function_call":
        if not isinstance(item.get("arguments"), str):
            raise _unjudged(f"'{where}.arguments' must be a string", f"{where}.arguments")
        return
    if kind == "reasoning":
        if item.get("encrypted_content"):
            raise _unjudged(f"'{where}.encrypted_content' cannot be read", where)
        for name in ("content", "summary"):
            _check_content(item.get(name), f"{where}.{name}", allow_ids, text_only=True)
        return
    name = "content" if kind == "message" else "output"
    _check_content(item.get(name), f"{where}.{name}", allow_ids)


def _check_content(content: Any, where: str, allow_ids: bool, text_only: bool = False) -> None:
    if content is None or (isinstance(content, str) and not text_only):
        return
    if not isinstance(content, list):
        raise _unjudged(f"'{where}' must be a string or a list of content parts", where)
    for j, part in enumerate(content):
        _check_part(part, f"{where}[{j}]", allow_ids)


def _check_part(part: Any, where: str, allow_ids: bool) -> None:
    kind, what = chat_parts.kind_of(part, _TEXT_PARTS)
    if kind is chat_parts.Kind.EMBEDS and not allow_ids:
        raise chat_parts.embeddings_refused(where, what, where)
    if isinstance(part, dict) and not isinstance(part.get("refusal", ""), str):
        kind, what = chat_parts.Kind.UNREAD, "whose 'refusal' is not a string"
    if kind is chat_parts.Kind.UNREAD:
        raise _unjudged(
            f"'{where}' is a part of type {what} (a file, audio, or a part of another kind), "
            "which the model reads and input rails cannot; send its text as an input_text "
            "part",
            where,
        )


def _stored(param: str, what: str) -> BadRequest:
    return _unjudged(
        f"{what} would reach the model without passing input rails (it may have been made "
        "under another rails config, or straight against the upstream); send its text "
        "inline, in 'instructions' and 'input', instead",
        param,
    )


def _unjudged(what: str, param: str) -> BadRequest:
    return BadRequest(f"Input rails judge text: {what}.", param=param, code="input_not_judged")
