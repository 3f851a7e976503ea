"""Every field a client shows or acts on is judged, streamed and whole, and masks are
complete (issue: "Judge every field a client will show, and make masks complete").

A hostile upstream plants "Project Falcon" (blocklist) or an e-mail address (pii, mask)
in one field at a time; through the real proxy, with the default ``fields``, the phrase
never reaches the client's socket with ``stream_first: false`` or in a whole answer.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.hostile import HostileUpstream, Reply, sse
from integration.conftest import ProxyFactory, chat_body, events
from integration.threaded import Threaded

PHRASE = "Project Falcon"
EMAIL = "jane.doe@example.com"
JSON_CT = "application/json"


def rails(stream_first: bool = False, pii: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"banned": {"type": "blocklist", "words": ["project falcon"]}}
    flows = ["banned"]
    if pii:
        config["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
        flows.append("pii")
    streaming = {"enabled": True, "chunk_size": 16, "context_size": 8}
    output = {"flows": flows, "streaming": {**streaming, "stream_first": stream_first}}
    return {"streaming": True, "rails": {"config": config, "output": output}}


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as up:
        yield up


def delta_chunk(delta: dict[str, Any], index: int = 0, **choice: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": None, **choice}],
    }


def tool(args: str = "", name: str | None = None, index: int = 0) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    if name is not None:
        fn["name"] = name
    return {"tool_calls": [{"index": index, "type": "function", "function": fn}]}


def logprobs(tokens: list[str], alternatives: list[str] | None = None) -> dict[str, Any]:
    tops = [{"token": a, "logprob": -1.0} for a in alternatives or []]
    return {"content": [{"token": t, "logprob": -0.1, "top_logprobs": tops} for t in tokens]}


# Each stream: the chunks (before the finish chunk) that carry the phrase in one field.
STREAMS: dict[str, list[dict[str, Any]]] = {
    "reasoning": [delta_chunk({"reasoning": "Project"}), delta_chunk({"reasoning": " Falcon"})],
    "reasoning_content_beside_reasoning": [
        delta_chunk({"reasoning": "harmless", "reasoning_content": PHRASE})
    ],
    "refusal": [delta_chunk({"refusal": PHRASE})],
    "content_parts": [delta_chunk({"content": [{"type": "text", "text": PHRASE}]})],
    "tool_arguments": [delta_chunk(tool('{"q": "Proj')), delta_chunk(tool('ect Falcon"}'))],
    "tool_arguments_newline_escape": [delta_chunk(tool('{"q": "Project\\nFalcon"}'))],
    "tool_arguments_unicode_escape_split": [
        delta_chunk(tool('{"q": "\\u00')),
        delta_chunk(tool('50roject\\u0020Falcon"}')),
    ],
    "tool_name": [delta_chunk(tool("", name=PHRASE))],
    "legacy_function_call": [delta_chunk({"function_call": {"name": "f", "arguments": PHRASE}})],
    "logprobs_not_spelling_content": [
        delta_chunk({"content": "Hello"}, logprobs=logprobs([PHRASE]))
    ],
    "top_logprobs_alternative": [
        delta_chunk({"content": "Hi"}, logprobs=logprobs(["Hi"], [PHRASE]))
    ],
}


def finish(index: int = 0) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}


@pytest.mark.parametrize("case", sorted(STREAMS))
async def test_streamed_fields_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply(sse(*STREAMS[case], finish()))
    p = await proxy(target=hostile.base_url, **rails())
    status, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    assert b"Falcon" not in raw
    assert b'"code": "content_blocked"' in raw


def whole(message: dict[str, Any], **choice: Any) -> bytes:
    body = {
        "id": "c",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": "stop",
                **choice,
            }
        ],
    }
    return json.dumps(body).encode()


WHOLE: dict[str, bytes] = {
    "reasoning_content": whole({"content": "ok", "reasoning_content": PHRASE}),
    "reasoning": whole({"content": "ok", "reasoning": PHRASE}),
    "refusal": whole({"content": None, "refusal": PHRASE}),
    "tool_arguments": whole({"content": None, **tool('{"q": "Project Falcon"}', name="f")}),
    "tool_arguments_escaped": whole({**tool('{"q": "Project\\u0020Falcon"}', name="f")}),
    "tool_name": whole({**tool("{}", name=PHRASE)}),
    "function_call": whole({"function_call": {"name": "f", "arguments": PHRASE}}),
    "logprobs": whole({"content": "Hi"}, logprobs=logprobs([PHRASE])),
    "top_logprobs": whole({"content": "Hi"}, logprobs=logprobs(["Hi"], [PHRASE])),
}


@pytest.mark.parametrize("case", sorted(WHOLE))
async def test_whole_answer_fields_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply([WHOLE[case]], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert (status, json.loads(raw)["error"]["code"]) == (400, "content_blocked")
    assert b"Falcon" not in raw


@pytest.mark.parametrize(
    ("message", "masked_field"),
    [
        ({"content": "ok", "reasoning_content": f"mail {EMAIL}"}, "reasoning_content"),
        ({"content": None, **tool(f'{{"to": "{EMAIL}"}}', name="send")}, "tool_calls"),
    ],
)
async def test_whole_answer_masks_in_any_field(
    hostile: HostileUpstream, proxy: ProxyFactory, message: dict[str, Any], masked_field: str
) -> None:
    hostile.reply = Reply([whole(message, token_ids=[1, 2, 3])], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails(pii=True))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert status == 200
    assert EMAIL.encode() not in raw
    choice = json.loads(raw)["choices"][0]
    assert "[EMAIL]" in json.dumps(choice["message"][masked_field])
    assert choice["token_ids"] is None  # they spelled the masked text


async def test_a_mask_in_escaped_tool_arguments_blocks(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    escaped = EMAIL.replace("@", "\\u0040")
    hostile.reply = Reply(
        [whole({**tool(f'{{"to": "{escaped}"}}', name="send")})], content_type=JSON_CT
    )
    p = await proxy(target=hostile.base_url, **rails(pii=True))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert (status, json.loads(raw)["error"]["code"]) == (400, "content_blocked")
    assert b"0040example" not in raw


async def test_streamed_mask_drops_token_ids(hostile: HostileUpstream, proxy: ProxyFactory) -> None:
    chunks = [delta_chunk({"content": f"write to {EMAIL}"}, token_ids=[5, 6, 7]), finish()]
    hostile.reply = Reply(sse(*chunks))
    p = await proxy(target=hostile.base_url, **rails(pii=True))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert EMAIL.encode() not in raw
    assert b"[EMAIL]" in raw
    assert b"[5, 6, 7]" not in raw
    assert b"[5,6,7]" not in raw


# -- TGI ------------------------------------------------------------------------------


def tgi_event(text: str, special: bool = False, final: str | None = None, **extra: Any) -> bytes:
    token = {"id": 1, "text": text, "logprob": -0.1, "special": special}
    obj = {"index": 1, "token": token, "generated_text": final, "details": None, **extra}
    return b"data:" + json.dumps(obj).encode() + b"\n\n"


TGI_STREAMS: dict[str, list[bytes]] = {
    "special_token": [
        tgi_event("Hi"),
        tgi_event(" " + PHRASE, special=True),
        tgi_event("", final="Hi"),
    ],
    "top_tokens": [
        tgi_event("Hi", top_tokens=[{"id": 2, "text": PHRASE, "logprob": -1, "special": False}]),
        tgi_event("!", final="Hi!"),
    ],
    "generated_text_differs": [tgi_event("Hi"), tgi_event("!", final=f"Hi! {PHRASE}")],
}


@pytest.mark.parametrize("case", sorted(TGI_STREAMS))
async def test_tgi_stream_fields_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, case: str
) -> None:
    hostile.reply = Reply(TGI_STREAMS[case])
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await p.post_stream("/generate_stream", {"inputs": "hi"})
    assert b"Falcon" not in raw
    assert b"guardrails_violation" in raw


async def test_tgi_masked_stream_rewrites_generated_text(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    text = f"Mail {EMAIL} now"
    hostile.reply = Reply([tgi_event("Mail "), tgi_event(EMAIL), tgi_event(" now", final=text)])
    p = await proxy(target=hostile.base_url, **rails(pii=True))
    _, raw = await p.post_stream("/generate_stream", {"inputs": "hi"})
    assert EMAIL.encode() not in raw
    final = json.loads(raw.split(b"data:")[-1])
    assert final["generated_text"] == "Mail [EMAIL] now"


@pytest.mark.parametrize(
    "details",
    [
        {"best_of_sequences": [{"generated_text": PHRASE, "finish_reason": "length"}]},
        {"tokens": [{"id": 1, "text": PHRASE, "logprob": -1, "special": False}]},
        {"top_tokens": [[{"id": 1, "text": PHRASE, "logprob": -1, "special": False}]]},
    ],
    ids=["best_of_sequences", "tokens", "top_tokens"],
)
async def test_tgi_whole_details_are_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, details: dict[str, Any]
) -> None:
    body = {"generated_text": "Hi", "details": {"finish_reason": "length", **details}}
    hostile.reply = Reply([json.dumps(body).encode()], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    status, raw = await p.post_stream("/generate", {"inputs": "hi"})
    assert status == 400
    assert b"Falcon" not in raw


# -- the property ---------------------------------------------------------------------

FIELDS = st.sampled_from(
    [
        "content",
        "refusal",
        "reasoning",
        "reasoning_content",
        "args",
        "name",
        "function_call",
        "logprob_token",
        "top_alternative",
    ]
)


def plant(field: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(message or delta fields, choice-level fields) carrying ``text`` in ``field``."""
    simple = {"content", "refusal", "reasoning", "reasoning_content"}
    if field in simple:
        return {field: text}, {}
    if field == "args":
        return tool(json.dumps({"q": text}), name="f"), {}
    if field == "name":
        return tool("{}", name=text), {}
    if field == "function_call":
        return {"function_call": {"name": "f", "arguments": text}}, {}
    if field == "logprob_token":
        return {"content": "ok"}, {"logprobs": logprobs([text])}
    return {"content": "ok"}, {"logprobs": logprobs(["ok"], [text])}


