"""railproxy against the floor (issue 18): the same loads through a bare aiohttp relay
(``bench/bare_relay.py``) and through railproxy, in one run, as ratios.

For each load of ``scenarios.floor_loads``: the load generator against the bare relay, then
against railproxy without rails and with the local rails (regex+pii+secrets+blocklist,
200/50, stream_first true), and for a burst against the upstream directly first (added
TTFT = through a relay - direct). A load whose runs saw more than ``NOISY_CORES`` of other
processes' CPU is measured again (all its runs), up to ``MAX_ATTEMPTS`` in all, keeping the
quietest attempt.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import read_result
from bench.proc import (
    LineReader,
    Sampler,
    Service,
    ServiceError,
    Services,
    busy_cpu_seconds,
    env_for_children,
    free_port,
    stop_process,
    wait_for_quiet,
)
from bench.results import BARE, DIRECT, FloorRow, LoadRun, Stats
from bench.scenarios import FLOOR_RAILS, FloorLoad, Rails

NOISY_CORES = 0.25
MAX_ATTEMPTS = 3


@dataclass
class Floor:
    """The bare relay and one railproxy per rails setup of ``FLOOR_RAILS``, running."""

    upstream_url: str
    bare: Service
    proxies: dict[str, tuple[Service, str]] = field(default_factory=dict)

    def targets(self) -> list[tuple[str, Service, str]]:
        bare = (BARE, self.bare, _chat(self.bare_port))
        return [bare, *((label, svc, url) for label, (svc, url) in self.proxies.items())]

    @property
    def bare_port(self) -> int:
        return _port(self.bare)

    def port_of(self, label: str) -> int:
        return _port(self.proxies[label][0])

    def stop(self) -> None:
        for service, _ in self.proxies.values():
            service.stop()
        self.bare.stop()


def _port(service: Service) -> int:
    return int(service.cmd[service.cmd.index("--port") + 1])


def _chat(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def start(
    services: Services,
    workdir: Path,
    upstream_port: int,
    start_proxy: Callable[[Rails], tuple[Service, int]],
    py: str,
) -> Floor:
    """Start the bare relay and railproxy with each of ``FLOOR_RAILS``."""
    port = free_port()
    cmd = [py, "-m", "bench.bare_relay", "--port", str(port)]
    cmd += ["--upstream", f"http://127.0.0.1:{upstream_port}/v1"]
    bare = services.add(Service("bare-relay", cmd, workdir))
    bare.start(f"http://127.0.0.1:{port}/healthz")
    floor = Floor(_chat(upstream_port), bare)
    for rails in FLOOR_RAILS:
        proxy, proxy_port = start_proxy(rails)
        floor.proxies[rails.label] = (proxy, _chat(proxy_port))
    return floor


def measure(
    floor: Floor,
    loads: tuple[FloorLoad, ...],
    upstream: Service,
    workdir: Path,
    py: str,
    say: Callable[[str], None],
    quiet_s: float = 0.0,
    attempts: int = MAX_ATTEMPTS,
) -> list[FloorRow]:
    """Every load against every relay; before each run, wait up to ``quiet_s`` for the
    machine to go quiet; measure a disturbed load again, ``attempts`` times in all."""
    rows = []
    for load in loads:
        say(f"bench: floor: {load.name}, c={load.concurrency}")
        best: FloorRow | None = None
        for attempt in range(1, attempts + 1):
            row = _attempt(floor, load, upstream, workdir, py, quiet_s)
            if best is None or row.other_cores < best.other_cores:
                best = row
            best.attempts = attempt
            if best.other_cores <= NOISY_CORES or attempt == attempts:
                break
            say(f"bench:   other processes used {row.other_cores:.2f} cores; again")
        assert best is not None
        rows.append(best)
    return rows


def _attempt(
    floor: Floor, load: FloorLoad, upstream: Service, workdir: Path, py: str, quiet_s: float
) -> FloorRow:
    """The load against every target, in ``load.blocks`` interleaved blocks (each a
    ``1 / blocks`` share of the rounds or of the duration), so that other processes'
    work falls on every target alike; each target's blocks are pooled."""
    targets: list[tuple[str, Service | None, str]] = list(floor.targets())
    if load.burst:
        targets.insert(0, (DIRECT, None, floor.upstream_url))
    block = load.block()
    parts: dict[str, list[_Part]] = {name: [] for name, _, _ in targets}
    for _ in range(load.blocks):
        for name, service, url in targets:
            parts[name].append(_run(block, url, service, upstream, workdir, py, quiet_s))
    return FloorRow(load, {name: _merge(url, parts[name]) for name, _, url in targets})


