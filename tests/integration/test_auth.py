"""Client authentication with server.api_keys."""

from __future__ import annotations

import pytest

from fakes.upstream import FakeUpstream
from integration.conftest import ProxyFactory, chat_body
from proxy.auth import bearer, key_matches

KEYS = {"api_keys": "key-one, key-two"}


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Basic key-one", 401),
        ("Bearer key-one", 200),
        ("bearer key-two", 200),
        ("Bearer key-one-and-more", 401),
        ("Bearer ", 401),
    ],
)
async def test_api_keys_are_required(
    fake: FakeUpstream, proxy: ProxyFactory, header: str | None, status: int
) -> None:
    p = await proxy(server=KEYS)
    headers = {"Authorization": header} if header else {}
    async with p.session.post(
        p.url("/v1/chat/completions"), json=chat_body(), headers=headers
    ) as r:
        assert r.status == status
        if status == 401:
            body = await r.json()
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert body["error"]["code"] == "invalid_api_key"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert "wrong" not in str(body)
    if status == 401:
        assert fake.requests == []


async def test_client_key_is_not_forwarded_upstream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(server=KEYS)
    await p.post_stream(
        "/v1/chat/completions", chat_body(), headers={"Authorization": "Bearer key-one"}
    )
    assert "authorization" not in fake.requests[-1].headers


async def test_upstream_key_still_sent(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(server=KEYS, upstream={"api_key": "sk-up"})
    async with p.session.get(p.url("/v1/models"), headers={"Authorization": "Bearer key-two"}) as r:
        assert r.status == 200
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-up"


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_probes_and_metrics_stay_open(proxy: ProxyFactory, path: str) -> None:
    p = await proxy(server=KEYS)
    async with p.session.get(p.url(path)) as r:
        assert r.status == 200


async def test_metrics_can_require_a_key(proxy: ProxyFactory) -> None:
    p = await proxy(server={**KEYS, "metrics_auth": True})
    async with p.session.get(p.url("/metrics")) as r:
        assert r.status == 401
    async with p.session.get(p.url("/metrics"), headers={"Authorization": "Bearer key-one"}) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("presented", "ok"), [("a", True), ("b", True), ("", False), ("ab", False), ("A", False)]
)
def test_key_matches(presented: str, ok: bool) -> None:
    assert key_matches(presented, (b"a", b"b")) is ok


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, ""), ("Bearer x", "x"), ("bearer  y ", "y"), ("Token x", ""), ("Bearer", "")],
)
def test_bearer(header: str | None, token: str) -> None:
    assert bearer(header) == token
