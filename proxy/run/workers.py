"""Several worker processes on one port (``server.workers`` > 1).

The ``railproxy serve`` process becomes a supervisor: it starts N workers, each a fresh
``railproxy serve`` with the same flags that binds the same port with SO_REUSEPORT (the kernel
spreads connections over them), and serves nothing itself. It

* forwards SIGTERM, SIGINT and SIGHUP to every worker (each drains or reloads on its own);
* replaces a worker that exits unexpectedly, unless it died within ``MIN_UPTIME_S`` of its
  start (a broken config or a taken port): then it stops the rest and exits 1;
* gives every worker ``PROMETHEUS_MULTIPROC_DIR``, a fresh directory it removes at exit, so
  ``/metrics`` on any worker reports all of them (``proxy.observe.metrics``); workers are
  started as new interpreters because prometheus_client reads that variable when it is
  first imported;
* exits 0 when every worker stopped cleanly after a signal, else 1.

With ``--port 0`` the supervisor binds a free port itself (SO_REUSEPORT, never listening) and
holds it, so every worker gets the same one. Workers run in their own session, so a terminal's
Ctrl-C reaches only the supervisor, which forwards it once; a worker whose supervisor
disappears (SIGKILL) drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from proxy.run.drain import GRACE_S
from proxy.run.server import run
from proxy.settings import ServerSettings

log = logging.getLogger("railproxy.workers")

WORKER_ENV = "RAILPROXY_WORKER_OF"  # the supervisor's pid, in each worker's environment
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MIN_UPTIME_S = 5.0
STOP_MARGIN_S = 5.0  # on top of the workers' own drain bound, before they are killed
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RAILPROXY = [sys.executable, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]


def in_worker() -> bool:
    """True in a process a supervisor started."""
    return WORKER_ENV in os.environ


def exit_with_supervisor(poll_s: float = 1.0) -> None:
    """In a worker: SIGTERM this process (a normal drain) once the supervisor is gone."""
    supervisor = int(os.environ[WORKER_ENV])

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="railproxy-supervisor-watch", daemon=True).start()


def supervise(serve_args: Sequence[str], server: ServerSettings) -> int:
    """Run ``server.workers`` workers of ``railproxy serve <serve_args> --port P`` until a
    signal stops them; return the exit code (module docstring)."""
    with held_port(server.host, server.port) as port, _metrics_dir() as metrics_dir:
        env = {**os.environ, WORKER_ENV: str(os.getpid()), METRICS_ENV: metrics_dir}
        command = [*RAILPROXY, *serve_args, "--port", str(port)]
        stop_s = server.drain_timeout_s + 2 * GRACE_S + STOP_MARGIN_S
        code = run(Supervisor(command, server.workers, env, stop_s, metrics_dir).run())
    return 1 if code is None else code


@dataclass
class _Worker:
    proc: asyncio.subprocess.Process
    started: float
    exited: asyncio.Task[int]


class Supervisor:
    """Starts, watches and stops ``count`` copies of ``command``."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        env: dict[str, str],
        stop_timeout_s: float,
        metrics_dir: str | None = None,
        min_uptime_s: float = MIN_UPTIME_S,
    ) -> None:
        self._command = list(command)
        self._count = count
        self._env = env
        self._stop_timeout_s = stop_timeout_s
        self._metrics_dir = metrics_dir
        self._min_uptime_s = min_uptime_s
        self._workers: dict[int, _Worker] = {}
        self._stopping = asyncio.Event()
        self._failed = False

    @property
    def pids(self) -> list[int]:
        return sorted(self._workers)

    async def run(self) -> int:
        """Start the workers, keep them running until a signal, stop them; the exit code."""
        loop = asyncio.get_running_loop()
        for sig in FORWARDED:
            loop.add_signal_handler(sig, self.signal, sig)
        try:
            for _ in range(self._count):
                await self._start()
            await self._keep_running()
            return await self._stop_all()
        finally:
            for sig in FORWARDED:
                loop.remove_signal_handler(sig)
            self._kill_all()

    def signal(self, sig: signal.Signals) -> None:
        """Forward ``sig`` to every worker; SIGTERM/SIGINT also mean: stop supervising."""
        if sig is not signal.SIGHUP and not self._stopping.is_set():
            log.info("stopping workers", extra={"signal": sig.name, "workers": self.pids})
            self._stopping.set()
        for w in self._workers.values():
            if w.proc.returncode is None:
                w.proc.send_signal(sig)

    async def _start(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._command, env=self._env, start_new_session=True
        )
        exited = asyncio.ensure_future(proc.wait())
        self._workers[proc.pid] = _Worker(proc, time.monotonic(), exited)
        log.info("worker started", extra={"pid": proc.pid})

    async def _keep_running(self) -> None:
        """Replace workers that exit, until a signal or a worker that dies young."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                exits = [w.exited for w in self._workers.values()]
                await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
                for pid in [p for p, w in self._workers.items() if w.exited.done()]:
                    if not self._stopping.is_set():
                        await self._replace(self._workers.pop(pid))
        finally:
            stopping.cancel()

    async def _replace(self, dead: _Worker) -> None:
        code = dead.proc.returncode
        self._forget(dead.proc.pid)
        if time.monotonic() - dead.started < self._min_uptime_s:
            log.error(
                "worker died at start-up; stopping", extra={"pid": dead.proc.pid, "code": code}
            )
            self._failed = True
            self.signal(signal.SIGTERM)
            return
        log.warning("worker exited; starting another", extra={"pid": dead.proc.pid, "code": code})
        await self._start()

    async def _stop_all(self) -> int:
        """Wait for every worker to exit (their drain), killing any still running after
        ``stop_timeout_s``; 0 when all exited 0 and none failed."""
        exits = [w.exited for w in self._workers.values()]
        if exits:
            await asyncio.wait(exits, timeout=self._stop_timeout_s)
        self._kill_all()
        codes = [await w.exited for w in self._workers.values()]
        for pid in list(self._workers):
            self._forget(pid)
        ok = not self._failed and all(c == 0 for c in codes)
        log.info("workers stopped", extra={"codes": codes})
        return 0 if ok else 1

    def _kill_all(self) -> None:
        for w in self._workers.values():
            if w.proc.returncode is None:
                log.error("worker did not stop in time; killing it", extra={"pid": w.proc.pid})
                w.proc.kill()

    def _forget(self, pid: int) -> None:
        """A worker is gone: drop its live-gauge files (prometheus_client multiprocess)."""
        if self._metrics_dir is None:
            return
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def held_port(host: str, port: int) -> Iterator[int]:
    """``port``, or for 0 a free port held (bound, never listening) until the block ends."""
    if port != 0:
        yield port
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def _metrics_dir() -> Iterator[str]:
    """A fresh, empty directory for the workers' metric files, removed afterwards."""
    path = tempfile.mkdtemp(prefix="railproxy-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