def load_command(load: FloorLoad, url: str, py: str, extra: str | None = None) -> list[str]:
    cmd = [py, "-m", "bench.load", "--url", url, "-c", str(load.concurrency)]
    cmd += ["--requests", str(load.requests), "--duration", str(load.duration)]
    cmd += ["--deltas", str(load.deltas), "--rate", str(load.rate), "--ramp", str(load.ramp)]
    cmd += ["--warmup"]
    if load.burst:
        cmd.append("--burst")
    if not load.stream:
        cmd.append("--no-stream")
    if extra:
        cmd += ["--extra", extra]
    return cmd


_SEQ = itertools.count()


@dataclass
class _Part:
    """One load-generator run: its RESULT data and the CPU samples around it."""

    data: dict[str, Any]
    cpu: dict[str, float]
    peak: int | None
    others: float


def run_load(
    load: FloorLoad,
    url: str,
    proxy: Service | None,
    upstream: Service,
    workdir: Path,
    py: str,
    quiet_s: float,
    extra: str | None = None,
    tree: bool = False,
) -> LoadRun:
    """One load-generator run, sampling the CPU of the load generator, the upstream and
    the relay (``proxy``; with ``tree``, it and its child processes) over the measured
    phase, and the relay's peak RSS. ``extra``: JSON set in every request body."""
    return _merge(url, [_run(load, url, proxy, upstream, workdir, py, quiet_s, extra, tree)])


def _run(
    load: FloorLoad,
    url: str,
    proxy: Service | None,
    upstream: Service,
    workdir: Path,
    py: str,
    quiet_s: float,
    extra: str | None = None,
    tree: bool = False,
) -> _Part:
    if quiet_s > 0:
        wait_for_quiet(quiet_s)
    log = (workdir / "load.log").open("ab")
    result = workdir / f"result-{next(_SEQ)}.json"
    proc = subprocess.Popen(
        [*load_command(load, url, py, extra), "--result", str(result)],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env_for_children(),
    )
    try:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        samplers = {"load": Sampler(proc.pid), "upstream": Sampler(upstream.pid)}
        if proxy is not None:
            samplers["proxy"] = Sampler(proxy.pid, tree=tree)
        lines.expect("START", timeout=120)
        cpu0 = {name: s.cpu() for name, s in samplers.items()}
        busy0 = busy_cpu_seconds()
        if proxy is not None:
            samplers["proxy"].start()
        try:
            lines.expect("END", timeout=load.timeout())
        finally:
            peak = samplers["proxy"].stop() if proxy is not None else None
        cpu = {name: s.cpu() - cpu0[name] for name, s in samplers.items()}
        others = busy_cpu_seconds() - busy0 - sum(cpu.values())
        data = read_result(lines.expect("RESULT ", timeout=60))
        proc.wait(30)
    except ServiceError as e:
        log.flush()
        tail = (workdir / "load.log").read_text(errors="replace")[-2000:]
        raise ServiceError(f"load generator ({url}): {e}\n{tail}") from None
    finally:
        stop_process(proc)
        log.close()
    return _Part(data, cpu, peak, max(others, 0.0))


def _merge(url: str, parts: list[_Part]) -> LoadRun:
    """One ``LoadRun`` of several runs against the same target: samples pooled, counts
    and CPU seconds summed, the highest peak RSS."""
    pooled = {key: [v for p in parts for v in p.data[key]] for key in ("ttft", "total", "mark")}
    errors: dict[str, int] = {}
    for p in parts:
        for kind, n in p.data["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    cpu: dict[str, float] = {}
    for p in parts:
        for name, seconds in p.cpu.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    peaks = [p.peak for p in parts if p.peak is not None]
    return LoadRun(
        target=url,
        ttft=Stats.of_seconds(pooled["ttft"]),
        total=Stats.of_seconds(pooled["total"]),
        mark=Stats.of_seconds(pooled["mark"]),
        requests=sum(p.data["requests"] for p in parts),
        deltas=sum(p.data["deltas"] for p in parts),
        errors=errors,
        warmup_errors=sum(p.data["warmup_errors"] for p in parts),
        wall_s=sum(p.data["wall_s"] for p in parts),
        cpu_s=cpu,
        peak_rss_mb=max(peaks) / 2**20 if peaks else None,
        other_cpu_s=sum(p.others for p in parts),
    )