def split_json_string(value: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(value) + 1) for c in cuts} | {0, len(value)})
    return [value[a:b] for a, b in itertools.pairwise(points) if b > a]


def as_stream(field: str, text: str, cuts: list[int]) -> list[dict[str, Any]]:
    """The planted answer as deltas, the planted field's text split at ``cuts``."""
    msg, choice = plant(field, text)
    if field in {"content", "refusal", "reasoning", "reasoning_content"}:
        return [delta_chunk({field: piece}) for piece in split_json_string(text, cuts)]
    if field == "args":
        source = msg["tool_calls"][0]["function"]["arguments"]
        return [
            delta_chunk(tool(piece, name="f" if i == 0 else None))
            for i, piece in enumerate(split_json_string(source, cuts))
        ]
    return [delta_chunk(msg, **choice)]


BEFORE = st.sampled_from(["", " ", "Note: ", "so, "])
AFTER = st.sampled_from(["", " ", ", note", ". So"])  # (whole words: "FalconNote" is not one)


@pytest.fixture(scope="module")
def served() -> Iterator[Threaded]:
    s = Threaded(HostileUpstream(), rails())
    s.start()
    try:
        yield s
    finally:
        s.stop()


def post(url: str, body: dict[str, Any]) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:
        return bytes(e.read())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=FIELDS, before=BEFORE, after=AFTER, cuts=st.lists(st.integers(0, 60), max_size=4))
