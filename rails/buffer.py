"""The rolling buffer: streamed text pieces in, windows to check out. Pure, no I/O.

Each window holds ``chunk_size`` *new* tokens plus the last ``context_size`` tokens
already checked, prepended as context (NeMo's output-rail streaming picture: with chunk
200 and context 50, window 2 covers tokens 151..400, of which 201..400 are new).

- Windows close on piece (delta) boundaries, never inside a piece: after a push, once
  the pending new tokens reach ``chunk_size``, one window takes all pending pieces. A
  piece bigger than ``chunk_size`` therefore makes one bigger window.
- ``flush()`` returns the final partial window, or None when nothing new is pending (no
  re-check of context alone). An empty stream makes no window.
- Text is joined exactly as streamed; empty pieces are accepted and count 0 tokens.
- ``context_size`` 0 means no context.

Token counting. A piece's tokens are ``counter.count(piece)``: each delta is encoded on
its own. BPE across a piece boundary may differ from encoding the joined text (two
pieces may merge into one token there). That is deliberate: it is what lets windows
close on delta boundaries, and it costs O(piece) per push instead of re-encoding.

Context. With the ``token`` unit, a window's context is
``counter.tail(previous_window.text, context_size)``: the shortest suffix of the checked
text holding its last ``context_size`` tokens, counted by encoding the previous window's
text (a suffix of all checked text, kept so memory stays O(window)). With the ``delta``
unit, it is the last ``context_size`` non-empty checked pieces, joined.

What is guaranteed about text split over a window boundary. Window ``j``'s text is
``context + new`` and its context is a suffix of the text checked before it, so an
occurrence of a phrase is wholly inside window ``j``'s text exactly when it ends inside
``new`` and its part before the boundary lies within the context. Hence:

- ``token`` unit: an occurrence whose part before the boundary is covered by the last
  ``context_size`` tokens of the previous window's text (as the counter encodes that
  text) is seen whole by the window where it ends.
- ``delta`` unit: any occurrence spanning at most ``context_size + 1`` non-empty pieces
  is seen whole by the window where it ends.

Nothing is promised for a phrase whose part before the boundary is longer than that: it
is seen only in pieces, by two windows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from rails.tokens import TokenCounter


@dataclass(frozen=True, slots=True)
class Window:
    """One stretch of text to check: ``context`` (already checked) + ``new``.

    ``start``/``end`` are token offsets of ``new`` in the stream (``end`` exclusive);
    ``char_start`` is the char offset of ``new`` in the full streamed text.
    """

    index: int
    context: str
    new: str
    start: int
    end: int
    char_start: int

    @property
    def text(self) -> str:
        return self.context + self.new


class RollingBuffer:
    """Cuts one stream's pieces into windows. One buffer per stream (and per choice).

    ``counter`` is normally ``counter_for(unit)``; ``unit`` decides how context is kept.
    ``push`` and ``flush`` may be interleaved freely: after a flush, later pushes start
    the next window.
    """

    def __init__(
        self,
        chunk_size: int,
        context_size: int,
        counter: TokenCounter,
        unit: Literal["token", "delta"] = "token",
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
        if context_size < 0:
            raise ValueError(f"context_size must be >= 0, not {context_size}")
        self._chunk_size = chunk_size
        self._context_size = context_size
        self._counter = counter
        self._unit = unit
        self._pending: list[str] = []
        self._pending_tokens = 0
        self._pending_chars = 0
        self._checked_tokens = 0
        self._checked_chars = 0
        self._index = 0
        self._last_text = ""  # token unit: the previous window's text
        self._checked_pieces: deque[str] = deque(maxlen=context_size)  # delta unit

    @property
    def pending_tokens(self) -> int:
        """New tokens pushed but not yet in a window."""
        return self._pending_tokens

    @property
    def total_tokens(self) -> int:
        """All tokens pushed so far, in windows or pending."""
        return self._checked_tokens + self._pending_tokens

    @property
    def pending_chars(self) -> int:
        """Chars pushed but not yet in a window."""
        return self._pending_chars

    def push(self, piece: str) -> Window | None:
        """Add one streamed piece; the window it completes, if any."""
        if not piece:
            return None
        self._pending.append(piece)
        self._pending_tokens += self._counter.count(piece)
        self._pending_chars += len(piece)
        if self._pending_tokens >= self._chunk_size:
            return self._close()
        return None

    def flush(self) -> Window | None:
        """The final partial window; None when no new text is pending."""
        return self._close() if self._pending else None

    def _close(self) -> Window:
        window = Window(
            index=self._index,
            context=self._context(),
            new="".join(self._pending),
            start=self._checked_tokens,
            end=self._checked_tokens + self._pending_tokens,
            char_start=self._checked_chars,
        )
        self._remember(window)
        return window

    def _context(self) -> str:
        if self._unit == "delta":
            return "".join(self._checked_pieces)
        return self._counter.tail(self._last_text, self._context_size)

    def _remember(self, window: Window) -> None:
        """Move the pending pieces to the checked side."""
        if self._unit == "delta":
            self._checked_pieces.extend(self._pending)
        elif self._context_size:
            self._last_text = window.text
        self._index += 1
        self._checked_tokens = window.end
        self._checked_chars += len(window.new)
        self._pending = []
        self._pending_tokens = 0
        self._pending_chars = 0
