"""Metrics and the request log, measured through the real proxy on loopback."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory, chat_body, events

BLOCKING = {
    "streaming": True,
    "rails": {
        "config": {
            "banned": {"type": "blocklist", "words": ["falcon"]},
            "slow": {
                "type": "python",
                "class": "integration.sample_rails:SlowRail",
                "options": {"delay_s": 0.03},
                "fields": ["content"],  # its one window: not also the envelope's strings
            },
        },
        "output": {
            "flows": ["banned", "slow"],
            "streaming": {"enabled": True, "chunk_size": 50, "context_size": 5},
        },
    },
}


async def scrape(p: Proxy) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with p.session.get(p.url("/metrics")) as r:
        assert r.status == 200
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_blocked_stream_counts_once_for_its_rail(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" the", " falcon", " flies"])
    p = await proxy(**BLOCKING)
    before = await scrape(p)
    await p.post_stream("/v1/chat/completions", chat_body())
    after = await scrape(p)
    name = "railproxy_streams_blocked_total"
    assert value(after, name, rail="banned") - value(before, name, rail="banned") == 1
    verdicts = "railproxy_rail_verdicts_total"
    assert (
        value(after, verdicts, rail="banned", stage="output", verdict="block", mode="enforce") == 1
    )


async def test_ttft_histogram_counts_every_clean_stream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    route = "/v1/chat/completions"
    before = await scrape(p)
    for _ in range(5):
        await p.post_stream(route, chat_body())
    after = await scrape(p)
    for name, labels in [
        ("railproxy_time_to_first_token_seconds_count", {"route": route, "config": "default"}),
        ("railproxy_upstream_time_to_first_token_seconds_count", {"route": route}),
        (
            "railproxy_added_time_to_first_token_seconds_count",
            {"route": route, "config": "default"},
        ),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == 5, name
    assert value(after, "railproxy_requests_total", route=route, code="200") == 5
    assert value(after, "railproxy_tokens_total", direction="relayed") == 5 * 4


async def test_upstream_first_token_delay_lands_in_its_bucket(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(first_token_delay_s=0.3)
    p = await proxy()
    await p.post_stream("/v1/chat/completions", chat_body())
    m = await scrape(p)
    name = "railproxy_upstream_time_to_first_token_seconds_bucket"
    route = "/v1/chat/completions"
    assert value(m, name, route=route, le="0.25") == 0
    assert value(m, name, route=route, le="0.5") == 1


async def test_slow_rail_lands_in_its_duration_bucket(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(**BLOCKING)
    await p.post_stream("/v1/chat/completions", chat_body())
    m = await scrape(p)
    name = "railproxy_rail_duration_seconds_bucket"
    assert value(m, name, rail="slow", stage="output", le="0.025") == 0
    assert value(m, name, rail="slow", stage="output", le="0.05") == 1
    assert value(m, "railproxy_windows_checked_total") == 1


async def test_client_disconnect_is_counted(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=["x "] * 100, tokens_per_s=20)
    p = await proxy()
    resp = await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    await resp.content.readline()
    resp.close()
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    await asyncio.sleep(0.05)
    m = await scrape(p)
    assert value(m, "railproxy_client_disconnects_total") == 1
    assert value(m, "railproxy_active_streams") == 0


async def test_upstream_errors_by_kind(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    from fakes.faults import Fault, FaultKind

    p = await proxy()
    for fault in [
        Fault(FaultKind.IN_BAND_ERROR, after=1),
        Fault(FaultKind.EOF_NO_DONE, after=1),
        Fault(FaultKind.HTTP_STATUS, status=500),
    ]:
        fake.script = Script(fault=fault)
        await p.post_stream("/v1/chat/completions", chat_body())
    m = await scrape(p)
    for kind in ("in_band", "eof", "status"):
        assert value(m, "railproxy_upstream_errors_total", kind=kind) == 1, kind


async def test_info_metrics(proxy: ProxyFactory) -> None:
    p = await proxy(**BLOCKING)
    m = await scrape(p)
    assert any(k[0] == "railproxy_build_info" for k in m)
    configs = [dict(k[1]) for k in m if k[0] == "railproxy_config_info"]
    assert configs[0]["config"] == "default"
    assert len(configs[0]["hash"]) == 12


async def test_request_log_line_has_timings_and_no_text(
    fake: FakeUpstream, proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = Script(text=[" the", " falcon", " secret words"])
    p = await proxy(**BLOCKING)
    body = chat_body(messages=[{"role": "user", "content": "private prompt"}])
    with caplog.at_level(logging.INFO, logger="railproxy.access"):
        await p.post_stream("/v1/chat/completions", body, headers={"X-Request-Id": "r-1"})
    (rec,) = [r for r in caplog.records if r.name == "railproxy.access"]
    fields = vars(rec)
    assert fields["request_id"] == "r-1"
    assert fields["blocked_rail"] == "banned"
    assert fields["status"] == 200
    assert fields["ttft_s"] > 0
    assert "private prompt" not in caplog.text
    assert "secret words" not in caplog.text
    assert "blocked_text" not in fields  # logging.include_text is off by default


@pytest.mark.parametrize(
    ("stream", "question", "judged"),
    [
        (True, "hi", " the falcon secret words"),  # the window, with its context
        (False, "hi", " the falcon secret words"),  # the whole answer
        (True, "tell me of the falcon", "tell me of the falcon"),  # the input message
    ],
)
async def test_include_text_puts_the_judged_text_on_the_block_line(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    stream: bool,
    question: str,
    judged: str,
) -> None:
    """Opt-in, for reviewing false blocks: the text the blocking rail judged, nothing more
    (not the other messages of the request)."""
    fake.script = Script(text=[" the", " falcon", " secret words"])
    rails = {**BLOCKING["rails"], "input": {"flows": ["banned"]}}
    p = await proxy(streaming=True, rails=rails, logging={"include_text": True})
    messages = [
        {"role": "system", "content": "private system prompt"},
        {"role": "user", "content": question},
    ]
    with caplog.at_level(logging.INFO, logger="railproxy.access"):
        await p.post_stream("/v1/chat/completions", chat_body(stream, messages=messages))
    (rec,) = [r for r in caplog.records if r.name == "railproxy.access"]
    assert vars(rec)["blocked_rail"] == "banned"
    assert vars(rec)["blocked_text"] == judged
    assert "private system prompt" not in caplog.text


async def test_usage_is_requested_and_hidden_from_clients_that_did_not_ask(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(upstream={"request_usage": True})
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert b'"usage"' in fake.sent[-1]
    assert b'"usage"' not in raw
    assert events(raw)[-1] == b"[DONE]"
    m = await scrape(p)
    prompt = value(m, "railproxy_usage_tokens_total", kind="prompt", config="default")
    completion = value(m, "railproxy_usage_tokens_total", kind="completion", config="default")
    usage = json.loads([e for e in events(fake.sent[-1]) if b'"usage"' in e][-1])["usage"]
    assert (prompt, completion) == (usage["prompt_tokens"], usage["completion_tokens"])


async def test_client_asked_usage_is_kept(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(upstream={"request_usage": True})
    opts = {"stream_options": {"include_usage": True}}
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(**opts))
    assert raw == fake.sent[-1]


async def test_usage_falls_back_to_counts_when_the_upstream_reports_none(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(dialect="llamacpp", text=[" one", " two", " three"])  # no usage
    p = await proxy(**BLOCKING)
    body = chat_body(messages=[{"role": "user", "content": "count these four words"}])
    await p.post_stream("/v1/chat/completions", body)
    m = await scrape(p)
    assert value(m, "railproxy_usage_tokens_total", kind="prompt", config="default") == 4
    assert value(m, "railproxy_usage_tokens_total", kind="completion", config="default") == 3


@pytest.mark.parametrize("stream_first", [False, True])
async def test_holdback_histogram_counts_held_text_events(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """stream_first false: every text event is observed once, with how long it was held
    (the first of a 3-token window waits for the other two: >= 2 / tokens_per_s)."""
    fake.script = Script(text=[" a", " b", " c", " d", " e", " f"], tokens_per_s=20)
    streaming = {"enabled": True, "chunk_size": 3, "context_size": 1}
    rails = {"output": {"flows": ["pii"], "streaming": {**streaming, "stream_first": stream_first}}}
    p = await proxy(streaming=True, rails=rails)
    status, _ = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    m = await scrape(p)
    held = value(m, "railproxy_holdback_seconds_count")
    assert held == (0 if stream_first else 6)
    if not stream_first:
        assert value(m, "railproxy_holdback_seconds_sum") >= 2 * 2 * 0.05 * 0.9
        assert value(m, "railproxy_holdback_seconds_bucket", le="+Inf") == 6


async def test_inter_token_histogram_counts_gaps_between_content_writes(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """Paced deltas are written one by one: n content writes give n - 1 gaps, per stream."""
    fake.script = Script(text=[" a", " b", " c", " d"], tokens_per_s=40)
    p = await proxy()
    route = "/v1/chat/completions"
    for _ in range(2):
        status, _ = await p.post_stream(route, chat_body())
        assert status == 200
    m = await scrape(p)
    assert value(m, "railproxy_inter_token_seconds_count", route=route) == 2 * 3
    assert value(m, "railproxy_inter_token_seconds_sum", route=route) >= 2 * 3 * 0.025 * 0.8
