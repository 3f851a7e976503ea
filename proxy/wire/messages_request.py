"""The Anthropic Messages request read as chat messages for input rails, and written back.

``slots`` turns ``system`` and ``messages`` into chat messages whose content is the text parts
input rails judge, each part with the function that writes a masked text back into the very
string it was read from (a text block's ``text``, a tool result's ``content``, a text
document's ``data``), so the request keeps every block. ``unreadable`` finds the first part
of a request whose text railproxy cannot read (``proxy.wire.messages``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard


@dataclass(slots=True)
class Slot:
    """One chat message input rails judge (its content: text parts), and for each part the
    function writing a masked text back where the part was read."""

    message: dict[str, Any]
    writers: list[Callable[[str], None]]


class _Parts:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.writers: list[Callable[[str], None]] = []

    def add(self, holder: dict[str, Any], key: str) -> None:
        """The string ``holder[key]``, if it is one."""
        value = holder.get(key)
        if isinstance(value, str):
            self.texts.append(value)
            self.writers.append(_setter(holder, key))

    def slot(self, role: str) -> Slot | None:
        if not self.texts:
            return None
        parts = [{"type": "text", "text": t} for t in self.texts]
        return Slot({"role": role, "content": parts}, self.writers)


def _setter(holder: dict[str, Any], key: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        holder[key] = text

    return write


def slots(body: dict[str, Any]) -> list[Slot]:
    """The request as chat messages: ``system``, then each message in order, each
    ``tool_result`` block as a ``tool`` message before the rest of its message (as vLLM
    converts them). Shapes ``refuse_unjudged_input`` refuses are skipped here."""
    out: list[Slot] = []
    system = _Parts()
    if isinstance(body.get("system"), str):
        system.add(body, "system")
    for block in as_list(body.get("system")):
        if _is_type(block, "text"):
            system.add(block, "text")
    _append(out, system.slot("system"))
    for m in as_list(body.get("messages")):
        if not isinstance(m, dict):
            continue
        role = role_of(m)
        parts = _Parts()
        if isinstance(m.get("content"), str):
            parts.add(m, "content")
        for block in blocks(m):
            if _is_type(block, "tool_result"):
                _append(out, _tool_result(block).slot("tool"))
            else:
                _block_parts(block, parts)
        _append(out, parts.slot(str(role)))
    return out


# Roles vLLM's Messages request reads as another (Claude Code's ``ctx`` and ``msg``: user).
_VLLM_ROLES = {"ctx": "user", "msg": "user"}


def role_of(message: dict[str, Any]) -> str:
    """A message's role as vLLM reads it."""
    role = message.get("role")
    return _VLLM_ROLES.get(role, role) if isinstance(role, str) else ""


def _append(out: list[Slot], slot: Slot | None) -> None:
    if slot is not None:
        out.append(slot)


def _tool_result(block: dict[str, Any]) -> _Parts:
    parts = _Parts()
    if isinstance(block.get("content"), str):
        parts.add(block, "content")
    for item in as_list(block.get("content")):
        _block_parts(item, parts)
    return parts


def _block_parts(block: Any, parts: _Parts) -> None:
    """The texts of a text or document block (a tool_use's and a thinking's are
    definitions: ``input_definitions``)."""
    if _is_type(block, "text"):
        parts.add(block, "text")
    elif _is_type(block, "document"):
        for name in ("title", "context"):
            parts.add(block, name)
        source = block.get("source")
        if _is_type(source, "text"):
            parts.add(source, "data")
        elif _is_type(source, "content"):
            if isinstance(source.get("content"), str):
                parts.add(source, "content")
            for item in as_list(source.get("content")):
                _block_parts(item, parts)


# Blocks whose every text railproxy reads (or that hold none), by where they may appear.
_MESSAGE_BLOCKS = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document"}
)
_NESTED_BLOCKS = frozenset({"text", "image", "document"})


# Tools the client runs (their results come back as tool_result blocks, judged); any other
# type (web_search_*, web_fetch_*, code_execution_*, ...) runs on the server.
_CLIENT_TOOLS = ("custom", "bash_", "text_editor_", "computer_", "memory_")


def server_side(body: dict[str, Any]) -> str | None:
    """The path of the first tool the server runs (``mcp_servers`` included): its results
    (web pages, files, program output) reach the model without passing input rails."""
    if body.get("mcp_servers"):
        return "mcp_servers"
    for i, tool in enumerate(as_list(body.get("tools"))):
        kind = tool.get("type", "custom") if isinstance(tool, dict) else None
        if not (isinstance(kind, str) and kind.startswith(_CLIENT_TOOLS)):
            return f"tools[{i}]"
    return None


def unreadable(body: dict[str, Any]) -> str | None:
    """The path of the first part of the request whose text railproxy cannot read."""
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            if not _text_block(block):
                return f"system[{i}]"
    for i, m in enumerate(body["messages"]):
        where = f"messages[{i}].content"
        content = m.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return where
        for j, block in enumerate(content):
            found = _unreadable_block(block, _MESSAGE_BLOCKS, f"{where}[{j}]")
            if found is None and _shown_whole(block, m):
                found = f"{where}[{j}]"
            if found is not None:
                return found
    return None


def _shown_whole(block: Any, message: dict[str, Any]) -> bool:
    """A tool_result outside a user message: vLLM shows ``str(content)``, so a list of
    blocks reaches the model as Python prints it, every key and value (not only the text
    input rails judge). A string there is the string."""
    return (
        _is_type(block, "tool_result")
        and isinstance(block.get("content"), list)
        and role_of(message) != "user"
    )


def _unreadable_block(block: Any, allowed: frozenset[str], where: str) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str) or kind not in allowed:
        return where
    assert isinstance(block, dict)
    if kind == "text":
        return None if _text_block(block) else where
    if kind == "tool_result":
        content = block.get("content")
        if content is None or isinstance(content, str):
            return None
        if not isinstance(content, list):
            return f"{where}.content"
        for k, item in enumerate(content):
            found = _unreadable_block(item, _NESTED_BLOCKS, f"{where}.content[{k}]")
            if found is not None:
                return found
    if kind == "document":
        return _unreadable_document(block, where)
    return None


def _unreadable_document(block: dict[str, Any], where: str) -> str | None:
    """A document is read when its source is text (``data``) or text blocks; a PDF (base64,
    URL or file) holds text the model reads and railproxy cannot."""
    for name in ("title", "context"):
        if block.get(name) is not None and not isinstance(block[name], str):
            return f"{where}.{name}"
    source = block.get("source")
    if _is_type(source, "text") and isinstance(source.get("data"), str):
        return None
    if _is_type(source, "content"):
        content = source.get("content")
        if isinstance(content, str):
            return None
        if isinstance(content, list):
            for k, item in enumerate(content):
                inner = f"{where}.source.content[{k}]"
                found = _unreadable_block(item, _NESTED_BLOCKS - {"document"}, inner)
                if found is not None:
                    return found
            return None
    return f"{where}.source"


def _text_block(block: Any) -> bool:
    return _is_type(block, "text") and isinstance(block.get("text"), str)


def _is_type(value: Any, kind: str) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and value.get("type") == kind


def blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in as_list(content) if isinstance(b, dict)]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def without(block: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != name}
