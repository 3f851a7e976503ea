"""Results of a benchmark run and the goals they are judged against (plain data, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.microbench import Measure
from bench.scenarios import (
    ADDED_TTFT_P50_MS,
    ADDED_TTFT_P99_MS,
    BURST_GOAL,
    CPU_US_PER_DELTA,
    FLOOR_GOAL_LOCAL,
    FLOOR_GOAL_NONE,
    FLOOR_RAILS,
    LOCAL_RAILS_US_PER_WINDOW,
    WINDOW_TTFT_SLACK_MS,
    Case,
    FloorLoad,
)

DIRECT, BARE = "direct", "bare relay"  # FloorRow targets besides railproxy's rails labels


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """A distribution in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Stats:
        ms = sorted(v * 1000 for v in values)
        if not ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            len(ms),
            percentile(ms, 50),
            percentile(ms, 90),
            percentile(ms, 99),
            ms[-1],
            sum(ms) / len(ms),
        )


@dataclass(frozen=True)
class LoadRun:
    """One load-generator run against one target (the upstream, or railproxy)."""

    target: str
    ttft: Stats
    total: Stats
    mark: Stats
    requests: int
    deltas: int
    errors: dict[str, int]
    warmup_errors: int
    wall_s: float
    cpu_s: dict[str, float]  # process name -> CPU seconds during the measured phase
    peak_rss_mb: float | None = None
    judge_calls: int | None = None
    other_cpu_s: float = 0.0  # CPU of every other process on the machine meanwhile

    @property
    def other_cores(self) -> float:
        """Cores used by processes outside the benchmark during the measured phase."""
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + self.warmup_errors

    @property
    def deltas_per_s(self) -> float:
        return self.deltas / self.wall_s if self.wall_s > 0 else math.nan

    def cpu_per_1k_deltas(self, process: str) -> float:
        """CPU seconds of ``process`` per 1,000 relayed deltas."""
        return self.cpu_s.get(process, math.nan) / self.deltas * 1000 if self.deltas else math.nan

    @property
    def machine_busy(self) -> float:
        """CPU seconds of all measured processes per wall second (2.0 = two cores busy)."""
        return sum(self.cpu_s.values()) / self.wall_s if self.wall_s > 0 else math.nan


@dataclass(frozen=True)
class Check:
    """One goal applied to one measurement."""

    goal: str
    measured: str
    target: str
    met: bool


@dataclass
class CaseResult:
    case: Case
    direct: LoadRun
    proxy: LoadRun
    rail_latency_ms: float | None = None  # the window TTFT bound's rail part
    checks: list[Check] = field(default_factory=list)

    @property
    def other_cores(self) -> float:
        """The most CPU other processes on the machine used during either run."""
        return max(self.direct.other_cores, self.proxy.other_cores)

    @property
    def added_ttft_p50(self) -> float:
        return self.proxy.ttft.p50 - self.direct.ttft.p50

    @property
    def added_ttft_p99(self) -> float:
        return self.proxy.ttft.p99 - self.direct.ttft.p99

    @property
    def us_per_delta(self) -> float:
        return self.proxy.cpu_per_1k_deltas("proxy") * 1000

    @property
    def window_bound_ms(self) -> float | None:
        """Direct time to the delta that completes the first window, plus rail latency."""
        if self.rail_latency_ms is None or not self.direct.mark.n:
            return None
        return self.direct.mark.p50 + self.rail_latency_ms

    @property
    def over_bound_ms(self) -> float | None:
        bound = self.window_bound_ms
        return None if bound is None else self.proxy.ttft.p50 - bound

    def judge(self) -> list[Check]:
        """Evaluate this case's goals (and any errors, which fail every goal)."""
        c = self.case
        where = f"{c.rails.label}, {c.pacing}, c={c.concurrency}"
        clean = self.direct.error_count == 0 and self.proxy.error_count == 0
        checks = []
        for goal in c.goals:
            if goal == "added_ttft":
                p50, p99 = self.added_ttft_p50, self.added_ttft_p99
                checks.append(
                    Check(
                        f"added TTFT ({where})",
                        f"p50 {p50:+.2f} ms, p99 {p99:+.2f} ms",
                        f"p50 < {ADDED_TTFT_P50_MS:g} ms, p99 < {ADDED_TTFT_P99_MS:g} ms",
                        clean and p50 < ADDED_TTFT_P50_MS and p99 < ADDED_TTFT_P99_MS,
                    )
                )
            elif goal == "cpu_per_delta":
                us = self.us_per_delta
                checks.append(
                    Check(
                        f"proxy CPU per delta ({where})",
                        f"{us:.1f} µs ({us / 1000:.4f} s per 1k)",
                        f"≤ {CPU_US_PER_DELTA:g} µs",
                        clean and us <= CPU_US_PER_DELTA,
                    )
                )
            else:
                over, bound = self.over_bound_ms, self.window_bound_ms
                ok = over is not None and abs(over) <= WINDOW_TTFT_SLACK_MS
                checks.append(
                    Check(
                        f"TTFT vs first window + rail ({where})",
                        "n/a" if over is None else f"{over:+.2f} ms (bound {bound:.1f} ms)",
                        f"within {WINDOW_TTFT_SLACK_MS:g} ms",
                        clean and ok,
                    )
                )
        self.checks = checks
        return checks


