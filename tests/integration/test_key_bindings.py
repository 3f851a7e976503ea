"""Client keys bound to configs: named keys, allowed configs (403 outside them), a key's
default config, the operator flag, keys as ``x-api-key``; names, never keys, in logs and
metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory, chat_body
from proxy.app import create_app
from proxy.auth import ApiKeyAuth
from proxy.clients import client_of
from proxy.loader import load_config
from proxy.run.server import bound_port
from proxy.settings import Settings, SettingsError

APP_KEY, OPS_KEY, PLAIN_KEY = "sk-app-0001", "sk-ops-0002", "sk-plain-0003"


def write_configs(directory: Path, keys: str) -> Path:
    (directory / "default.yaml").write_text(f"server:\n  api_keys:\n{keys}rails: {{}}\n")
    (directory / "strict.yaml").write_text(
        "rails:\n"
        "  config: {banned: {type: blocklist, words: [ruru]}}\n"
        "  output: {flows: [banned], streaming: {enabled: true, stream_first: false}}\n"
    )
    return directory


KEYS_YAML = (
    f"    - {{name: app, key: {APP_KEY}, configs: [strict]}}\n"
    f"    - {{name: ops, key: {OPS_KEY}, operator: true}}\n"
    f"    - {PLAIN_KEY}\n"
)


@pytest.fixture
async def bound(fake: FakeUpstream, proxy: ProxyFactory, tmp_path: Path) -> Proxy:
    fake.script = Script(text=["say ", "ruru", " now"])
    return await proxy(config_dir=write_configs(tmp_path, KEYS_YAML))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(p: Proxy, headers: dict[str, str], **body: Any) -> tuple[int, Any]:
    async with p.session.post(
        p.url("/v1/chat/completions"), json=chat_body(stream=False, **body), headers=headers
    ) as r:
        return r.status, await r.json()


async def test_a_bound_key_gets_its_first_config_by_default(bound: Proxy) -> None:
    status, answer = await post(bound, bearer(APP_KEY))
    assert (status, answer["error"]["code"]) == (400, "content_blocked")  # strict's rails


@pytest.mark.parametrize(
    ("selector", "headers"),
    [
        ({"config_id": "default"}, {}),
        ({"guardrails": {"config_id": "default"}}, {}),
        ({}, {"X-Rails-Config": "default"}),
        ({"config_id": "no-such-config"}, {}),
    ],
)
async def test_a_bound_key_cannot_pick_another_config(
    fake: FakeUpstream, bound: Proxy, selector: dict[str, Any], headers: dict[str, str]
) -> None:
    status, answer = await post(bound, {**bearer(APP_KEY), **headers}, **selector)
    assert status == 403
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "config_not_allowed"
    assert "'strict'" in error["message"]  # what it may use
    assert "default'" not in error["message"].split("may use")[1]
    assert fake.requests == []


async def test_the_sdk_sees_403_as_permission_denied(bound: Proxy) -> None:
    async with openai.AsyncOpenAI(base_url=bound.v1, api_key=APP_KEY, max_retries=0) as c:
        with pytest.raises(openai.PermissionDeniedError):
            await c.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"config_id": "default"},
            )


async def test_unbound_keys_use_any_config(bound: Proxy) -> None:
    for key in (OPS_KEY, PLAIN_KEY):
        status, answer = await post(bound, bearer(key))
        assert (status, answer["choices"][0]["finish_reason"]) == (200, "stop")
        status, answer = await post(bound, bearer(key), config_id="strict")
        assert (status, answer["error"]["code"]) == (400, "content_blocked")


async def test_configs_listing_shows_what_the_key_may_use(bound: Proxy) -> None:
    async with bound.session.get(bound.url("/v1/rails/configs"), headers=bearer(APP_KEY)) as r:
        assert (await r.json())["data"] == [{"id": "strict", "default": True}]
    async with bound.session.get(bound.url("/v1/rails/configs"), headers=bearer(OPS_KEY)) as r:
        data = (await r.json())["data"]
    assert data == [{"id": "default", "default": True}, {"id": "strict", "default": False}]


async def test_unlisted_routes_follow_the_keys_config(fake: FakeUpstream, bound: Proxy) -> None:
    """Operators who want every request guarded bind keys to railed configs."""
    async with bound.session.post(
        bound.url("/v1/audio/speech"), json={"input": "hi"}, headers=bearer(APP_KEY)
    ) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "route_not_guarded"
    assert fake.requests == []


@pytest.mark.parametrize("key", [APP_KEY, OPS_KEY, PLAIN_KEY])
async def test_x_api_key_is_accepted_and_not_forwarded(
    fake: FakeUpstream, bound: Proxy, key: str
) -> None:
    status, _ = await post(bound, {"x-api-key": key})
    assert status in (200, 400)  # 400: the app key's strict config blocked the answer
    assert len(fake.requests) == 1
    sent = fake.requests[-1].headers
    assert "x-api-key" not in sent
    assert "authorization" not in sent


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "sk-wrong"},
        {"x-api-key": ""},
        {"Authorization": "Bearer sk-wrong", "x-api-key": "sk-wrong"},
        {"Authorization": "Bearer sk-wrong", "x-api-key": APP_KEY},
        {"Authorization": f"Bearer {APP_KEY[:-1]}"},
    ],
)
async def test_wrong_keys_are_401(
    fake: FakeUpstream, bound: Proxy, headers: dict[str, str]
) -> None:
    status, answer = await post(bound, headers)
    assert status == 401
    assert answer["error"]["code"] == "invalid_api_key"
    assert fake.requests == []


async def test_names_not_keys_in_logs_and_metrics(
    bound: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="railproxy.access")
    await post(bound, bearer(APP_KEY))
    await post(bound, bearer(PLAIN_KEY))
    lines = [r for r in caplog.records if r.name == "railproxy.access"]
    assert [getattr(r, "client", None) for r in lines] == ["app", "key-3"]
    for r in lines:
        assert APP_KEY not in repr(vars(r))
        assert PLAIN_KEY not in repr(vars(r))
    async with bound.session.get(bound.url("/metrics")) as r:
        text = await r.text()
    assert 'railproxy_client_requests_total{client="app",code="400"} 1.0' in text
    assert 'railproxy_client_requests_total{client="key-3",code="200"} 1.0' in text
    assert APP_KEY not in text


# -- the record later features read: request[CLIENT] ------------------------------------------


async def test_the_middleware_exposes_name_operator_and_configs() -> None:
    settings = Settings.model_validate({"server": {"api_keys": [
        {"name": "ops", "key": OPS_KEY, "operator": True},
        {"name": "app", "key": APP_KEY, "configs": ["a", "b"]},
    ]}})  # fmt: skip

    async def whoami(request: web.Request) -> web.Response:
        c = client_of(request)
        return web.json_response([c.name, c.operator, c.configs, c.default_config])

    app = web.Application(middlewares=[ApiKeyAuth(settings.server.api_keys)])
    app.router.add_get("/whoami", whoami)
    from proxy.state import SETTINGS

    app[SETTINGS] = settings
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{bound_port(runner)}/whoami"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url, headers={"x-api-key": OPS_KEY}) as r:
                assert await r.json() == ["ops", True, None, None]
            async with s.get(url, headers=bearer(APP_KEY)) as r:
                assert await r.json() == ["app", False, ["a", "b"], "a"]
    finally:
        await runner.cleanup()


# -- the settings schema -------------------------------------------------------------------


def keys_of(value: Any) -> list[tuple[str, str, Any, bool]]:
    keys = Settings.model_validate({"server": {"api_keys": value}}).server.api_keys
    return [(k.name, k.key.get_secret_value(), k.configs, k.operator) for k in keys]


def test_the_plain_forms_still_work() -> None:
    assert keys_of(" a, b ,,") == [("key-1", "a", None, False), ("key-2", "b", None, False)]
    assert keys_of("") == []
    assert keys_of(["a", "b"]) == [("key-1", "a", None, False), ("key-2", "b", None, False)]


@pytest.mark.parametrize(
    "value",
    [
        [{"name": "a", "key": "k1"}, {"name": "a", "key": "k2"}],
        [{"name": "a", "key": "k1"}, {"name": "b", "key": "k1"}],
        ["k1", "k1"],
        [{"name": "a", "key": "  "}],
        [{"name": "bad name", "key": "k1"}],
        [{"name": "a", "key": "k1", "configs": []}],
        [{"name": "a", "key": "k1", "admin": True}],
    ],
)
def test_bad_key_lists_are_refused_without_echoing_keys(tmp_path: Path, value: Any) -> None:
    import yaml

    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"server": {"api_keys": value}}))
    with pytest.raises(SettingsError) as caught:
        load_config(str(f))
    assert "server.api_keys" in str(caught.value)
    assert "k1" not in str(caught.value)
    assert "k2" not in str(caught.value)


def test_a_key_bound_to_an_unknown_config_is_refused(tmp_path: Path) -> None:
    keys = "    - {name: app, key: sk-x, configs: [stricter]}\n"
    with pytest.raises(SettingsError, match=r"api_keys\[app\].*stricter"):
        load_config(str(write_configs(tmp_path, keys)))
    settings = Settings.model_validate(
        {"server": {"api_keys": [{"name": "app", "key": "sk-x", "configs": ["nope"]}]}}
    )
    with pytest.raises(SettingsError, match="nope"):
        create_app(settings)
