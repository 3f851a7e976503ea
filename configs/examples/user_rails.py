"""An example user rail for the ``python`` rail type (see ``python.yaml`` beside this file).

A user rail is any class built as ``Class(**options)`` with an
``async def check(self, text, ctx) -> Verdict``; timeouts and errors are handled by
railproxy's pipeline, so ``check`` only judges.
"""

from __future__ import annotations

from rails.base import CheckContext, Verdict


class ShoutingRail:
    """Blocks text in which more than ``max_upper_ratio`` of the letters are capitals,
    once it holds at least ``min_letters`` letters."""

    def __init__(self, max_upper_ratio: float = 0.7, min_letters: int = 20) -> None:
        if not 0 < max_upper_ratio <= 1:
            raise ValueError(f"max_upper_ratio must be in (0, 1], got {max_upper_ratio}")
        self.max_upper_ratio = max_upper_ratio
        self.min_letters = min_letters

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        letters = [c for c in text if c.isalpha()]
        if len(letters) < self.min_letters:
            return Verdict.allow()
        if sum(c.isupper() for c in letters) / len(letters) > self.max_upper_ratio:
            return Verdict.block("too much shouting")
        return Verdict.allow()
