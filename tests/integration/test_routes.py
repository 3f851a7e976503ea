"""Routing by the raw path: with rails configured, a request reaches a guarded handler, an
allow-listed pass-through, or a 4xx; the upstream never sees a generating path unguarded.

The upstream here is ``fakes.everywhere``: it generates ``WORD`` on every path and method
(as real servers do on routes railproxy does not guard) and records every raw target.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes.everywhere import WORD, Everywhere
from integration.conftest import Proxy, ProxyFactory, chat_body
from proxy.errors import BadRequest
from proxy.flow.paths import parse
from proxy.settings import Settings, SettingsError, load

RAILS = {
    "streaming": True,
    "rails": {
        "config": {"banned": {"type": "blocklist", "words": [WORD]}},
        "output": {
            "flows": ["banned"],
            "streaming": {
                "enabled": True,
                "chunk_size": 4,
                "context_size": 2,
                "stream_first": False,  # judged before release: WORD never reaches a client
            },
        },
    },
}
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
async def hostile() -> AsyncIterator[Everywhere]:
    upstream = Everywhere()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


async def guarded_proxy(proxy: ProxyFactory, up: Everywhere, **sections: Any) -> Proxy:
    return await proxy(target=up.base_url, **RAILS, **sections)


async def raw_request(p: Proxy, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send exact bytes; the status, headers (lower-case names) and body of the answer."""
    host, port = p.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(": ", 1) for line in lines[1:] if ": " in line]
    headers = {name.lower(): value for name, value in pairs}
    return int(lines[0].split()[1]), headers, body


def request_line(method: str, target: bytes, body: bytes = b"") -> bytes:
    head = f"{method} ".encode() + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body:
        head += b"Content-Type: application/json\r\n"
    return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


CHAT = json.dumps(chat_body()).encode()

# -- the stock openai SDK with base_url tricks ---------------------------------------------


@pytest.mark.parametrize(
    "base_path",
    [
        "/v1/chat/completions%3F",
        "/v1/chat/completions%23",
        "/v1/chat/completions%09",
        "/v1/chat/completions%0D",
        "/v1/chat/completions%0A",
        "/v1/chat/completions%20",
        "/v1/chat%2Fcompletions%3F",
        "/v1/chat%2fcompletions%3f",
        "/v1/chat/completions/",
        "/v1/chat/completions%2F",
        "/v1/%2E%2E/v1/chat/completions%3F",
        "/v1/responses%3F",
    ],
)
async def test_sdk_base_url_tricks_are_refused(
    hostile: Everywhere, proxy: ProxyFactory, base_path: str
) -> None:
    p = await guarded_proxy(proxy, hostile)
    async with openai.AsyncOpenAI(base_url=p.base + base_path, api_key="x", max_retries=0) as c:
        with pytest.raises(openai.APIStatusError) as caught:
            await c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
    assert caught.value.status_code in (400, 404)
    assert set(caught.value.response.json()["error"]) == ERROR_KEYS
    assert WORD not in caught.value.response.text
    assert hostile.seen == []


async def test_sdk_through_the_real_route_is_guarded(
    hostile: Everywhere, proxy: ProxyFactory
) -> None:
    p = await guarded_proxy(proxy, hostile)
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
    assert caught.value.code == "content_blocked"
    assert hostile.seen == [("POST", "/v1/chat/completions")]


# -- raw request targets ----------------------------------------------------------------

REFUSED_TARGETS = [
    b"/v1/chat/completions%3F",
    b"/v1/chat/completions%3f",
    b"/v1/chat/completions%23x",
    b"/v1/chat/completions#x",
    b"/v1/chat/completions%09",
    b"/v1/chat/completions%0D%0A",
    b"/v1/chat/completions%00",
    b"/v1/chat/completions%7F",
    b"/v1/chat%2Fcompletions",
    b"/v1/chat%5Ccompletions",
    b"/v1/chat\\completions",
    b"/v1/./chat/completions",
    b"/v1/x/../chat/completions",
    b"/v1/%2e/chat/completions",
    b"/v1/x/%2E%2E/chat/completions",
    b"/v1//chat/completions",
    b"//v1/chat/completions",
    b"/v1/%63hat/completions",
    b"/v1/chat/completions%25",
    b"/v1/chat/completions%zz",
    b"/v1/chat/completions%",
    b"/v1/chat/completions%C3%A9",
    b"/v1/chat/completions/",
    b"/v1/chat/completions//",
    b"/V1/Chat/Completions",
    b"/v1/chat/completions;x",
    b"/v1/chat/completions/batch",
    b"/v1/chat/completions/render",
    b"/v1/completions/",
    b"/v1/audio/speech",
    b"/v1/responses/resp_1",
    b"/v1/tokenize",
    b"/v1/detokenize",
    b"/v1/",
    b"http://x/v1/chat/completions%3F",
    b"http://x/v1/audio/speech",
    b"http://x//v1/chat/completions",
    b"*",
    b"v1/chat/completions",
]


