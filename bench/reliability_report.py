"""Results of ``python -m bench.reliability`` (load, soak, overload), the checks they are
judged by, and their rendering as markdown and JSON (plain data, no I/O)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.reliability_drive import OverloadRun, Tally
from bench.reliability_watch import Snapshot
from bench.report import _clean, _f, _pair, _table
from bench.results import CaseResult, Check, LoadRun, Stats

_YES, _NO = "✅", "❌"

# Error kinds of bench.load that mean the stream's bytes were wrong, not missing.
CORRUPT_KINDS = frozenset({"content_mismatch", "not_an_object", "JSONDecodeError"})

RSS_GROWTH_MB = 20.0
REFUSAL_P99_MS = 50.0  # ours: the issue asks for "quickly"
ADMITTED_RATE_RATIO = 0.95
ADMITTED_TTFT_SLACK_MS = 5.0


# -- load ---------------------------------------------------------------------------------


@dataclass
class LoadRow:
    """One case of the load part: ``expected`` streams per run (workers x requests)."""

    result: CaseResult
    expected: int

    @staticmethod
    def correct(run: LoadRun) -> int:
        return run.requests - sum(run.errors.values())

    @staticmethod
    def corrupted(run: LoadRun) -> int:
        return sum(n for kind, n in run.errors.items() if kind in CORRUPT_KINDS)

    def lost(self, run: LoadRun) -> int:
        """Streams sent (or due) that did not come back whole: no [DONE], a broken
        connection, a timeout, an HTTP error, or never counted at all."""
        return self.expected - self.correct(run) - self.corrupted(run)

    def checks(self) -> list[Check]:
        c = self.result.case
        where = f"{c.pacing}, c={c.concurrency}"
        out = []
        for run in (self.result.direct, self.result.proxy):
            bad = run.error_count + self.lost(run) + self.corrupted(run)
            out.append(
                Check(
                    f"load, {run.target} ({where}): every stream whole and correct",
                    f"{self.correct(run)}/{self.expected} correct; errors {run.error_count}"
                    f"{_kinds(run)}, lost {self.lost(run)}, corrupted {self.corrupted(run)}",
                    "0 errors, 0 lost, 0 corrupted",
                    bad == 0 and self.correct(run) == self.expected,
                )
            )
        return out


def _kinds(run: LoadRun) -> str:
    """`` (kind: n, ...)`` for the errors of a run, warm-up failures included."""
    kinds = dict(run.errors)
    if run.warmup_errors:
        kinds["warm-up"] = run.warmup_errors
    return f" ({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))})" if kinds else ""


# -- soak ---------------------------------------------------------------------------------


def fds_back(base: Snapshot, now: Snapshot) -> bool:
    """Open fds are back at ``base``, not counting upstream connections: the proxy keeps
    idle keep-alive connections to the upstream pooled (and closes them on its own clock),
    so their number after a soak is not a leak."""
    return now.fds - now.fd_kinds.get("upstream", 0) == base.fds - base.fd_kinds.get("upstream", 0)


def settled(base: Snapshot, now: Snapshot) -> bool:
    """What the soak's settle phase waits for and its checks require: fds and tasks back."""
    return fds_back(base, now) and now.tasks == base.tasks