def test_a_planted_phrase_never_reaches_the_socket(
    served: Threaded, field: str, before: str, after: str, cuts: list[int]
) -> None:
    text = before + PHRASE + after
    served.upstream.reply = Reply(sse(*as_stream(field, text, cuts), finish()))
    streamed = post(served.base + "/v1/chat/completions", chat_body())
    assert b"Falcon" not in streamed, (field, streamed)
    msg, choice = plant(field, text)
    served.upstream.reply = Reply([whole(msg, **choice)], content_type=JSON_CT)
    answered = post(served.base + "/v1/chat/completions", chat_body(stream=False))
    assert b"Falcon" not in answered, (field, answered)


@pytest.mark.parametrize("where", ["model", "id", "finish_reason", "unknown_field"])
async def test_every_other_string_is_judged(
    hostile: HostileUpstream, proxy: ProxyFactory, where: str
) -> None:
    """Strings no reader knows (the envelope, a finish reason, a field nobody sends today)
    are judged too, streamed and whole, so an upstream cannot hide text in them."""
    first = delta_chunk({"content": "Hello"})
    last = finish()
    if where == "finish_reason":
        last["choices"][0]["finish_reason"] = PHRASE
    elif where == "unknown_field":
        first["choices"][0]["delta"]["speech"] = {"transcript": PHRASE}
    else:
        first[where] = PHRASE
    hostile.reply = Reply(sse(first, last))
    p = await proxy(target=hostile.base_url, **rails())
    _, raw = await p.post_stream("/v1/chat/completions", chat_body())
    assert b"Falcon" not in raw
    assert b'"code": "content_blocked"' in raw
    body = json.loads(whole({"content": "Hello"}))
    target = body if where in ("model", "id") else body["choices"][0]
    target[where if where != "unknown_field" else "speech"] = PHRASE
    hostile.reply = Reply([json.dumps(body).encode()], content_type=JSON_CT)
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(stream=False))
    assert (status, b"Falcon" in raw) == (400, False)


