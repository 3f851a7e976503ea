"""Upstream faults and client disconnects, through the real proxy on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from fakes.faults import Fault, FaultKind
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body, events
from proxy.state import INFLIGHT, STATE

pytestmark = pytest.mark.usefixtures("no_leaks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_client_disconnect_closes_upstream_promptly(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=["tok "] * 200, tokens_per_s=20)
    p = await proxy()
    before = len(asyncio.all_tasks())
    resp = await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    await resp.content.readline()
    closed_at = time.monotonic()
    resp.close()
    async with asyncio.timeout(2):
        seen = await fake.wait_disconnect()
    assert seen - closed_at < 0.1
    assert fake.deltas_sent < 50
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= before


async def test_unreachable_upstream_is_502(proxy: ProxyFactory) -> None:
    p = await proxy(target=f"http://127.0.0.1:{free_port()}")
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 502
    assert json.loads(raw)["error"]["code"] == "upstream_unreachable"


async def test_upstream_that_never_answers_is_504(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(fault=Fault(FaultKind.NEVER_ANSWER))
    p = await proxy(upstream={"read_timeout_s": 0.3})
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 504
    assert json.loads(raw)["error"]["type"] == "upstream_error"


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_upstream_error_status_and_body_are_relayed(
    fake: FakeUpstream, proxy: ProxyFactory, status: int
) -> None:
    body = b'{"error": {"message": "nope", "code": %d}}' % status
    fake.script = Script(fault=Fault(FaultKind.HTTP_STATUS, status=status, body=body))
    p = await proxy()
    got_status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert got_status == status
    assert raw == body


@pytest.mark.parametrize("dialect", ["vllm", "tgi"])
async def test_in_band_error_is_relayed_and_ends_the_stream(
    fake: FakeUpstream, proxy: ProxyFactory, dialect: str
) -> None:
    fake.script = Script(dialect=dialect, fault=Fault(FaultKind.IN_BAND_ERROR, after=2))  # type: ignore[arg-type]
    p = await proxy()
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw == fake.sent[-1]
    assert b'"error"' in events(raw)[-2]
    assert events(raw)[-1] == b"[DONE]"


async def test_eof_without_done_gets_error_then_done(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(fault=Fault(FaultKind.EOF_NO_DONE, after=2))
    p = await proxy()
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw.startswith(fake.sent[-1])
    err = json.loads(events(raw)[-2])["error"]
    assert err["type"] == "upstream_error"
    assert err["code"] == "upstream_eof"
    assert events(raw)[-1] == b"[DONE]"


async def test_drop_mid_event_gets_error_then_done(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(fault=Fault(FaultKind.DROP_MID_EVENT, after=2))
    p = await proxy()
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    payloads = events(raw)
    assert payloads[-1] == b"[DONE]"
    assert json.loads(payloads[-2])["error"]["type"] == "upstream_error"
    assert all(p == b"[DONE]" or json.loads(p) for p in payloads)  # no half event leaked


async def test_stalled_stream_times_out_with_error_event(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(fault=Fault(FaultKind.HANG_AFTER, after=2))
    p = await proxy(upstream={"read_timeout_s": 0.3})
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert json.loads(events(raw)[-2])["error"]["code"] == "upstream_timeout"
    async with asyncio.timeout(2):
        await fake.wait_disconnect()


async def test_tgi_native_eof_gets_tgi_error_event(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(dialect="tgi", fault=Fault(FaultKind.EOF_NO_DONE, after=2))
    p = await proxy()
    status, raw = await p.post_stream("/generate_stream", {"inputs": "hi"})
    assert status == 200
    last = json.loads(events(raw)[-1])
    assert last["error_type"] == "incomplete_generation_stream"
    assert b"[DONE]" not in raw


async def test_malformed_data_passes_through_untouched(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(fault=Fault(FaultKind.MALFORMED, after=1))
    p = await proxy()
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert raw == fake.sent[-1]


async def test_oversized_upstream_event_is_cut_with_an_error(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    huge = b"data: " + b"x" * 300_000 + b"\n\n"
    fake.script = Script(fault=Fault(FaultKind.MALFORMED, after=1, body=huge))
    p = await proxy(upstream={"max_event_bytes": 100_000})
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        raw = await r.read()
    assert len(raw) < 100_000
    assert json.loads(events(raw)[-2])["error"]["code"] == "event_too_large"


async def test_many_concurrent_streams_stay_intact(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=[f"w{i} " for i in range(30)])
    p = await proxy()

    async def one() -> bytes:
        return (await p.post_stream("/v1/chat/completions", chat_body()))[1]

    bodies = await asyncio.gather(*(one() for _ in range(50)))
    for body in bodies:
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events(body)[:-1]
            if json.loads(e)["choices"]
        )
        assert text == "".join(f"w{i} " for i in range(30))


async def test_session_closed_cleanly_when_client_aborts_before_headers(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(fault=Fault(FaultKind.NEVER_ANSWER))
    p = await proxy()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await p.session.post(p.url("/v1/chat/completions"), json=chat_body())
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    await asyncio.sleep(0.05)
    assert p.app[STATE].active_streams == 0


async def test_drain_deadline_ends_a_stream_with_an_error_event(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=["tok "] * 200, tokens_per_s=20)
    p = await proxy()
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        await r.content.readline()
        p.app[STATE].stop()  # what proxy.run.drain does at its deadline
        raw = await r.read()
    err = json.loads(events(raw)[-2])["error"]
    assert err["code"] == "server_shutdown"
    assert events(raw)[-1] == b"[DONE]"
    async with asyncio.timeout(2):
        await fake.wait_disconnect()


async def test_waiting_for_a_pooled_connection_is_not_a_timeout(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """connect_timeout_s bounds the TCP connect only: a request that waits longer than
    that for the single pooled connection (held by a stream) is served, not a 504."""
    fake.script = Script(text=["x "] * 12, tokens_per_s=20)  # ~0.6 s on the connection
    p = await proxy(
        server={"max_concurrent_streams": 1},
        upstream={"max_connections": 1, "connect_timeout_s": 0.1},
    )
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as first:
        assert first.status == 200
        started = asyncio.get_running_loop().time()
        status, body = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
        waited = asyncio.get_running_loop().time() - started
        assert status == 200, body
        assert waited > 0.2  # it did wait for the pool, past connect_timeout_s
        await first.read()


async def test_create_app_tracks_requests_in_flight(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """The whole middleware chain is built by create_app, in-flight tracking included
    (it was added by the server only, so apps built in tests ran a different chain)."""
    fake.script = Script(text=["tok "] * 50, tokens_per_s=50)
    p = await proxy()
    inflight = p.app[INFLIGHT]
    assert len(inflight) == 0
    async with p.session.post(p.url("/v1/chat/completions"), json=chat_body()) as r:
        await r.content.readline()
        assert len(inflight) == 1
    await asyncio.wait_for(inflight.wait_idle(), 2)