@dataclass
class SoakResult:
    setup: dict[str, Any]  # what ran: streams, concurrency, deltas, rails, configs, ...
    tally: Tally
    snapshots: list[Snapshot]
    load_s: float
    settle_limit_s: float
    cores: dict[str, float] = field(default_factory=dict)  # CPU used, by process
    other_cores: float = 0.0  # CPU used by processes outside the benchmark

    def labelled(self, label: str) -> Snapshot:
        return next(s for s in self.snapshots if s.label == label)

    @property
    def baseline(self) -> Snapshot:
        return self.labelled("baseline")

    @property
    def warm(self) -> Snapshot:
        """The first sample under load once the warm-up streams are done."""
        return next(s for s in self.snapshots if s.label == "load" and s.streams >= self.warmup)

    @property
    def warmup(self) -> int:
        return int(self.setup["warmup"])

    @property
    def after_warm(self) -> list[Snapshot]:
        warm = self.warm
        return [s for s in self.snapshots if s.at_s >= warm.at_s and s.label != "baseline"]

    @property
    def rss_growth_mb(self) -> float:
        """The most RSS seen after warm-up (under load and after) minus RSS at warm-up."""
        return max(s.rss_mb for s in self.after_warm) - self.warm.rss_mb

    @property
    def end_growth_mb(self) -> float:
        return self.labelled("load end").rss_mb - self.warm.rss_mb

    @property
    def settled(self) -> Snapshot:
        return self.snapshots[-1]

    @property
    def streams_per_s(self) -> float:
        return self.tally.done / self.load_s if self.load_s > 0 else math.nan

    @property
    def cpu_ms_per_stream(self) -> float:
        end = self.labelled("load end")
        return (end.cpu_s - self.baseline.cpu_s) / max(self.tally.done, 1) * 1000

    def checks(self) -> list[Check]:
        base, last, tally = self.baseline, self.settled, self.tally
        errors = sum(tally.errors.values())
        expected = int(self.setup["streams"])
        pool = last.fd_kinds.get("upstream", 0)
        fds_ok = fds_back(base, last)
        fds_note = "" if pool == 0 else f" (+{pool} idle upstream keep-alive connections)"
        return [
            Check(
                "soak: every stream correct, every canary blocked",
                f"{tally.ok + tally.blocked}/{expected} ({tally.blocked} canaries blocked); "
                f"errors {errors}",
                "0 errors",
                errors == 0 and tally.done == expected and tally.blocked == tally.canaries,
            ),
            Check(
                "soak: RSS growth after warm-up",
                f"{self.rss_growth_mb:+.1f} MB (peak after warm-up - RSS at "
                f"{self.warm.streams:,} streams; at the end of the load "
                f"{self.end_growth_mb:+.1f} MB)",
                f"< {RSS_GROWTH_MB:g} MB",
                self.rss_growth_mb < RSS_GROWTH_MB,
            ),
            Check(
                "soak: open fds back to baseline",
                f"{base.fds} -> {last.fds}{fds_note}",
                "= baseline",
                fds_ok,
            ),
            Check(
                "soak: asyncio tasks back to baseline",
                f"{base.tasks} -> {last.tasks}",
                "= baseline",
                base.tasks is not None and last.tasks == base.tasks,
            ),
        ]


# -- overload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Admitted:
    """The admitted streams of one overload run: times in ms, per-stream rate in deltas/s."""

    ttft: Stats
    total: Stats
    rate_mean: float
    rate_min: float

    @classmethod
    def of(cls, run: OverloadRun) -> Admitted:
        rates = [(s.deltas - 1) / (s.total - s.ttft) for s in run.admitted if s.total > s.ttft]
        return cls(
            Stats.of_seconds([s.ttft for s in run.admitted]),
            Stats.of_seconds([s.total for s in run.admitted]),
            statistics.fmean(rates) if rates else math.nan,
            min(rates, default=math.nan),
        )


RUN_LABELS = {
    "alone": "{n} (the limit)",
    "over": "{n2}, Retry-After honoured",
    "storm": "{n2}, retry after {ms:g} ms",
}


