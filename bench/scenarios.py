"""What is measured: rails setups, cases (setup x pacing x concurrency), the goals that
apply to each, and the railproxy config file of each setup."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

RailsKind = Literal["none", "local", "judge"]
Goal = Literal["added_ttft", "cpu_per_delta", "window_ttft"]

PACED_RATE = 50.0  # tokens per second, as the issues' goals state
GOAL_CONCURRENCY = 64
CHUNK_SIZE = 200
CONTEXT_SIZE = 50
JUDGE_DELAY_MS = 50.0
PLAIN_DELTAS = 64  # per stream, no rails
FULL_SPEED_DELTAS = 128
RAILS_DELTAS = 420  # two full windows of 200 tokens and a final partial one

# Goal thresholds (issues 2 and 3).
ADDED_TTFT_P50_MS = 2.0
ADDED_TTFT_P99_MS = 10.0
CPU_US_PER_DELTA = 30.0
WINDOW_TTFT_SLACK_MS = 2.0
LOCAL_RAILS_US_PER_WINDOW = 50.0

# The local rails: a regex entry (regex needs patterns) plus pii and secrets with defaults.
LOCAL_RAIL_CONFIG: dict[str, dict[str, Any]] = {
    "regex_rail": {"type": "regex", "patterns": ["(?i)forbidden phrase"]},
}
LOCAL_FLOWS = ["regex_rail", "pii", "secrets"]
BLOCKLIST_RAIL: dict[str, Any] = {"type": "blocklist", "words": ["forbidden phrase", "falcon"]}


@dataclass(frozen=True)
class Rails:
    """One railproxy configuration: no rails, the local rails (with the blocklist rail
    too when ``blocklist``), or the llm_judge rail."""

    kind: RailsKind
    stream_first: bool = True
    blocklist: bool = False

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "none"
        what = "regex+pii+secrets" if self.kind == "local" else "llm_judge (50 ms)"
        if self.blocklist:
            what += "+blocklist"
        return f"{what}, stream_first {str(self.stream_first).lower()}"

    @property
    def key(self) -> str:
        if self.kind == "none":
            return self.kind
        kind = f"{self.kind}4" if self.blocklist else self.kind
        return f"{kind}-sf-{self.stream_first}".lower()

    def rails_section(self, judge_url: str) -> dict[str, Any]:
        """``streaming`` and ``rails`` of the config file (empty for no rails)."""
        if self.kind == "none":
            return {}
        if self.kind == "local":
            config, flows = dict(LOCAL_RAIL_CONFIG), list(LOCAL_FLOWS)
            if self.blocklist:
                config["blocklist"] = BLOCKLIST_RAIL
                flows.append("blocklist")
        else:
            judge = {
                "type": "llm_judge",
                "base_url": judge_url,
                "model": "judge",
                "timeout_s": 5,
                # block, not allow: a failing judge must show up as errors in the results.
                "on_error": "block",
            }
            config, flows = {"judge": judge}, ["judge"]
        streaming = {
            "enabled": True,
            "chunk_size": CHUNK_SIZE,
            "context_size": CONTEXT_SIZE,
            "stream_first": self.stream_first,
        }
        return {
            "streaming": True,
            "rails": {
                "config": config,
                "output": {"flows": flows, "parallel": True, "streaming": streaming},
            },
        }

    def proxy_config(self, port: int, upstream_port: int, judge_port: int) -> dict[str, Any]:
        """The whole railproxy config file for this setup."""
        return {
            "server": {"host": "127.0.0.1", "port": port, "max_concurrent_streams": 4096},
            "upstream": {
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "max_connections": 4096,
            },
            "logging": {"level": "warning"},
            **self.rails_section(f"http://127.0.0.1:{judge_port}/v1"),
        }


@dataclass(frozen=True)
class Case:
    """One measurement: the load generator against the upstream directly, then through
    railproxy. ``rate`` 0 is full speed. Workers make at most ``requests`` each and stop
    starting new ones after ``duration`` seconds; they start over ``ramp`` seconds."""

    rails: Rails
    concurrency: int
    rate: float
    deltas: int
    requests: int
    duration: float
    ramp: float = 0.0

    @property
    def paced(self) -> bool:
        return self.rate > 0

    @property
    def pacing(self) -> str:
        return f"{self.rate:g} tok/s" if self.paced else "full speed"

    @property
    def goals(self) -> tuple[Goal, ...]:
        """The goals of issues 2 and 3 that this case is judged on."""
        if not self.paced:
            return ("cpu_per_delta",) if self.rails.kind == "none" else ()
        if self.rate != PACED_RATE or self.concurrency != GOAL_CONCURRENCY:
            return ()
        if self.rails.kind == "none" or self.rails.stream_first:
            return ("added_ttft",)
        return ("window_ttft",)

    @property
    def latency_goal(self) -> bool:
        """Whether a goal of this case is about latency (which other load disturbs)."""
        return "added_ttft" in self.goals or "window_ttft" in self.goals

    def timeout(self) -> float:
        """A generous bound on one load run, in seconds."""
        stream = self.deltas / self.rate if self.paced else 5.0
        return self.duration + self.ramp + 2 * stream + 60


FloorKind = Literal["request", "burst", "delta"]
FLOOR_GOAL_NONE = 1.2  # railproxy without rails / bare relay, at most (issue 18)
FLOOR_GOAL_LOCAL = 1.5  # railproxy with the local rails / bare relay, at most
BURST_GOAL = 1.2  # added TTFT p50 and p99 in a burst / the bare relay's, at most


@dataclass(frozen=True)
class FloorLoad:
    """One load run against the bare relay and railproxy (and the upstream directly when
    ``kind`` is ``burst``, for added TTFT). ``kind`` says which figure is compared with the
    bare relay: CPU per request, added TTFT under a burst, or CPU per delta. ``goal``:
    whether issue 18 sets a ratio for it (paced CPU per delta is only reported)."""

    name: str
    kind: FloorKind
    concurrency: int
    deltas: int
    rate: float = 0.0
    requests: int = 1_000_000  # per worker; rounds with ``burst``
    duration: float = 4.0
    stream: bool = True
    ramp: float = 0.0
    goal: bool = True
    blocks: int = 1  # interleaved blocks per target (bench/floor.py)

    @property
    def burst(self) -> bool:
        return self.kind == "burst"

    def block(self) -> FloorLoad:
        """One of ``blocks`` interleaved parts: a share of the rounds (burst) or of the
        duration (others)."""
        if self.blocks <= 1:
            return self
        if self.burst:
            return dataclasses.replace(self, requests=max(1, self.requests // self.blocks))
        return dataclasses.replace(self, duration=self.duration / self.blocks)

    def timeout(self) -> float:
        stream = self.deltas / self.rate if self.rate > 0 else 5.0
        return self.duration + self.ramp + 2 * stream + 60


@dataclass(frozen=True)
class Plan:
    """The cases to run; ``microbench_s``: time per in-process measure.

    A shared machine disturbs latency: before each load run, wait up to ``quiet_wait_s``
    (``quiet_wait_goal_s`` for a case with a latency goal) for other processes to go quiet,
    and measure a disturbed latency-goal case again while ``retry_budget_s`` lasts."""

    cases: tuple[Case, ...]
    microbench_s: float
    quiet_wait_s: float = 0.0
    quiet_wait_goal_s: float = 0.0
    retry_budget_s: float = 0.0
    floor: tuple[FloorLoad, ...] = ()
    upstream_usage: bool = False  # the fake upstream answers include_usage, as vLLM does

    def quiet_wait(self, case: Case) -> float:
        return self.quiet_wait_goal_s if case.latency_goal else self.quiet_wait_s

    def setups(self) -> list[Rails]:
        """Distinct rails setups, in first-use order (one railproxy process each)."""
        return list(dict.fromkeys(c.rails for c in self.cases))


NONE = Rails("none")
LOCAL_SF = Rails("local", stream_first=True)
LOCAL_HOLD = Rails("local", stream_first=False)
JUDGE_SF = Rails("judge", stream_first=True)
JUDGE_HOLD = Rails("judge", stream_first=False)


def _paced(rails: Rails, c: int, deltas: int, requests: int) -> Case:
    ramp = min(1.0, deltas / PACED_RATE) if c > 1 else 0.0
    return Case(rails, c, PACED_RATE, deltas, requests, duration=60.0, ramp=ramp)


def _full(rails: Rails, c: int, deltas: int, seconds: float) -> Case:
    return Case(rails, c, 0.0, deltas, requests=1_000_000, duration=seconds)


LOCAL4_SF = Rails("local", stream_first=True, blocklist=True)
FLOOR_RAILS = (NONE, LOCAL4_SF)


def floor_loads(quick: bool = False) -> tuple[FloorLoad, ...]:
    """Issue 18's loads: 1-token streams and non-streamed requests at c = 16 (CPU per
    request); 64 clients starting 20-token streams at 50 tokens/s at once, round after
    round (added TTFT); 420-delta streams at c = 64 at full speed and paced (CPU per
    delta)."""
    if quick:  # a smoke test of each kind of row (streams and whole answers), ~15 s
        return (
            FloorLoad("non-streamed", "request", 16, 1, duration=0.3, stream=False),
            FloorLoad("burst of 64", "burst", 64, 20, PACED_RATE, requests=1, duration=60.0),
            FloorLoad("full speed", "delta", 16, 64, duration=0.3),
        )
    seconds, rounds = 4.0, 15
    return (
        FloorLoad("1-token streams", "request", 16, 1, duration=seconds, blocks=2),
        FloorLoad("non-streamed", "request", 16, 1, duration=seconds, stream=False, blocks=2),
        FloorLoad(
            "burst of 64", "burst", 64, 20, PACED_RATE, requests=rounds, duration=60.0, blocks=3
        ),
        FloorLoad("full speed", "delta", 64, RAILS_DELTAS, duration=seconds, blocks=2),
        FloorLoad(
            "50 tok/s",
            "delta",
            64,
            RAILS_DELTAS,
            PACED_RATE,
            requests=1,
            duration=60.0,
            ramp=1.0,
            goal=False,
        ),
    )


def full_plan() -> Plan:
    """The whole matrix: about five minutes on a 2-core machine."""
    per_worker = {1: 12, 16: 4, 64: 3, 256: 2}
    cases = [_paced(NONE, c, PLAIN_DELTAS, n) for c, n in per_worker.items()]
    cases += [_full(NONE, c, FULL_SPEED_DELTAS, 4.0) for c in per_worker]
    cases.append(_full(NONE, GOAL_CONCURRENCY, RAILS_DELTAS, 4.0))
    for rails in (LOCAL_SF, LOCAL_HOLD, JUDGE_SF, JUDGE_HOLD):
        cases.append(_paced(rails, GOAL_CONCURRENCY, RAILS_DELTAS, 2))
        if rails.kind == "local":
            cases.append(_full(rails, GOAL_CONCURRENCY, RAILS_DELTAS, 4.0))
    return Plan(
        tuple(cases),
        microbench_s=1.0,
        quiet_wait_s=2.0,
        quiet_wait_goal_s=8.0,
        retry_budget_s=90.0,
        floor=floor_loads(),
    )


FLOOR_KEY = "floor"  # ``--only floor``: the rows against the bare relay (issue 18)


def only(plan: Plan, keys: list[str]) -> Plan:
    """``plan`` narrowed to the cases of the named rails setups (``Rails.key``); a
    ValueError names the known keys when one is unknown."""
    known = [r.key for r in plan.setups()] + ([FLOOR_KEY] if plan.floor else [])
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown setup {', '.join(unknown)}; known: {', '.join(known)}")
    cases = tuple(c for c in plan.cases if c.rails.key in keys)
    floor = plan.floor if FLOOR_KEY in keys else ()
    return dataclasses.replace(plan, cases=cases, floor=floor)


def quick_plan() -> Plan:
    """A smoke test of every part, in well under a minute."""
    cases = (
        _paced(NONE, GOAL_CONCURRENCY, PLAIN_DELTAS, 1),
        _full(NONE, GOAL_CONCURRENCY, FULL_SPEED_DELTAS, 1.0),
        _paced(LOCAL_HOLD, 16, RAILS_DELTAS, 1),
        _full(JUDGE_SF, 16, RAILS_DELTAS, 1.0),
    )
    return Plan(cases, microbench_s=0.15, floor=floor_loads(quick=True))
