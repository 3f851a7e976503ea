"""User rails for integration tests, loaded through the ``python`` rail type."""

from __future__ import annotations

import asyncio

from rails.base import CheckContext, Verdict


class SlowRail:
    """Sleeps, then allows (or blocks text containing ``block_on``)."""

    def __init__(self, delay_s: float = 0.1, block_on: str = "") -> None:
        self.delay_s = delay_s
        self.block_on = block_on

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        await asyncio.sleep(self.delay_s)
        if self.block_on and self.block_on in text:
            return Verdict.block("slow rail found it")
        return Verdict.allow()


class RaisingRail:
    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        raise RuntimeError(f"secret user text must not leak: {text}")


class GarbageRail:
    async def check(self, text: str, ctx: CheckContext) -> object:
        return {"not": "a verdict"}


GATES: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    """A new gate for ``GatedRail(gate=name)``, made in the test's running loop."""
    GATES[name] = asyncio.Event()
    return GATES[name]


class GatedRail:
    """Allows, once the test opens the gate it names (``gate``)."""

    def __init__(self, gate: str) -> None:
        self.gate = gate

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        await GATES[self.gate].wait()
        return Verdict.allow()


class Recorder:
    """Allows, and records every text it judged (class-wide: the test resets ``seen``)."""

    seen: list[str] = []

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        Recorder.seen.append(text)
        return Verdict.allow()
