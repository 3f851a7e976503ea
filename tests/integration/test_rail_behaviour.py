"""Rail failure policies, parallelism, fields and keep-alives through the real proxy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body, events

WORDS = [f" w{i}" for i in range(40)]

pytestmark = pytest.mark.usefixtures("no_leaks")


def config(
    rails: dict[str, dict[str, Any]],
    flows: list[str],
    stream_first: bool = False,
    parallel: bool = False,
    **streaming: Any,
) -> dict[str, Any]:
    s = {"enabled": True, "chunk_size": 8, "context_size": 4, "stream_first": stream_first}
    return {
        "streaming": True,
        "rails": {
            "config": rails,
            "output": {"flows": flows, "parallel": parallel, "streaming": {**s, **streaming}},
        },
    }


def py(cls: str, **options: Any) -> dict[str, Any]:
    """A sample rail on ``content`` only (these tests count and time content windows)."""
    rail = {"type": "python", "class": f"integration.sample_rails:{cls}", "options": options}
    return {**rail, "fields": ["content"]}


@pytest.mark.parametrize("cls", ["RaisingRail", "GarbageRail"])
@pytest.mark.parametrize(("on_error", "blocked"), [("allow", False), ("block", True)])
async def test_failing_rail_follows_on_error(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    cls: str,
    on_error: str,
    blocked: bool,
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**config({"bad": {**py(cls), "on_error": on_error}}, ["bad"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert (b"Blocked by bad rails." in raw) is blocked
    assert (raw == fake.sent[-1]) is not blocked
    assert "must not leak" not in caplog.text


@pytest.mark.parametrize(("on_error", "blocked"), [("allow", False), ("block", True)])
async def test_rail_timeout_follows_on_error(
    fake: FakeUpstream, proxy: ProxyFactory, on_error: str, blocked: bool
) -> None:
    fake.script = Script(text=WORDS[:10])
    slow = {**py("SlowRail", delay_s=5), "timeout_s": 0.1, "on_error": on_error}
    p = await proxy(**config({"slow": slow}, ["slow"]))
    start = time.monotonic()
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert time.monotonic() - start < 2
    assert (b"Blocked by slow rails." in raw) is blocked


async def test_parallel_rails_stop_at_first_block(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=[" hello", *WORDS])
    rails = {
        "banned": {"type": "blocklist", "words": ["hello"]},
        "slow": py("SlowRail", delay_s=3),
    }
    p = await proxy(**config(rails, ["slow", "banned"], parallel=True))
    start = time.monotonic()
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert time.monotonic() - start < 1.5  # the slow rail was cancelled, not awaited
    assert b"Blocked by banned rails." in raw


async def test_sequential_rails_run_in_config_order(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" hello", *WORDS])
    rails = {
        "a": {"type": "blocklist", "words": ["hello"]},
        "b": {"type": "regex", "patterns": ["hel+o"]},
    }
    p = await proxy(**config(rails, ["b", "a"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Blocked by b rails." in raw


async def test_keepalive_comments_while_holding(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=WORDS[:6])
    p = await proxy(**config({"slow": py("SlowRail", delay_s=0.5)}, ["slow"], keepalive_s=0.1))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert raw.count(b": keep-alive\n\n") >= 2
    assert [e for e in events(raw)] == [e for e in events(fake.sent[-1])]


async def test_tool_call_arguments_are_judged_when_asked(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=["ok"], tool_calls=[("run", ['{"cmd": "rm -', 'rf /"}'])])
    rails = {"tools": {"type": "regex", "patterns": [r"rm -rf"], "fields": ["tool_arguments"]}}
    p = await proxy(**config(rails, ["tools"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Blocked by tools rails." in raw
    assert b"rf /" not in raw


async def test_tool_calls_pass_untouched_by_content_rails(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=["ok"], tool_calls=[("run", ['{"cmd": "rm -', 'rf /"}'])])
    rails = {"tools": {"type": "regex", "patterns": [r"rm -rf"], "fields": ["content"]}}
    p = await proxy(**config(rails, ["tools"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert raw == fake.sent[-1]


async def test_tool_calls_are_judged_by_default(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=["ok"], tool_calls=[("run", ['{"cmd": "rm -', 'rf /"}'])])
    p = await proxy(**config({"tools": {"type": "regex", "patterns": [r"rm -rf"]}}, ["tools"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Blocked by tools rails." in raw


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_reasoning_is_judged_when_asked(
    fake: FakeUpstream, proxy: ProxyFactory, field: str
) -> None:
    fake.script = Script(text=["fine"], reasoning=[" the secret", " plan"], reasoning_field=field)
    rails = {"r": {"type": "blocklist", "words": ["secret plan"], "fields": ["reasoning"]}}
    p = await proxy(**config(rails, ["r"]))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Blocked by r rails." in raw


async def test_client_disconnect_while_a_rail_runs_cancels_everything(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS, tokens_per_s=50)
    p = await proxy(**config({"slow": py("SlowRail", delay_s=5)}, ["slow"]))
    before = len(asyncio.all_tasks())
    resp = await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    await resp.content.readline()
    await asyncio.sleep(0.3)  # a window is being checked now
    resp.close()
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    await asyncio.sleep(0.1)
    assert len(asyncio.all_tasks()) <= before


async def test_stream_first_true_writes_before_the_window_verdict(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS[:4])
    rails = {"slow": py("SlowRail", delay_s=1.0)}
    p = await proxy(**config(rails, ["slow"], stream_first=True))
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        seen_content_at = None
        while line := await r.content.readline():
            if b'"content":" w' in line and seen_content_at is None:
                seen_content_at = time.monotonic()
        ended_at = time.monotonic()
    assert seen_content_at is not None
    assert ended_at - seen_content_at > 0.7  # content went out; only the end waited
