"""One request's huge prompt does not stall the others: through the real proxy on loopback,
``/healthz`` is answered while an 8 MB prompt's tokens are counted or its input rails run.

The order is forced, not timed: the test holds the offload worker busy (a job waiting for
a file), sends the 8 MB request, waits until that request's work is queued for the worker
(``offload.pending()``), then asks ``/healthz``. Had the work run on the event loop, it
would never have been queued (the wait fails); the loop being free is what lets
``/healthz`` answer while the big request is still unfinished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from fakes.offload_jobs import hold_until
from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory, chat_body
from integration.test_metrics import scrape, value
from rails import offload

PROMPT = " a" * 4_000_000  # 8 MB, four million tokens
pytestmark = [
    pytest.mark.usefixtures("no_leaks"),
    # aiohttp warns about any bytes body over 1 MB (the client's and the proxy's upstream
    # request); bench/stall.py measures what an 8 MB body costs the loop.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]


@pytest.fixture(autouse=True, scope="module")
def _resource_tracker() -> None:
    """The first worker process starts multiprocessing's resource tracker, a helper
    process kept for the life of this process (with a pipe to it): started before any
    test's file-descriptor baseline, it is not taken for a leak."""
    resource_tracker.ensure_running()


async def until(condition: Any, what: str) -> None:
    for _ in range(3000):  # 30 s: the worker may be starting on a busy machine
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def healthz_while_held(
    p: Proxy, gate: Path, big: Awaitable[tuple[int, bytes]]
) -> tuple[int, bytes]:
    """Hold the worker, start ``big``; once its work is queued behind the hold, /healthz
    must answer while that work is unfinished (a stream's prompt is counted after its
    last byte went out, so the request itself may be done). Then free the worker;
    ``big``'s result."""
    hold = asyncio.create_task(offload.run(hold_until, str(gate)))
    await until(lambda: offload.pending() == 1, "the holding job was sent")
    request = asyncio.ensure_future(big)
    try:
        await until(lambda: offload.pending() == 2, "the 8 MB request's work was queued")
        # (a connection of its own: the big request's may be back in the pool, and its
        # handler, still counting, holds it until done)
        async with aiohttp.ClientSession() as s, s.get(p.url("/healthz")) as r:
            assert (r.status, await r.json()) == (200, {"status": "ok"})
        assert offload.pending() == 2  # the 8 MB work is still waiting for the worker
    finally:
        await asyncio.to_thread(gate.touch)
        assert await hold is True  # released by the test, not by its time limit
    return await request


async def test_healthz_answers_while_an_8mb_prompt_is_counted(
    fake: FakeUpstream, proxy: ProxyFactory, tmp_path: Path
) -> None:
    # llama.cpp reports no usage in a stream; its context must hold the prompt
    fake.script = Script(dialect="llamacpp", text=[" one", " two"], max_model_len=10**8)
    p = await proxy()
    body = chat_body(messages=[{"role": "user", "content": PROMPT}])
    status, raw = await healthz_while_held(
        p, tmp_path / "open", p.post_stream("/v1/chat/completions", body)
    )
    assert status == 200
    assert raw.endswith(b"data: [DONE]\n\n")
    m = await scrape(p)
    assert value(m, "railproxy_usage_tokens_total", kind="prompt", config="default") == 4_000_000


BANNED = {"config": {"banned": {"type": "blocklist", "words": ["project falcon"]}}}
INPUT_RAILS = {**BANNED, "input": {"flows": ["banned", "pii", "secrets"]}}


async def test_healthz_answers_while_input_rails_judge_an_8mb_prompt(
    fake: FakeUpstream, proxy: ProxyFactory, tmp_path: Path
) -> None:
    p = await proxy(rails=INPUT_RAILS)
    body = chat_body(
        stream=False, messages=[{"role": "user", "content": PROMPT + " Project falcon"}]
    )
    status, raw = await healthz_while_held(
        p, tmp_path / "open", p.post_stream("/v1/chat/completions", body)
    )
    assert status == 400
    error = orjson.loads(raw)["error"]
    assert (error["code"], error["message"]) == ("content_blocked", "Blocked by banned rails.")
    assert fake.requests == []  # judged whole, and refused before the upstream


async def test_an_8mb_prompt_that_passes_its_input_rails_reaches_the_upstream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(rails=INPUT_RAILS)
    body = chat_body(stream=False, messages=[{"role": "user", "content": PROMPT}])
    status, _ = await p.post_stream("/v1/chat/completions", body)
    assert status == 200
    assert len(fake.requests) == 1
    assert fake.requests[0].json["messages"][0]["content"] == PROMPT
