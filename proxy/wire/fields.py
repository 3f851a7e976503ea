"""Every text a client is shown or acts on, in the OpenAI shapes, and how to replace it.

One reading serves a streamed ``delta`` and a whole ``message`` alike (they share their
field names), so a whole answer is judged field by field exactly as the same answer
streamed (DESIGN.md, "Choices, tools, reasoning"). Channels (``rails.base.ChannelKey``):

=======================  ==============================================================
``content``, 0           ``content`` (a string, or a list of parts: their text joined)
``refusal``, 0           ``refusal``
``reasoning``, 0 / 1     ``reasoning`` / ``reasoning_content`` (each judged: servers may
                         send both, and a client may show either)
``tool_arguments``, t    ``tool_calls[t].function.arguments``; -1: legacy ``function_call``
``tool_names``, t        ``tool_calls[t].function.name``; -1: legacy ``function_call``
``logprobs``, 0          the chosen tokens, when they do not spell the text they stand for
``logprobs``, 1          every ``top_logprobs`` alternative, one per line
``other``, 0             every other string (choice index ``OTHER_INDEX``)
=======================  ==============================================================

Tool arguments are JSON source: the relay judges them with their string escapes resolved
(``proxy.wire.json_text``), as the client's parser will read them.

Every other string of an event or answer (its id and model, a finish reason, a field no
server sends today such as ``audio.transcript``, a part of a shape not listed above, a
choice with ``message`` where ``delta`` belongs) is collected in ``rest`` by the same
readers and judged too, on the channel ``(OTHER_INDEX, "other", 0)``, each string at once
(not in windows): what railproxy does not know how to read is still never relayed
unjudged. A mask there cannot be written back (``CannotRewrite``: it blocks).
"""

from __future__ import annotations

import re
from typing import Any

from rails.base import ChannelKey
from rails.stream import CannotRewrite

Texts = list[tuple[ChannelKey, str]]
_REASONING = ("reasoning", "reasoning_content")
OTHER_INDEX = -2  # the channel of every other string of an event or answer
OTHER: ChannelKey = (OTHER_INDEX, "other", 0)
MESSAGE_KEYS = frozenset({"content", "refusal", *_REASONING, "tool_calls", "function_call"})
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
ALT_SEPARATOR = "\n|\n"  # alternatives are separate texts: no phrase spans two of them


def index_of(obj: dict[str, Any]) -> int:
    """A choice's (or tool call's) ``index`` as the client groups by it: an int, a bool
    (Python's ``True == 1``) or an integral float, from 0 up to ``MAX_INDEX``; missing means
    0. ``ValueError`` for anything else (a client would group that text under a key we
    cannot predict, or one railproxy's own channels use)."""
    value = obj.get("index", 0)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value < MAX_INDEX:
        return int(value)
    raise ValueError(f"unreadable index {value!r}")


MAX_INDEX = 1 << 16  # beyond any n a server accepts; negative ones are railproxy's channels


def content_text(value: Any, rest: list[str] | None = None) -> str | None:
    """The text a client shows for a content field: a string, or a list of parts whose
    ``text`` (or ``refusal``) strings it joins; any other string in the parts goes to
    ``rest``. None when there is none; ``ValueError`` for any other type."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError(f"unreadable content of type {type(value).__name__}")
    texts = []
    for part in value:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            for k, v in part.items():
                if k in ("text", "refusal") and isinstance(v, str):
                    texts.append(v)
                elif rest is not None:
                    collect(k, v, rest)
        elif rest is not None:
            collect("", part, rest)
    return "".join(texts)


def collect(key: str, value: Any, rest: list[str]) -> None:
    """Every string in ``value`` (and ``key`` unless it reads as a field name) into
    ``rest``."""
    if key and not _is_name(key):
        rest.append(key)
    if value is None or value.__class__ in _SCALARS:  # the common case, first
        return
    if isinstance(value, str):
        if value:
            rest.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            collect(k, v, rest)
    elif isinstance(value, list):
        for v in value:
            collect("", v, rest)


_SCALARS = frozenset({int, float, bool})
_NAMES: dict[str, bool] = {}  # key -> whether it reads as a field name (bounded)


def _is_name(key: str) -> bool:
    found = _NAMES.get(key)
    if found is None:
        found = _NAME.fullmatch(key) is not None
        if len(_NAMES) < 4096:
            _NAMES[key] = found
    return found


def collect_except(obj: dict[str, Any], read: frozenset[str], rest: list[str]) -> None:
    """The strings of every entry of ``obj`` whose key is not in ``read``."""
    for k, v in obj.items():
        if k not in read:
            collect(k, v, rest)


def _string(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is not a string")
    return value


def read_message(index: int, msg: dict[str, Any], texts: Texts, rest: list[str]) -> None:
    """The texts of a chat ``delta`` or ``message`` (choice ``index``); every other string
    into ``rest``."""
    if content := content_text(msg.get("content"), rest):
        texts.append(((index, "content", 0), content))
    if refusal := _string(msg.get("refusal"), "refusal"):
        texts.append(((index, "refusal", 0), refusal))
    for sub, name in enumerate(_REASONING):
        if value := _string(msg.get(name), name):
            texts.append(((index, "reasoning", sub), value))
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                collect_except(call, _CALL_KEYS, rest)
                _read_function(index, index_of(call), call.get("function"), texts, rest)
            else:
                collect("", call, rest)
    elif calls is not None:
        collect("", calls, rest)
    _read_function(index, -1, msg.get("function_call"), texts, rest)
    collect_except(msg, MESSAGE_KEYS, rest)


_CALL_KEYS = frozenset({"index", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})


def _read_function(index: int, tool: int, fn: Any, texts: Texts, rest: list[str]) -> None:
    if not isinstance(fn, dict):
        collect("", fn, rest)
        return
    if name := _string(fn.get("name"), "name"):
        texts.append(((index, "tool_names", tool), name))
    if args := _string(fn.get("arguments"), "arguments"):
        texts.append(((index, "tool_arguments", tool), args))
    collect_except(fn, _FUNCTION_KEYS, rest)


def read_chat_logprobs(index: int, choice: dict[str, Any], spelled: str, texts: Texts) -> None:
    """Chat ``logprobs``: ``{"content": [{"token", "top_logprobs": [...]}], "refusal": ...}``."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return
    entries = [e for k in ("content", "refusal") for e in _list(lp.get(k)) if isinstance(e, dict)]
    chosen = "".join(_string(e.get("token"), "token") for e in entries)
    alternatives = [
        _string(a.get("token"), "token")
        for e in entries
        for a in _list(e.get("top_logprobs"))
        if isinstance(a, dict)
    ]
    _add_logprobs(index, chosen, spelled, alternatives, texts)