async def test_envelope_strings_are_judged_once_per_config(
    hostile: HostileUpstream, proxy: ProxyFactory
) -> None:
    """The model name and finish reasons repeat in every chunk and stream: a rail sees each
    once per config (a network rail is not asked again for every chunk)."""
    from integration.sample_rails import Recorder

    Recorder.seen = []
    hostile.reply = Reply(
        sse(delta_chunk({"content": "a"}), delta_chunk({"content": "b"}), finish())
    )
    rail = {"type": "python", "class": "integration.sample_rails:Recorder", "fields": ["other"]}
    output = {"flows": ["rec"], "streaming": {"enabled": True}}
    cfg = {"streaming": True, "rails": {"config": {"rec": rail}, "output": output}}
    p = await proxy(target=hostile.base_url, **cfg)
    for _ in range(3):
        status, _ = await p.post_stream("/v1/chat/completions", chat_body())
        assert status == 200
    seen = [line for text in Recorder.seen for line in text.split("\n")]
    assert seen.count("c") == 1  # the id, the same in every chunk and stream here
    assert seen.count("chat.completion.chunk") == 1
    assert seen.count("stop") == 1


# -- one judging path: a whole answer is judged as the same answer streamed -----------

WORDS = st.sampled_from(
    [
        "the",
        "plan",
        "is",
        "ready",
        ",",
        "mail",
        EMAIL,
        "or",
        "call",
        "Project",
        "Falcon",
        "tomorrow",
        "\n",
        "ok",
        "bob@example.org",
        "thanks",
    ]
)


@pytest.fixture(scope="module")
def masking() -> Iterator[Threaded]:
    s = Threaded(HostileUpstream(), rails(pii=True))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def streamed_content(raw: bytes) -> tuple[bool, str]:
    """(blocked, the content a client assembles) of a chat stream."""
    out, blocked = [], False
    for data in events(raw):
        if data == b"[DONE]":
            continue
        obj = json.loads(data)
        if obj.get("error"):
            blocked = True
        for choice in obj.get("choices") or []:
            out.append((choice.get("delta") or {}).get("content") or "")
    return blocked, "".join(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(WORDS, min_size=1, max_size=60))
def test_whole_and_streamed_answers_get_the_same_verdict_and_masks(
    masking: Threaded, words: list[str]
) -> None:
    """The same answer, whole and streamed a word per delta (the pieces a whole answer is
    windowed in), with a blocklist and an e-mail mask at 16/8 and stream_first false:
    both blocked, or both let through with the same masks."""
    text = " ".join(words)
    pieces = re.findall(r"\S+\s*|\s+", text)
    masking.upstream.reply = Reply(sse(*(delta_chunk({"content": p}) for p in pieces), finish()))
    blocked, streamed = streamed_content(post(masking.base + "/v1/chat/completions", chat_body()))
    masking.upstream.reply = Reply([whole({"content": text})], content_type=JSON_CT)
    answer = json.loads(post(masking.base + "/v1/chat/completions", chat_body(stream=False)))
    if "error" in answer:
        assert blocked, (text, streamed)
        return
    assert not blocked, (text, answer)
    assert streamed == answer["choices"][0]["message"]["content"], text
