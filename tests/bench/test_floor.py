"""bench's rows against the bare relay (issue 18): the relay copies the fake upstream's
bytes exactly (streamed and whole), ``--only floor`` selects them, and the ratios and goals
are computed from the runs as stated. No timing is asserted."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import orjson
import pytest
from aiohttp import web

from bench import bare_relay, compare, floor, report, upstream
from bench.results import BARE, DIRECT, BenchRun, FloorRow, LoadRun, Stats
from bench.scenarios import FLOOR_RAILS, full_plan, only, quick_plan
from bench.text import expected_text, request_body


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def relay() -> AsyncIterator[tuple[str, str]]:
    """(upstream base, bare relay base), both served on loopback."""
    up, up_base = await _serve(upstream.create_app())
    bare, bare_base = await _serve(bare_relay.create_app(up_base + "/v1"))
    try:
        yield up_base, bare_base
    finally:
        await bare.cleanup()
        await up.cleanup()


@pytest.mark.parametrize("stream", [True, False])
async def test_the_bare_relay_copies_the_upstreams_bytes(
    relay: tuple[str, str], stream: bool
) -> None:
    body = request_body(20, 0.0) | {"stream": stream}
    answers = []
    async with aiohttp.ClientSession() as session:
        for base in relay:
            async with session.post(base + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
                answers.append((r.headers["Content-Type"], await r.read()))
    assert answers[0] == answers[1]
    ctype, raw = answers[1]
    if stream:
        assert ctype.startswith("text/event-stream")
        assert raw.endswith(b"data: [DONE]\n\n")
        assert raw.count(b"\n\n") == 20 + 3
    else:
        assert ctype.startswith("application/json")
        message = orjson.loads(raw)["choices"][0]["message"]
        assert message["content"] == expected_text("words", 20)


def test_only_floor_keeps_the_floor_rows_alone() -> None:
    plan = only(full_plan(), ["floor"])
    assert plan.cases == ()
    assert plan.floor == full_plan().floor
    assert {load.kind for load in plan.floor} == {"request", "burst", "delta"}
    assert not only(full_plan(), ["none"]).floor
    assert {load.kind for load in quick_plan().floor} == {"request", "burst", "delta"}


def _run(ttft_ms: tuple[float, float], cpu_s: float, requests: int, deltas: int) -> LoadRun:
    p50, p99 = (t / 1000 for t in ttft_ms)
    ttfts = [p50] * 60 + [p99] * 40
    return LoadRun(
        target="x",
        ttft=Stats.of_seconds(ttfts),
        total=Stats.of_seconds(ttfts),
        mark=Stats.of_seconds([]),
        requests=requests,
        deltas=deltas,
        errors={},
        warmup_errors=0,
        wall_s=1.0,
        cpu_s={"proxy": cpu_s},
    )


def test_ratios_and_goals_of_a_burst_and_a_request_row() -> None:
    none, local = (r.label for r in FLOOR_RAILS)
    burst = next(load for load in full_plan().floor if load.kind == "burst")
    row = FloorRow(
        burst,
        {
            DIRECT: _run((10, 20), 0, 64, 64 * 20),
            BARE: _run((20, 40), 0.1, 64, 64 * 20),
            none: _run((21, 41), 0.2, 64, 64 * 20),
            local: _run((40, 50), 0.3, 64, 64 * 20),
        },
    )
    assert row.targets() == [BARE, none, local]
    assert row.added_ttft(BARE) == pytest.approx((10, 20))
    assert row.ratios(none) == pytest.approx((1.1, 21 / 20))
    assert row.met(none) is True
    assert row.ratios(local) == pytest.approx((3.0, 1.5))
    assert row.met(local) is False
    assert row.met(BARE) is None
    assert [c.met for c in row.checks()] == [True, False]

    request = next(load for load in full_plan().floor if load.kind == "request")
    runs = {BARE: _run((1, 2), 0.1, 1000, 1000), none: _run((1, 2), 0.13, 1000, 1000)}
    runs[local] = _run((1, 2), 0.14, 1000, 1000)
    row = FloorRow(request, runs)
    assert row.cpu_us_per_request(BARE) == pytest.approx(100)
    assert row.ratios(none) == pytest.approx((1.3,))
    assert row.met(none) is False  # 1.2x without rails
    assert row.met(local) is True  # 1.5x with the local rails
    assert math.isnan(row.added_ttft(none)[0])


def test_compare_prints_the_cpu_figures_as_ratios_to_a_baseline() -> None:
    none, local = (r.label for r in FLOOR_RAILS)
    request = next(load for load in full_plan().floor if load.kind == "request")

    def data(cpu_none: float) -> dict[str, Any]:
        runs = {BARE: _run((1, 2), 0.1, 1000, 1000), none: _run((1, 2), cpu_none, 1000, 1000)}
        runs[local] = _run((1, 2), 0.14, 1000, 1000)
        run = BenchRun(
            info={"date": "d", "command": "c"},
            plan="p",
            cases=[],
            micro=[],
            judge_latency_ms=None,
            floor=[FloorRow(request, runs)],
        )
        return cast(dict[str, Any], json.loads(json.dumps(report.to_json(run))))

    base, new = data(0.12), data(0.15)
    figures = compare.figures(new)
    key = "floor: 1-token streams, c=16, 1 deltas"
    assert figures[f"{key}, {none}: CPU µs per request"] == pytest.approx(150)
    assert figures[f"{key}, {none}: x bare relay"] == pytest.approx(1.5)
    assert figures[f"{key}, {BARE}: CPU µs per request"] == pytest.approx(100)
    text = compare.table(base, new)
    assert f"| {key}, {none}: CPU µs per request | 120.00 | 150.00 | 1.25 |" in text
    assert f"| {key}, {BARE}: CPU µs per request | 100.00 | 100.00 | 1.00 |" in text


async def test_the_fake_upstream_sends_usage_only_when_asked_and_enabled() -> None:
    body = request_body(3, 0.0) | {"stream_options": {"include_usage": True}}
    seen = []
    for usage in (True, False):
        runner, base = await _serve(upstream.create_app(usage=usage))
        try:
            async with aiohttp.ClientSession() as session:
                for ask in (body, request_body(3, 0.0)):
                    async with session.post(base + "/v1/chat/completions", json=ask) as r:
                        seen.append(b'"choices":[],"usage":' in await r.read())
        finally:
            await runner.cleanup()
    assert seen == [True, False, False, False]


def test_interleaved_blocks_split_the_load_and_pool_the_runs() -> None:
    plan = {load.kind: load for load in full_plan().floor}
    burst, request = plan["burst"], plan["request"]
    assert burst.block().requests * burst.blocks == burst.requests
    assert request.block().duration * request.blocks == pytest.approx(request.duration)
    parts = [
        floor._Part(
            {"ttft": [0.01] * 3, "total": [0.02] * 3, "mark": [], "requests": 3, "deltas": 60}
            | {"errors": {"no_done": 1}, "warmup_errors": 0, "wall_s": 1.0},
            {"proxy": 0.5, "load": 0.1},
            2**20 * n,
            0.2,
        )
        for n in (10, 30)
    ]
    run = floor._merge("u", parts)
    assert (run.requests, run.deltas, run.ttft.n, run.wall_s) == (6, 120, 6, 2.0)
    assert run.errors == {"no_done": 2}
    assert run.cpu_s == {"proxy": 1.0, "load": 0.2}
    assert run.peak_rss_mb == 30
    assert run.other_cores == pytest.approx(0.2)