def read_completion_logprobs(
    index: int, choice: dict[str, Any], spelled: str, texts: Texts
) -> None:
    """Completions ``logprobs``: ``{"tokens": [...], "top_logprobs": [{token: lp}, ...]}``."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return
    chosen = "".join(t for t in _list(lp.get("tokens")) if isinstance(t, str))
    alternatives = [
        t for top in _list(lp.get("top_logprobs")) if isinstance(top, dict) for t in top
    ]
    _add_logprobs(index, chosen, spelled, alternatives, texts)


def _add_logprobs(index: int, chosen: str, spelled: str, alts: list[str], texts: Texts) -> None:
    if chosen and chosen != spelled:
        texts.append(((index, "logprobs", 0), chosen))
    if alts := [a for a in alts if a]:
        texts.append(((index, "logprobs", 1), ALT_SEPARATOR.join(alts) + ALT_SEPARATOR))


def spelled(texts: Texts, index: int) -> str:
    """What the chosen tokens of choice ``index`` should spell: its content and refusal."""
    return "".join(t for k, t in texts if k[0] == index and k[1] in ("content", "refusal"))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def add_rest(rest: list[str], texts: Texts) -> None:
    """The other strings as one text on the ``OTHER`` channel, one per line."""
    if rest:
        texts.append((OTHER, "\n".join(rest) + "\n"))


def replace_in(choice: dict[str, Any], msg: dict[str, Any], key: ChannelKey, new: str) -> None:
    """Replace channel ``key``'s text in a choice's ``delta``/``message`` ``msg``. Every
    field repeating it (``logprobs``, ``token_ids``) goes; a logprobs channel's
    replacement is the removal of the logprobs."""
    drop_repeats(choice)
    _, name, sub = key
    if name == "content":
        parts = isinstance(msg.get("content"), list)
        msg["content"] = [{"type": "text", "text": new}] if parts else new
    elif name == "refusal":
        msg["refusal"] = new
    elif name == "reasoning":
        msg[_REASONING[sub]] = new
    elif name in ("tool_arguments", "tool_names"):
        fn = _function(msg, sub)
        if fn is None:
            raise CannotRewrite(f"no function {sub} to rewrite")
        fn["arguments" if name == "tool_arguments" else "name"] = new


def _function(msg: dict[str, Any], tool: int) -> dict[str, Any] | None:
    if tool == -1:
        fn = msg.get("function_call")
        return fn if isinstance(fn, dict) else None
    for call in _list(msg.get("tool_calls")):
        if isinstance(call, dict) and index_of(call) == tool:
            fn = call.get("function")
            return fn if isinstance(fn, dict) else None
    return None


def drop_repeats(choice: dict[str, Any]) -> None:
    """Masked text has no logprobs or token ids of its own, and the original ones spell
    out the text that was masked (tokens, UTF-8 bytes, alternatives, vLLM's
    ``token_ids``): they go, as ``null`` (the fields stay where the server put them)."""
    for name in ("logprobs", "token_ids"):
        if choice.get(name) is not None:
            choice[name] = None
