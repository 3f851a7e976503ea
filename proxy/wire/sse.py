"""Server-sent events, sans-IO: ``Decoder.feed(bytes) -> events`` and ``flush()``.

No aiohttp in here. The decoder keeps each event's exact bytes (``Event.raw``) so the relay
can re-emit upstream events verbatim; it parses only the ``data``/``event``/``id`` fields.

Lines end with ``\\r\\n``, ``\\r`` or ``\\n`` (the SSE spec allows all three); a blank line
ends an event. A ``\\r`` at the very end of the buffer might be the first half of a ``\\r\\n``
split across reads, so the decoder waits for the next byte before deciding.

Exceptions::

    SSEError                 anything wrong with the byte stream itself
     └── EventTooLarge       one event grew past ``max_event_bytes`` without ending
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEError(Exception):
    """The upstream byte stream is not valid SSE."""


class EventTooLarge(SSEError):
    """One event exceeded the configured size cap."""


@dataclass(slots=True)
class Event:
    """One SSE event. ``raw`` is what arrived, terminator included.

    ``data`` is the event's data lines joined with ``\\n`` (bytes, not decoded: JSON parsers
    take bytes and validate UTF-8 themselves), or None when the event has no data field
    (a comment such as TGI's ``:`` keep-alive, or a bare ``event:``/``id:``).
    """

    raw: bytes
    data: bytes | None = None
    event: str | None = None
    id: str | None = None
    # Set by the relay, not the decoder: the event carries generated text, and when it
    # arrived (for hold-back timing).
    has_text: bool = False
    arrived: float = 0.0
    # Set by the relay: the event's tool arguments were judged with JSON escapes resolved
    # (a mask cannot be written back into them).
    escaped: bool = False

    @property
    def is_comment(self) -> bool:
        return self.data is None and self.event is None


class Decoder:
    """Incremental SSE decoder. Feed it bytes as they come; it returns complete events."""

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._buf = b""
        self._max = max_event_bytes
        self._cr_seen = False
        self._started = False
        self._bom = b""  # a leading BOM: kept in the first event's raw bytes, not its data

    def feed(self, chunk: bytes) -> list[Event]:
        """Add bytes; return every event completed by them, in order."""
        if not self._started:
            chunk = self._strip_bom(chunk)
        if not self._cr_seen and b"\r" in chunk:
            self._cr_seen = True
        buf = self._buf + chunk if self._buf else chunk
        events, rest = (self._split_cr if self._cr_seen else self._split_lf)(buf, final=False)
        if len(rest) > self._max:
            raise EventTooLarge(f"an upstream event exceeded {self._max} bytes")
        self._buf = rest
        if self._bom and events:
            events[0].raw, self._bom = self._bom + events[0].raw, b""
        return events

    def take_plain(self, chunk: bytes) -> bytes | None:
        """The fast lane of a pass-through read: the bytes of the events ``chunk``
        completes, when every one of them is a single ``data:`` line ended by ``\n\n``
        (an OpenAI-style stream's events); None, with nothing consumed, for anything else
        (``feed`` then splits the read into events)."""
        if not self._started or self._cr_seen or self._bom or b"\r" in chunk:
            return None
        buf = self._buf + chunk if self._buf else chunk
        end = buf.rfind(b"\n\n") + 2
        whole, rest = buf[:end], buf[end:]
        if whole:
            n = whole.count(b"\n\n")
            plain = whole.count(b"\n") == 2 * n and whole.count(b"\n\ndata:") == n - 1
            if not (plain and whole.startswith(b"data:")):
                return None
        if len(rest) > self._max:
            raise EventTooLarge(f"an upstream event exceeded {self._max} bytes")
        self._buf = rest
        return whole

    def flush(self) -> list[Event]:
        """End of stream: return a last event that lacked its blank line, if it has a field.

        Its ``raw`` gets the missing terminator added, so writing it keeps the output
        well-framed. A trailing fragment with no complete field is dropped, as the SSE
        spec's "discard an incomplete event" rule says.
        """
        buf, self._buf = self._buf, b""
        if not buf:
            return []
        events, rest = self._split_cr(buf, final=True)
        if rest:
            events += self._split_cr(rest + b"\n\n", final=True)[0]
        return [e for e in events if not e.is_comment or e.raw.strip()]

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete event."""
        return len(self._buf)

    def _strip_bom(self, chunk: bytes) -> bytes:
        if len(chunk) < 3 and _BOM.startswith(chunk):
            return chunk  # too short to decide; decide on the next feed
        self._started = True
        if chunk.startswith(_BOM):
            self._bom = _BOM
            return chunk[3:]
        return chunk

    @staticmethod
    def events_of(whole: bytes) -> list[Event]:
        """The events of bytes ``take_plain`` returned."""
        return Decoder._split_lf(whole, final=False)[0]

    @staticmethod
    def _split_lf(buf: bytes, final: bool) -> tuple[list[Event], bytes]:
        """Fast path for the common case: ``\\n`` line endings only."""
        events: list[Event] = []
        start = 0
        while (end := buf.find(b"\n\n", start)) != -1:
            raw = buf[start : end + 2]
            events.append(_parse(raw, raw[:-2].split(b"\n")))
            start = end + 2
        return events, buf[start:]

    @staticmethod
    def _split_cr(buf: bytes, final: bool) -> tuple[list[Event], bytes]:
        """General path: any mix of ``\\r\\n``, ``\\r`` and ``\\n``."""
        events: list[Event] = []
        lines: list[bytes] = []
        start = pos = 0
        while (m := _LINE_END.search(buf, pos)) is not None:
            if m.group() == b"\r" and m.end() == len(buf) and not final:
                break  # may be half of a \r\n
            line, pos = buf[pos : m.start()], m.end()
            if line:
                lines.append(line)
                continue
            events.append(_parse(buf[start:pos], lines))
            lines, start = [], pos
        return events, buf[start:]


def _parse(raw: bytes, lines: list[bytes]) -> Event:
    """Build an Event from its field lines (terminators already removed)."""
    if len(lines) == 1 and lines[0].startswith(b"data:"):
        return Event(raw, _value(lines[0], 5))  # the hot path: one data line
    if len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data:"):
        # named events (the Responses API, Anthropic's Messages): "event: x" then "data:"
        return Event(raw, _value(lines[1], 5), lines[0][7:].decode("utf-8", "replace"))
    data: list[bytes] = []
    event = id_ = None
    for line in lines:
        if line.startswith(b":"):
            continue
        name, _, _ = line.partition(b":")
        value = _value(line, len(name) + 1) if b":" in line else b""
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id":
            id_ = value.decode("utf-8", "replace")
    return Event(raw, b"\n".join(data) if data else None, event, id_)


def _value(line: bytes, offset: int) -> bytes:
    """A field's value: everything after the colon, minus one optional leading space."""
    return line[offset + 1 :] if line[offset : offset + 1] == b" " else line[offset:]


def encode(data: bytes, event: str | None = None) -> bytes:
    """One event of our own, framed like vLLM/OpenAI (``data: `` with a space)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


def comment(text: str = "") -> bytes:
    """An SSE comment line, e.g. ``: keep-alive``; clients ignore it."""
    return b": " + text.encode() + b"\n\n" if text else b":\n\n"


_KEEPALIVE = re.compile(rb":(?: ?keep-alive| ping - [0-9TZ:.+ -]{1,40})?\n\n")


def data_only(ev: Event) -> Event:
    """The event as its ``data`` lines alone, for a guarded stream: comment lines, ``id``,
    ``event`` and unknown fields are not judged, so they do not reach the client (an
    ``EventSource`` exposes ``id`` and ``event``; a raw reader prints comments). An event
    already in that form, the usual case, is returned as it is. A comment-only event stays
    only in a known keep-alive form (vLLM's, TGI's, sse-starlette's), else becomes ``:``."""
    raw = ev.raw
    if ev.data is None:
        return ev if _KEEPALIVE.fullmatch(raw) or raw == b":\n\n" else Event(b":\n\n")
    one_line = raw.count(b"\n") == 2 and raw.endswith(b"\n\n") and b"\r" not in raw
    if one_line and raw.startswith(b"data:"):
        return ev
    prefix = b"data: " if raw.startswith(b"data: ") or not raw.startswith(b"data:") else b"data:"
    framed = b"".join(prefix + line + b"\n" for line in ev.data.split(b"\n")) + b"\n"
    out = Event(framed, ev.data)
    out.has_text, out.arrived, out.escaped = ev.has_text, ev.arrived, ev.escaped
    return out
