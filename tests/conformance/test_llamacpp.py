"""railproxy in front of llama-cpp-python's OpenAI server (see README.md, "llama.cpp").

The same scenarios as test_vllm.py, against `python -m llama_cpp.server` serving a tiny
random-weight Llama written as GGUF by build_gguf.py (setup_llamacpp.sh). Everything runs at
temperature 0 (or with a fixed seed) so the answer is deterministic; the greedy text and the word
the model emits (the "forbidden" word) come from llamacpp-facts.json. Byte comparisons normalize
only what the server makes up per request: the response `id` (`chatcmpl-<uuid4>` /
`cmpl-<uuid4>`), `created`, and the timestamp in sse-starlette's keep-alive comment.

The server has no metrics. That it stopped generating is shown by its log (llama-cpp-python
prints `Disconnected from client (via refresh/close) Address(host='127.0.0.1', port=P)`, P being
the tap's end of the connection railproxy closed, and prints llama.cpp's `eval time` line only for
generations that finish), and by timing: with `--interrupt_requests False` requests take turns on
the model's lock, so a 1-token request sent right after the close is answered at once only if the
blocked generation (1000 tokens, ~14 s) is no longer running.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import aiohttp
import openai
import pytest
from conformance import llamacpp_server, sdk_scenarios
from conformance.conftest import Note, Proxy, ProxyFactory, scrape, total, wait_until
from conformance.server_process import ServerProcess
from conformance.wire import (
    Json,
    abort_bytes,
    chat,
    completion,
    contents,
    events,
    greedy,
    post,
    rails,
)
from openai import AsyncStream
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

pytestmark = pytest.mark.timeout(300)

LONG = 1000  # tokens a blocked or abandoned stream would run to (about 14 s here)
ABORT_WITHIN_S = 5.0  # the server logs the disconnect within this long after railproxy closes
FOLLOW_UP_WITHIN_S = 3.0  # a 1-token request after the close is answered within this long
ATTEMPTS = 3  # tries for what depends on timing (abort outcomes, chunking)
CLOSE_WITHIN_S = 2.0  # railproxy closes its upstream connection within this long
ID = re.compile(rb'"id": ?"(chatcmpl|cmpl)-[0-9a-f-]{36}"')
CREATED = re.compile(rb'"created": ?\d+')
PING = re.compile(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00\n\n")
EVAL_LINE = re.compile(r"^llama_perf_context_print: +eval time = .*/ +(\d+) runs", re.M)
ChatStream = AsyncStream[ChatCompletionChunk]
TextStream = AsyncStream[Completion]


@pytest.fixture(scope="session")
def facts(llamacpp_cache: Path) -> Json:
    return llamacpp_server.load_facts(llamacpp_cache)


@pytest.fixture
def upstream(llamacpp: ServerProcess) -> ServerProcess:
    return llamacpp


def normalized(raw: bytes) -> bytes:
    """The bytes with only the per-request `id`, `created` and ping timestamps blanked."""
    raw = PING.sub(b": ping - T\n\n", raw)
    return CREATED.sub(b'"created": 0', ID.sub(rb'"id": "\1-ID"', raw))


async def same_as_direct(
    http: aiohttp.ClientSession, server: ServerProcess, p: Proxy, path: str, body: Json
) -> bytes:
    """Send `body` through the proxy and directly; return the proxied bytes.

    The proxied body must be exactly the bytes the server sent railproxy (recorded by the
    tap), and, with only `id` and `created` normalized, the bytes it sends a direct client
    (retried up to ATTEMPTS times, in case a ping comment falls differently).
    """
    for i in range(ATTEMPTS):
        direct = await post(http, server.base_url + path, body)
        proxied = await post(p.session, p.url(path), body)
        assert proxied == p.tap.last_body()
        if normalized(proxied) == normalized(direct):
            return proxied
        print(f"direct and proxied answers differ beyond id/created (try {i + 1})")
    assert normalized(proxied) == normalized(direct)
    return proxied


# -- the openai SDK through the proxy (tests/conformance/sdk_scenarios.py) -----------------


async def test_sdk_chat_stream(proxy: ProxyFactory, facts: Json) -> None:
    await sdk_scenarios.sdk_chat_stream(proxy, facts)


async def test_sdk_chat_non_stream(proxy: ProxyFactory, facts: Json) -> None:
    await sdk_scenarios.sdk_chat_non_stream(proxy, facts)


async def test_sdk_completions_stream(proxy: ProxyFactory, facts: Json) -> None:
    await sdk_scenarios.sdk_completions_stream(proxy, facts)


async def test_sdk_completions_non_stream(proxy: ProxyFactory, facts: Json) -> None:
    await sdk_scenarios.sdk_completions_non_stream(proxy, facts)


# -- byte-identical pass-through -------------------------------------------------------------

PASSTHROUGH = sdk_scenarios.PASSTHROUGH
passthrough_body = sdk_scenarios.passthrough_body


@pytest.mark.parametrize("case", list(PASSTHROUGH))
async def test_no_rails_is_byte_identical(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    case: str,
) -> None:
    path, stream, options = PASSTHROUGH[case]
    p = await proxy()
    proxied = await same_as_direct(
        http, llamacpp, p, path, passthrough_body(facts, path, stream, options)
    )
    assert ID.search(proxied)  # the fields normalized do exist
    assert CREATED.search(proxied)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_clean_stream_with_rails_is_byte_identical(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    p = await proxy(**rails(["notaword"], stream_first))
    body = chat(facts, max_tokens=200, stream_options={"include_usage": True})
    await same_as_direct(http, llamacpp, p, "/v1/chat/completions", body)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_keepalive_ping_relayed_with_rails(
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
    note: Note,
) -> None:
    # sse-starlette sends `: ping - <UTC time>\n\n` 15 s into a response, then every 15 s.
    p = await proxy(**rails(["notaword"], stream_first))
    raw = await post(p.session, p.url("/v1/chat/completions"), chat(facts, max_tokens=1300))
    tap = p.tap.last_body()
    pings = PING.findall(tap)
    assert pings, "no keep-alive ping in a stream of over 15 s"
    assert PING.findall(raw) == pings  # the same comments, byte for byte
    assert PING.sub(b"", raw) == PING.sub(b"", tap)  # and everything else
    assert len(contents(raw)[0].split()) == 1300
    upstream_at = len(events(tap[: tap.index(pings[0])]))
    relayed_at = len(events(raw[: raw.index(pings[0])]))
    if stream_first:
        assert raw == tap
    else:  # a comment is not held: it overtakes the events waiting for their window's verdict
        assert relayed_at <= upstream_at
    note(f"{pings[0].decode().strip()!r} after event {upstream_at}, relayed after {relayed_at}")


# -- blocking: exact abort bytes, and the server stops generating ----------------------------


def finished_generations(server: ServerProcess) -> int:
    """How many generations the server finished (llama.cpp's `eval time` line: verbose)."""
    return len(EVAL_LINE.findall(server.log_text()))


def disconnect_line(port: int) -> str:
    return f"Disconnected from client (via refresh/close) Address(host='127.0.0.1', port={port})"


async def server_outcome(
    http: aiohttp.ClientSession, server: ServerProcess, port: int, finished_before: int
) -> tuple[str, float | None]:
    """What the server did with the request railproxy closed (call right after the close).

    "aborted": it logged the disconnect of the tap's connection, never finished that
    generation, and answered a 1-token request (which waits for the model's lock) at once.
    "missed": no disconnect logged within ABORT_WITHIN_S. Also returns how long the 1-token
    request took.
    """
    line = disconnect_line(port)

    async def logged() -> bool:
        return line in server.log_text()

    try:
        await wait_until(logged, within_s=ABORT_WITHIN_S)
    except AssertionError:
        await wait_until(lambda: _finished(server, finished_before), within_s=LONG / 20)
        return "missed", None
    start = time.monotonic()
    body = completion({"prompt": "kalo"}, stream=False, max_tokens=1)
    await post(http, server.base_url + "/v1/completions", body)
    took = time.monotonic() - start
    assert took < FOLLOW_UP_WITHIN_S, f"the model's lock was held {took:.1f} s after the close"
    assert finished_generations(server) == finished_before + 1  # only the 1-token request
    return "aborted", round(took, 3)


async def _finished(server: ServerProcess, finished_before: int) -> bool:
    return finished_generations(server) > finished_before


async def closes_upstream_and_server_stops(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    p: Proxy,
    attempt: Callable[[], Awaitable[None]],
) -> None:
    """Run `attempt()` until the server stops the request (at most ATTEMPTS times).

    Every time, railproxy must close its upstream connection within CLOSE_WITHIN_S."""
    outcomes: list[tuple[float, str, float | None]] = []
    for _ in range(ATTEMPTS):
        before = finished_generations(server)
        await attempt()
        start = time.monotonic()
        conn = p.tap.connections[-1]
        async with asyncio.timeout(CLOSE_WITHIN_S):  # railproxy closed its upstream request
            await conn.closed.wait()
        closed_after = round(time.monotonic() - start, 3)
        outcome, follow_up = await server_outcome(http, server, conn.local_port, before)
        outcomes.append((closed_after, outcome, follow_up))
        if outcome == "aborted":
            break
    print(f"(railproxy closed upstream after s, outcome, 1-token request after s): {outcomes}")
    assert outcomes[-1][1] == "aborted", f"the server never stopped in {ATTEMPTS} attempts"


@pytest.mark.parametrize("stream_first", [True, False])
async def test_block_sends_abort_bytes_and_server_stops(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    word, index = facts["forbidden"], facts["forbidden_index"]
    p = await proxy(**rails([word], stream_first))

    async def attempt() -> None:
        body = chat(facts, max_tokens=LONG)
        raw = await post(p.session, p.url("/v1/chat/completions"), body)
        assert raw.endswith(abort_bytes())
        assert raw.count(b"[DONE]") == 1
        released = contents(raw).get(0, "")
        if stream_first:  # everything up to the word went out before the verdict
            assert released.startswith(greedy(facts, index + 1))
        else:  # only windows that passed: never the word
            assert word.encode() not in raw
            assert greedy(facts, index).startswith(released)
            assert len(released.split()) >= 5

    await closes_upstream_and_server_stops(http, llamacpp, p, attempt)


async def test_sdk_raises_content_blocked(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy(**rails([facts["forbidden"]], stream_first=True))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(**chat(facts, max_tokens=LONG))
        with pytest.raises(openai.APIError) as info:
            async for _ in cast(ChatStream, stream):
                pass
    assert info.value.code == "content_blocked"


async def test_non_stream_block_is_400(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy(**rails([facts["forbidden"]], stream_first=True))
    body = chat(facts, stream=False, max_tokens=100)
    async with p.session.post(p.url("/v1/chat/completions"), json=body) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["code"] == "content_blocked"
    assert error["param"] == "banned"


# -- usage, n > 1, disconnects, errors, metrics ----------------------------------------------


async def test_include_usage_with_rails(proxy: ProxyFactory, facts: Json, note: Note) -> None:
    # llama-cpp-python ignores stream_options: no usage chunk, the finish chunk comes last.
    p = await proxy(**rails(["notaword"], stream_first=False))
    body = chat(facts, max_tokens=50, stream_options={"include_usage": True})
    raw = await post(p.session, p.url("/v1/chat/completions"), body)
    assert raw == p.tap.last_body()
    assert b'"usage"' not in raw
    last = json.loads(events(raw)[-2])
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert events(raw)[-1] == b"[DONE]"
    note("llama.cpp ignores include_usage: no usage chunk")


@pytest.mark.parametrize("stream_first", [True, False])
async def test_n2_choices_pass_intact(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
    note: Note,
) -> None:
    # llama-cpp-python drops `n` from the request: one choice, at any temperature.
    p = await proxy(**rails(["notaword"], stream_first))
    body = chat(facts, max_tokens=60, n=2, temperature=1.0, seed=7)
    proxied = await same_as_direct(http, llamacpp, p, "/v1/chat/completions", body)
    texts = contents(proxied)
    assert sorted(texts) == [0]
    assert len(texts[0].split()) == 60
    note("llama.cpp ignores n: one choice")


async def test_client_disconnect_stops_server(
    http: aiohttp.ClientSession, llamacpp: ServerProcess, proxy: ProxyFactory, facts: Json
) -> None:
    p = await proxy()
    proxy_before = await scrape(p.session, p.url("/metrics"))
    url, body = p.url("/v1/chat/completions"), chat(facts, max_tokens=LONG)
    gone = 0

    async def attempt() -> None:
        nonlocal gone
        async with p.session.post(url, json=body) as r:
            for _ in range(10):
                await r.content.readline()
            r.close()  # the client goes away mid-stream
        gone += 1

    await closes_upstream_and_server_stops(http, llamacpp, p, attempt)

    async def counted() -> bool:
        m = await scrape(p.session, p.url("/metrics"))
        name = "railproxy_client_disconnects_total"
        return total(m, name) == total(proxy_before, name) + gone

    await wait_until(counted, within_s=3)


def too_long(facts: Json) -> Json:
    """A prompt over the server's context (N_CTX tokens)."""
    prompt = " ".join([facts["prompt"]] * (llamacpp_server.N_CTX // 3 + 10))
    return {"messages": [{"role": "user", "content": prompt}]}


ERRORS: dict[str, tuple[Callable[[Json], Json], dict[str, str]]] = {
    "context-length-exceeded": (too_long, {}),
    # starlette-context validates X-Request-Id as a UUID: 400 with an empty body
    "x-request-id-not-a-uuid": (lambda facts: {}, {"X-Request-Id": "conf-not-a-uuid"}),
}
ERROR_CASES = [
    (stream, case)
    for case in ERRORS
    for stream in (True, False)
    if not (stream and case == "context-length-exceeded")  # that one is a 200: see below
]


@pytest.mark.parametrize(("stream", "case"), ERROR_CASES)
async def test_server_errors_pass_through(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    case: str,
    stream: bool,
) -> None:
    p = await proxy()
    change, headers = ERRORS[case]
    body = chat(facts, stream) | change(facts)
    url = "/v1/chat/completions"
    async with http.post(llamacpp.base_url + url, json=body, headers=headers) as r:
        status, direct = r.status, await r.read()
    async with p.session.post(p.url(url), json=body, headers=headers) as r:
        assert (r.status, await r.read()) == (status, direct)
    assert status == 400


async def test_stream_error_after_200_becomes_upstream_eof(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    note: Note,
) -> None:
    # A streamed request that fails in the model (here: the prompt is over the context) gets
    # 200 and an SSE body that ends with no event at all; railproxy ends it with its error.
    p = await proxy()
    body = chat(facts) | too_long(facts)
    async with http.post(llamacpp.base_url + "/v1/chat/completions", json=body) as r:
        assert (r.status, await r.read()) == (200, b"")
        assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    raw = await post(p.session, p.url("/v1/chat/completions"), body)
    assert p.tap.last_body() == b""
    error = json.loads(events(raw)[0])["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_eof")
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert raw.count(b"data: ") == 2
    note("llama.cpp: 200, empty body; railproxy: upstream_eof + [DONE]")


async def test_proxy_metrics_after_a_run(proxy: ProxyFactory, facts: Json) -> None:
    p = await proxy(**rails([facts["forbidden"]], stream_first=False))
    before = await scrape(p.session, p.url("/metrics"))
    clean = chat(facts, max_tokens=20, stream_options={"include_usage": True})
    await post(p.session, p.url("/v1/chat/completions"), clean)
    await post(p.session, p.url("/v1/chat/completions"), chat(facts, max_tokens=200))
    await asyncio.sleep(0.1)
    after = await scrape(p.session, p.url("/metrics"))

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("railproxy_streams_blocked_total", rail="banned") == 1
    assert grew("railproxy_requests_total", route="/v1/chat/completions", code="200") == 2
    assert grew("railproxy_windows_checked_total") >= 2
    # no usage chunk from llama.cpp: railproxy counts the text events it relayed
    assert grew("railproxy_usage_tokens_total", kind="completion") >= 20
    assert grew("railproxy_rail_verdicts_total", rail="banned", verdict="block") == 1


async def test_unknown_model_is_served(
    http: aiohttp.ClientSession,
    llamacpp: ServerProcess,
    proxy: ProxyFactory,
    facts: Json,
    note: Note,
) -> None:
    # vLLM answers 404; llama-cpp-python serves any name with its default model, echoing it.
    p = await proxy()
    body = chat(facts, stream=False, max_tokens=5) | {"model": "nope"}
    proxied = await same_as_direct(http, llamacpp, p, "/v1/chat/completions", body)
    answer = json.loads(proxied)
    assert answer["model"] == "nope"
    assert answer["choices"][0]["message"]["content"] == greedy(facts, 5)
    note("llama.cpp: 200 from its default model, model echoed")
