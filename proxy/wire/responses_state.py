"""What a Responses API stream keeps per text channel (``proxy.wire.responses``), in
memory bounded whatever the stream's length: the text's length and digest (a repeat of
the text is checked against them), where the last ``KEEP`` pieces lie (a mask finds its
piece by the event's ``sequence_number``), the masks, and the events that repeat the text
(rewritten when a mask changes it)."""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from proxy.wire.sse import Event
from rails.base import ChannelKey

MAX_SNAPSHOTS = 64  # repeats of one channel's text a stream may send (vLLM: 4)
KEEP = 4096  # pieces a mask can still find, per channel (twice max_held_events' default)


@dataclass(slots=True)
class Snap:
    """An event repeating channels' texts: its data as it came, and how many characters of
    each channel it repeats."""

    ev: Event
    data: bytes
    counts: dict[ChannelKey, int] = field(default_factory=dict)


@dataclass(slots=True)
class Channel:
    """One channel's text, in bounded memory: its length and a digest of it as it came
    (a repeat is checked against these), where the pieces of the last ``KEEP`` events
    carrying it lie (a mask finds its piece by ``sequence_number``), and the masks
    (start -> end, replacement)."""

    size: int = 0
    digest: Any = field(default_factory=hashlib.blake2b)
    seqs: array[int] = field(default_factory=lambda: array("q"))
    spans: array[int] = field(default_factory=lambda: array("q"))  # start, end per seq
    masks: dict[int, tuple[int, str]] = field(default_factory=dict)
    snaps: list[Snap] = field(default_factory=list)

    def add(self, piece: str, seq: int | None) -> None:
        start = self.size
        self.size += len(piece)
        self.digest.update(piece.encode("utf-8", "surrogatepass"))
        if seq is None:
            return
        if len(self.seqs) >= 2 * KEEP:
            del self.seqs[:KEEP]
            del self.spans[: 2 * KEEP]
        self.seqs.append(seq)
        self.spans.extend((start, self.size))

    def repeats(self, text: str) -> bool:
        """Whether ``text`` begins with the whole channel text so far."""
        if self.size == 0:
            return True
        head = text[: self.size].encode("utf-8", "surrogatepass")
        return len(text) >= self.size and hashlib.blake2b(head).digest() == self.digest.digest()

    def span(self, seq: Any) -> tuple[int, int] | None:
        i = bisect_left(self.seqs, seq) if isinstance(seq, int) else len(self.seqs)
        if i == len(self.seqs) or self.seqs[i] != seq:
            return None
        return self.spans[2 * i], self.spans[2 * i + 1]

    def shown(self, text: str) -> str:
        """``text`` (the channel's text as it came) as the client is shown it."""
        out, at = [], 0
        for start in sorted(self.masks):
            end, new = self.masks[start]
            if start >= len(text):
                break
            out += [text[at:start], new]
            at = end
        return "".join([*out, text[at:]])
