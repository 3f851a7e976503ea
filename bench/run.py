"""The benchmark runner: ``python -m bench.run [--quick] [--out FILE] [--json FILE]``.

Starts the fake upstream and the fake judge, measures the local rails in-process, then
for each rails setup starts railproxy (``railproxy serve`` as a real subprocess) and, for
each case of that setup, runs the load generator against the upstream directly and then
through railproxy, sampling railproxy's CPU time and RSS over the measured phase only.
Prints the markdown table (and writes it with ``--out``); ``--json`` writes every number.
Every process started here is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import http.client
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import compare, floor, microbench, report
from bench.proc import (
    HTTP,
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
from bench.results import BenchRun, CaseResult, FloorRow, LoadRun, Stats
from bench.scenarios import (
    CHUNK_SIZE,
    FLOOR_RAILS,
    Case,
    Plan,
    Rails,
    full_plan,
    only,
    quick_plan,
)
from bench.serve import loop_name
from bench.text import deltas, request_body
from rails.tokens import TiktokenCounter

PY = sys.executable
NOISY_CORES = 0.25
MAX_ATTEMPTS = 3


def railproxy_command() -> list[str]:
    """The ``railproxy`` console script next to this interpreter, or its equivalent."""
    script = Path(PY).with_name("railproxy")
    if script.exists():
        return [str(script)]
    return [PY, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]


def first_window_delta(n: int) -> int:
    """Index of the delta that completes the first window (the engine counts each delta's
    tokens on its own and closes a window once ``CHUNK_SIZE`` are pending)."""
    counter = TiktokenCounter()
    total = 0
    for i, piece in enumerate(deltas("words", n)):
        total += counter.count(piece)
        if total >= CHUNK_SIZE:
            return i
    raise ValueError(f"{n} deltas never fill a window of {CHUNK_SIZE} tokens")


class Bench:
    """The long-lived processes of one run, and running cases against them."""

    def __init__(self, services: Services, workdir: Path, plan: Plan) -> None:
        self.services = services
        self.plan = plan
        self.workdir = workdir
        self.upstream_port = free_port()
        self.judge_port = free_port()
        self.upstream = services.add(
            Service(
                "upstream",
                [PY, "-m", "bench.upstream", "--port", str(self.upstream_port)]
                + (["--usage"] if plan.upstream_usage else []),
                workdir,
            )
        )
        self.judge = services.add(
            Service("judge", [PY, "-m", "bench.judge", "--port", str(self.judge_port)], workdir)
        )

    def start(self) -> None:
        self.upstream.start(f"http://127.0.0.1:{self.upstream_port}/v1/models")
        self.judge.start(f"http://127.0.0.1:{self.judge_port}/stats")

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/v1/chat/completions"

    # -- the judge ----------------------------------------------------------------------

    def judge_calls(self) -> int:
        with HTTP.open(f"http://127.0.0.1:{self.judge_port}/stats", timeout=5) as resp:
            return int(json.loads(resp.read())["calls"])

    def judge_latency_ms(self, calls: int = 20) -> float:
        """Median round trip of the fake judge from a fresh client, in ms."""
        body = json.dumps({"model": "judge", "messages": [{"role": "user", "content": "x"}]})
        url = f"http://127.0.0.1:{self.judge_port}/v1/chat/completions"
        times = []
        for _ in range(calls):
            req = urllib.request.Request(
                url, body.encode(), {"Content-Type": "application/json"}, method="POST"
            )
            t0 = time.perf_counter()
            with HTTP.open(req, timeout=5) as resp:
                resp.read()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    # -- railproxy ------------------------------------------------------------------------

    def start_proxy(self, rails: Rails) -> tuple[Service, int]:
        port = free_port()
        config = rails.proxy_config(port, self.upstream_port, self.judge_port)
        path = self.workdir / f"railproxy-{rails.key}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        cmd = [*railproxy_command(), "serve", "--config", str(path), "--port", str(port)]
        proxy = self.services.add(Service(f"railproxy-{rails.key}", cmd, self.workdir))
        proxy.start(f"http://127.0.0.1:{port}/healthz")
        return proxy, port

    def check_rails_on(self, rails: Rails, port: int) -> None:
        """A stream holding an e-mail address must be blocked by the local rails."""
        if rails.kind != "local":
            return
        body = json.dumps(request_body(64, 0.0, "canary")).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            body,
            {"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with HTTP.open(req, timeout=30) as resp:
                text = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ServiceError(f"rails {rails.label}: the canary stream failed: {e!r}") from e
        if b"content_blocked" not in text:
            raise ServiceError(f"rails {rails.label}: the canary stream was not blocked")

    # -- load runs ------------------------------------------------------------------------

    def pair(self, case: Case, proxy: Service, port: int, latency: float | None) -> CaseResult:
        """The case against the upstream directly, then through railproxy."""
        mark = first_window_delta(case.deltas) if case.rails.kind != "none" else None
        direct = self.load(case, self.upstream_url, "direct", None, mark)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        through = self.load(case, url, "proxy", proxy, mark)
        result = CaseResult(case, direct, through, latency)
        result.judge()
        return result

    def load(
        self,
        case: Case,
        url: str,
        target: str,
        proxy: Service | None,
        mark: int | None,
        api: str = "chat",
    ) -> LoadRun:
        """One load-generator run; samples CPU of every process and the proxy's RSS.
        ``api``: the load generator speaks chat completions, the Responses API or the
        Messages API (``bench.load.APIS``)."""
        cmd = [
            PY,
            "-m",
            "bench.load",
            "--url",
            url,
            "-c",
            str(case.concurrency),
            "--requests",
            str(case.requests),
            "--duration",
            str(case.duration),
            "--deltas",
            str(case.deltas),
            "--rate",
            str(case.rate),
            "--ramp",
            str(case.ramp),
            "--warmup",
        ]
        if mark is not None:
            cmd += ["--mark", str(mark)]
        if api != "chat":
            cmd += ["--api", api]
        if self.plan.quiet_wait(case) > 0:
            wait_for_quiet(self.plan.quiet_wait(case))
        log = (self.workdir / "load.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env_for_children(),
        )
        try:
            return self._sample(case, proc, target, proxy)
        except ServiceError as e:
            log.flush()
            tail = (self.workdir / "load.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"load generator ({target}): {e}\n{tail}") from None
        finally:
            stop_process(proc)
            if proc.stdout is not None:
                proc.stdout.close()  # (its pipe was left open: a ResourceWarning per run)
            log.close()

    def _sample(
        self, case: Case, proc: subprocess.Popen[bytes], target: str, proxy: Service | None
    ) -> LoadRun:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        samplers = {"load": Sampler(proc.pid), "upstream": Sampler(self.upstream.pid)}
        if proxy is not None:
            samplers["proxy"] = Sampler(proxy.pid)
        watch_judge = proxy is not None and case.rails.kind == "judge"
        lines.expect("START", timeout=120)
        cpu0 = {name: s.cpu() for name, s in samplers.items()}
        busy0 = busy_cpu_seconds()
        calls0 = self.judge_calls() if watch_judge else 0
        if proxy is not None:
            samplers["proxy"].start()
        try:
            lines.expect("END", timeout=case.timeout())
        finally:
            peak = samplers["proxy"].stop() if proxy is not None else None
        cpu = {name: s.cpu() - cpu0[name] for name, s in samplers.items()}
        others = busy_cpu_seconds() - busy0 - sum(cpu.values())
        calls = self.judge_calls() - calls0 if watch_judge else None
        data: dict[str, Any] = json.loads(lines.expect("RESULT ", timeout=60)[7:])
        proc.wait(30)
        return LoadRun(
            target=target,
            ttft=Stats.of_seconds(data["ttft"]),
            total=Stats.of_seconds(data["total"]),
            mark=Stats.of_seconds(data["mark"]),
            requests=data["requests"],
            deltas=data["deltas"],
            errors=data["errors"],
            warmup_errors=data["warmup_errors"],
            wall_s=data["wall_s"],
            cpu_s=cpu,
            peak_rss_mb=None if peak is None else peak / 2**20,
            judge_calls=calls,
            other_cpu_s=max(others, 0.0),
        )


class Retries:
    """Measuring a case again when other processes disturbed it, within a time budget.

    A case (with ``retry``) whose runs saw more than ``NOISY_CORES`` of other load is
    measured again, at most ``MAX_ATTEMPTS`` times in all, while the time spent on
    repeats stays within ``budget_s``; the attempt with the least other load is kept."""

    def __init__(self, budget_s: float) -> None:
        self.left = budget_s
        self.retried = 0

    def run(
        self, attempt: Callable[[], CaseResult], say: Callable[[str], None], retry: bool
    ) -> CaseResult:
        started = time.monotonic()
        best = attempt()
        took = time.monotonic() - started
        for _ in range(MAX_ATTEMPTS - 1):
            noisy = best.other_cores > NOISY_CORES
            if not (retry and noisy and took <= self.left):
                break
            say(f"bench:   other processes used {best.other_cores:.2f} cores; again")
            started = time.monotonic()
            result = attempt()
            took = time.monotonic() - started
            self.left -= took
            self.retried += 1
            if result.other_cores < best.other_cores:
                best = result
        return best


def run_plan(plan: Plan, plan_name: str, log: bool = True) -> BenchRun:
    started = time.monotonic()
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if log else (lambda msg: None)
    micro: list[microbench.Measure] = []
    if plan.cases:
        say("bench: measuring the local rails in-process")
        if plan.quiet_wait_goal_s > 0:
            wait_for_quiet(plan.quiet_wait_goal_s)
        micro = microbench.run(plan.microbench_s)
    results: dict[Case, CaseResult] = {}
    floor_rows: list[FloorRow] = []
    retries = Retries(plan.retry_budget_s)
    with tempfile.TemporaryDirectory(prefix="railproxy-bench-") as tmp, Services() as services:
        bench = Bench(services, Path(tmp), plan)
        bench.start()
        judge_ms = bench.judge_latency_ms()
        local_ms = micro[0].us_per_window / 1000 if micro else None
        rail_ms = {"none": None, "local": local_ms, "judge": judge_ms}
        for rails in plan.setups():
            proxy, port = bench.start_proxy(rails)
            try:
                bench.check_rails_on(rails, port)
                for case in (c for c in plan.cases if c.rails == rails):
                    say(f"bench: {rails.label}, {case.pacing}, c={case.concurrency}")
                    latency = rail_ms[rails.kind] if case.paced and not rails.stream_first else None
                    attempt = functools.partial(bench.pair, case, proxy, port, latency)
                    results[case] = retries.run(attempt, say, case.latency_goal)
            finally:
                proxy.stop()
        if plan.floor:
            floor_rows = run_floor(bench, plan, say)
    return BenchRun(
        info=machine_info(),
        plan=plan_name,
        quiet_wait=(plan.quiet_wait_s, plan.quiet_wait_goal_s),
        retried=retries.retried,
        cases=[results[c] for c in plan.cases],
        micro=micro,
        judge_latency_ms=judge_ms,
        seconds=time.monotonic() - started,
        floor=floor_rows,
    )


def run_floor(bench: Bench, plan: Plan, say: Callable[[str], None]) -> list[FloorRow]:
    """Issue 18's rows: the bare relay and railproxy (no rails, local rails) in one go."""
    relays = floor.start(bench.services, bench.workdir, bench.upstream_port, bench.start_proxy, PY)
    for rails in FLOOR_RAILS:
        bench.check_rails_on(rails, relays.port_of(rails.label))
    try:
        attempts = MAX_ATTEMPTS if plan.retry_budget_s > 0 else 1
        return floor.measure(
            relays, plan.floor, bench.upstream, bench.workdir, PY, say, plan.quiet_wait_s, attempts
        )
    finally:
        relays.stop()


