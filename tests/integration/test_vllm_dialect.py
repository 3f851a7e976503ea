"""railproxy in front of the fake speaking real vLLM 0.32.0's dialect (issue #7).

For each difference tests/conformance/README.md lists between real vLLM and the fake
("Where real vLLM 0.32.0 differs"), now the fake's default or a `Script` option, the real
proxy (no part of it mocked) is shown to handle it: bytes pass through unchanged without
rails, and with rails in both `stream_first` modes; a finish riding on the last content
chunk still waits for the last verdict; blocks there, usage chunks, `n: 2` out of order,
vLLM's 4xx bodies, `: keep-alive` comments and `X-Request-Id` ids. Where a sample of real
bytes exists (`fakes/vllm_samples.py`) the proxied bytes are also compared with it.

One test pins a documented limitation: with `upstream.request_usage` the client gets no
`system_fingerprint` (README, "Observability").
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import openai
import orjson
import pytest

from fakes import vllm_samples as real
from fakes.upstream import FakeUpstream, Script
from fakes.vllm_samples import Sample, normalized
from integration.conftest import ProxyFactory, events
from integration.dialect_helpers import ABORT, payloads, rails, slow_rail, timed_events

pytestmark = pytest.mark.usefixtures("no_leaks")

CLEAN = [" kalo", " mine", " rusa", " faho", " dodo", " tope", " peka", " mizu", " vizu"]
LAST_IS_BANNED = [*CLEAN, " ruru"]  # the forbidden word on the finishing chunk
N2_ORDER = [0, 0, 1, 0, 1, 0, 1, 1]  # as vLLM sent it (README 8); choice 0 finishes first

# The samples the fake reproduces, and the script that makes it do so (README 1-8).
REPLAYS: dict[str, tuple[Script, Sample]] = {
    "chat": (real.SCRIPT_CHAT, real.CHAT_STREAM),
    "chat-usage": (real.SCRIPT_CHAT, real.CHAT_STREAM_USAGE),
    "chat-continuous": (real.SCRIPT_CHAT, real.CHAT_STREAM_CONTINUOUS),
    "chat-stop-token": (real.SCRIPT_STOP_TOKEN, real.CHAT_STOP_TOKEN_STREAM),
    "chat-stop-token-continuous": (real.SCRIPT_STOP_TOKEN, real.CHAT_STOP_TOKEN_CONTINUOUS),
    "chat-stop-string": (real.SCRIPT_STOP_STRING, real.CHAT_STOP_STRING_STREAM),
    "chat-n2": (
        replace(
            real.SCRIPT_CHAT,
            n=2,
            choice_text={
                0: [" faho", " dodo", " dodo", " dodo", " faho", " horu"],
                1: [" faho", " dodo", " dodo", " dodo", " zuto", " ruka"],
            },
        ),
        real.CHAT_N2_STREAM,
    ),
    "completions": (real.SCRIPT_COMPLETION, real.COMPLETIONS_STREAM),
    "completions-usage": (real.SCRIPT_COMPLETION, real.COMPLETIONS_STREAM_USAGE),
    "completions-continuous": (real.SCRIPT_COMPLETION, real.COMPLETIONS_STREAM_CONTINUOUS),
    "completions-n2": (
        replace(
            real.SCRIPT_COMPLETION,
            n=2,
            choice_text={
                0: [" nemi", " pene", " gine", " kaka", " neto", " milo"],
                1: [" nemi", " ruka", " viho", " saru", " kane", " kasa"],
            },
            choice_order=[0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1],
        ),
        real.COMPLETIONS_N2_STREAM,
    ),
    "chat-json": (real.SCRIPT_CHAT, real.CHAT_JSON),
    "completions-json": (real.SCRIPT_COMPLETION, real.COMPLETIONS_JSON),
    "chat-stop-token-json": (real.SCRIPT_STOP_TOKEN, real.CHAT_STOP_TOKEN_JSON),
}


def chat(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return real.chat(stream, max_tokens=100, **extra)


def completion(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return real.completion(stream, max_tokens=100, **extra)


def contents(raw: bytes) -> dict[int, str]:
    """Generated text per choice index of a chat or completions stream."""
    out: dict[int, str] = {}
    for p in payloads(raw):
        for c in p.get("choices") or []:
            text = (c.get("delta") or {}).get("content") or c.get("text") or ""
            out[c["index"]] = out.get(c["index"], "") + text
    return out


def finishes(raw: bytes) -> list[tuple[int, str]]:
    return [
        (c["index"], c["finish_reason"])
        for p in payloads(raw)
        for c in p.get("choices") or []
        if c.get("finish_reason")
    ]


# -- README 1-8: real streams, through the proxy ------------------------------------------


@pytest.mark.parametrize("case", sorted(REPLAYS))
async def test_real_vllm_bytes_pass_through_without_rails(
    fake: FakeUpstream, proxy: ProxyFactory, case: str
) -> None:
    """README 1-8: null fields, the finish on the last chunk, fingerprints, bodies, running
    usage, ids, split deltas and `n: 2` order: what the client gets is what vLLM sent."""
    fake.script, sample = REPLAYS[case]
    p = await proxy()
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 200
    assert raw == fake.sent[-1]
    assert normalized(raw) == normalized(sample.body)


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize("case", sorted(REPLAYS))
async def test_real_vllm_bytes_pass_through_rails_that_allow(
    fake: FakeUpstream, proxy: ProxyFactory, case: str, stream_first: bool
) -> None:
    """README 1-8 with output rails judging every window: nothing is re-serialized, held
    events go out verbatim and in order (chunk_size 4: several windows per stream)."""
    fake.script, sample = REPLAYS[case]
    p = await proxy(**rails(stream_first))
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 200
    assert raw == fake.sent[-1]
    assert normalized(raw) == normalized(sample.body)


# -- README 2: the finish rides on the last content chunk ----------------------------------


async def test_finish_on_the_last_content_chunk_waits_for_the_last_verdict(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 2, stream_first true: text goes out at once, but the chunk that carries
    `finish_reason` (and text) ends the stream, so it waits for the final window's verdict."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    p = await proxy(**slow_rail(stream_first=True, delay_s=0.5))
    timed = await timed_events(p, chat())
    finishing = next(i for i, (_, e) in enumerate(timed) if b'"finish_reason":"length"' in e)
    assert finishing == len(timed) - 2  # the last content chunk, then [DONE]
    assert timed[finishing - 1][0] - timed[0][0] < 0.3  # the text before it did not wait
    assert timed[finishing][0] - timed[finishing - 1][0] >= 0.45  # the verdict's 0.5 s
    assert b"".join(e for _, e in timed) == fake.sent[-1]


async def test_finish_on_the_last_content_chunk_is_held_with_its_window(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 2, stream_first false: every text chunk, the finishing one included, is held
    until its window passes; the role chunk carries no text and goes at once."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    p = await proxy(**slow_rail(stream_first=False, delay_s=0.5))
    timed = await timed_events(p, chat())
    assert b'"role":"assistant"' in timed[0][1]
    assert timed[1][0] - timed[0][0] >= 0.45  # the first text waited for the one verdict
    assert b'"finish_reason":"length"' in timed[-2][1]
    assert b"".join(e for _, e in timed) == fake.sent[-1]


@pytest.mark.parametrize("stream_first", [True, False])
@pytest.mark.parametrize("path", [real.CHAT_PATH, real.COMPLETIONS_PATH])
async def test_block_on_the_last_content_chunk_that_carries_finish_reason(
    fake: FakeUpstream, proxy: ProxyFactory, path: str, stream_first: bool
) -> None:
    """README 2: the forbidden word arrives on the chunk with `finish_reason`. In both modes
    that chunk is held for the verdict, so neither the word nor the finish reaches the
    client; the stream ends with the abort, and the usage chunk (README 3) never comes."""
    fake.script = replace(real.SCRIPT_CHAT, text=LAST_IS_BANNED)
    p = await proxy(**rails(stream_first))
    body = chat if path == real.CHAT_PATH else completion
    status, raw = await p.post_stream(path, body(stream_options={"include_usage": True}))
    assert status == 200
    assert raw.endswith(ABORT)
    assert raw.count(b"[DONE]") == 1
    assert b"ruru" not in raw
    assert finishes(raw) == []
    assert b"system_fingerprint" not in raw
    assert b'"usage"' not in raw
    assert "".join(CLEAN).startswith(contents(raw)[0])
    assert len(contents(raw)[0]) >= len("".join(CLEAN[:4]))  # windows before it passed


@pytest.mark.parametrize("stream_first", [True, False])
async def test_block_on_a_split_word_with_a_stop_string(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 7: a stop string makes vLLM hold characters back, so a word is split across
    deltas (`" r"`, `"uru d"`, `"ovi "`, the last with the stop). The blocklist still sees
    "ruru": with stream_first false no released text spells it; with true, text released
    before the verdict may, but the finishing chunk is withheld and the abort follows."""
    pieces = [*CLEAN[:5], " r", "uru d", "ovi "]
    fake.script = replace(real.SCRIPT_CHAT, text=pieces, finish_reason="stop", stop_reason="fami")
    p = await proxy(**rails(stream_first))
    _, raw = await p.post_stream(real.CHAT_PATH, chat())
    assert b'"finish_reason":"stop","stop_reason":"fami"' in fake.sent[-1]
    assert raw.endswith(ABORT)
    assert b'"stop_reason":"fami"' not in raw
    assert "ovi" not in contents(raw)[0]
    assert ("ruru" in contents(raw)[0]) is stream_first
    assert "".join(pieces).startswith(contents(raw)[0])