@dataclass
class OverloadResult:
    """Three runs against a proxy admitting ``limit`` streams: ``limit`` clients alone;
    twice as many honouring ``Retry-After``; twice as many retrying ``storm_pause_s``
    after a 429 (a retry storm)."""

    setup: dict[str, Any]  # limit, deltas, rate, duration_s, ramp_s, storm_pause_s
    alone: OverloadRun
    over: OverloadRun
    storm: OverloadRun
    admitted: dict[str, Admitted] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.admitted = {key: Admitted.of(run) for key, run in self.runs.items()}

    @property
    def runs(self) -> dict[str, OverloadRun]:
        return {"alone": self.alone, "over": self.over, "storm": self.storm}

    def label(self, key: str) -> str:
        n, ms = self.limit, self.setup["storm_pause_s"] * 1000
        return RUN_LABELS[key].format(n=n, n2=2 * n, ms=ms)

    @property
    def other_cores(self) -> float:
        """The most CPU other processes used during any run."""
        return max(run.other_cores for run in self.runs.values())

    @property
    def limit(self) -> int:
        return int(self.setup["limit"])

    def refused(self, key: str) -> Stats:
        return Stats.of_seconds(self.runs[key].refused_s)

    def ratio(self, key: str, what: str) -> float:
        """Admitted streams of run ``key`` over those of the run at the limit."""
        alone, other = self.admitted["alone"], self.admitted[key]
        if what == "rate":
            return other.rate_mean / alone.rate_mean
        a, o = getattr(alone.ttft, what), getattr(other.ttft, what)
        return float(o / a) if a else math.nan

    def ttft_diff(self, key: str) -> float:
        return self.admitted[key].ttft.p50 - self.admitted["alone"].ttft.p50

    def checks(self) -> list[Check]:
        n = self.limit
        runs = self.runs.values()
        errors = sum(sum(run.errors.values()) for run in runs)
        bad = sum(run.bad_refusals for run in runs)
        over_runs = (self.over, self.storm)
        refused = Stats.of_seconds([t for run in over_runs for t in run.refused_s])
        return [
            Check(
                f"overload: {2 * n} sent at once, limit {n} (both runs)",
                "; ".join(f"{r.burst_admitted} admitted, {r.burst_refused} 429" for r in over_runs),
                f"{n} admitted, {n} got 429",
                all(r.burst_admitted == n and r.burst_refused == n for r in over_runs),
            ),
            Check(
                "overload: every refusal a 429 with Retry-After and OpenAI's error shape",
                f"{refused.n} 429s, {bad} malformed; "
                f"{len(self.alone.refused_s) + self.alone.burst_refused} at the limit",
                "0 malformed; none at the limit",
                bad == 0 and not self.alone.refused_s and self.alone.burst_refused == 0,
            ),
            Check(
                "overload: 429 latency p99 (both runs over the limit)",
                f"{_f(refused.p99)} ms (p50 {_f(refused.p50)} ms)",
                f"< {REFUSAL_P99_MS:g} ms",
                refused.p99 < REFUSAL_P99_MS,
            ),
            Check(
                "overload: admitted streams correct",
                ", ".join(f"{len(run.admitted)}" for run in runs) + f" admitted; errors {errors}",
                "0 errors",
                errors == 0 and all(run.admitted for run in runs),
            ),
            self.unaffected(),
            self.storm_rate(),
        ]

    def unaffected(self) -> Check:
        """Admitted streams with 2N offered (clients honouring Retry-After) vs N."""
        n = self.limit
        diff = self.ttft_diff("over")
        return Check(
            f"overload: admitted streams unaffected ({2 * n} offered vs {n})",
            f"per-stream rate x{self.ratio('over', 'rate'):.3f}, TTFT p50 {diff:+.2f} ms "
            f"(x{self.ratio('over', 'p50'):.2f}), p99 x{self.ratio('over', 'p99'):.2f}",
            f"rate >= x{ADMITTED_RATE_RATIO:g}, TTFT p50 within +{ADMITTED_TTFT_SLACK_MS:g} ms",
            self.ratio("over", "rate") >= ADMITTED_RATE_RATIO and diff <= ADMITTED_TTFT_SLACK_MS,
        )

    def storm_rate(self) -> Check:
        """Under a retry storm, admitted streams still stream at full rate."""
        rps = len(self.storm.refused_s) / self.storm.wall_s if self.storm.wall_s else math.nan
        diff = self.ttft_diff("storm")
        return Check(
            f"overload: admitted streams under a retry storm ({rps:.0f} 429s/s)",
            f"per-stream rate x{self.ratio('storm', 'rate'):.3f}, TTFT p50 {diff:+.2f} ms "
            f"(x{self.ratio('storm', 'p50'):.2f}), p99 x{self.ratio('storm', 'p99'):.2f}",
            f"rate >= x{ADMITTED_RATE_RATIO:g}",
            self.ratio("storm", "rate") >= ADMITTED_RATE_RATIO,
        )


