"""Monitor mode through the real proxy: rails judge live traffic and are counted, but the
client gets exactly the upstream's bytes (streamed and whole, both release modes, input and
output rails); a rail's own ``mode`` wins over ``rails.mode``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from fakes.upstream import FakeUpstream, Script
from integration import sample_rails
from integration.conftest import Proxy, ProxyFactory, chat_body

pytestmark = pytest.mark.usefixtures("no_leaks")

# A banned phrase and an e-mail address: enforced, the first blocks and the second is masked.
WORDS = [f" w{i}" for i in range(40)]
WORDS[12:14] = [" Project", " Falcon"]
WORDS[30:31] = [" ann@example.com"]
VERDICTS = "railproxy_rail_verdicts_total"


def rails(
    stream_first: bool = True, mode: str = "monitor", banned: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "streaming": True,
        "rails": {
            "mode": mode,
            "config": {
                "banned": {"type": "blocklist", "words": ["project falcon"], **(banned or {})},
                "pii": {"type": "pii", "action": "mask"},
            },
            "input": {"flows": ["banned"]},
            "output": {
                "flows": ["banned", "pii"],
                "streaming": {
                    "enabled": True,
                    "chunk_size": 8,
                    "context_size": 2,
                    "stream_first": stream_first,
                },
            },
        },
    }


async def scrape(p: Proxy) -> str:
    async with p.session.get(p.url("/metrics")) as r:
        return await r.text()


def series(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{VERDICTS}{{{inner}}}"


async def counted(p: Proxy, **labels: str) -> float:
    """The verdict counter's value once it is non-zero (monitor checks finish after the
    response; bounded wait), else 0."""
    name = series(**labels)
    for _ in range(200):
        for line in (await scrape(p)).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        await asyncio.sleep(0.01)
    return 0.0


def banned_prompt(stream: bool) -> dict[str, Any]:
    return chat_body(stream, messages=[{"role": "user", "content": "tell me of Project Falcon"}])


@pytest.mark.parametrize("stream_first", [True, False])
async def test_streamed_answer_is_byte_identical_and_every_verdict_counted(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/chat/completions", banned_prompt(True))
    assert status == 200
    assert raw == fake.sent[-1]  # nothing blocked, masked or added
    assert b"Falcon" in raw
    assert b"ann@example.com" in raw
    assert len(fake.requests) == 1  # the input rail's would-be block let it through
    assert await counted(p, rail="banned", stage="input", verdict="block", mode="monitor") == 1
    assert await counted(p, rail="banned", stage="output", verdict="block", mode="monitor") >= 1
    assert await counted(p, rail="pii", stage="output", verdict="modify", mode="monitor") >= 1
    assert await counted(p, rail="pii", stage="output", verdict="allow", mode="monitor") >= 1
    scraped = await scrape(p)
    assert "railproxy_streams_blocked_total{" not in scraped
    assert 'railproxy_tokens_total{direction="held"}' not in scraped  # nothing was held


async def test_whole_answer_is_byte_identical(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails(stream_first=False))
    async with p.session.post(p.url("/v1/chat/completions"), json=banned_prompt(False)) as r:
        assert r.status == 200
        raw = await r.read()
    assert raw == fake.sent[-1]
    assert b"Falcon" in raw
    assert await counted(p, rail="banned", stage="output", verdict="block", mode="monitor") >= 1
    assert await counted(p, rail="pii", stage="output", verdict="modify", mode="monitor") >= 1


@pytest.mark.parametrize("stream_first", [True, False])
async def test_a_rails_own_enforce_wins_over_config_monitor(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails(stream_first, banned={"mode": "enforce"}))
    async with p.session.post(p.url("/v1/chat/completions"), json=banned_prompt(True)) as r:
        assert r.status == 400  # the input rail enforces
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert b"content_blocked" in raw
    if not stream_first:  # held until judged: the phrase, and all after it, never sent
        assert b"Falcon" not in raw
        assert b"ann@example.com" not in raw
    assert await counted(p, rail="banned", stage="output", verdict="block", mode="enforce") == 1


async def test_a_rails_own_monitor_wins_over_config_enforce(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**rails(False, mode="enforce", banned={"mode": "monitor"}))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    # banned only counts; pii enforces, so the address alone is masked.
    assert b"Falcon" in raw
    assert b"ann@example.com" not in raw
    assert b"[EMAIL]" in raw
    assert await counted(p, rail="banned", stage="output", verdict="block", mode="monitor") >= 1


async def test_a_mixed_config_holds_only_for_its_enforcing_rail(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """A slow monitor rail on content (it waits until the test opens its gate) and an
    enforcing rail on tool arguments only: the content stream is complete, byte for byte,
    while the monitor rail has answered nothing."""
    gate = sample_rails.gate("mixed")
    judge = {"type": "python", "class": "integration.sample_rails:GatedRail"}
    config: dict[str, Any] = {
        "streaming": True,
        "rails": {
            "config": {
                "judge": {**judge, "options": {"gate": "mixed"}, "mode": "monitor"},
                "tools": {"type": "blocklist", "words": ["falcon"], "fields": ["tool_arguments"]},
            },
            "output": {
                "flows": ["judge", "tools"],
                "streaming": {"enabled": True, "chunk_size": 8, "stream_first": False},
            },
        },
    }
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**config)
    try:
        status, raw = await p.post_stream("/v1/chat/completions", chat_body())
        assert status == 200
        assert raw == fake.sent[-1]
        assert series(rail="judge", stage="output", verdict="allow", mode="monitor") not in (
            await scrape(p)
        )
    finally:
        gate.set()
    assert await counted(p, rail="judge", stage="output", verdict="allow", mode="monitor") >= 1


async def test_a_would_be_block_is_logged(
    fake: FakeUpstream, proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails())
    with caplog.at_level(logging.INFO, logger="railproxy.rails"):
        await p.post_stream("/v1/chat/completions", chat_body())
        await counted(p, rail="banned", stage="output", verdict="block", mode="monitor")
    lines = [r for r in caplog.records if r.getMessage().startswith("monitor:")]
    assert "monitor: output rail banned would block" in [r.getMessage() for r in lines]
    assert all("Falcon" not in str(vars(r)) for r in lines)  # no text unless opted in
