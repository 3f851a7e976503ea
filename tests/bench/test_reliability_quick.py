"""``python -m bench.reliability``: the soak and overload parts end to end at a tiny size
(real processes on loopback, ~10 s), and the result logic on made-up numbers.

Only correctness is asserted (every stream right, every canary blocked, fds and tasks back
at baseline, exactly the limit admitted from a burst, every 429 well formed), never a
latency: the machine may be busy with other work.
"""

from __future__ import annotations

import dataclasses
import json
import math

import orjson
import pytest

from bench import reliability_report as report
from bench.load import Refusal
from bench.reliability import _settle, main, quick_plan, run_parts
from bench.reliability_drive import Tally, well_formed_429
from bench.reliability_report import LoadRow, SoakResult, settled
from bench.reliability_watch import Snapshot
from bench.results import CaseResult, LoadRun, Stats
from bench.scenarios import NONE, Case

QUICK = quick_plan()
TINY = dataclasses.replace(
    QUICK,
    name="tiny",
    load=(),
    soak=dataclasses.replace(
        QUICK.soak,
        streams=300,
        warmup=100,
        concurrency=8,
        canary_every=20,
        sample_s=0.3,
        settle_s=30.0,  # an upper bound: the settle phase returns once settled
    ),
    overload=dataclasses.replace(QUICK.overload, limit=4, deltas=16, duration_s=0.8, ramp_s=0.1),
)


def _met(result: report.Reliability, prefix: str) -> bool:
    found = [c for c in result.checks() if c.goal.startswith(prefix)]
    assert found, prefix
    return all(c.met for c in found)


def _numbers(result: report.Reliability) -> str:
    """The soak's fd and task figures, for an assertion message."""
    soak = result.soak
    assert soak is not None
    checks = [f"{c.goal}: {c.measured}" for c in result.checks() if c.goal.startswith("soak")]
    samples = [f"{s.label}: fds {s.fds} {s.fd_kinds} tasks {s.tasks}" for s in soak.snapshots]
    return "\n".join([*checks, *samples[:1], *samples[-3:]])


@pytest.mark.timeout(90)
def test_soak_and_overload_end_to_end() -> None:
    result = run_parts(TINY, ["soak", "overload"], ["--tiny"], lambda msg: None)
    soak, over = result.soak, result.overload
    assert soak is not None
    assert over is not None
    assert soak.tally.ok + soak.tally.blocked == 300, soak.tally
    assert soak.tally.blocked == soak.tally.canaries == 15
    assert _met(result, "soak: every stream correct")
    assert _met(result, "soak: open fds back to baseline"), _numbers(result)
    assert _met(result, "soak: asyncio tasks back to baseline"), _numbers(result)
    assert soak.baseline.tasks is not None
    assert soak.baseline.tasks > 0
    assert {s.label for s in soak.snapshots} >= {"baseline", "load", "load end", "settled"}
    assert _met(result, "overload: 8 sent at once, limit 4")
    assert over.over.burst_refused == over.storm.burst_refused == 4
    assert _met(result, "overload: every refusal a 429")
    assert _met(result, "overload: admitted streams correct")
    assert over.storm.refused_s
    assert not over.alone.refused_s
    text = report.markdown(result)
    assert "python -m bench.reliability --tiny" in text
    assert "**Soak**" in text
    data = json.loads(json.dumps(report.to_json(result)))
    assert data["soak"]["tally"]["errors"] == {}
    assert data["overload"]["runs"]["over"]["burst_refused"] == 4


