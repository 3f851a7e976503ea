"""Attack findings on the end of a stream (the relay keeps its last batch and writes it with
the end of the body, in ``Relay.finish``; the prompt is counted after that last byte).

Through the real proxy on loopback, a hostile or fake upstream, and a raw-socket client:

* a client that goes away while the last batch is being written is a client that left
  (outcome ``client_disconnected``, ``railproxy_client_disconnects_total``), as it is when
  it leaves during any other write;
* a client that read its whole stream and then closed its connection, while the proxy
  still counts the prompt, got a complete answer: status 200, prompt tokens counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fakes.hostile import HostileUpstream, Reply, chunk, gzipped, sse
from fakes.offload_jobs import hold_until
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body, open_fds, tcp_sockets
from integration.test_metrics import scrape, value
from integration.test_slow_reader import SlowClient
from integration.test_stall import _resource_tracker, until
from rails import offload

pytestmark = [
    pytest.mark.usefixtures("no_leaks"),
    pytest.mark.skipif(not open_fds(), reason="needs /proc (Linux) to size and find sockets"),
]
__all__ = ["_resource_tracker"]  # (its module-scoped fixture, used here too)

# One event of text, so that no event is complete before the last decoded piece of the
# body, which also holds the finish and [DONE] (960,345 bytes: the last 64 KiB piece is
# 42,841 of them): the whole stream is one read, released in one last batch.
TEXT = ("lorem ipsum dolor sit amet " * 40_000)[:960_000]


def guarded(stream_first: bool) -> dict[str, Any]:
    streaming = {"enabled": True, "stream_first": stream_first, "token_unit": "delta"}
    return {
        "streaming": True,
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
            "output": {"flows": ["banned"], "streaming": streaming},
        },
    }


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def access_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [vars(r) for r in caplog.records if r.name == "railproxy.access"]


@pytest.mark.parametrize("stream_first", [True, False])
async def test_a_client_that_leaves_during_the_last_write_is_counted_as_gone(
    hostile: HostileUpstream,
    proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    stream_first: bool,
) -> None:
    """gzip (2.6 KB for the whole body) makes the stream one read: its one text event,
    the finish and [DONE] are released in the stream's last batch, which waits for
    ``finish`` and goes out with the end of the body, one 960 KB write that a client
    reading nothing cannot take."""
    hostile.reply = gzipped(Reply(sse(chunk(TEXT), chunk(None, 0, "stop"))))
    p = await proxy(target=hostile.base_url, **guarded(stream_first))
    client = SlowClient()
    caplog.set_level(logging.INFO, logger="railproxy.access")
    try:
        await client.connect(int(p.base.rsplit(":", 1)[1]))
        await client.post(chat_body())
        while client.response.body == 0:  # the last write has begun
            await client.recv(4096)
        assert client.response.head is not None
        assert client.response.head.startswith(b"HTTP/1.1 200")
        assert not client.response.ended
    finally:
        client.close()  # unread bytes in its buffer: the proxy's next write finds it gone
    await until(lambda: access_records(caplog), "the request was logged")
    (record,) = access_records(caplog)
    assert (record["status"], record["outcome"]) == (499, "client_disconnected")
    m = await scrape(p)
    assert value(m, "railproxy_client_disconnects_total") == 1


async def test_a_client_that_closes_after_its_whole_stream_was_answered(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """llama.cpp reports no usage in a stream, so the proxy counts the prompt itself, after
    the client's last byte; a prompt this long is counted in the worker, held here so the
    count is still waiting when the client (which has its whole answer) closes."""
    fake.script = Script(dialect="llamacpp", text=[" one", " two"], max_model_len=10**8)
    prompt = " a" * 20_000  # 40,000 chars: counted in the worker (offload.INLINE_CHARS)
    p = await proxy()
    port = int(p.base.rsplit(":", 1)[1])
    caplog.set_level(logging.INFO, logger="railproxy.access")
    gate = tmp_path / "open"
    hold = asyncio.create_task(offload.run(hold_until, str(gate)))
    try:
        await until(lambda: offload.pending() == 1, "the holding job was sent")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            body = orjson.dumps(chat_body(messages=[{"role": "user", "content": prompt}]))
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            async with asyncio.timeout(10):
                raw = await reader.readuntil(b"\r\n0\r\n\r\n")  # the end of the chunked body
            assert raw.startswith(b"HTTP/1.1 200")
            assert b"data: [DONE]" in raw
            await until(lambda: offload.pending() == 2, "the prompt's count was queued")
            local = writer.get_extra_info("sockname")[1]
        finally:
            writer.close()
            await writer.wait_closed()
        # the proxy has seen the close once its end of the connection is no longer open
        await until(lambda: not proxy_end_open(port, local), "the proxy saw the close")
    finally:
        await asyncio.to_thread(gate.touch)
        assert await hold is True
    await until(lambda: access_records(caplog), "the request was logged")
    (record,) = access_records(caplog)
    assert (record["status"], record["outcome"]) == (200, "ok")
    assert record["prompt_tokens"] == 20_000
    m = await scrape(p)
    assert value(m, "railproxy_client_disconnects_total") == 0
    assert value(m, "railproxy_usage_tokens_total", kind="prompt", config="default") == 20_000


def proxy_end_open(port: int, client_port: int) -> bool:
    return any(
        s.local == ("127.0.0.1", port)
        and s.remote == ("127.0.0.1", client_port)
        and s.state in ("ESTABLISHED", "CLOSE_WAIT")
        for s in tcp_sockets()
    )
