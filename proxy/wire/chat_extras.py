"""Texts of a chat request outside its messages that a chat template shows the model.

vLLM hands two request fields to the chat template besides the messages and tools:
``documents`` (RAG documents, which Command-R's and Granite's templates render) and
``chat_template_kwargs`` (any template variable: gpt-oss's ``model_identity``, ``documents``
again, ...); TGI appends ``tool_prompt`` to the last message when ``tools`` are given
(``"\n---\n" + tool_prompt``). Input rails judge every string in them as a tool result after
the last message
(so ``messages: last_user`` judges them too: retrieved documents are where injected
instructions come from), one message per field, each string a text part whose mask is
written back into that very string. A template may render a document's keys too, so every
key in these fields must read as a name (``odd_key``); the strings a template shows are
then all judged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rails.guard import InputContent

FIELDS = ("documents", "chat_template_kwargs", "tool_prompt")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(slots=True)
class Extra:
    """One field's strings as a tool message, with the function writing each back."""

    message: dict[str, Any]
    writers: list[Callable[[str], None]]

    def write(self, content: InputContent) -> None:
        texts = [content] if isinstance(content, str) else [p["text"] for p in content]
        for write, text in zip(self.writers, texts, strict=True):
            write(text)


def extras(body: dict[str, Any], fields: tuple[str, ...] = FIELDS) -> list[Extra]:
    """``fields``: the ones the API's request hands the template (vLLM's Messages request
    has ``chat_template_kwargs`` only)."""
    out: list[Extra] = []
    for name in fields:
        writers: list[Callable[[str], None]] = []
        texts: list[str] = []
        for holder, key in _string_spots(body, name):
            texts.append(holder[key])
            writers.append(_setter(holder, key))
        if texts:
            parts = [{"type": "text", "text": t} for t in texts]
            out.append(Extra({"role": "tool", "content": parts}, writers))
    return out


def odd_key(body: dict[str, Any], fields: tuple[str, ...] = FIELDS) -> str | None:
    """The field holding the first key that does not read as a name, if any."""
    for name in fields:
        stack: list[Any] = [body.get(name)]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if not all(isinstance(k, str) and _NAME.fullmatch(k) for k in item):
                    return name
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _string_spots(body: dict[str, Any], name: str) -> list[tuple[Any, Any]]:
    """(holder, key) of every non-empty string under ``body[name]``, in document order
    (iterative: a deeply nested request cannot exhaust the stack)."""
    out: list[tuple[Any, Any]] = []
    stack: list[tuple[Any, Any]] = [(body, name)] if name in body else []
    while stack:
        holder, key = stack.pop()
        value = holder[key]
        if isinstance(value, str):
            if value:
                out.append((holder, key))
        elif isinstance(value, dict):
            stack.extend((value, k) for k in reversed(list(value)))
        elif isinstance(value, list):
            stack.extend((value, i) for i in reversed(range(len(value))))
    return out


def _setter(holder: Any, key: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        holder[key] = text

    return write
