"""Several rails configs in one server: picked per request, listed, stripped, confined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body

STRICT = """
streaming: true
rails:
  config:
    banned: {type: blocklist, words: ["hello"]}
  output:
    flows: [banned]
    streaming: {enabled: true, chunk_size: 4, context_size: 2, stream_first: false}
"""
OPEN = "upstream: {base_url: 'http://127.0.0.1:9/v1'}\n"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "default.yaml").write_text(OPEN)
    (tmp_path / "strict.yaml").write_text(STRICT)
    (tmp_path / "notes.txt").write_text("not a config")
    return tmp_path


async def test_default_config_is_used_without_a_selector(
    fake: FakeUpstream, proxy: ProxyFactory, config_dir: Path
) -> None:
    p = await proxy(config_dir=config_dir)
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw == fake.sent[-1]


@pytest.mark.parametrize(
    ("body_extra", "headers"),
    [
        ({"guardrails": {"config_id": "strict"}}, {}),
        ({"config_id": "strict"}, {}),
        ({}, {"X-Rails-Config": "strict"}),
    ],
)
async def test_a_request_picks_a_config_and_the_selector_is_stripped(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    config_dir: Path,
    body_extra: dict[str, object],
    headers: dict[str, str],
) -> None:
    fake.script = Script(text=["Hello", " there", " friend", "!"])
    p = await proxy(config_dir=config_dir)
    body = chat_body(**body_extra)
    status, raw = await p.post_stream("/v1/chat/completions", body, headers=headers)
    assert status == 200
    assert b"Blocked by banned rails." in raw
    sent = fake.requests[-1].json
    assert "config_id" not in sent
    assert "guardrails" not in sent
    assert "x-rails-config" not in fake.requests[-1].headers


async def test_unknown_config_id_lists_the_known_ones(
    fake: FakeUpstream, proxy: ProxyFactory, config_dir: Path
) -> None:
    p = await proxy(config_dir=config_dir)
    for bad in ["nope", "../default", "/etc/passwd", "notes"]:
        status, raw = await p.post_stream("/v1/chat/completions", chat_body(config_id=bad))
        err = json.loads(raw)["error"]
        assert status == 400
        assert err["code"] == "unknown_config"
        assert "['default', 'strict']" in err["message"]
    assert fake.requests == []


async def test_configs_are_listed(proxy: ProxyFactory, config_dir: Path) -> None:
    p = await proxy(config_dir=config_dir)
    async with p.session.get(p.url("/v1/rails/configs")) as r:
        data = (await r.json())["data"]
    assert data == [{"id": "default", "default": True}, {"id": "strict", "default": False}]


async def test_config_id_must_be_a_string(proxy: ProxyFactory, config_dir: Path) -> None:
    p = await proxy(config_dir=config_dir)
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(config_id=3))
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "config_id"