@pytest.mark.parametrize("target", REFUSED_TARGETS)
async def test_raw_targets_are_refused_and_never_reach_the_upstream(
    hostile: Everywhere, proxy: ProxyFactory, target: bytes
) -> None:
    p = await guarded_proxy(proxy, hostile)
    status, headers, body = await raw_request(p, request_line("POST", target, CHAT))
    assert 400 <= status < 500, (status, body)
    if headers.get("content-type", "").startswith("application/json"):
        assert set(json.loads(body)["error"]) == ERROR_KEYS
    assert WORD.encode() not in body
    assert hostile.seen == []


@pytest.mark.parametrize(
    ("target", "code"),
    [
        (b"/v1/chat/completions%3F", "invalid_path"),
        (b"/v1/chat%2Fcompletions", "invalid_path"),
        (b"/v1/audio/speech", "route_not_guarded"),
        (b"/v1/chat/completions/batch", "route_not_guarded"),
        (b"/v1/chat/completions/", "not_found"),
    ],
)
async def test_refusals_name_why(
    hostile: Everywhere, proxy: ProxyFactory, target: bytes, code: str
) -> None:
    p = await guarded_proxy(proxy, hostile)
    status, _, body = await raw_request(p, request_line("POST", target, CHAT))
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert status == (400 if code == "invalid_path" else 404)
    if code == "route_not_guarded":
        assert "POST /v1/chat/completions" in error["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/generate", "/generate_stream", "/"]
)
async def test_other_methods_on_guarded_routes_are_405(
    hostile: Everywhere, proxy: ProxyFactory, method: str, path: str
) -> None:
    p = await guarded_proxy(proxy, hostile)
    status, headers, body = await raw_request(p, request_line(method, path.encode(), CHAT))
    assert status == 405
    assert headers["allow"] == "POST"
    assert set(json.loads(body)["error"]) == ERROR_KEYS
    assert hostile.seen == []


async def test_absolute_form_routes_on_its_path(hostile: Everywhere, proxy: ProxyFactory) -> None:
    """RFC 9112 absolute-form reaches the guarded route its path names, judged."""
    p = await guarded_proxy(proxy, hostile)
    status, _, body = await raw_request(
        p, request_line("POST", b"http://elsewhere/v1/chat/completions", CHAT)
    )
    assert status == 200
    assert b"content_blocked" in body
    assert hostile.seen == [("POST", "/v1/chat/completions")]


async def test_refusals_are_counted(hostile: Everywhere, proxy: ProxyFactory) -> None:
    p = await guarded_proxy(proxy, hostile)
    for target, method in [
        (b"/v1/audio/speech", "POST"),
        (b"/v1/a%2Fb", "GET"),
        (b"/v1/chat/completions", "GET"),
        (b"/v1/chat/completions/", "POST"),
        (b"/generate", "GET"),
    ]:
        await raw_request(p, request_line(method, target, CHAT))
    async with p.session.get(p.url("/metrics")) as r:
        text = await r.text()
    counts = {"route_not_guarded": 1, "invalid_path": 1, "method_not_allowed": 2}
    for reason, n in {**counts, "route_variant": 1}.items():
        assert f'railproxy_routes_refused_total{{reason="{reason}"}} {n}.0' in text


# -- the pass-through allow-list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", b"/v1/models"),
        ("HEAD", b"/v1/models"),
        ("GET", b"/v1/models?limit=2"),
        ("GET", b"/v1/models/llama-3.1"),
        ("GET", b"/v1/models/a%3Ab"),
        ("POST", b"/v1/embeddings"),
    ],
)
async def test_allow_listed_routes_pass_with_rails(
    hostile: Everywhere, proxy: ProxyFactory, method: str, target: bytes
) -> None:
    p = await guarded_proxy(proxy, hostile)
    status, _, _ = await raw_request(p, request_line(method, target, b"{}"))
    assert status == 200
    assert hostile.seen == [(method, target.decode())]


