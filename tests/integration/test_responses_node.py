"""The openai npm package (pinned in tests/clients/node, Node 20) on ``/v1/responses``
through railproxy: clean, blocked (``APIError``) and ``content_filter``
(``response.incomplete``), streamed, through the ``responses.stream()`` helper, and whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory
from integration.test_client_blocks import BEFORE, REFUSAL, WORDS, drive, node_clients, rails

__all__ = ["node_clients"]  # the fixture, shared with test_client_blocks
STREAMED = ("responses_stream", "responses_helper")


@pytest.mark.parametrize("op", STREAMED)
async def test_clean(fake: FakeUpstream, proxy: ProxyFactory, node_clients: Path, op: str) -> None:
    fake.script = Script(text=[" a", " clean", " answer"])
    p = await proxy(**rails("error"))
    got = await drive(node_clients, "openai", op, p.base)
    assert got["error"] is None
    assert (got["text"], got["finish_reason"]) == (" a clean answer", "completed")


@pytest.mark.parametrize("op", STREAMED)
async def test_blocked_raises(
    fake: FakeUpstream, proxy: ProxyFactory, node_clients: Path, op: str
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails("error"))
    got = await drive(node_clients, "openai", op, p.base)
    assert got["text"] == BEFORE
    assert got["error"]["name"] == "APIError"
    assert got["error"]["code"] == "content_blocked"
    whole = await drive(node_clients, "openai", "responses_whole", p.base)
    assert whole["error"]["name"] == "BadRequestError"
    assert whole["error"]["status"] == 400


@pytest.mark.parametrize("op", STREAMED)
async def test_content_filter(
    fake: FakeUpstream, proxy: ProxyFactory, node_clients: Path, op: str
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**rails("content_filter"))
    got = await drive(node_clients, "openai", op, p.base)
    assert got["error"] is None
    assert got["text"] == BEFORE + REFUSAL
    assert got["finish_reason"] == "incomplete:content_filter"
    whole = await drive(node_clients, "openai", "responses_whole", p.base)
    assert (whole["text"], whole["finish_reason"]) == ("", "incomplete:content_filter")