# -- the whole run ------------------------------------------------------------------------


@dataclass
class Reliability:
    info: dict[str, Any]
    plan: str
    nofile: dict[str, int]  # RLIMIT_NOFILE: before, soft (as run), hard
    load: list[LoadRow] = field(default_factory=list)
    soak: SoakResult | None = None
    overload: OverloadResult | None = None
    seconds: float = 0.0

    def checks(self) -> list[Check]:
        out = [c for row in self.load for c in row.checks()]
        if self.soak is not None:
            out += self.soak.checks()
        if self.overload is not None:
            out += self.overload.checks()
        return out


def _checks_table(checks: list[Check]) -> list[str]:
    rows = [[c.goal, c.measured, c.target, _YES if c.met else _NO] for c in checks]
    return _table(["check", "measured", "target", "met"], rows)


def _load_table(rows: list[LoadRow]) -> list[str]:
    head = [
        "upstream",
        "c",
        "deltas",
        "streams correct direct / proxy",
        "errors / lost / corrupted (proxy)",
        "TTFT p50 / p99 direct (ms)",
        "TTFT p50 / p99 proxy (ms)",
        "added TTFT p50 / p99 (ms)",
        "total p50 direct / proxy (ms)",
        "proxy CPU per stream (ms)",
        "proxy peak RSS (MB)",
        "CPU busy (cores)",
        "other load (cores)",
    ]
    out = []
    for row in rows:
        r, d, p = row.result, row.result.direct, row.result.proxy
        out.append(
            [
                r.case.pacing,
                str(r.case.concurrency),
                str(r.case.deltas),
                _pair(f"{row.correct(d)}/{row.expected}", f"{row.correct(p)}/{row.expected}"),
                f"{p.error_count} / {row.lost(p)} / {row.corrupted(p)}",
                _pair(_f(d.ttft.p50), _f(d.ttft.p99)),
                _pair(_f(p.ttft.p50), _f(p.ttft.p99)),
                _pair(_f(r.added_ttft_p50, signed=True), _f(r.added_ttft_p99, signed=True)),
                _pair(_f(d.total.p50, 0), _f(p.total.p50, 0)),
                _f(p.cpu_s.get("proxy", math.nan) / p.requests * 1000 if p.requests else None),
                _f(p.peak_rss_mb, 0),
                _f(p.machine_busy),
                _f(r.other_cores),
            ]
        )
    return _table(head, out)


