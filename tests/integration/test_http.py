"""HTTP surface: headers both ways, request ids, auth, bad input, pass-through routes,
health and readiness."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import FakeUpstream
from integration.conftest import ProxyFactory, chat_body

ERROR_KEYS = {"message", "type", "param", "code"}

pytestmark = pytest.mark.usefixtures("no_leaks")


async def test_sse_response_headers(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        await r.read()
        assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["X-Accel-Buffering"] == "no"
        assert "Content-Encoding" not in r.headers
        assert len(r.headers["X-Request-Id"]) == 32


async def test_request_id_goes_both_ways(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    headers = {"X-Request-Id": "req-abc.123"}
    async with p.session.post(
        p.url("/v1/chat/completions"), json=chat_body(), headers=headers
    ) as r:
        await r.read()
        assert r.headers["X-Request-Id"] == "req-abc.123"
    assert fake.requests[-1].headers["x-request-id"] == "req-abc.123"


async def test_bad_request_id_is_replaced(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    headers = {"X-Request-Id": "bad id with spaces"}
    async with p.session.post(
        p.url("/v1/chat/completions"), json=chat_body(False), headers=headers
    ) as r:
        assert r.headers["X-Request-Id"] != "bad id with spaces"


async def test_client_authorization_is_forwarded_without_upstream_key(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    headers = {"Authorization": "Bearer client-key", "Connection": "keep-alive", "TE": "x"}
    await p.post_stream("/v1/chat/completions", chat_body(), headers=headers)
    got = fake.requests[-1].headers
    assert got["authorization"] == "Bearer client-key"
    assert "te" not in got
    assert got["accept-encoding"] == "identity"


async def test_upstream_key_replaces_client_authorization_and_is_never_echoed(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(upstream={"api_key": "sk-upstream-secret"})
    headers = {"Authorization": "Bearer client-key"}
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=headers)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-upstream-secret"
    assert b"sk-upstream-secret" not in raw


async def test_config_selector_header_is_not_forwarded(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    await p.post_stream("/v1/chat/completions", chat_body(), headers={"X-Rails-Config": "default"})
    assert "x-rails-config" not in fake.requests[-1].headers


@pytest.mark.parametrize(
    ("data", "status", "param"),
    [
        (b"not json", 400, None),
        (b"", 400, None),
        (b"\xff\xfe{}", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": "hi"}', 400, "messages"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": [1]}', 400, "messages[0]"),
        (b'{"messages": [{"role": "user"}], "stream": "yes"}', 400, "stream"),
    ],
)
async def test_bad_requests_get_openai_errors(
    fake: FakeUpstream, proxy: ProxyFactory, data: bytes, status: int, param: str | None
) -> None:
    p = await proxy()
    async with p.session.post(p.url("/v1/chat/completions"), data=data) as r:
        body = await r.json()
        assert r.status == status
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["param"] == param
    assert fake.requests == []


async def test_body_over_limit_is_413(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(server={"max_body_bytes": 2048})
    big = chat_body(messages=[{"role": "user", "content": "x" * 5000}])
    async with p.session.post(p.url("/v1/chat/completions"), json=big) as r:
        body = await r.json()
        assert r.status == 413
    assert body["error"]["code"] == "request_too_large"
    assert fake.requests == []


async def test_completions_prompt_is_validated(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    status, raw = await p.post_stream("/v1/completions", {"prompt": 3})
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "prompt"


async def test_models_and_embeddings_pass_through(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    async with p.session.get(p.url("/v1/models")) as r:
        assert r.status == 200
        assert await r.read() == fake.sent[-1]
    async with p.session.post(p.url("/v1/embeddings"), json={"input": "hi", "model": "m"}) as r:
        assert r.status == 200
        assert await r.read() == fake.sent[-1]
    assert fake.requests[-1].path == "/v1/embeddings"


async def test_unknown_upstream_path_relays_upstream_404(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    async with p.session.get(p.url("/v1/nothing-here")) as r:
        assert r.status == 404
    async with p.session.get(p.url("/v1/models?x=1")) as r:
        assert r.status == 200
    assert fake.requests[-1].query == "x=1"


@pytest.mark.parametrize(
    "path",
    ["/v1/models/../../admin", "/v1/models/%2e%2e/secret", "/v1/a%2F..%2Fb", "/v1//etc"],
)
async def test_path_tricks_are_refused(fake: FakeUpstream, proxy: ProxyFactory, path: str) -> None:
    p = await proxy()
    async with p.session.get(p.url(path)) as r:
        assert r.status in (400, 404)
        if r.content_type == "application/json":
            assert set((await r.json())["error"]) == ERROR_KEYS
    assert all(".." not in rq.path for rq in fake.requests)


async def test_unknown_route_is_404_in_openai_shape(proxy: ProxyFactory) -> None:
    p = await proxy()
    async with p.session.get(p.url("/nope")) as r:
        assert r.status == 404
        assert set((await r.json())["error"]) == ERROR_KEYS


async def test_health_and_readiness(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    async with p.session.get(p.url("/healthz")) as r:
        assert r.status == 200
    async with p.session.get(p.url("/readyz")) as r:
        assert r.status == 200
    assert fake.requests[-1].path == "/v1/models"


async def test_readiness_fails_when_upstream_is_down(proxy: ProxyFactory) -> None:
    p = await proxy(target="http://127.0.0.1:9")
    async with p.session.get(p.url("/readyz")) as r:
        assert r.status == 503
    async with p.session.get(p.url("/healthz")) as r:
        assert r.status == 200


async def test_too_many_streams_is_429_with_retry_after(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    from fakes.upstream import Script

    fake.script = Script(text=["x "] * 100, tokens_per_s=50)
    p = await proxy(server={"max_concurrent_streams": 1})
    first = await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    try:
        async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["type"] == "rate_limit_error"
    finally:
        first.close()


async def test_a_refused_stream_costs_no_input_rail_call(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """Admission comes before input rails: over the limit, no judge is asked."""
    from fakes.upstream import Script

    fake.script = Script(text=["x "] * 100, tokens_per_s=50)
    slow = {"type": "python", "class": "integration.sample_rails:SlowRail"}
    rails = {
        "config": {"slow": {**slow, "options": {"delay_s": 0.01}}},
        "input": {"flows": ["slow"]},
    }
    p = await proxy(server={"max_concurrent_streams": 1}, rails=rails)
    first = await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    try:
        async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
            assert r.status == 429
        async with p.session.get(p.url("/metrics")) as m:
            scrape = await m.text()
        labels = 'mode="enforce",rail="slow",stage="input",verdict="allow"'
        calls = "railproxy_rail_verdicts_total{" + labels + "}"
        assert f"{calls} 1.0" in scrape  # the admitted stream's check only
    finally:
        first.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", b"not json"),
        ("POST", "/v1/chat/completions", b'{"messages": "x"}'),
        ("GET", "/healthz", None),
        ("GET", "/v1/chat/completions", None),
        ("POST", "/v1/nowhere", b"{}"),
    ],
)
@pytest.mark.parametrize("sent", ["client-id-42", None])
async def test_every_response_carries_a_request_id(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    method: str,
    path: str,
    body: bytes | None,
    sent: str | None,
) -> None:
    """400s (a bad body, an input block), 404s, 405s and health checks too: the id the
    client sent, or one railproxy made, the same one the access log records."""
    p = await proxy(rails={"output": {"flows": ["secrets"]}})
    headers = {"X-Request-Id": sent} if sent else {}
    async with p.session.request(method, p.url(path), data=body, headers=headers) as r:
        rid = r.headers.get("X-Request-Id")
    assert rid
    if sent:
        assert rid == sent