def test_the_command_refuses_an_unknown_part(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--only", "soak,nope"])
    assert exit_.value.code == 2
    assert "unknown part nope" in capsys.readouterr().err


def test_quick_plan_is_small() -> None:
    plan = quick_plan()
    assert plan.soak.streams <= 5_000
    assert plan.overload.duration_s <= 5
    assert all(c.concurrency == 1000 for c in plan.load)


def _refusal(body: object, retry_after: str | None = "1") -> Refusal:
    return Refusal(429, retry_after, orjson.dumps(body), 0.001)


def test_a_429_must_have_retry_after_and_openais_error_shape() -> None:
    good = {
        "error": {
            "message": "busy",
            "type": "rate_limit_error",
            "param": None,
            "code": "too_many_streams",
        }
    }
    assert well_formed_429(_refusal(good))
    assert not well_formed_429(_refusal(good, retry_after=None))
    assert not well_formed_429(_refusal(good, retry_after="soon"))
    assert not well_formed_429(_refusal({"error": "busy"}))
    assert not well_formed_429(_refusal({"error": {**good["error"], "code": "x"}}))
    assert not well_formed_429(Refusal(429, "1", b"not json", 0.0))


def _snap(label: str, at: float, streams: int, rss: float, fds: int, tasks: int) -> Snapshot:
    return Snapshot(label, at, streams, rss, fds, {"upstream": 0}, tasks, 6, 0.0)


def _soak(samples: list[Snapshot]) -> SoakResult:
    setup = {"streams": 1000, "warmup": 100}
    return SoakResult(setup, Tally(ok=1000), samples, 10.0, 5.0)


def test_soak_growth_is_measured_from_the_first_sample_past_warm_up() -> None:
    result = _soak(
        [
            _snap("baseline", 0, 0, 80.0, 15, 2),
            _snap("load", 1, 50, 90.0, 100, 60),
            _snap("load", 2, 120, 95.0, 100, 60),  # the warm-up sample
            _snap("load", 3, 600, 99.0, 100, 60),
            _snap("load end", 4, 1000, 97.0, 100, 60),
            _snap("settled", 6, 1000, 97.0, 15, 2),
        ]
    )
    assert result.warm.streams == 120
    assert result.rss_growth_mb == pytest.approx(4.0)
    assert result.end_growth_mb == pytest.approx(2.0)
    assert all(c.met for c in result.checks())


def test_soak_fails_on_growth_leftover_tasks_or_fds() -> None:
    result = _soak(
        [
            _snap("baseline", 0, 0, 80.0, 15, 2),
            _snap("load", 2, 120, 95.0, 100, 60),
            _snap("load", 3, 600, 130.0, 100, 60),
            _snap("load end", 4, 1000, 130.0, 100, 60),
            _snap("settled", 6, 1000, 130.0, 16, 3),
        ]
    )
    met = {c.goal: c.met for c in result.checks()}
    assert met == {
        "soak: every stream correct, every canary blocked": True,
        "soak: RSS growth after warm-up": False,
        "soak: open fds back to baseline": False,
        "soak: asyncio tasks back to baseline": False,
    }


def test_soak_fds_may_still_hold_idle_upstream_connections() -> None:
    base = Snapshot("baseline", 0, 0, 80.0, 15, {"upstream": 0}, 2, 6, 0.0)
    warm = Snapshot("load", 1, 200, 90.0, 143, {"upstream": 64}, 200, 6, 0.0)
    end = Snapshot("load end", 2, 1000, 90.0, 143, {"upstream": 64}, 60, 6, 0.0)
    last = Snapshot("settled", 3, 1000, 90.0, 79, {"upstream": 64}, 2, 6, 0.0)
    assert all(c.met for c in _soak([base, warm, end, last]).checks())


class _Views:
    """Stands in for a ProcessView: hands out the given snapshots in order."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self.left = list(snapshots)
        self.taken = 0

    def snapshot(self, label: str, streams: int) -> Snapshot:
        self.taken += 1
        return self.left.pop(0)


def test_settle_waits_for_what_the_checks_judge_not_raw_fds() -> None:
    """The flake: with idle upstream connections pooled, raw fds never equal the baseline,
    so the settle phase ran to its limit and the check judged a sample that caught a client
    socket still closing. Now it waits until the check's own predicate holds."""
    base = Snapshot("baseline", 0, 0, 80.0, 15, {"upstream": 0}, 2, 6, 0.0)
    closing = Snapshot("settled", 1, 300, 80.0, 20, {"upstream": 4, "client": 1}, 2, 6, 0.0)
    pooled = Snapshot("settled", 2, 300, 80.0, 19, {"upstream": 4, "client": 0}, 2, 6, 0.0)
    views = _Views(closing, pooled)
    got = _settle(views, base, 300, limit_s=30.0)  # type: ignore[arg-type]
    assert got is pooled
    assert views.taken == 2
    assert not settled(base, closing)
    assert settled(base, pooled)
    load = [_snap("load", 1, 200, 90, 50, 60), _snap("load end", 1, 300, 90, 50, 60)]
    assert all(c.met for c in _soak([base, *load, got]).checks())


def _run(target: str, requests: int, errors: dict[str, int]) -> LoadRun:
    stats = Stats.of_seconds([0.001, 0.002])
    return LoadRun(target, stats, stats, stats, requests, 10, errors, 0, 1.0, {})


def test_load_counts_lost_and_corrupted_streams() -> None:
    case = Case(NONE, 10, 0.0, deltas=8, requests=2, duration=60.0)
    direct = _run("direct", 20, {})
    proxy = _run("proxy", 19, {"content_mismatch": 1, "no_done": 2})
    row = LoadRow(CaseResult(case, direct, proxy), expected=20)
    assert (row.correct(proxy), row.corrupted(proxy), row.lost(proxy)) == (16, 1, 3)
    assert [c.met for c in row.checks()] == [True, False]
    assert "(content_mismatch: 1, no_done: 2)" in row.checks()[1].measured
    assert row.lost(direct) == row.corrupted(direct) == 0


def test_no_nan_reaches_the_json() -> None:
    stats = Stats.of_seconds([])
    assert math.isnan(stats.p99)
    case = Case(NONE, 1, 0.0, deltas=8, requests=1, duration=1.0)
    row = LoadRow(CaseResult(case, _run("direct", 1, {}), _run("proxy", 1, {})), 1)
    result = report.Reliability({"versions": {}}, "x", {"before": 1, "soft": 1, "hard": 1})
    result.load = [row]
    text = json.dumps(report.to_json(result), allow_nan=False)
    assert '"correct": 1' in text
