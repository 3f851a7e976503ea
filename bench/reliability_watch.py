"""Watching one railproxy process from outside: RSS and threads from
``/proc/<pid>/status``, open file descriptors from ``/proc/<pid>/fd`` (sockets told apart
by their peer, from ``/proc/<pid>/net/tcp*``), CPU time, and its asyncio task count from
the probe of ``bench.reliability_probe``."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.proc import HTTP, Sampler

# What an open file descriptor of the proxy is.
FD_KINDS = ("upstream", "client", "listen", "socket", "pipe", "file", "other")
PROBE = "probe"  # a connection to the task-count probe: not counted


@dataclass(frozen=True)
class Snapshot:
    """One look at the proxy. ``streams``: streams finished so far; ``tasks`` None when
    the probe did not answer."""

    label: str
    at_s: float
    streams: int
    rss_mb: float
    fds: int
    fd_kinds: dict[str, int] = field(default_factory=dict)
    tasks: int | None = None
    threads: int = 0
    cpu_s: float = 0.0


class ProcessView:
    """``snapshot()`` reads everything in an order that keeps the probe out of the fd
    count: /proc first, the probe's HTTP request last."""

    def __init__(self, pid: int, port: int, upstream_port: int, probe_port: int) -> None:
        self.pid = pid
        self.port = port
        self.upstream_port = upstream_port
        self.probe_port = probe_port
        self.probe_url = f"http://127.0.0.1:{probe_port}/tasks"
        self._cpu = Sampler(pid)
        self._t0 = time.monotonic()

    def snapshot(self, label: str, streams: int) -> Snapshot:
        status = _status(self.pid)
        kinds = self.fd_kinds()
        return Snapshot(
            label=label,
            at_s=time.monotonic() - self._t0,
            streams=streams,
            rss_mb=int(status["VmRSS"].split()[0]) / 1024,
            fds=sum(kinds.values()),
            fd_kinds=kinds,
            tasks=self.tasks(),
            threads=int(status["Threads"]),
            cpu_s=self._cpu.cpu(),
        )

    def tasks(self) -> int | None:
        try:
            with HTTP.open(self.probe_url, timeout=10) as resp:
                value = json.loads(resp.read())["tasks"]
        except (OSError, ValueError, KeyError):
            return None
        return value if isinstance(value, int) else None

    def fd_kinds(self) -> dict[str, int]:
        """Open descriptors by kind: TCP connections to the upstream, from clients,
        listening sockets, other sockets, pipes, files, anything else."""
        fd_dir = Path(f"/proc/{self.pid}/fd")
        targets = []
        for name in os.listdir(fd_dir):
            try:
                targets.append(os.readlink(fd_dir / name))
            except OSError:
                continue  # closed between listdir and readlink
        tcp = self._tcp_sockets()
        kinds: Counter[str] = Counter({k: 0 for k in FD_KINDS})
        for target in targets:
            if target.startswith("socket:["):
                kind = tcp.get(target[8:-1], "socket")
                if kind != PROBE:  # the measurement's own (a last probe may linger)
                    kinds[kind] += 1
            elif target.startswith("pipe:["):
                kinds["pipe"] += 1
            elif target.startswith("/"):
                kinds["file"] += 1
            else:
                kinds["other"] += 1
        return dict(kinds)

    def _tcp_sockets(self) -> dict[str, str]:
        """Socket inode -> upstream | client | listen | probe, from the process's TCP
        tables."""
        out: dict[str, str] = {}
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if state == "0A":  # LISTEN
                    out[inode] = "listen"
                elif int(remote.rsplit(":", 1)[1], 16) == self.upstream_port:
                    out[inode] = "upstream"
                elif int(local.rsplit(":", 1)[1], 16) == self.port:
                    out[inode] = "client"
                elif int(local.rsplit(":", 1)[1], 16) == self.probe_port:
                    out[inode] = PROBE
        return out


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out
