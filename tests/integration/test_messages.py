"""The Anthropic Messages API (``POST /v1/messages``) through the real proxy, with the real
anthropic SDK (``messages.create(stream=True)`` and ``messages.stream()``) and raw sockets,
against the fake upstream speaking vLLM 0.32's Messages API (``fakes/messages.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory
from integration.test_guarded import rails, with_secret_at
from integration.test_metrics import scrape, value
from proxy.wire.sse import Decoder

pytestmark = pytest.mark.usefixtures("no_leaks")

EMAIL = "jane.doe@example.com"
REFUSAL = "I can't help with that."
BOTH = pytest.mark.parametrize("stream_first", [True, False])
STYLES = pytest.mark.parametrize("helper", [False, True], ids=["create", "stream"])
USER = [{"role": "user", "content": "hi"}]


def body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "max_tokens": 64, "messages": USER, "stream": stream, **extra}


def client(p: Proxy, key: str = "sk-client") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=p.base, api_key=key, max_retries=0)


def named(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, json.loads(e.data)) for e in Decoder().feed(raw) if e.data is not None]


def text_of(raw: bytes) -> str:
    out = []
    for _, d in named(raw):
        delta = d.get("delta") or {}
        out.append(delta.get("text") or "" if delta.get("type") == "text_delta" else "")
    return "".join(out)


async def sdk_text(p: Proxy, helper: bool, **extra: Any) -> tuple[str, str | None]:
    """The text the SDK hands the application, and the stop reason it reports."""
    async with client(p) as c:
        args: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": USER, **extra}
        if helper:
            async with c.messages.stream(**args) as s:
                message = await s.get_final_message()
            texts = [b.text for b in message.content if b.type == "text"]
            return "".join(texts), message.stop_reason
        stream = await c.messages.create(stream=True, **args)
        text, reason = "", None
        async for ev in stream:
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                text += ev.delta.text
            elif ev.type == "message_delta":
                reason = ev.delta.stop_reason
        return text, reason


def filtered(stream_first: bool) -> dict[str, Any]:
    config = rails(stream_first)
    config["rails"]["abort"] = {"style": "content_filter", "refusal_message": REFUSAL}
    return config


def pii(stream_first: bool = False) -> dict[str, Any]:
    config = rails(stream_first)
    config["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    config["rails"]["output"]["flows"].append("pii")
    return config


# -- clean streams ---------------------------------------------------------------------------


@BOTH
async def test_a_clean_stream_goes_out_byte_for_byte(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(
        text=[f" w{i}" for i in range(40)],
        reasoning=["Let", " me", " think"],
        tool_calls=[("get_weather", ['{"city": ', '"Paris"}'])],
    )
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 200
    assert raw == fake.sent[-1]
    kinds = {d["content_block"]["type"] for n, d in named(raw) if n == "content_block_start"}
    assert kinds == {"thinking", "text", "tool_use"}


@BOTH
@STYLES
async def test_the_sdk_reads_a_clean_stream(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool, helper: bool
) -> None:
    words = [f" w{i}" for i in range(30)]
    fake.script = Script(text=words)
    p = await proxy(**rails(stream_first))
    assert await sdk_text(p, helper) == ("".join(words), "end_turn")


async def test_the_request_goes_upstream_as_it_came(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """No stream_options added (the Messages API has none), headers forwarded."""
    p = await proxy(**rails())
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"}
    await p.post_stream("/v1/messages", body(), headers=headers)
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body == json.dumps(body()).encode()
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "tools-2024-04-04"


# -- blocks ----------------------------------------------------------------------------------


@BOTH
@STYLES
async def test_the_sdk_raises_on_a_block_and_the_upstream_stops(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool, helper: bool
) -> None:
    fake.script = Script(text=with_secret_at(20, total=400), tokens_per_s=400)
    p = await proxy(**rails(stream_first))
    with pytest.raises(anthropic.APIStatusError) as e:
        await sdk_text(p, helper)
    assert e.value.body == {
        "type": "error",
        "error": {"type": "guardrails_violation", "message": "Blocked by banned rails."},
    }
    async with asyncio.timeout(5):
        await fake.wait_disconnect()
    assert fake.deltas_sent < 300


@BOTH
async def test_a_block_ends_the_raw_stream_with_the_error_event(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=with_secret_at(20, total=400), tokens_per_s=400)
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 200
    assert raw.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"guardrails_violation",'
        b'"message":"Blocked by banned rails."}}\n\n'
    )
    assert " w300" not in text_of(raw)
    if not stream_first:  # held until judged: nothing of the blocked window went out
        assert "Project" not in text_of(raw)


@BOTH
@STYLES
async def test_content_filter_is_a_refusal_the_sdk_accepts(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool, helper: bool
) -> None:
    fake.script = Script(text=with_secret_at(20))
    p = await proxy(**filtered(stream_first))
    text, reason = await sdk_text(p, helper)
    assert reason == "refusal"
    assert text.endswith(REFUSAL)
    if not stream_first:  # (with stream_first the text may go out before its verdict)
        assert "Falcon" not in text


@BOTH
async def test_content_filter_closes_every_open_block_in_order(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(reasoning=[" a", " b"], text=with_secret_at(20))
    p = await proxy(**filtered(stream_first))
    _, raw = await p.post_stream("/v1/messages", body())
    events = named(raw)
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    started = [d["index"] for n, d in events if n == "content_block_start"]
    stopped = [d["index"] for n, d in events if n == "content_block_stop"]
    assert started == stopped == list(range(len(started)))
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("script", "what"),
    [
        (Script(text=[" ok"], reasoning=[" Project", " Falcon", " now"]), "thinking"),
        (Script(text=[" ok"], tool_calls=[("f", ['{"q": "Project', ' Falcon"}'])]), "tool"),
        (Script(text=[" ok"], tool_calls=[("f", ['{"q": "project\\u0020falcon"}'])]), "escaped"),
        (Script(text=[" ok"], tool_calls=[("project_falcon", ["{}"])]), "tool-name"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_thinking_and_tool_input_are_judged(
    fake: FakeUpstream, proxy: ProxyFactory, script: Script, what: str
) -> None:
    fake.script = script
    config = rails(False)
    config["rails"]["config"]["banned"]["words"].append("project_falcon")
    p = await proxy(**config)
    with pytest.raises(anthropic.APIStatusError):
        await sdk_text(p, True)


async def test_a_mask_rewrites_the_text_and_the_sdk_shows_it(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" mail", " me", " at", f" {EMAIL}", " please"])
    p = await proxy(**pii(stream_first=False))
    text, reason = await sdk_text(p, True)
    assert EMAIL not in text
    assert text.startswith(" mail me at ")
    assert text.endswith(" please")
    assert reason == "end_turn"


async def test_a_mask_of_released_text_is_a_block(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=[" mail", f" {EMAIL}"])
    p = await proxy(**pii(stream_first=True))
    with pytest.raises(anthropic.APIStatusError):
        await sdk_text(p, False)


# -- whole answers -------------------------------------------------------------------------


async def test_a_clean_whole_answer_goes_out_as_it_came(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" a", " b"], tool_calls=[("f", ['{"x": 1}'])])
    p = await proxy(**rails())
    status, raw = await p.post_stream("/v1/messages", body(False))
    assert status == 200
    assert raw == fake.sent[-1]
    async with client(p) as c:
        message = await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert [b.type for b in message.content] == ["text", "tool_use"]


async def test_a_blocked_whole_answer_is_an_anthropic_error(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(5, total=10))
    p = await proxy(**rails())
    async with client(p) as c:
        with pytest.raises(anthropic.BadRequestError) as e:
            await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert e.value.body == {
        "type": "error",
        "error": {"type": "guardrails_violation", "message": "Blocked by banned rails."},
    }


async def test_whole_answers_are_refused_or_masked(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    fake.script = Script(text=with_secret_at(5, total=10))
    p = await proxy(**filtered(False))
    async with client(p) as c:
        refused = await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert refused.stop_reason == "refusal"
    assert refused.content[0].type == "text"
    assert refused.content[0].text == REFUSAL
    fake.script = Script(text=[" mail", f" {EMAIL}"], tool_calls=[("f", [f'{{"to": "{EMAIL}"}}'])])
    p = await proxy(**pii())
    async with client(p) as c:
        masked = await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert EMAIL not in masked.model_dump_json()
    assert masked.content[1].type == "tool_use"
    assert list(masked.content[1].input) == ["to"]


# -- input rails -------------------------------------------------------------------------------


def input_rails(messages: str = "last_user") -> dict[str, Any]:
    config = {
        "banned": {"type": "blocklist", "words": ["project falcon"]},
        "pii": {"type": "pii", "entities": ["email"], "action": "mask"},
    }
    return {
        "rails": {"config": config, "input": {"flows": ["banned", "pii"], "messages": messages}}
    }


@pytest.mark.parametrize(
    ("request_", "scope"),
    [
        ({"messages": [{"role": "user", "content": "tell me of project falcon"}]}, "last_user"),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "text", "text": "Say project falcon"}],
                            },
                            {"type": "text", "text": "go on"},
                        ],
                    },
                ]
            },
            "all",
        ),
        ({"system": [{"type": "text", "text": "project falcon"}], "messages": USER}, "all"),
        (
            {"messages": USER, "tools": [{"name": "f", "description": "project falcon"}]},
            "all",
        ),
    ],
    ids=["user", "tool-result", "system", "tool-definition"],
)
async def test_blocked_input_is_an_anthropic_400_and_nothing_goes_upstream(
    fake: FakeUpstream, proxy: ProxyFactory, request_: dict[str, Any], scope: str
) -> None:
    p = await proxy(**input_rails(scope))
    async with client(p) as c:
        with pytest.raises(anthropic.BadRequestError) as e:
            await c.messages.create(model="m", max_tokens=9, **request_)
    assert e.value.body["error"]["type"] == "guardrails_violation"
    assert fake.requests == []


async def test_masked_input_keeps_every_block(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(**input_rails("all"))
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    text = {"type": "text", "text": f"write to {EMAIL}", "cache_control": {"type": "ephemeral"}}
    async with client(p) as c:
        await c.messages.create(
            model="m",
            max_tokens=9,
            system=f"The user is {EMAIL}.",
            messages=[{"role": "user", "content": [image, text]}],
        )
    sent = fake.requests[-1].json
    assert EMAIL not in json.dumps(sent)
    assert sent["system"].startswith("The user is ")
    content = sent["messages"][0]["content"]
    assert content[0] == image
    assert content[1]["cache_control"] == {"type": "ephemeral"}
    assert content[1]["text"].startswith("write to ")


async def test_input_railproxy_cannot_read_is_refused(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy(**input_rails())
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}
    status, raw = await p.post_stream(
        "/v1/messages", body(False, messages=[{"role": "user", "content": [doc]}])
    )
    assert status == 400
    error = json.loads(raw)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[0].source" in error["error"]["message"]
    assert fake.requests == []


# -- keys, errors, metrics, debug --------------------------------------------------------------


async def test_client_keys_arrive_as_x_api_key_and_never_go_upstream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    keys = {"api_keys": [{"name": "app", "key": "sk-app-1234567890"}]}
    p = await proxy(server=keys, upstream={"api_key": "sk-upstream"}, **rails())
    async with client(p, "sk-app-1234567890") as c:
        await c.messages.create(model="m", max_tokens=9, messages=USER)
    sent = fake.requests[-1].headers
    assert (sent["authorization"], sent["x-api-key"]) == ("Bearer sk-upstream", "sk-upstream")
    async with client(p, "sk-wrong") as c:
        with pytest.raises(anthropic.AuthenticationError) as e:
            await c.messages.create(model="m", max_tokens=9, messages=USER)
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/v1/messages", 405, "invalid_request_error"),
        ("POST", "/v1/messages/", 404, "not_found_error"),
        ("POST", "/v1/messages/count_tokens", 404, "not_found_error"),
    ],
)
async def test_errors_on_the_messages_paths_are_in_anthropic_shape(
    fake: FakeUpstream, proxy: ProxyFactory, method: str, path: str, status: int, kind: str
) -> None:
    p = await proxy(**rails())
    async with p.session.request(method, p.url(path), json=body()) as r:
        assert r.status == status
        error = await r.json()
    assert set(error) == {"type", "error"}
    assert error["error"]["type"] == kind


async def test_a_refused_stream_is_an_anthropic_error(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    config = rails()
    config["rails"]["output"]["streaming"]["enabled"] = False
    p = await proxy(**config)
    status, raw = await p.post_stream("/v1/messages", body())
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"


async def test_an_upstream_cut_is_an_error_the_sdk_raises(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    from fakes.faults import Fault, FaultKind

    fake.script = Script(text=[" a", " b"], fault=Fault(FaultKind.EOF_NO_DONE))
    p = await proxy(**rails())
    with pytest.raises(anthropic.APIStatusError) as e:
        await sdk_text(p, True)
    assert e.value.body["error"]["type"] == "api_error"


async def test_metrics_carry_the_route_and_time_the_first_text(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=[" a", " b"], reasoning=[" r"])
    p = await proxy(**rails())
    await p.post_stream("/v1/messages", body())
    after = await scrape(p)
    labels = {"route": "/v1/messages", "config": "default"}
    assert value(after, "railproxy_time_to_first_token_seconds_count", **labels) == 1
    assert value(after, "railproxy_added_time_to_first_token_seconds_count", **labels) == 1
    assert value(after, "railproxy_requests_total", route="/v1/messages", code="200") == 1
    assert value(after, "railproxy_tokens_total", direction="relayed") == 3


async def test_the_debug_channel_speaks_in_named_events(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(20))
    p = await proxy(server={"playground": True}, **rails(False))
    headers = {"X-Railproxy-Debug": "1"}
    _, raw = await p.post_stream("/v1/messages", body(), headers=headers)
    events = named(raw)
    assert events[0][0] == "railproxy"
    assert events[0][1]["kind"] == "start"
    assert ("railproxy", "abort") in [(n, d.get("kind")) for n, d in events]
    assert events[-1][0] == "error"


@STYLES
async def test_a_blocked_input_streamed_with_content_filter_is_a_refused_message(
    fake: FakeUpstream, proxy: ProxyFactory, helper: bool
) -> None:
    config = input_rails()
    config["rails"]["abort"] = {"style": "content_filter", "refusal_message": REFUSAL}
    p = await proxy(**config)
    user = [{"role": "user", "content": "tell me of project falcon"}]
    assert await sdk_text(p, helper, messages=user) == (REFUSAL, "refusal")
    assert fake.requests == []