def machine_info() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for pkg in ("aiohttp", "uvloop", "orjson", "tiktoken", "railproxy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpus": affinity or os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(terse=True),
        "versions": versions,
        "loop": loop_name(),
        "command": " ".join(["python -m bench.run", *map(shlex.quote, sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small subset (< 60 s), a smoke test")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--json", type=Path, help="write every number as JSON here")
    p.add_argument(
        "--only",
        metavar="SETUP[,SETUP]",
        help="run only these rails setups' rows: none, local-sf-true, local-sf-false, "
        "judge-sf-true, judge-sf-false; floor: the rows against the bare relay",
    )
    p.add_argument(
        "--upstream-usage",
        action="store_true",
        help="the fake upstream answers stream_options.include_usage with a usage chunk, "
        "as vLLM does (default: no usage in streams, so railproxy counts tokens itself)",
    )
    p.add_argument(
        "--compare",
        metavar="BASELINE",
        type=Path,
        help="then print this run's CPU figures against a saved run's JSON "
        "(e.g. bench/results/baseline.json), as ratios",
    )
    args = p.parse_args(argv)
    baseline = None
    if args.compare:
        try:
            baseline = compare.load(args.compare)
        except (OSError, ValueError) as e:
            p.error(f"--compare: {e}")
    plan, name = (quick_plan(), "quick") if args.quick else (full_plan(), "full")
    if args.upstream_usage:
        plan = dataclasses.replace(plan, upstream_usage=True)
        name += ", upstream usage"
    if args.only:
        try:
            plan = only(plan, args.only.split(","))
        except ValueError as e:
            p.error(str(e))
        name += f" (only {args.only})"
    try:
        result = run_plan(plan, name)
    except ServiceError as e:
        print(f"bench: failed: {e}", file=sys.stderr)
        return 1
    data = report.to_json(result)
    report.emit(report.markdown(result), data, args.out, args.json)
    if baseline is not None:
        print(compare.table(baseline, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
