"""Odd user rail classes for the ``python`` rail's tests (imported by path, as users do).
The well-behaved one is ``configs/examples/user_rails.py``."""

from __future__ import annotations

from rails.base import CheckContext, Verdict


class Redactor:
    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        return Verdict.modify(text.replace("cat", "***"), f"{ctx.stage} redacted")


class SyncCheck:
    def check(self, text: str, ctx: CheckContext) -> Verdict:
        return Verdict.allow()


class WrongAnswer:
    async def check(self, text: str, ctx: CheckContext) -> object:
        return True


class Exploding:
    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        raise RuntimeError("boom")


not_a_class = 42
