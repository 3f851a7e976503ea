"""Processes of a benchmark run: start, wait until ready, sample, always stop.

Every process is started by ``Service.start`` with stdout/stderr going to a log file
(or a pipe the caller reads), and stopped by ``Service.stop``: SIGTERM, then SIGKILL
after a grace period. ``Services`` stops all it holds, in reverse order, on exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
# No proxies from the environment: everything here is on loopback.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with HTTP.open(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (OSError, urllib.error.URLError):
        return False


class ServiceError(RuntimeError):
    """A process that died or never became ready; the message holds its log's tail."""


class Service:
    """One child process with a readiness URL."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self, ready_url: str, timeout: float = 30.0) -> Service:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env if self.env is not None else env_for_children(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            if http_ok(ready_url):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} was not ready after {timeout} s: {self.tail()}")

    def stop(self, grace: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


class Services(contextlib.AbstractContextManager["Services"]):
    """Stops every service added to it when the ``with`` block ends, however it ends."""

    def __init__(self) -> None:
        self._all: list[Service] = []

    def add(self, service: Service) -> Service:
        self._all.append(service)
        return service

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for service in reversed(self._all):
            service.stop()
        self._all.clear()


class LineReader:
    """Reads a child's stdout lines in a thread, so the caller can wait with a timeout."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The next line starting with ``prefix``; ServiceError at EOF or on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceError(f"no {prefix!r} line after {timeout:.0f} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise ServiceError(f"output ended before a {prefix!r} line")
            if line.startswith(prefix):
                return line


class Sampler:
    """CPU time and peak RSS of one process (with ``tree``, of it and all its descendants,
    summed): ``cpu()`` snapshots user+system seconds, a thread polls RSS every
    ``interval`` seconds between ``start`` and ``stop``."""

    def __init__(self, pid: int, interval: float = 0.05, tree: bool = False) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._tree = tree
        self._gone: dict[int, float] = {}  # descendants' last CPU seen, by pid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_rss = 0
        self.samples = 0

    def cpu(self) -> float:
        t = self._proc.cpu_times()
        total = float(t.user + t.system)
        if self._tree:
            for child in self._children():
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    self._gone[child.pid] = float(c.user + c.system)
            total += sum(self._gone.values())
        return total

    def rss(self) -> int:
        procs = [self._proc, *self._children()] if self._tree else [self._proc]
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
        return total

    def _children(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return list(self._proc.children(recursive=True))
        return []

    def start(self) -> None:
        self._stop.clear()
        self.peak_rss = self.rss()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.rss())
        return self.peak_rss

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.peak_rss = max(self.peak_rss, self.rss())
            except psutil.Error:
                return
            self.samples += 1


class CpuUse:
    """CPU seconds (user+system) of named processes between ``start`` and ``stop``, and
    of every other process on the machine meanwhile, in cores (CPU seconds per second)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._samplers = {name: Sampler(pid) for name, pid in pids.items()}
        self._cpu0: dict[str, float] = {}
        self._busy0 = self._t0 = 0.0
        self.cores: dict[str, float] = {}
        self.other_cores = 0.0

    def start(self) -> None:
        self._cpu0 = {name: s.cpu() for name, s in self._samplers.items()}
        self._busy0, self._t0 = busy_cpu_seconds(), time.monotonic()

    def stop(self) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        cpu = {name: s.cpu() - self._cpu0[name] for name, s in self._samplers.items()}
        others = busy_cpu_seconds() - self._busy0 - sum(cpu.values())
        self.cores = {name: c / wall for name, c in cpu.items()}
        self.other_cores = max(others, 0.0) / wall


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def wait_for_quiet(max_wait: float, threshold_cores: float = 0.3, step: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until the machine is busy below ``threshold_cores``
    over one ``step``; returns the busy cores last seen. The benchmark's own servers are
    idle between runs, so what is seen here is other people's work."""
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_cpu_seconds()
        time.sleep(step)
        cores = (busy_cpu_seconds() - before) / step
        if cores < threshold_cores or time.monotonic() >= deadline:
            return cores


def env_for_children() -> dict[str, str]:
    """The environment of child processes: ours, with the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