def _soak_rows(soak: SoakResult, every: int) -> list[Snapshot]:
    """Every sample but the periodic ones, of which: warm-up, then one per ``every``
    streams."""
    rows: list[Snapshot] = []
    next_mark = 0
    for s in soak.snapshots:
        if s.label != "load":
            rows.append(s)
        elif s is soak.warm or (s.at_s > soak.warm.at_s and s.streams >= next_mark):
            rows.append(s)
            next_mark = (s.streams // every + 1) * every
    return rows


def _soak_table(soak: SoakResult) -> list[str]:
    head = ["when", "streams", "s", "RSS (MB)", "open fds (upstream conns)", "tasks", "threads"]
    rows = []
    for s in _soak_rows(soak, max(soak.tally.done // 10, 1)):
        label = "warm-up" if s is soak.warm else s.label
        rows.append(
            [
                label,
                f"{s.streams:,}",
                f"{s.at_s:.0f}",
                f"{s.rss_mb:.1f}",
                f"{s.fds} ({s.fd_kinds.get('upstream', 0)})",
                "n/a" if s.tasks is None else str(s.tasks),
                str(s.threads),
            ]
        )
    return _table(head, rows)


def _overload_table(o: OverloadResult) -> list[str]:
    head = [
        "offered",
        "admitted streams",
        "429s",
        "429 latency p50 / p99 (ms)",
        "admitted TTFT p50 / p99 (ms)",
        "admitted total p50 (ms)",
        "per-stream deltas/s mean (min)",
        "proxy CPU (cores)",
        "other load (cores)",
        "errors",
    ]
    rows = []
    for key, run in o.runs.items():
        a, refused = o.admitted[key], o.refused(key)
        rows.append(
            [
                o.label(key),
                str(len(run.admitted)),
                str(len(run.refused_s)),
                _pair(_f(refused.p50), _f(refused.p99)) if run.refused_s else "—",
                _pair(_f(a.ttft.p50), _f(a.ttft.p99)),
                _f(a.total.p50, 0),
                f"{_f(a.rate_mean, 1)} ({_f(a.rate_min, 1)})",
                _f(run.cores.get("proxy")),
                _f(run.other_cores),
                str(sum(run.errors.values())),
            ]
        )
    return _table(head, rows)


def markdown(r: Reliability) -> str:
    info = r.info
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    lines = [
        f"### Reliability: load, soak, overload ({r.plan} plan, {info['date']})",
        "",
        f"Command: `{info['command']}` ({r.seconds:.0f} s). Machine: {info['cpus']} CPUs "
        f"({info['cpu_model']}), {info['platform']}; {versions}; event loop {info['loop']} "
        "in every process. The fake upstream (vLLM dialect), the load generator and "
        "railproxy each run in their own process on loopback. RLIMIT_NOFILE (soft) for "
        f"every process: {r.nofile['soft']} (was {r.nofile['before']}, hard "
        f"{r.nofile['hard']}).",
        "",
        *_checks_table(r.checks()),
    ]
    if r.load:
        lines += [
            "",
            "**Load**: one `railproxy serve` process, no rails, `max_concurrent_streams` and "
            "upstream `max_connections` 4096, `connect_timeout_s: 5`; each row measured "
            "against the upstream directly and then through railproxy (same load, same run; a row "
            "disturbed by other processes is measured again while a time budget lasts, "
            "keeping the quietest attempt). At full speed the machine is saturated: latency "
            "there is queueing; read it on the paced row. Every stream "
            "is checked: HTTP 200, its text equal to what the upstream sent, no error event, "
            "`[DONE]` last. Lost: a stream that did not come back whole (no `[DONE]`, broken "
            "connection, timeout, HTTP error, or never answered); corrupted: wrong bytes.",
            "",
            *_load_table(r.load),
        ]
    if r.soak is not None:
        s = r.soak
        lines += [
            "",
            f"**Soak**: {s.setup['streams']:,} streams of {s.setup['deltas']} deltas at full "
            f"speed, {s.setup['concurrency']} at a time, through one railproxy with rails on: "
            f"{s.setup['rails']}. In {s.load_s:.0f} s: {s.streams_per_s:.0f} streams/s, "
            f"{s.cpu_ms_per_stream:.2f} ms of proxy CPU per stream; CPU busy "
            f"{_f(sum(s.cores.values()))} cores (proxy {_f(s.cores.get('proxy'))}), other "
            f"load {_f(s.other_cores)} cores. Warm-up: the first "
            f"{s.warmup:,} streams. RSS and threads from /proc/<pid>/status, fds from "
            "/proc/<pid>/fd (in brackets: connections to the upstream, which aiohttp's pool "
            "keeps alive for 15 s after use), tasks = `len(asyncio.all_tasks())` on the "
            "proxy's loop (bench/reliability_probe.py). After the load, the client "
            "closes its connections and the proxy is sampled until fds and tasks are back "
            f"at baseline (at most {s.settle_limit_s:.0f} s).",
            "",
            *_soak_table(s),
        ]
    if r.overload is not None:
        o = r.overload
        lines += [
            "",
            f"**Overload**: railproxy with `max_concurrent_streams: {o.limit}`, no rails; "
            f"streams of {o.setup['deltas']} deltas paced at {o.setup['rate']:g} tokens/s. "
            f"Three runs: {o.limit} clients; {2 * o.limit} clients that wait as long as a "
            f"429's Retry-After asks (1 s); {2 * o.limit} clients that retry "
            f"{o.setup['storm_pause_s'] * 1000:g} ms after a 429 (a retry storm). Each run "
            "starts with a burst (one stream per client, all sent at once on warmed "
            f"connections), then for {o.setup['duration_s']:g} s the clients (started over "
            f"{o.setup['ramp_s']:g} s) send streams back to back; the table is that "
            "sustained phase. 429 latency: from sending the request to the end of the 429 "
            "response. Per-stream rate: deltas after the first / (total - TTFT).",
            "",
            *_overload_table(o),
        ]
    lines.append("")
    return "\n".join(lines)


def to_json(r: Reliability) -> dict[str, Any]:
    data: dict[str, Any] = {
        "plan": r.plan,
        "seconds": r.seconds,
        "info": r.info,
        "rlimit_nofile": r.nofile,
        "checks": [dataclasses.asdict(c) for c in r.checks()],
        "all_checks_met": all(c.met for c in r.checks()),
    }
    if r.load:
        data["load"] = [_load_json(row) for row in r.load]
    if r.soak is not None:
        s = r.soak
        data["soak"] = {
            "setup": s.setup,
            "tally": dataclasses.asdict(s.tally),
            "load_s": s.load_s,
            "cores": s.cores,
            "other_cores": s.other_cores,
            "streams_per_s": s.streams_per_s,
            "proxy_cpu_ms_per_stream": s.cpu_ms_per_stream,
            "rss_growth_after_warmup_mb": s.rss_growth_mb,
            "rss_growth_at_end_mb": s.end_growth_mb,
            "warmup_sample_at_streams": s.warm.streams,
            "snapshots": [dataclasses.asdict(x) for x in s.snapshots],
        }
    if r.overload is not None:
        o = r.overload
        data["overload"] = {
            "setup": o.setup,
            "runs": {
                key: {
                    "label": o.label(key),
                    "offered": run.offered,
                    "admitted_streams": len(run.admitted),
                    "refused": len(run.refused_s),
                    "refused_ms": dataclasses.asdict(o.refused(key)),
                    "burst_admitted": run.burst_admitted,
                    "burst_refused": run.burst_refused,
                    "bad_refusals": run.bad_refusals,
                    "errors": dict(run.errors),
                    "wall_s": run.wall_s,
                    "cores": run.cores,
                    "other_cores": run.other_cores,
                    "admitted": dataclasses.asdict(o.admitted[key]),
                    "ratios_to_alone": {k: o.ratio(key, k) for k in ("rate", "p50", "p99")},
                }
                for key, run in o.runs.items()
            },
        }
    return dict(_clean(data))


def _load_json(row: LoadRow) -> dict[str, Any]:
    r = row.result
    runs = {}
    for run in (r.direct, r.proxy):
        runs[run.target] = dataclasses.asdict(run) | {
            "correct": row.correct(run),
            "lost": row.lost(run),
            "corrupted": row.corrupted(run),
        }
    return {
        "case": dataclasses.asdict(r.case),
        "expected_streams": row.expected,
        "added_ttft_ms": {"p50": r.added_ttft_p50, "p99": r.added_ttft_p99},
        **runs,
    }