async def test_stop_token_chunk_ends_the_stream_after_the_verdict(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 2, the other ending: EOS comes as its own empty chunk with the finish. With
    stream_first true the last text goes out before the verdict, the EOS chunk after it."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN, finish_reason="stop")
    p = await proxy(**slow_rail(stream_first=True, delay_s=0.5))
    timed = await timed_events(p, chat())
    eos = timed[-2][1]
    assert b'"delta":{"content":""},"logprobs":null,"finish_reason":"stop"' in eos
    assert timed[-3][0] - timed[0][0] < 0.3
    assert timed[-2][0] - timed[-3][0] >= 0.45
    assert b"".join(e for _, e in timed) == fake.sent[-1]


# -- README 3: system_fingerprint and the usage chunk --------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_usage_chunk_with_fingerprint_is_relayed_after_the_verdict(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 3: with `include_usage` vLLM puts `system_fingerprint` on the usage chunk; it
    reaches the openai SDK intact, after the last verdict, with the finish and all text."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    p = await proxy(**slow_rail(stream_first, delay_s=0.2))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=real.MODEL,
            messages=[{"role": "user", "content": real.PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    *with_choices, last = chunks
    assert last.choices == []
    assert last.system_fingerprint == real.FINGERPRINT
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (6, len(CLEAN))
    assert all(c.system_fingerprint is None for c in with_choices)
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "length"
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == "".join(CLEAN)


async def test_fingerprint_on_the_finishing_chunk_reaches_the_sdk(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 2 and 3 from the client's side: the chunk with the last text also has the
    finish and the fingerprint; the SDK loses none of it (text included)."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    p = await proxy(**rails(stream_first=False))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=real.MODEL, messages=[{"role": "user", "content": real.PROMPT}], stream=True
        )
        chunks = [c async for c in stream]
    last = chunks[-1]
    assert (last.choices[0].delta.content, last.choices[0].finish_reason) == (CLEAN[-1], "length")
    assert last.system_fingerprint == real.FINGERPRINT
    assert last.choices[0].model_extra == {"stop_reason": None, "token_ids": None}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(CLEAN)


async def test_request_usage_costs_the_client_the_fingerprint_as_documented(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 3, and README "Observability" (why `request_usage` is off by default): vLLM
    stamps the finishing chunk only when usage is off; with usage on it stamps the usage
    chunk instead. `request_usage` turns usage on for a client that did not ask and hides
    that chunk, so the client gets no fingerprint. Not fixed on purpose: the finish chunk
    has already gone out, verbatim, when the usage chunk shows the fingerprint; carrying it
    over would mean holding and re-serializing every finish chunk on the pass-through path.
    The same stream without `request_usage` keeps it."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    fingerprint = b'"system_fingerprint":"' + real.FINGERPRINT.encode()
    p = await proxy(upstream={"request_usage": True})
    _, raw = await p.post_stream(real.CHAT_PATH, chat())
    assert b'"usage"' not in raw  # hidden, as asked
    assert fingerprint not in raw
    plain = await proxy()
    _, direct = await plain.post_stream(real.CHAT_PATH, chat())
    assert fingerprint in direct


# -- README 4: non-streaming bodies ----------------------------------------------------------


@pytest.mark.parametrize("sample", [real.CHAT_JSON, real.CHAT_STOP_TOKEN_JSON])
async def test_non_streaming_body_with_rails_is_vllms(
    fake: FakeUpstream, proxy: ProxyFactory, sample: Sample
) -> None:
    """README 4: judged whole and allowed, the body is relayed as vLLM wrote it."""
    fake.script = (
        real.SCRIPT_STOP_TOKEN if sample is real.CHAT_STOP_TOKEN_JSON else real.SCRIPT_CHAT
    )
    p = await proxy(**rails(stream_first=True))
    status, raw = await p.post_stream(sample.path, sample.request)
    assert status == 200
    assert normalized(raw) == normalized(sample.body)


async def test_masked_non_streaming_body_keeps_vllms_fields(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 4: a masked body is re-serialized with every vLLM field, null or not, in
    vLLM's order, compact; only the content differs."""
    fake.script = replace(real.SCRIPT_CHAT, text=[" write", " to", " jane.doe@example.com"])
    cfg = rails(stream_first=False)
    cfg["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    cfg["rails"]["output"]["flows"] = ["pii"]
    p = await proxy(**cfg)
    status, raw = await p.post_stream(real.CHAT_PATH, chat(stream=False))
    assert status == 200
    original = json.loads(fake.sent[-1])
    original["choices"][0]["message"]["content"] = " write to [EMAIL]"
    assert raw == orjson.dumps(original)
    assert list(json.loads(raw)) == list(json.loads(real.CHAT_JSON.body))


# -- README 8: n: 2 out of order, rails per choice ------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_n2_uneven_order_is_judged_per_choice(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 8: choices not strictly interleaved, each finishing on its own last chunk.
    Clean, the bytes are vLLM's; with the word on choice 1's last chunk, choice 0 (finished
    earlier) arrives whole, choice 1's word never does, and the stream ends with the abort."""
    texts = {0: CLEAN[:4], 1: CLEAN[4:8]}
    fake.script = replace(real.SCRIPT_CHAT, n=2, choice_text=texts, choice_order=N2_ORDER)
    p = await proxy(**rails(stream_first, chunk=2, context=1))
    body = chat(n=2, temperature=1.0)
    _, raw = await p.post_stream(real.CHAT_PATH, body)
    assert raw == fake.sent[-1]
    assert [p["choices"][0]["index"] for p in payloads(raw)] == [0, 1, *N2_ORDER]
    fake.script.choice_text = {0: CLEAN[:4], 1: [*CLEAN[4:7], " ruru"]}
    _, raw = await p.post_stream(real.CHAT_PATH, body)
    assert raw.endswith(ABORT)
    assert b"ruru" not in raw
    assert contents(raw)[0] == "".join(CLEAN[:4])
    assert finishes(raw) == [(0, "length")]


async def test_n2_at_temperature_0_is_vllms_400(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 8: vLLM refuses `n: 2` with greedy sampling; the SDK sees its error."""
    fake.script = real.SCRIPT_CHAT
    p = await proxy(**rails(stream_first=True))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(**chat(n=2))
    assert info.value.body == json.loads(real.N2_GREEDY_400.body)["error"]
    assert info.value.param is None


# -- README 9: vLLM's 4xx ---------------------------------------------------------------------


@pytest.mark.parametrize("with_rails", [False, True])
@pytest.mark.parametrize(
    "sample",
    [
        real.UNKNOWN_MODEL_404,
        real.MAX_TOKENS_400,
        real.N2_GREEDY_400,
        real.STREAM_OPTIONS_NOT_OBJECT_400,
    ],
    ids=["unknown-model", "max-tokens", "n2-greedy", "stream-options"],
)
async def test_vllm_errors_are_relayed_byte_for_byte(
    fake: FakeUpstream, proxy: ProxyFactory, sample: Sample, with_rails: bool
) -> None:
    """README 9: streaming requests vLLM refuses get its status and JSON body, unchanged,
    before any event (and with output rails configured too)."""
    fake.script = replace(real.SCRIPT_CHAT, reject_unknown_models=True)
    p = await proxy(**(rails(stream_first=True) if with_rails else {}))
    async with p.session.post(p.url(sample.path), json=sample.request) as r:
        assert (r.status, await r.read()) == (sample.status, sample.body)
        assert r.content_type == "application/json"
    assert fake.sent[-1] == sample.body


@pytest.mark.parametrize(
    ("extra", "error", "param"),
    [
        ({"model": "nope"}, openai.NotFoundError, "model"),
        ({"max_tokens": 999999}, openai.BadRequestError, "max_tokens"),
        ({"extra_body": {"stream_options": "x"}}, openai.BadRequestError, "body.stream_options"),
    ],
    ids=["unknown-model", "max-tokens", "validation"],
)
async def test_sdk_sees_which_field_vllm_refused(
    fake: FakeUpstream, proxy: ProxyFactory, extra: dict[str, Any], error: type, param: str
) -> None:
    """README 9 from the client's side: the SDK raises the right class, naming the field."""
    fake.script = replace(real.SCRIPT_CHAT, reject_unknown_models=True)
    p = await proxy(**rails(stream_first=False))
    body = chat() | extra
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        with pytest.raises(error) as info:
            await client.chat.completions.create(**body)
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.param == param
    assert info.value.type == ("Bad Request" if param.startswith("body.") else error.__name__)


# -- README 10: headers ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_vllm_headers_through_the_proxy(
    fake: FakeUpstream, proxy: ProxyFactory, stream: bool
) -> None:
    """README 10: vLLM's `vary: Origin` is relayed; its `server: uvicorn` is not (the
    proxy's own); SSE gains the proxy's `cache-control`; `X-Request-Id` is the proxy's."""
    fake.script = real.SCRIPT_CHAT
    p = await proxy(**rails(stream_first=True))
    async with p.session.post(p.url(real.CHAT_PATH), json=chat(stream)) as r:
        await r.read()
        assert r.headers["Vary"] == "Origin"
        assert r.headers.get("Server") != "uvicorn"
        assert (r.headers.get("Cache-Control") == "no-cache") is stream
        assert r.headers["X-Request-Id"] == fake.requests[-1].headers["x-request-id"]
    assert fake.requests[-1].headers["x-request-id"]


# -- README 6: ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [None, True, False])
async def test_request_id_becomes_the_response_id(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool | None
) -> None:
    """README 6: vLLM names its response after the `X-Request-Id` railproxy forwards, so a
    client that sends one finds it in every chunk's id (the SDK's view); one that does not
    finds railproxy's."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN)
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            **chat(), extra_headers={"X-Request-Id": "client-rid-7"}
        )
        ids = {c.id async for c in stream}
        raw = await client.chat.completions.with_raw_response.create(**chat(stream=False))
    assert ids == {"chatcmpl-client-rid-7"}
    assert raw.parse().id == "chatcmpl-" + raw.headers["x-request-id"]


async def test_content_filter_chunks_carry_the_vllm_id(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 6: the chunks railproxy authors for `abort.style: content_filter` copy the
    upstream's id, which is `chatcmpl-<X-Request-Id>`."""
    fake.script = replace(real.SCRIPT_CHAT, text=LAST_IS_BANNED)
    abort = {"style": "content_filter", "refusal_message": "No."}
    p = await proxy(**rails(stream_first=False, abort=abort))
    headers = {"X-Request-Id": "rid-9"}
    _, raw = await p.post_stream(real.CHAT_PATH, chat(), headers=headers)
    assert {p["id"] for p in payloads(raw)} == {"chatcmpl-rid-9"}
    assert finishes(raw) == [(0, "content_filter")]


# -- README 11: logprobs with bytes ---------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_logprobs_with_bytes_pass_through_rails(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    """README 11: `top_logprobs` entries with `bytes` are relayed untouched."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN, logprobs=True)
    p = await proxy(**rails(stream_first))
    _, raw = await p.post_stream(real.CHAT_PATH, chat(logprobs=True, top_logprobs=2))
    assert raw == fake.sent[-1]
    assert raw.count(b'"bytes":[') == 3 * len(CLEAN)


async def test_pii_mask_also_masks_logprobs(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    """README 11: chat logprobs repeat each token as text and as UTF-8 `bytes`. A masked
    e-mail address must not reach the client through them either."""
    words = [" write", " to", " jane", ".doe@", "example", ".com", *CLEAN]
    fake.script = replace(real.SCRIPT_CHAT, text=words, logprobs=True)
    cfg = rails(stream_first=False, chunk=10, context=4)  # the whole address in one window
    cfg["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    cfg["rails"]["output"]["flows"] = ["pii"]
    p = await proxy(**cfg)
    _, raw = await p.post_stream(real.CHAT_PATH, chat(logprobs=True, top_logprobs=1))
    assert contents(raw)[0].startswith(" write to [EMAIL]")
    assert b"jane" not in raw
    assert ",".join(str(b) for b in b" jane").encode() not in raw  # nor its bytes
    chunks = [json.loads(e) for e in events(raw) if e.startswith(b"{")]
    rewritten = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    masked = [c for c in rewritten if "[EMAIL]" in c["choices"][0]["delta"]["content"]]
    assert len(masked) == 1
    assert masked[0]["choices"][0]["logprobs"] is None  # the rewritten chunk's are dropped
    kept = [c for c in rewritten if c["choices"][0]["delta"]["content"] in CLEAN]
    assert kept
    assert all(c["choices"][0]["logprobs"] is not None for c in kept)  # the others stay


# -- README 12: keep-alives -------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [None, True, False])
async def test_vllm_keepalive_comments(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool | None
) -> None:
    """README 12: vLLM's `: keep-alive` comments are relayed (byte for byte without rails;
    with rails every comment still arrives and the events are vLLM's, in order)."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN, keepalive_comments=True)
    p = await proxy(**({} if stream_first is None else rails(stream_first)))
    _, raw = await p.post_stream(real.CHAT_PATH, chat())
    sent = fake.sent[-1]
    assert sent.count(b": keep-alive\n\n") == (len(CLEAN) + 1) // 2
    if stream_first is None:
        assert raw == sent
    assert raw.count(b": keep-alive\n\n") >= sent.count(b": keep-alive\n\n")
    assert events(raw) == events(sent)


async def test_upstream_keepalives_do_not_end_a_held_stream(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """README 12 with a slow verdict: comments arriving while text is held go out at once
    (they carry nothing to judge) and the held text follows, complete."""
    fake.script = replace(real.SCRIPT_CHAT, text=CLEAN, keepalive_comments=True, tokens_per_s=100)
    p = await proxy(**slow_rail(stream_first=False, delay_s=0.3))
    timed = await timed_events(p, chat())
    comments = [t for t, e in timed if e == b": keep-alive\n\n"]
    first_text = next(t for t, e in timed if b'"content":" ' in e)
    assert comments
    assert comments[0] < first_text
    assert events(b"".join(e for _, e in timed)) == events(fake.sent[-1])
