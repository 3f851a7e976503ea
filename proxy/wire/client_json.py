"""JSON read as the client reads it, and the few helpers every protocol shares.

The openai SDK (and most clients) parse an event with Python's ``json``: strict UTF-8,
``NaN``/``Infinity`` accepted, lone surrogate escapes kept. railproxy parses with orjson
(the fast path) and falls back to exactly that, so it never skips an event its client
would read; lone surrogates become U+FFFD, since the rails' tokenizer takes only valid text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson


def client_json(data: bytes) -> Any:
    """``data`` parsed as the client parses it; ``ValueError`` when the client could not
    read it either."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return _scrub(json.loads(data.decode("utf-8")))
    except UnicodeDecodeError as e:
        raise ValueError("not UTF-8") from e


def has_duplicate_keys(obj: Any, data: bytes) -> bool:
    """Whether ``data`` names a key twice in one object. The parsed ``obj`` keeps only the
    last value (Python, orjson), which is what the rails judge; a parser that keeps the
    first (gjson, simdjson) would show the other, so such a body cannot be judged. Cheap
    in the usual case: a compact body that re-serializes to itself has none."""
    try:
        if orjson.dumps(obj) == data:
            return False
    except TypeError:
        pass
    if _raw_keys(data) <= _keys(obj):
        return False
    try:
        json.loads(data, object_pairs_hook=_no_duplicates)
    except _Duplicate:
        return True
    except ValueError:
        pass
    return False


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate
    return out


_KEY = re.compile(rb'"[ \t\r\n]*:')


def _raw_keys(data: bytes) -> int:
    """At least the number of keys written in ``data`` (a string holding ``":`` counts too)."""
    if b'" ' in data or b'"\t' in data or b'"\n' in data or b'"\r' in data:
        return len(_KEY.findall(data))
    return data.count(b'":')


def _keys(obj: Any) -> int:
    n, stack = 0, [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            n += len(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return n


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


def is_error(obj: dict[str, Any]) -> bool:
    """vLLM (``{"error": {...}}``, older flat ``{"object": "error"}``), TGI (``{"error":
    {"message", "http_status_code"}}`` or native ``{"error": str, "error_type"}``).
    ``"error": null`` (or any falsy value) is no error: the openai SDK reads the chunk."""
    return bool(obj.get("error")) or obj.get("object") == "error"


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


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