async def test_operator_pass_through_routes(hostile: Everywhere, proxy: ProxyFactory) -> None:
    routes = ["POST /v1/audio/transcriptions", "GET /v1/files/{id}/content"]
    p = await guarded_proxy(proxy, hostile, server={"passthrough_routes": routes})
    for method, target in [("POST", b"/v1/audio/transcriptions"), ("GET", b"/v1/files/f1/content")]:
        status, _, _ = await raw_request(p, request_line(method, target, b"{}"))
        assert status == 200
    for method, target in [("GET", b"/v1/audio/transcriptions"), ("GET", b"/v1/files//content")]:
        status, _, _ = await raw_request(p, request_line(method, target, b"{}"))
        assert status in (400, 404)
    assert hostile.seen == [("POST", "/v1/audio/transcriptions"), ("GET", "/v1/files/f1/content")]


@pytest.mark.parametrize(
    "route",
    [
        "POST /v1/chat/completions",
        "POST /v1/{x}/completions",
        "POST /v1/{a}/{b}",
        "GET /v1/rails/{what}",
        "FETCH /v1/x",
        "POST /generate",
        "POST /v1/../generate",
        "POST /v1/a%2Fb",
        "POST /v1//x",
    ],
)
def test_operator_routes_are_validated(route: str) -> None:
    with pytest.raises(ValueError, match="passthrough_routes"):
        Settings.model_validate({"server": {"passthrough_routes": [route]}})


def test_operator_routes_from_yaml(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text('server:\n  passthrough_routes: ["POST /v1/shadow/completions", "BAD"]\n')
    with pytest.raises(SettingsError, match=r"server\.passthrough_routes"):
        load(f)


# -- without rails: byte-transparent, the raw path and query forwarded as they came --------


async def test_without_rails_other_paths_pass_raw(hostile: Everywhere, proxy: ProxyFactory) -> None:
    p = await proxy(target=hostile.base_url)
    target = b"/v1/files/a%3Ab%C3%A9/x?q=%26y%23z&r=%2F"
    status, _, body = await raw_request(p, request_line("POST", target, CHAT))
    assert status == 200
    assert WORD.encode() in body  # no rails: the upstream's bytes
    assert hostile.seen == [("POST", target.decode())]


async def test_without_rails_path_tricks_are_still_refused(
    hostile: Everywhere, proxy: ProxyFactory
) -> None:
    p = await proxy(target=hostile.base_url)
    for target in (b"/v1/a%2F..%2Fb", b"/v1/chat/completions/", b"/v1//x", b"/v1/%2e%2e/admin"):
        status, _, _ = await raw_request(p, request_line("POST", target, CHAT))
        assert status in (400, 404)
    assert hostile.seen == []


async def test_unlisted_pass_through_takes_a_stream_slot(proxy: ProxyFactory) -> None:
    slow = Everywhere(delay_s=0.5)
    await slow.start()
    try:
        p = await proxy(target=slow.base_url, server={"max_concurrent_streams": 1})
        first = await p.session.post(p.url("/v1/audio/speech"), json={"input": "hi"})
        try:
            assert first.status == 200
            async with p.session.post(p.url("/v1/audio/speech"), json={"input": "hi"}) as r:
                assert r.status == 429
            async with p.session.get(p.url("/v1/models")) as r:
                assert r.status == 200  # built-in routes open no stream
        finally:
            first.close()
    finally:
        await slow.close()


# -- the config a request resolves to decides ---------------------------------------------


def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "default.yaml").write_text("rails: {}\n")
    (tmp_path / "strict.yaml").write_text(
        "rails:\n"
        "  config: {banned: {type: blocklist, words: [ruru]}}\n"
        "  output: {flows: [banned], streaming: {enabled: true}}\n"
    )
    return tmp_path


async def test_a_request_naming_a_railed_config_is_refused_on_unlisted_paths(
    hostile: Everywhere, proxy: ProxyFactory, tmp_path: Path
) -> None:
    p = await proxy(target=hostile.base_url, config_dir=config_dir(tmp_path))
    async with p.session.post(p.url("/v1/audio/speech"), json={"config_id": "strict"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "route_not_guarded"
    headers = {"X-Rails-Config": "strict"}
    async with p.session.post(p.url("/v1/audio/speech"), data=b"\xff", headers=headers) as r:
        assert r.status == 404
    assert hostile.seen == []
    async with p.session.post(p.url("/v1/audio/speech"), json={"input": "hi"}) as r:
        assert r.status == 200  # the default config has no rails: relayed
    assert hostile.seen == [("POST", "/v1/audio/speech")]


def test_a_refused_target_is_refused_every_time_and_a_passed_one_is_kept_exact() -> None:
    """The check remembers targets that passed (it is pure), never ones it refused."""
    for _ in range(3):
        with pytest.raises(BadRequest):
            parse("/v1/chat%2Fcompletions")
    first = parse("/v1/chat/completions?a=1")
    assert parse("/v1/chat/completions?a=1") is first
    assert (first.path, first.query) == ("/v1/chat/completions", "a=1")
