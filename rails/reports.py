"""What the streaming engine reports about each judged window, for a debug view.

``GuardedStream.releases(reports=True)`` yields these in order with its releases. They carry
offsets, verdicts and timings, never text.
"""

from __future__ import annotations

from dataclasses import dataclass

from rails.base import ChannelKey, Mode, Stage


@dataclass(frozen=True, slots=True)
class RailCall:
    """One rail's answer on one window: allow, block, modify, error or timeout."""

    rail: str
    verdict: str
    seconds: float


@dataclass(frozen=True, slots=True)
class WindowReport:
    """One judged window. ``start``/``end``: token offsets of its new text in the channel;
    ``char_start``/``chars``: code-point offset and length of that text as the client
    gets it (after masking). ``verdict`` is the engine's: a modify that could not be
    honoured is a block. ``rails`` lists the rail calls that finished, in that order."""

    channel: ChannelKey
    index: int
    start: int
    end: int
    char_start: int
    chars: int
    verdict: str
    rails: tuple[RailCall, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class Holding:
    """``stream_first: false``: items held now, and the tokens of text they hold."""

    events: int
    tokens: int


Report = WindowReport | Holding


class CallLog:
    """A one-check ``PipelineObserver``: the rail calls of one window, in finish order."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[RailCall] = []

    def rail_done(self, rail: str, stage: Stage, verdict: str, seconds: float, mode: Mode) -> None:
        self.calls.append(RailCall(rail, verdict, seconds))
