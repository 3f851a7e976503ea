"""The worker supervisor, in-process, with tiny stand-in workers (a few lines of Python)
instead of railproxy: signal forwarding, replacement, start-up failure, the stop deadline.
The real thing (two railproxy workers on one port) is in test_server_process.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from proxy.run.workers import Supervisor, held_port

# argv: LOG LIFETIME_S. Logs "start", each SIGHUP, and "term"; exits 0 on SIGTERM, or by
# itself after LIFETIME_S (0: never). With IGNORE_TERM set, SIGTERM is only logged.
WORKER = """
import os, signal, sys, time
log, lifetime = sys.argv[1], float(sys.argv[2])
def note(word):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {word}\\n")
def term(*_):
    note("term")
    if not os.environ.get("IGNORE_TERM"):
        sys.exit(0)
signal.signal(signal.SIGTERM, term)
signal.signal(signal.SIGHUP, lambda *_: note("hup"))
note("start")
deadline = time.monotonic() + lifetime
while not lifetime or time.monotonic() < deadline:
    time.sleep(0.01)
"""


class Workers:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "workers.log"
        self.log.touch()

    def supervisor(
        self,
        count: int = 2,
        lifetime_s: float = 0,
        stop_s: float = 3,
        min_uptime_s: float = 0.2,
        **env: str,
    ) -> Supervisor:
        command = [sys.executable, "-c", WORKER, str(self.log), str(lifetime_s)]
        return Supervisor(command, count, {**os.environ, **env}, stop_s, None, min_uptime_s)

    def lines(self, word: str) -> list[str]:
        return [
            line.split()[0] for line in self.log.read_text().splitlines() if line.endswith(word)
        ]

    async def until(self, word: str, count: int) -> list[str]:
        """Wait (5 s at most) until ``count`` lines end with ``word``; their pids."""
        for _ in range(250):
            if len(found := self.lines(word)) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} x {word!r} not logged: {self.log.read_text()!r}")


@pytest.fixture
def workers(tmp_path: Path) -> Workers:
    return Workers(tmp_path)


async def test_signals_are_forwarded_and_sigterm_stops_everything(workers: Workers) -> None:
    sup = workers.supervisor()
    running = asyncio.create_task(sup.run())
    started = await workers.until("start", 2)
    sup.signal(signal.SIGHUP)
    assert sorted(await workers.until("hup", 2)) == sorted(started)
    sup.signal(signal.SIGTERM)
    assert await asyncio.wait_for(running, 5) == 0
    assert sorted(workers.lines("term")) == sorted(started)


async def test_a_worker_that_exits_is_replaced(workers: Workers) -> None:
    sup = workers.supervisor(count=1, lifetime_s=0.4, min_uptime_s=0.2)
    running = asyncio.create_task(sup.run())
    started = await workers.until("start", 2)
    assert len(set(started)) == 2  # a new process, not the same one again
    sup.signal(signal.SIGTERM)
    assert await asyncio.wait_for(running, 5) == 0


async def test_a_worker_that_dies_at_start_up_stops_the_rest_with_exit_1(workers: Workers) -> None:
    sup = workers.supervisor(count=2, lifetime_s=0.05, min_uptime_s=5)
    assert await asyncio.wait_for(sup.run(), 5) == 1
    # Nobody was restarted. The second worker may be stopped before it logs its start (the
    # first dies at 0.05 s, on a loaded machine before the second got that far): 1 or 2.
    assert 1 <= len(workers.lines("start")) <= 2


async def test_a_worker_that_ignores_sigterm_is_killed_at_the_deadline(workers: Workers) -> None:
    sup = workers.supervisor(count=1, stop_s=0.5, IGNORE_TERM="1")
    running = asyncio.create_task(sup.run())
    await workers.until("start", 1)
    sup.signal(signal.SIGTERM)
    assert await asyncio.wait_for(running, 5) == 1
    assert len(workers.lines("term")) == 1


def test_port_zero_is_resolved_to_one_held_port() -> None:
    with held_port("127.0.0.1", 0) as port:
        assert port > 0
    with held_port("127.0.0.1", 8123) as fixed:
        assert fixed == 8123