@dataclass
class FloorRow:
    """One load: a ``LoadRun`` per target (``DIRECT`` only for a burst, ``BARE``, and one
    per rails label of railproxy)."""

    load: FloorLoad
    runs: dict[str, LoadRun]
    attempts: int = 1

    @property
    def other_cores(self) -> float:
        return max(r.other_cores for r in self.runs.values())

    def targets(self) -> list[str]:
        return [t for t in self.runs if t != DIRECT]

    def cpu_us_per_request(self, target: str) -> float:
        run = self.runs[target]
        return run.cpu_s.get("proxy", math.nan) / run.requests * 1e6 if run.requests else math.nan

    def cpu_us_per_delta(self, target: str) -> float:
        return self.runs[target].cpu_per_1k_deltas("proxy") * 1000

    def added_ttft(self, target: str) -> tuple[float, float]:
        """p50 and p99 of TTFT through ``target`` minus directly (ms); NaN without a
        direct run."""
        direct, run = self.runs.get(DIRECT), self.runs[target]
        if direct is None:
            return math.nan, math.nan
        return run.ttft.p50 - direct.ttft.p50, run.ttft.p99 - direct.ttft.p99

    def figure(self, target: str) -> float:
        """The figure compared with the bare relay's for this load's kind."""
        if self.load.kind == "request":
            return self.cpu_us_per_request(target)
        if self.load.kind == "delta":
            return self.cpu_us_per_delta(target)
        return self.added_ttft(target)[0]

    def ratios(self, target: str) -> tuple[float, ...]:
        """target / bare relay: CPU (per request or per delta), or added TTFT p50 and p99."""
        if self.load.kind == "burst":
            mine, bare = self.added_ttft(target), self.added_ttft(BARE)
            return tuple(_ratio(m, b) for m, b in zip(mine, bare, strict=True))
        return (_ratio(self.figure(target), self.figure(BARE)),)

    def goal(self, target: str) -> float | None:
        """The most ``ratios`` may be (issue 18), or None when the figure is only shown."""
        if not self.load.goal or target == BARE:
            return None
        if self.load.kind == "burst":
            return BURST_GOAL
        return FLOOR_GOAL_NONE if target == FLOOR_RAILS[0].label else FLOOR_GOAL_LOCAL

    def met(self, target: str) -> bool | None:
        limit = self.goal(target)
        if limit is None:
            return None
        clean = all(r.error_count == 0 for r in self.runs.values())
        return clean and all(r <= limit for r in self.ratios(target))

    def checks(self) -> list[Check]:
        out = []
        for target in self.targets():
            met, limit = self.met(target), self.goal(target)
            if met is None or limit is None:
                continue
            what = {"request": "CPU per request", "delta": "CPU per delta"}.get(
                self.load.kind, "added TTFT p50, p99"
            )
            ratios = ", ".join(f"{r:.2f}x" for r in self.ratios(target))
            out.append(
                Check(
                    f"{what} vs bare relay ({target}; {self.load.name}, c={self.load.concurrency})",
                    ratios,
                    f"≤ {limit:g}x",
                    met,
                )
            )
        return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


@dataclass
class BenchRun:
    info: dict[str, Any]
    plan: str
    cases: list[CaseResult]
    micro: list[Measure]
    judge_latency_ms: float | None
    quiet_wait: tuple[float, float] = (0.0, 0.0)  # seconds: other cases, latency-goal cases
    retried: int = 0
    seconds: float = 0.0
    floor: list[FloorRow] = field(default_factory=list)

    @property
    def micro_check(self) -> Check:
        us = self.micro[0].us_per_window
        return Check(
            "local rails cost per window (in-process)",
            f"{us:.0f} µs",
            f"< {LOCAL_RAILS_US_PER_WINDOW:g} µs",
            us < LOCAL_RAILS_US_PER_WINDOW,
        )

    def checks(self) -> list[Check]:
        checks = [chk for r in self.cases for chk in r.checks]
        checks += [chk for row in self.floor for chk in row.checks()]
        return [*checks, self.micro_check] if self.micro else checks
