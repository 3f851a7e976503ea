"""JSON source as its reader will see it: string escapes resolved, incrementally.

Tool-call arguments stream as fragments of JSON source; the client's JSON parser turns
``"Project\\nFalcon"`` or ``"a\\u0040b.com"`` into text the raw fragments never spell. The
rails judge what the parser will produce: ``Unescaper.feed`` returns each fragment with the
escapes inside strings resolved (structure and everything outside strings kept as it is),
holding back an escape split across fragments until it is whole. Sans-IO, no JSON
validation: a malformed escape is kept as written.
"""

from __future__ import annotations

_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


class Unescaper:
    """One JSON text's fragments in, the same text with string escapes resolved out."""

    def __init__(self) -> None:
        self._in_string = False
        self._held = ""  # an escape not yet complete (starts with a backslash)
        self._high = ""  # a high surrogate waiting for its low half
        self.altered = False  # the last feed's output differs from its input

    def feed(self, fragment: str) -> str:
        if not self._held and not self._high and "\\" not in fragment:
            self._track_quotes(fragment)
            self.altered = False
            return fragment
        out = self._resolve(self._held + fragment)
        self.altered = True
        return out

    def flush(self) -> str:
        """What is still held at the end (an escape cut short is kept as written)."""
        out = self._held + ("\ufffd" if self._high else "")
        self._held = self._high = ""
        return out

    def _track_quotes(self, text: str) -> None:
        if text.count('"') % 2:
            self._in_string = not self._in_string

    def _resolve(self, text: str) -> str:
        self._held = ""
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if not self._in_string or c != "\\":
                self._flush_high(out)
                if c == '"':
                    self._in_string = not self._in_string
                out.append(c)
                i += 1
                continue
            step = self._escape(text, i, out)
            if step == 0:  # incomplete: wait for the next fragment
                self._held = text[i:]
                break
            i += step
        return "".join(out)

    def _escape(self, text: str, i: int, out: list[str]) -> int:
        """Resolve the escape at ``text[i]``; its length, or 0 when it is cut short."""
        if i + 1 >= len(text):
            return 0
        kind = text[i + 1]
        if kind in _SIMPLE:
            self._flush_high(out)
            out.append(_SIMPLE[kind])
            return 2
        if kind != "u":
            self._flush_high(out)
            out.append(text[i : i + 2])  # not an escape JSON knows: kept as written
            return 2
        digits = text[i + 2 : i + 6]
        if len(digits) < 4 and all(d in _HEX for d in digits):
            return 0
        if len(digits) < 4 or not all(d in _HEX for d in digits):
            self._flush_high(out)
            out.append(text[i : i + 2])
            return 2
        self._code_unit(int(digits, 16), out)
        return 6

    def _code_unit(self, unit: int, out: list[str]) -> None:
        if 0xD800 <= unit <= 0xDBFF:
            self._flush_high(out)
            self._high = chr(unit)
        elif 0xDC00 <= unit <= 0xDFFF and self._high:
            pair = (self._high + chr(unit)).encode("utf-16", "surrogatepass")
            out.append(pair.decode("utf-16"))
            self._high = ""
        else:
            self._flush_high(out)
            out.append("\ufffd" if 0xDC00 <= unit <= 0xDFFF else chr(unit))

    def _flush_high(self, out: list[str]) -> None:
        if self._high:  # a high surrogate alone: what Python's json would keep, shown as U+FFFD
            out.append("\ufffd")
            self._high = ""


def unescape(source: str) -> str:
    """A whole JSON text with its string escapes resolved."""
    u = Unescaper()
    return u.feed(source) + u.flush()
