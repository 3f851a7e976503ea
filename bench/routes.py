"""The Responses API against chat, in one run: ``python -m bench.routes [--rounds N]``.

One fake upstream (``bench/upstream.py``: the same text as chat chunks and as vLLM 0.32's
Responses API events), one railproxy with the local rails and ``stream_first: true``. Each
round measures, for each route in turn (so drift on a shared machine hits both alike):

- proxy CPU per delta at full speed, c = 64, 420 deltas per stream (the chat route's
  ``cpu_per_delta`` case of ``bench.run``), and its ratio, responses / chat (goal: 1.15);
- added time to first token, paced at 50 tokens/s, c = 64: p50 through railproxy minus p50
  direct, per route.

The ratio reported is the median over rounds. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.proc import ServiceError, Services, wait_for_quiet
from bench.run import Bench
from bench.scenarios import (
    GOAL_CONCURRENCY,
    LOCAL_SF,
    PACED_RATE,
    PLAIN_DELTAS,
    RAILS_DELTAS,
    Case,
    Plan,
)

ROUTES = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
CPU_RATIO_GOAL = 1.15


@dataclass
class Row:
    route: str
    cpu_us_per_delta: list[float]
    added_ttft_p50_ms: list[float]
    errors: int = 0


def measure(rounds: int, seconds: float) -> dict[str, Row]:
    full = Case(LOCAL_SF, GOAL_CONCURRENCY, 0.0, RAILS_DELTAS, 1_000_000, duration=seconds)
    paced = Case(LOCAL_SF, GOAL_CONCURRENCY, PACED_RATE, PLAIN_DELTAS, 1, 60.0, ramp=1.0)
    plan = Plan((full, paced), microbench_s=0.0, quiet_wait_s=2.0)
    rows = {api: Row(api, [], []) for api in ROUTES}
    with tempfile.TemporaryDirectory(prefix="railproxy-bench-") as tmp, Services() as services:
        bench = Bench(services, Path(tmp), plan)
        bench.start()
        proxy, port = bench.start_proxy(LOCAL_SF)
        upstream = f"http://127.0.0.1:{bench.upstream_port}"
        through = f"http://127.0.0.1:{port}"
        for r in range(rounds):
            for api, path in ROUTES.items():
                print(f"bench.routes: round {r + 1}, {api}", file=sys.stderr, flush=True)
                wait_for_quiet(plan.quiet_wait_s)
                run = bench.load(full, through + path, "proxy", proxy, None, api)
                rows[api].cpu_us_per_delta.append(run.cpu_s["proxy"] / run.deltas * 1e6)
                direct = bench.load(paced, upstream + path, "direct", None, None, api)
                proxied = bench.load(paced, through + path, "proxy", proxy, None, api)
                rows[api].added_ttft_p50_ms.append(proxied.ttft.p50 - direct.ttft.p50)
                rows[api].errors += run.error_count + direct.error_count + proxied.error_count
        proxy.stop()
    return rows


def table(rows: dict[str, Row], rounds: int) -> str:
    ratios = [
        r / c
        for r, c in zip(
            rows["responses"].cpu_us_per_delta, rows["chat"].cpu_us_per_delta, strict=True
        )
    ]
    ratio = statistics.median(ratios)
    lines = [
        f"Local rails, stream_first true; median of {rounds} rounds (`python -m bench.routes`).",
        "",
        "| route | proxy CPU per delta (µs) | vs chat | added TTFT p50 (ms) | errors |",
        "|---|---|---|---|---|",
    ]
    for api, row in rows.items():
        cpu = statistics.median(row.cpu_us_per_delta)
        versus = "1.00" if api == "chat" else f"{ratio:.2f} (goal ≤ {CPU_RATIO_GOAL})"
        ttft = statistics.median(row.added_ttft_p50_ms)
        lines.append(f"| `{ROUTES[api]}` | {cpu:.1f} | {versus} | {ttft:.2f} | {row.errors} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.routes", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="per full-speed run")
    args = p.parse_args(argv)
    try:
        rows = measure(args.rounds, args.seconds)
    except ServiceError as e:
        print(f"bench.routes: failed: {e}", file=sys.stderr)
        return 1
    print(table(rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
