"""Jobs and local rails for tests of ``rails.offload``: importable by its worker process,
which receives them by reference."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import ClassVar

from rails.base import CheckContext, RailConfig, Verdict
from rails.resources import Resources


class WhereRail:
    """Blocks, naming the process and thread that judged the text and its length."""

    local: ClassVar[bool] = True
    Config: ClassVar[type[RailConfig]] = RailConfig

    def __init__(self, name: str, config: RailConfig, resources: Resources) -> None:
        self.name = name
        self.config = config

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        return Verdict.block(f"{os.getpid()} {threading.get_ident()} {len(text)}")


class RaisingLocalRail(WhereRail):
    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        raise RuntimeError("the text must not leak: " + text[:10])


def die() -> None:
    """Ends the worker process at once, as the OOM killer would."""
    os._exit(1)


def hold_until(path: str, limit_s: float = 30.0) -> bool:
    """Occupies the worker until ``path`` exists (True), or ``limit_s`` passed (False)."""
    deadline = time.monotonic() + limit_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
