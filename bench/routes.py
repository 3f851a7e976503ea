"""The Responses and Messages APIs against chat, in one run:
``python -m bench.routes [--rounds N] [--quick]``.

One fake upstream (``bench/upstream.py``: the same text as chat chunks, as vLLM 0.32's
Responses API events and as its Anthropic Messages API events), one railproxy with the local
rails and ``stream_first: true``. First, a stream holding an e-mail address must be blocked on
every route (the rails are on). Then each round measures, for each route in turn (so drift on
a shared machine hits all alike):

- proxy CPU per delta at full speed, c = 64, 420 deltas per stream (the chat route's
  ``cpu_per_delta`` case of ``bench.run``), and its ratio to chat's in the same round
  (goal: 1.15);
- added time to first token, paced at 50 tokens/s, c = 64: p50 through railproxy minus p50
  direct, per route.

The ratio reported is the median over rounds. Prints a markdown table. ``--quick``: one
short round at c = 16, a smoke test of every part (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.proc import HTTP, ServiceError, Services, wait_for_quiet
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
from bench.text import request_body

ROUTES = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
CPU_RATIO_GOAL = 1.15


@dataclass
class Row:
    route: str
    cpu_us_per_delta: list[float]
    added_ttft_p50_ms: list[float]
    errors: int = 0

    def last(self) -> str:
        cpu, ttft = self.cpu_us_per_delta[-1], self.added_ttft_p50_ms[-1]
        return f"{self.route}: {cpu:.1f} µs per delta, added TTFT p50 {ttft:+.2f} ms"


def plan(seconds: float, quick: bool = False) -> Plan:
    """The full-speed case (CPU) and the paced one (TTFT)."""
    if quick:
        full = Case(LOCAL_SF, 16, 0.0, RAILS_DELTAS, 1_000_000, duration=seconds)
        paced = Case(LOCAL_SF, 16, PACED_RATE, 16, 1, 30.0, ramp=0.2)
        return Plan((full, paced), microbench_s=0.0)
    full = Case(LOCAL_SF, GOAL_CONCURRENCY, 0.0, RAILS_DELTAS, 1_000_000, duration=seconds)
    paced = Case(LOCAL_SF, GOAL_CONCURRENCY, PACED_RATE, PLAIN_DELTAS, 1, 60.0, ramp=1.0)
    return Plan((full, paced), microbench_s=0.0, quiet_wait_s=2.0)


def measure(rounds: int, seconds: float, quick: bool = False) -> dict[str, Row]:
    full, paced = (p := plan(seconds, quick)).cases
    rows = {api: Row(api, [], []) for api in ROUTES}
    with tempfile.TemporaryDirectory(prefix="railproxy-bench-") as tmp, Services() as services:
        bench = Bench(services, Path(tmp), p)
        bench.start()
        proxy, port = bench.start_proxy(LOCAL_SF)
        upstream = f"http://127.0.0.1:{bench.upstream_port}"
        through = f"http://127.0.0.1:{port}"
        for api, path in ROUTES.items():
            check_blocked(through + path, api)
        for r in range(rounds):
            for api, path in ROUTES.items():
                print(f"bench.routes: round {r + 1}, {api}", file=sys.stderr, flush=True)
                if p.quiet_wait_s > 0:
                    wait_for_quiet(p.quiet_wait_s)
                run = bench.load(full, through + path, "proxy", proxy, None, api)
                if run.deltas == 0:
                    raise ServiceError(f"{api}: no delta relayed at full speed: {run.errors}")
                rows[api].cpu_us_per_delta.append(run.cpu_s["proxy"] / run.deltas * 1e6)
                direct = bench.load(paced, upstream + path, "direct", None, None, api)
                proxied = bench.load(paced, through + path, "proxy", proxy, None, api)
                rows[api].added_ttft_p50_ms.append(proxied.ttft.p50 - direct.ttft.p50)
                rows[api].errors += run.error_count + direct.error_count + proxied.error_count
                print(f"bench.routes: {rows[api].last()}", file=sys.stderr, flush=True)
        proxy.stop()
    return rows


def check_blocked(url: str, api: str) -> None:
    """A stream holding an e-mail address must end in our block (an error event naming
    ``guardrails_violation``; with ``stream_first: true`` the address itself was sent)."""
    body = json.dumps(request_body(64, 0.0, "canary", api)).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with HTTP.open(req, timeout=30) as resp:
            text = resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise ServiceError(f"{api}: the canary stream failed: {e!r}") from e
    if b"guardrails_violation" not in text:
        raise ServiceError(f"{api}: the canary stream was not blocked")


def table(rows: dict[str, Row], rounds: int) -> str:
    chat = rows["chat"].cpu_us_per_delta
    lines = [
        f"Local rails, stream_first true; median of {rounds} rounds (`python -m bench.routes`).",
        "",
        "| route | proxy CPU per delta (µs) | vs chat | per round | added TTFT p50 (ms) | errors |",
        "|---|---|---|---|---|---|",
    ]
    for api, row in rows.items():
        cpu = statistics.median(row.cpu_us_per_delta)
        ratios = [r / c for r, c in zip(row.cpu_us_per_delta, chat, strict=True)]
        ratio = statistics.median(ratios)
        versus = "1.00" if api == "chat" else f"{ratio:.2f} (goal ≤ {CPU_RATIO_GOAL})"
        each = " / ".join(f"{r:.2f}" for r in ratios)
        ttft = statistics.median(row.added_ttft_p50_ms)
        cells = [f"`{ROUTES[api]}`", f"{cpu:.1f}", versus, each, f"{ttft:.2f}", str(row.errors)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.routes", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="per full-speed run")
    p.add_argument("--quick", action="store_true", help="one round of 1 s, c = 16")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, min(args.seconds, 1.0)
    try:
        rows = measure(args.rounds, args.seconds, args.quick)
    except ServiceError as e:
        print(f"bench.routes: failed: {e}", file=sys.stderr)
        return 1
    print(table(rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
