"""Rendering a ``BenchRun``: the markdown table for the README, and JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from bench.results import BARE, DIRECT, BenchRun, CaseResult, Check, FloorRow, LoadRun

_YES, _NO, _NONE = "✅", "❌", "—"


def _f(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pair(a: str, b: str) -> str:
    return f"{a} / {b}"


def _goal_cell(result: CaseResult) -> str:
    if not result.checks:
        return _NONE
    return _YES if all(c.met for c in result.checks) else _NO


def _errors(r: CaseResult) -> str:
    return _pair(str(r.direct.error_count), str(r.proxy.error_count))


def _ttft(run: LoadRun) -> str:
    return _pair(_f(run.ttft.p50), _f(run.ttft.p99))


def _common(r: CaseResult) -> list[str]:
    return [
        _pair(_f(r.direct.total.p50, 0), _f(r.proxy.total.p50, 0)),
        _pair(_f(r.direct.deltas_per_s, 0), _f(r.proxy.deltas_per_s, 0)),
        _f(r.proxy.cpu_per_1k_deltas("proxy"), 4),
        _f(r.us_per_delta, 1),
        _f(r.proxy.peak_rss_mb, 0),
        _f(r.proxy.machine_busy, 2),
        _f(r.other_cores, 2),
    ]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)]


_COMMON_HEAD = [
    "total p50 direct / proxy (ms)",
    "deltas/s direct / proxy",
    "proxy CPU s per 1k deltas",
    "proxy CPU µs per delta",
    "proxy peak RSS (MB)",
    "CPU busy (cores)",
    "other load (cores)",
]


def _plain_table(results: list[CaseResult]) -> list[str]:
    head = [
        "upstream",
        "c",
        "deltas",
        "TTFT p50 / p99 direct (ms)",
        "TTFT p50 / p99 proxy (ms)",
        "added TTFT p50 / p99 (ms)",
        *_COMMON_HEAD,
        "errors direct / proxy",
        "goal",
    ]
    rows = [
        [
            r.case.pacing,
            str(r.case.concurrency),
            str(r.case.deltas),
            _ttft(r.direct),
            _ttft(r.proxy),
            _pair(_f(r.added_ttft_p50, signed=True), _f(r.added_ttft_p99, signed=True)),
            *_common(r),
            _errors(r),
            _goal_cell(r),
        ]
        for r in results
    ]
    return _table(head, rows)


def _rails_table(results: list[CaseResult]) -> list[str]:
    head = [
        "rails",
        "upstream",
        "c",
        "TTFT p50 / p99 direct (ms)",
        "TTFT p50 / p99 proxy (ms)",
        "added TTFT p50 / p99 (ms)",
        "first window + rail = bound (ms)",
        "TTFT p50 - bound (ms)",
        *_COMMON_HEAD,
        "judge calls (per stream)",
        "errors direct / proxy",
        "goal",
    ]
    rows = []
    for r in results:
        bound = r.window_bound_ms
        window = (
            f"{_f(r.direct.mark.p50, 1)} + {_f(r.rail_latency_ms, 2)} = {_f(bound, 1)}"
            if bound is not None
            else "n/a"
        )
        calls = r.proxy.judge_calls
        per_stream = calls / r.proxy.requests if calls is not None and r.proxy.requests else None
        rows.append(
            [
                r.case.rails.label,
                r.case.pacing,
                str(r.case.concurrency),
                _ttft(r.direct),
                _ttft(r.proxy),
                _pair(_f(r.added_ttft_p50, signed=True), _f(r.added_ttft_p99, signed=True)),
                window,
                _f(r.over_bound_ms, signed=True),
                *_common(r),
                _NONE if per_stream is None else f"{calls} ({per_stream:.2f})",
                _errors(r),
                _goal_cell(r),
            ]
        )
    return _table(head, rows)


def _floor_table(rows: list[FloorRow]) -> list[str]:
    head = [
        "load",
        "c",
        "deltas",
        "relay",
        "requests",
        "CPU µs per request",
        "CPU µs per delta",
        "TTFT p50 / p99 (ms)",
        "added TTFT p50 / p99 (ms)",
        "x bare relay",
        "peak RSS (MB)",
        "other load (cores)",
        "errors",
        "goal",
    ]
    out = []
    for row in rows:
        load = row.load
        what = f"{load.name} ({'streamed' if load.stream else 'whole'}, {_rate(load.rate)})"
        if DIRECT in row.runs:
            direct = row.runs[DIRECT]
            cells = [what, str(load.concurrency), str(load.deltas), "(upstream directly)"]
            cells += [str(direct.requests), _NONE, _NONE, _ttft(direct), _NONE, _NONE, _NONE]
            cells += [_f(direct.other_cores), str(direct.error_count), _NONE]
            out.append(cells)
        for target in row.targets():
            run = row.runs[target]
            added = row.added_ttft(target)
            met = row.met(target)
            ratios = " / ".join(f"{r:.2f}" for r in row.ratios(target))
            out.append(
                [
                    what,
                    str(load.concurrency),
                    str(load.deltas),
                    target,
                    str(run.requests),
                    _f(row.cpu_us_per_request(target), 0),
                    _f(row.cpu_us_per_delta(target), 1),
                    _ttft(run),
                    _pair(_f(added[0], signed=True), _f(added[1], signed=True))
                    if DIRECT in row.runs
                    else _NONE,
                    _NONE if target == BARE else ratios,
                    _f(run.peak_rss_mb, 0),
                    _f(run.other_cores),
                    str(run.error_count),
                    _NONE if met is None else (_YES if met else _NO),
                ]
            )
    return _table(head, out)


def _rate(rate: float) -> str:
    return f"{rate:g} tok/s" if rate > 0 else "full speed"


def floor_json(row: FloorRow) -> dict[str, Any]:
    targets = {
        target: {
            "cpu_us_per_request": row.cpu_us_per_request(target),
            "cpu_us_per_delta": row.cpu_us_per_delta(target),
            "added_ttft_ms": dict(zip(("p50", "p99"), row.added_ttft(target), strict=True)),
            "ratios_to_bare": list(row.ratios(target)),
            "goal_ratio": row.goal(target),
            "met": row.met(target),
            "run": _run_json(row.runs[target]),
        }
        for target in row.targets()
    }
    direct = {DIRECT: _run_json(row.runs[DIRECT])} if DIRECT in row.runs else {}
    return {
        "load": dataclasses.asdict(row.load),
        "attempts": row.attempts,
        "other_cores": row.other_cores,
        "targets": targets,
        **direct,
    }


def _goals_table(checks: list[Check]) -> list[str]:
    rows = [[c.goal, c.measured, c.target, _YES if c.met else _NO] for c in checks]
    return _table(["goal", "measured", "target", "met"], rows)


def markdown(run: BenchRun) -> str:
    info = run.info
    plain = [r for r in run.cases if r.case.rails.kind == "none"]
    railed = [r for r in run.cases if r.case.rails.kind != "none"]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    judge = _f(run.judge_latency_ms)
    lines = [
        f"### Benchmark ({run.plan} plan, {info['date']})",
        "",
        f"Command: `{info['command']}` ({run.seconds:.0f} s). Machine: {info['cpus']} CPUs "
        f"({info['cpu_model']}), {info['platform']}; {versions}; event loop "
        f"{info['loop']} in every process. The fake upstream (vLLM dialect, one write per "
        "delta), the load generator and railproxy each run in their own process on "
        f"loopback; the fake judge answers after 50 ms (round trip measured: {judge} ms p50).",
        "",
        "Goals:",
        "",
        *_goals_table(run.checks()),
        "",
    ]
    if plain:
        lines += ["", "No rails:", "", *_plain_table(plain)]
    if railed:
        lines += [
            "",
            f"Rails (output rails, chunk_size 200, context_size 50, parallel; streams of "
            f"{railed[0].case.deltas} one-token deltas; bound = direct time to the delta that "
            "completes the first window + rail latency):",
            "",
            *_rails_table(railed),
        ]
    if run.floor:
        lines += [
            "",
            "Against a bare aiohttp relay (bench/bare_relay.py: read the body, open the "
            "upstream request, copy the bytes; uvloop), same loads, same run; railproxy "
            "without rails and with regex+pii+secrets+blocklist (200/50, stream_first true). "
            "x bare relay: CPU per request (1-token and non-streamed rows), added TTFT p50 / "
            "p99 (burst: 64 clients start at once, round after round), CPU per delta (420-delta "
            "rows), each divided by the bare relay's:",
            "",
            *_floor_table(run.floor),
        ]
    if run.micro:
        lines += [
            "",
            "Local rails, in-process cost per window (200 new + 50 context tokens):",
            "",
            *_table(
                ["measure", "µs per window", "note"],
                [[m.name, _f(m.us_per_window, 1), m.note] for m in run.micro],
            ),
        ]
    lines += [
        "",
        "How to read: TTFT is from sending the request to the first non-empty content "
        "delta; added = proxy - direct, same load, same run. CPU is the railproxy process's "
        "user+system time over the measured phase only, divided by content deltas relayed. "
        "CPU busy sums the load generator, fake upstream and railproxy (2.00 = both cores "
        "saturated): at full speed the machine is saturated, so judge latency on the paced "
        "rows and cost on CPU time. Other load is the most CPU that processes outside the "
        "benchmark used during either run of the row (each run waits up to "
        f"{run.quiet_wait[0]:g} s, {run.quiet_wait[1]:g} s for rows with a latency goal, for "
        "the machine to be quiet first; a latency-goal row disturbed by more than 0.25 cores "
        "is measured again while a time budget lasts, keeping the quietest attempt; "
        f"repeats in this run: {run.retried}).",
        "",
    ]
    return "\n".join(lines)


def to_json(run: BenchRun) -> dict[str, Any]:
    def case(r: CaseResult) -> dict[str, Any]:
        return {
            "case": dataclasses.asdict(r.case) | {"rails_label": r.case.rails.label},
            "goals": list(r.case.goals),
            "direct": _run_json(r.direct),
            "proxy": _run_json(r.proxy),
            "added_ttft_ms": {"p50": r.added_ttft_p50, "p99": r.added_ttft_p99},
            "proxy_cpu_us_per_delta": r.us_per_delta,
            "proxy_cpu_s_per_1k_deltas": r.proxy.cpu_per_1k_deltas("proxy"),
            "rail_latency_ms": r.rail_latency_ms,
            "window_bound_ms": r.window_bound_ms,
            "ttft_over_bound_ms": r.over_bound_ms,
            "checks": [dataclasses.asdict(c) for c in r.checks],
        }

    return _clean(
        {
            "plan": run.plan,
            "repeats": run.retried,
            "seconds": run.seconds,
            "info": run.info,
            "judge_latency_ms": run.judge_latency_ms,
            "cases": [case(r) for r in run.cases],
            "local_rails_per_window": [dataclasses.asdict(m) for m in run.micro],
            "checks": [dataclasses.asdict(c) for c in run.checks()],
            "floor": [floor_json(row) for row in run.floor],
            "all_goals_met": all(c.met for c in run.checks()),
        }
    )


def _run_json(run: LoadRun) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data |= {
        "deltas_per_s": run.deltas_per_s,
        "error_count": run.error_count,
        "machine_busy_cores": run.machine_busy,
    }
    return _clean(data)


def _clean(value: Any) -> Any:
    """NaN is not JSON: make it null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def emit(text: str, data: dict[str, Any], out: Path | None, json_path: Path | None) -> None:
    """Print the markdown; also write it to ``out`` and the numbers to ``json_path``."""
    print(text)
    if out:
        out.write_text(text, encoding="utf-8")
    if json_path:
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
