"""Request hardening: compressed request bodies are decoded (capped) before rails and the
upstream see them; slow clients are cut off; a client's key never reaches a log line."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import zlib

import pytest

from fakes.upstream import FakeUpstream
from integration.conftest import Proxy, ProxyFactory, chat_body
from integration.test_routes import ERROR_KEYS, raw_request

INPUT_RAILS = {
    "rails": {
        "config": {"banned": {"type": "blocklist", "words": ["falcon"]}},
        "input": {"flows": ["banned"]},
    }
}


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": raw_deflate,
    "gzip, gzip": lambda d: gzip.compress(gzip.compress(d, mtime=0), mtime=0),
}


def encoded(name: str, data: bytes) -> tuple[bytes, str]:
    return ENCODERS[name](data), "deflate" if name == "deflate-raw" else name


# -- compressed request bodies -------------------------------------------------------------


@pytest.mark.parametrize("coding", list(ENCODERS))
async def test_compressed_body_is_forwarded_decoded(
    fake: FakeUpstream, proxy: ProxyFactory, coding: str
) -> None:
    p = await proxy()
    plain = json.dumps(chat_body(stream=False)).encode()
    body, header = encoded(coding, plain)
    headers = {"Content-Encoding": header, "Content-Type": "application/json"}
    async with p.session.post(p.url("/v1/chat/completions"), data=body, headers=headers) as r:
        assert r.status == 200
    sent = fake.requests[-1]
    assert sent.body == plain
    assert "content-encoding" not in sent.headers


async def test_pass_through_body_is_forwarded_decoded(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    plain = b'{"input": "hi", "model": "m"}'
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    data = gzip.compress(plain)
    async with p.session.post(p.url("/v1/embeddings"), data=data, headers=headers) as r:
        assert r.status == 200
    assert fake.requests[-1].body == plain
    assert "content-encoding" not in fake.requests[-1].headers


async def test_input_rails_judge_the_decoded_body(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(**INPUT_RAILS)
    body = chat_body(stream=False, messages=[{"role": "user", "content": "Project Falcon?"}])
    data = gzip.compress(json.dumps(body).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with p.session.post(p.url("/v1/chat/completions"), data=data, headers=headers) as r:
        answer = await r.json()
    assert answer["error"]["code"] == "content_blocked"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("data", "coding", "status", "code"),
    [
        (b"not gzip at all", "gzip", 400, "invalid_content_encoding"),
        (gzip.compress(b'{"a": 1}', mtime=0)[:-6], "gzip", 400, "invalid_content_encoding"),
        (gzip.compress(b'{"a": 1}', mtime=0) + b"junk", "gzip", 400, "invalid_content_encoding"),
        (zlib.compress(b'{"a": 1}') + b"junk", "deflate", 400, "invalid_content_encoding"),
        (b"whatever", "br", 415, "unsupported_content_encoding"),
        (b"whatever", "zstd", 415, "unsupported_content_encoding"),
        (b"whatever", "gzip, compress", 415, "unsupported_content_encoding"),
        (gzip.compress(b"\0" * (64 << 20), mtime=0), "gzip", 413, "request_too_large"),
        (zlib.compress(b" " * (64 << 20)), "deflate", 413, "request_too_large"),
    ],
    ids=["junk", "cut", "trailing", "deflate-trailing", "br", "zstd", "compress", "bomb", "bomb2"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
async def test_bodies_that_do_not_decode_are_refused(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    data: bytes,
    coding: str,
    status: int,
    code: str,
    path: str,
) -> None:
    """A 64 MiB zip bomb (~64 KiB on the wire) stops at max_body_bytes: 413."""
    p = await proxy(server={"max_body_bytes": 1 << 20})
    headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
    async with p.session.post(p.url(path), data=data, headers=headers) as r:
        body = await r.json()
        assert r.status == status
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert fake.requests == []


async def test_identity_is_no_coding(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy()
    headers = {"Content-Encoding": "identity"}
    async with p.session.post(
        p.url("/v1/chat/completions"), json=chat_body(stream=False), headers=headers
    ) as r:
        assert r.status == 200
    assert "content-encoding" not in fake.requests[-1].headers


# -- slow clients ---------------------------------------------------------------------------

BOUND_S = 0.5
MARGIN_S = 3.0  # scheduling slack on a busy machine; the defaults are 75 s and 60 s


async def closed_after(p: Proxy, data: bytes) -> tuple[float, bytes]:
    """Send ``data`` and wait for the server to close; (seconds, what it answered)."""
    host, port = p.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(2 * BOUND_S + MARGIN_S):  # body: + the lingering read
            answer = await reader.read()
    finally:
        writer.close()
    return time.monotonic() - started, answer


SLOW = {"idle_timeout_s": BOUND_S, "body_timeout_s": BOUND_S}


@pytest.mark.parametrize(
    "partial",
    [
        b"",
        b"POST /v1/chat/compl",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    ],
    ids=["nothing", "half-request-line", "half-headers", "headers-unfinished"],
)
async def test_a_slow_request_head_is_cut_off(
    fake: FakeUpstream, proxy: ProxyFactory, partial: bytes
) -> None:
    p = await proxy(server=SLOW)
    seconds, answer = await closed_after(p, partial)
    assert seconds >= BOUND_S * 0.9
    assert answer == b""
    assert fake.requests == []


async def test_an_idle_keep_alive_connection_is_closed(proxy: ProxyFactory) -> None:
    p = await proxy(server=SLOW)
    seconds, answer = await closed_after(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert seconds >= BOUND_S * 0.9


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
async def test_a_slow_body_is_408_and_closed(
    fake: FakeUpstream, proxy: ProxyFactory, path: str
) -> None:
    p = await proxy(server=SLOW)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode()
    seconds, answer = await closed_after(p, head + b'{"model": "m", "mess')
    assert answer.startswith(b"HTTP/1.1 408")
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_timeout"
    assert seconds >= BOUND_S * 0.9
    assert fake.requests == []


def test_timeouts_have_operator_defaults() -> None:
    from proxy.settings import ServerSettings

    s = ServerSettings()
    assert (s.idle_timeout_s, s.body_timeout_s) == (75.0, 60.0)


# -- keys never reach a log line ------------------------------------------------------------

KEY = "sk-live-0123456789abcdef"
MALFORMED = [
    f"Authorization: Bearer {KEY}\x01\r\n".encode(),
    f"Authorization: Bearer {KEY}\x7f\r\n".encode(),
    f"Authorization : Bearer {KEY}\r\n".encode(),
    f"Author\x00ization: Bearer {KEY}\r\n".encode(),
    f"Authorization: Bearer {KEY}\r\n  folded\r\n".encode(),
    f"Authorization: Bearer {KEY}{'x' * 20000}\r\n".encode(),
    f"x-api-key: {KEY}\x00\r\n".encode(),
    f"{KEY}\r\n".encode(),
    f"Authorization: Bearer {KEY}\rX: y\r\n".encode(),
]


@pytest.mark.parametrize("header", MALFORMED, ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
async def test_a_key_in_a_malformed_header_is_not_logged(
    fake: FakeUpstream, proxy: ProxyFactory, caplog: pytest.LogCaptureFixture, header: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    p = await proxy(server={"api_keys": f"{KEY},other-key"})
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + header
    request += b"Content-Length: 2\r\n\r\n{}"
    status, _, _ = await raw_request(p, request)
    assert status == 400
    assert caplog.records, "the malformed request was logged (redacted)"
    assert_no_key_logged(caplog)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Basic {KEY}"},
        {"x-api-key": f"{KEY}x"},
        {"Authorization": f"Bearer {KEY}"},
        {"x-api-key": KEY},
    ],
)
async def test_keys_are_not_logged_on_any_answer(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    p = await proxy(server={"api_keys": KEY})
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body(), headers=headers):
        pass
    async with p.session.get(p.url("/v1/a%2Fb"), headers=headers):
        pass
    assert any(r.name == "railproxy.access" for r in caplog.records)
    assert_no_key_logged(caplog)


def assert_no_key_logged(caplog: pytest.LogCaptureFixture) -> None:
    formatter = logging.Formatter("%(message)s")
    for record in caplog.records:
        line = formatter.format(record) + repr(vars(record))
        assert KEY not in line, record.name
