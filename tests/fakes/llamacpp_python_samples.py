# ruff: noqa: E501
"""Bytes a real llama-cpp-python 0.3.36 server sent, kept so the fake's `llama-cpp-python`
dialect can be pinned against them.

Captured from `python -m llama_cpp.server` (llama-cpp-python 0.3.36 with FastAPI 0.165.0,
uvicorn 0.54.0, sse-starlette 3.7.0, starlette-context 0.3.6, Python 3.11) serving the
conformance suite's tiny random-weight GGUF model as `tiny` with `--n_ctx 4096`, started with
tests/conformance/llamacpp_server.py's `running()` (see tests/conformance/README.md, whose
"Where llama-cpp-python's server differs" list these illustrate). Each request was sent once
with `http.client`. Only what the server sent is here: status, body, and the response headers
in the order received, except `date`. Per request are: the response `id` (a uuid4), `created`,
`openai-processing-ms`, a generated `x-request-id` (32 hex digits) and ping timestamps; compare
with `normalized` and `header_names`.

The model's greedy words: chat " migi homi gisa peru ...", completions " rupe tosa gigi
ruto ..."; the chat prompt is 6 tokens after templating, the completion prompt 4 (BOS
included), `LONG_PROMPT` 4128 (chat) / 4126 (completions). A `stop` string cut the token
" peru" to its text before the stop: `" "`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from .upstream import Script

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODEL = "tiny"
PROMPT = "kalo mine rusa"
N_CTX = 4096
LONG_PROMPT = " ".join([PROMPT] * (N_CTX // 3 + 10))
LONG_MESSAGES = [{"role": "user", "content": LONG_PROMPT}]
USAGE = {"include_usage": True}
NOT_A_UUID = {"X-Request-Id": "not-a-uuid"}
DASHED_UUID = {"X-Request-Id": "0b3a4a9e-8b8c-4c1f-9a51-6f3b2f1a7c2d"}
HEX_UUID = {"X-Request-Id": "0b3a4a9e8b8c4c1f9a516f3b2f1a7c2d"}

_UUID4 = rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_ID = re.compile(rb'("id": ?")(chatcmpl|cmpl)-' + _UUID4 + rb'"')
_CREATED = re.compile(rb'("created": ?)\d+')
PING = re.compile(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{6})?\+00:00\n\n")


@dataclass(frozen=True)
class Sample:
    """One request and what llama-cpp-python answered."""

    path: str
    request: Any  # the JSON body sent (None: no body)
    status: int
    body: bytes
    response_headers: tuple[tuple[str, str], ...] = ()  # as received, without `date`
    headers: dict[str, str] = field(default_factory=dict)  # request headers sent
    method: str = "POST"

    @property
    def events(self) -> list[bytes]:
        """The SSE events (and comments), each with its blank-line terminator."""
        return [e + b"\n\n" for e in self.body.split(b"\n\n") if e]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.response_headers if k.lower() == name), None)


# Scripts that make the fake generate what the samples' model did.
CHAT_WORDS = [" migi", " homi", " gisa", " peru"]
COMPLETION_WORDS = [" rupe", " tosa", " gigi", " ruto"]
SCRIPT_CHAT = Script(  # 4 words, then max_tokens
    text=CHAT_WORDS,
    dialect="llama-cpp-python",
    model=MODEL,
    finish_reason="length",
    prompt_tokens=6,
)
SCRIPT_COMPLETION = replace(SCRIPT_CHAT, text=COMPLETION_WORDS, prompt_tokens=4)
# `stop: ["peru"]`: the 4th token's text before the stop, then the finish
SCRIPT_STOP = replace(SCRIPT_CHAT, text=[*CHAT_WORDS[:3], " "], finish_reason="stop")
SCRIPT_N2 = replace(SCRIPT_CHAT, text=[" migi", " homi", " vizu", " loto", " pedo", " saka"])
SCRIPT_COMPLETION_N2 = replace(
    SCRIPT_COMPLETION, text=[" rupe", " tosa", " hoka", " lozu", " nevi", " peto"]
)
SCRIPT_LONG_CHAT = replace(SCRIPT_CHAT, prompt_tokens=4128)  # over n_ctx (4096)
SCRIPT_LONG_COMPLETION = replace(SCRIPT_COMPLETION, prompt_tokens=4126)


def normalized(raw: bytes) -> bytes:
    """The bytes with the per-request uuid4 `id`, `created` and ping timestamps blanked
    (spacing kept, so a compact body stays compact)."""
    raw = PING.sub(b": ping - T\n\n", raw)
    return _CREATED.sub(rb"\g<1>0", _ID.sub(rb'\1\2-ID"', raw))


def header_names(pairs: Any) -> list[str]:
    """Response header names, lower-cased and sorted, without `date` (order and case are
    the HTTP library's business)."""
    return sorted(k.lower() for k, _ in pairs if k.lower() != "date")


def chat(stream: Any = True, **extra: Any) -> dict[str, Any]:
    """The chat request the samples were made with (greedy, 4 tokens unless told)."""
    messages = [{"role": "user", "content": PROMPT}]
    body = {"model": MODEL, "messages": messages, "max_tokens": 4, "temperature": 0}
    return body | {"seed": 1234, "stream": stream} | extra


def completion(stream: Any = True, **extra: Any) -> dict[str, Any]:
    body = chat(stream, **extra)
    del body["messages"]
    return body | {"prompt": PROMPT}


def without_max_tokens(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "max_tokens"}


CHAT_STREAM = Sample(  # README items 1, 2, 3, 4, 13
    CHAT_PATH,
    chat(),
    200,
    (
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " peru"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-e37fb065-986b-441d-a208-16a15ecb1fd8", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "4"),
        ("x-request-id", "dc87f98fbee3441691ff275f09044dbf"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_STREAM_USAGE = Sample(  # README item 7
    CHAT_PATH,
    chat(stream_options=USAGE),
    200,
    (
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " peru"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-d3efbe8b-056d-4f37-a35b-a422ac6dae39", "model": "tiny", "created": 1795325636, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "1"),
        ("x-request-id", "1176cba6298d45c1a9e57bc0972034f5"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_JSON = Sample(  # README items 6, 13
    CHAT_PATH,
    chat(stream=False),
    200,
    (
        b'{"id":"chatcmpl-601f22f2-965a-4856-8a4b-c814c0f168db","object":"chat.completion","created":1795325637,"model":"tiny","choices":[{"index":0,"message":{"content":" migi homi gisa peru","role":"assistant"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "314"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "80"),
        ("x-request-id", "700f4be2b9f243b8a2457083ce0a9b55"),
        ("vary", "Origin"),
    ),
)


COMPLETIONS_STREAM = Sample(  # README items 1, 4, 5
    COMPLETIONS_PATH,
    completion(),
    200,
    (
        b'data: {"id": "cmpl-c21c99ed-b5df-4bf8-bdfd-975fcda660cf", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " rupe", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-c21c99ed-b5df-4bf8-bdfd-975fcda660cf", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " tosa", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-c21c99ed-b5df-4bf8-bdfd-975fcda660cf", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " gigi", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-c21c99ed-b5df-4bf8-bdfd-975fcda660cf", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " ruto", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-c21c99ed-b5df-4bf8-bdfd-975fcda660cf", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "2"),
        ("x-request-id", "0b6f03ae1131470e8dbef906b95c038d"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


COMPLETIONS_STREAM_USAGE = Sample(  # README item 7
    COMPLETIONS_PATH,
    completion(stream_options=USAGE),
    200,
    (
        b'data: {"id": "cmpl-ab7ac511-d905-4b15-aa26-92e87edbe42b", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " rupe", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-ab7ac511-d905-4b15-aa26-92e87edbe42b", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " tosa", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-ab7ac511-d905-4b15-aa26-92e87edbe42b", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " gigi", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-ab7ac511-d905-4b15-aa26-92e87edbe42b", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": " ruto", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-ab7ac511-d905-4b15-aa26-92e87edbe42b", "object": "text_completion", "created": 1795325637, "model": "tiny", "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "3d28253487da4bb584be205f16d7ed5a"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


COMPLETIONS_JSON = Sample(  # README item 6
    COMPLETIONS_PATH,
    completion(stream=False),
    200,
    (
        b'{"id":"cmpl-1d6d70a3-90da-4ddf-a29c-8439ef93b1b5","object":"text_completion","created":1795325637,"model":"tiny","choices":[{"text":" rupe tosa gigi ruto","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "275"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "85"),
        ("x-request-id", "d46e97e5672b48a3a8813d436a0f6c90"),
        ("vary", "Origin"),
    ),
)


CHAT_STOP_STREAM = Sample(  # README item 3
    CHAT_PATH,
    chat(max_tokens=12, stop=["peru"]),
    200,
    (
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " "}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c238b258-4e0c-4237-8532-28d3e00e0588", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "76cff9b7bca6485483fee5bbae835291"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_STOP_JSON = Sample(  # README item 6
    CHAT_PATH,
    chat(stream=False, max_tokens=12, stop=["peru"]),
    200,
    (
        b'{"id":"chatcmpl-6d157bb3-9c35-405a-938c-1da9c30183c6","object":"chat.completion","created":1795325637,"model":"tiny","choices":[{"index":0,"message":{"content":" migi homi gisa ","role":"assistant"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "308"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "91"),
        ("x-request-id", "19c84908e0524789883b46cb25f16bb5"),
        ("vary", "Origin"),
    ),
)


CHAT_N2_STREAM = Sample(  # README item 8
    CHAT_PATH,
    chat(n=2, temperature=1.0, seed=7, max_tokens=6),
    200,
    (
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " vizu"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " loto"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " pedo"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " saka"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-64c2f2c7-8b61-4994-beef-cb2d6ae114c4", "model": "tiny", "created": 1795325637, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "4"),
        ("x-request-id", "e2993f6100f2494e83082808b993a59b"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_N2_JSON = Sample(  # README item 8
    CHAT_PATH,
    chat(stream=False, n=2),
    200,
    (
        b'{"id":"chatcmpl-367ced65-ff67-4154-9d73-3f9faaa9adea","object":"chat.completion","created":1795325638,"model":"tiny","choices":[{"index":0,"message":{"content":" migi homi gisa peru","role":"assistant"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "314"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "87"),
        ("x-request-id", "5dbac552a0ea46f3aaf035568ae220bc"),
        ("vary", "Origin"),
    ),
)


COMPLETIONS_N2_STREAM = Sample(  # README item 8
    COMPLETIONS_PATH,
    completion(n=2, temperature=1.0, seed=7, max_tokens=6),
    200,
    (
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " rupe", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " tosa", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " hoka", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " lozu", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " nevi", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " peto", "index": 0, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-4995b643-438a-41ca-a75c-0473351ad92a", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "f1491149329d410eaf96b1c23a8fd5eb"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


UNKNOWN_MODEL_STREAM = Sample(  # README item 9
    CHAT_PATH,
    chat(model="nope"),
    200,
    (
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " peru"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-a55761ad-b977-4d76-b0c8-1ee8feb937e6", "model": "nope", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "1fc904778c9d4db1b414b63faff043e7"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


UNKNOWN_MODEL_JSON = Sample(  # README item 9
    CHAT_PATH,
    chat(stream=False, model="nope"),
    200,
    (
        b'{"id":"chatcmpl-0bd28b69-2113-4ff6-be8a-8b4aa4439b6d","object":"chat.completion","created":1795325638,"model":"nope","choices":[{"index":0,"message":{"content":" migi homi gisa peru","role":"assistant"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "314"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "112"),
        ("x-request-id", "f4f8ca617b424e468a1da9e2c4f83622"),
        ("vary", "Origin"),
    ),
)


UNICODE_MODEL_STREAM = Sample(  # README item 1
    CHAT_PATH,
    chat(model="t\u00efny"),
    200,
    (
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " peru"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f697fdec-e767-45cc-88c4-8876eb8c9af4", "model": "t\\u00efny", "created": 1795325739, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "7"),
        ("x-request-id", "cc4b761ea86a4bb3a660c681d19b78a6"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


UNICODE_MODEL_JSON = Sample(  # README item 6
    CHAT_PATH,
    chat(stream=False, model="t\u00efny"),
    200,
    (
        b'{"id":"chatcmpl-773ef64c-67aa-42a1-a7be-a84710c8d6da","object":"chat.completion","created":1795325740,"model":"t\xc3\xafny","choices":[{"index":0,"message":{"content":" migi homi gisa peru","role":"assistant"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "315"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "108"),
        ("x-request-id", "b54d0acc7eac41bca4e287df50397568"),
        ("vary", "Origin"),
    ),
)


CONTEXT_CHAT_400 = Sample(  # README item 10
    CHAT_PATH,
    chat(stream=False, messages=LONG_MESSAGES),
    400,
    (
        b'{"error":{"message":"This model\'s maximum context length is 4096 tokens. However, you requested 4132 tokens (4128 in the messages, 4 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "294"),
        ("content-type", "application/json"),
        ("x-request-id", "7ed8709c740440de807860e11957f893"),
        ("vary", "Origin"),
    ),
)


CONTEXT_CHAT_NO_MAX_TOKENS_400 = Sample(  # README item 10
    CHAT_PATH,
    without_max_tokens(chat(stream=False, messages=LONG_MESSAGES)),
    400,
    (
        b'{"error":{"message":"This model\'s maximum context length is 4096 tokens. However, you requested 4128 tokens (4128 in the messages, None in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "297"),
        ("content-type", "application/json"),
        ("x-request-id", "c781a9b775e34adf82c82fe888911cd9"),
        ("vary", "Origin"),
    ),
)


CONTEXT_COMPLETIONS_400 = Sample(  # README item 10
    COMPLETIONS_PATH,
    completion(stream=False) | {"prompt": LONG_PROMPT},
    400,
    (
        b'{"error":{"message":"This model\'s maximum context length is 4096 tokens, however you requested 4130 tokens (4126 in your prompt; 4 for the completion). Please reduce your prompt; or completion length.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "286"),
        ("content-type", "application/json"),
        ("x-request-id", "15f32670aba241718eefe3864dc80eb2"),
        ("vary", "Origin"),
    ),
)


CONTEXT_CHAT_STREAM_EMPTY = Sample(  # README item 11
    CHAT_PATH,
    chat(messages=LONG_MESSAGES),
    200,
    (b""),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "ee4c184061bf49c7982a9028aa907da0"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CONTEXT_COMPLETIONS_STREAM_EMPTY = Sample(  # README item 11
    COMPLETIONS_PATH,
    completion() | {"prompt": LONG_PROMPT},
    200,
    (b""),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "1"),
        ("x-request-id", "5a9c15fa17444da38fecca68b744b023"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


SCHEMA_MESSAGES_500 = Sample(  # README item 10
    CHAT_PATH,
    chat(messages="x"),
    500,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should be a valid list', 'input': 'x'}\\n\\n  File \\\"/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/llama_cpp/server/app.py\\\", line 376, in create_chat_completion\\n    POST /v1/chat/completions\",\"type\":\"internal_server_error\",\"param\":null,\"code\":null}}"
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "390"),
        ("content-type", "application/json"),
        ("x-request-id", "a148c3784f0148e0853f02b639a03a8d"),
        ("vary", "Origin"),
    ),
)


SCHEMA_STREAM_500 = Sample(  # README item 10
    CHAT_PATH,
    chat(stream="x"),
    500,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'bool_parsing', 'loc': ('body', 'stream'), 'msg': 'Input should be a valid boolean, unable to interpret input', 'input': 'x'}\\n\\n  File \\\"/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/llama_cpp/server/app.py\\\", line 376, in create_chat_completion\\n    POST /v1/chat/completions\",\"type\":\"internal_server_error\",\"param\":null,\"code\":null}}"
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "421"),
        ("content-type", "application/json"),
        ("x-request-id", "cf45295c76b84a28b706a7beb54f02dc"),
        ("vary", "Origin"),
    ),
)


SCHEMA_MAX_TOKENS_500 = Sample(  # README item 10
    CHAT_PATH,
    chat(max_tokens="x"),
    500,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'int_parsing', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'x'}\\n\\n  File \\\"/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/llama_cpp/server/app.py\\\", line 376, in create_chat_completion\\n    POST /v1/chat/completions\",\"type\":\"internal_server_error\",\"param\":null,\"code\":null}}"
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "435"),
        ("content-type", "application/json"),
        ("x-request-id", "dbfbfb34f78445f5bc9cc30bb452d373"),
        ("vary", "Origin"),
    ),
)


SCHEMA_TWO_ERRORS_500 = Sample(  # README item 10
    CHAT_PATH,
    chat(max_tokens="x", messages="y"),
    500,
    (
        b"{\"error\":{\"message\":\"2 validation errors:\\n  {'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should be a valid list', 'input': 'y'}\\n  {'type': 'int_parsing', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'x'}\\n\\n  File \\\"/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/llama_cpp/server/app.py\\\", line 376, in create_chat_completion\\n    POST /v1/chat/completions\",\"type\":\"internal_server_error\",\"param\":null,\"code\":null}}"
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "543"),
        ("content-type", "application/json"),
        ("x-request-id", "c9ec115dfcef4f10b6a7a04ddb7da01d"),
        ("vary", "Origin"),
    ),
)


SCHEMA_COMPLETIONS_500 = Sample(  # README item 10
    COMPLETIONS_PATH,
    completion(max_tokens="x"),
    500,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'int_parsing', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'x'}\\n\\n  File \\\"/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/llama_cpp/server/app.py\\\", line 264, in create_completion\\n    POST /v1/completions\",\"type\":\"internal_server_error\",\"param\":null,\"code\":null}}"
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "425"),
        ("content-type", "application/json"),
        ("x-request-id", "137a8d147f4945db84b4f0c955cfdbf3"),
        ("vary", "Origin"),
    ),
)


REQUEST_ID_NOT_UUID_STREAM_400 = Sample(  # README item 12
    CHAT_PATH,
    chat(),
    400,
    (b""),
    (("server", "uvicorn"), ("content-length", "0"), ("vary", "Origin")),
    headers=NOT_A_UUID,
)


REQUEST_ID_NOT_UUID_JSON_400 = Sample(  # README item 12
    CHAT_PATH,
    chat(stream=False),
    400,
    (b""),
    (("server", "uvicorn"), ("content-length", "0"), ("vary", "Origin")),
    headers=NOT_A_UUID,
)


REQUEST_ID_NOT_UUID_MODELS_400 = Sample(  # README item 12
    "/v1/models",
    None,
    400,
    (b""),
    (("server", "uvicorn"), ("content-length", "0"), ("vary", "Origin")),
    headers={"X-Request-Id": "abc"},
    method="GET",
)


REQUEST_ID_DASHED_STREAM = Sample(  # README item 12
    CHAT_PATH,
    chat(),
    200,
    (
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " gisa"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " peru"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-c81a963c-d742-4a96-ad84-ebfae14caf10", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "0b3a4a9e-8b8c-4c1f-9a51-6f3b2f1a7c2d"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
    headers=DASHED_UUID,
)


REQUEST_ID_HEX_JSON = Sample(  # README item 12
    CHAT_PATH,
    chat(stream=False),
    200,
    (
        b'{"id":"chatcmpl-47178a1a-79f4-4080-a80d-d79de556c2bd","object":"chat.completion","created":1795325639,"model":"tiny","choices":[{"index":0,"message":{"content":" migi homi gisa peru","role":"assistant"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "314"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "64"),
        ("x-request-id", "0b3a4a9e8b8c4c1f9a516f3b2f1a7c2d"),
        ("vary", "Origin"),
    ),
    headers=HEX_UUID,
)


CHAT_LOGPROBS_STREAM = Sample(  # README item 15
    CHAT_PATH,
    chat(max_tokens=2, logprobs=True, top_logprobs=2),
    200,
    (
        b'data: {"id": "chatcmpl-0e74cf3e-b8d4-40c8-8fa6-0b1c82654a36", "model": "tiny", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-0e74cf3e-b8d4-40c8-8fa6-0b1c82654a36", "model": "tiny", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": {"content": [{"token": " migi", "bytes": null, "logprob": -0.7026247978210449, "top_logprobs": [{"token": " migi", "logprob": -0.7026247978210449, "bytes": null}, {"token": " vivi", "logprob": -1.0335917472839355, "bytes": null}]}], "refusal": null}, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-0e74cf3e-b8d4-40c8-8fa6-0b1c82654a36", "model": "tiny", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": {"content": [{"token": " homi", "bytes": null, "logprob": -0.013569613918662071, "top_logprobs": [{"token": " homi", "logprob": -0.013569613918662071, "bytes": null}, {"token": " milo", "logprob": -4.747380256652832, "bytes": null}]}], "refusal": null}, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-0e74cf3e-b8d4-40c8-8fa6-0b1c82654a36", "model": "tiny", "created": 1795325638, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "b8be175da2a6454180141bd3da9a3d95"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_LOGPROBS_JSON = Sample(  # README item 15
    CHAT_PATH,
    chat(stream=False, max_tokens=2, logprobs=True, top_logprobs=2),
    200,
    (
        b'{"id":"chatcmpl-a3722045-0138-4158-a842-0c75d4236de1","object":"chat.completion","created":1795325638,"model":"tiny","choices":[{"index":0,"message":{"content":" migi homi","role":"assistant"},"logprobs":{"content":[{"token":" migi","logprob":-0.7026247978210449,"bytes":null,"top_logprobs":[{"token":" migi","logprob":-0.7026247978210449,"bytes":null},{"token":" vivi","logprob":-1.0335917472839355,"bytes":null}]},{"token":" homi","logprob":-0.013569613918662071,"bytes":null,"top_logprobs":[{"token":" homi","logprob":-0.013569613918662071,"bytes":null},{"token":" milo","logprob":-4.747380256652832,"bytes":null}]}],"refusal":null},"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":2,"total_tokens":8}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "730"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "51"),
        ("x-request-id", "0c14a8484bc143d1b812a15f8c10b966"),
        ("vary", "Origin"),
    ),
)


CHAT_LOGPROBS_NO_TOP_STREAM = Sample(  # README item 15
    CHAT_PATH,
    chat(max_tokens=2, logprobs=True),
    200,
    (
        b'data: {"id": "chatcmpl-847e586b-6174-41dc-b50a-9a44ad0414b4", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-847e586b-6174-41dc-b50a-9a44ad0414b4", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-847e586b-6174-41dc-b50a-9a44ad0414b4", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-847e586b-6174-41dc-b50a-9a44ad0414b4", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "2c5f6f541e1346df859e03a8f11e1d1f"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


CHAT_LOGPROBS_TOP0_STREAM = Sample(  # README item 15
    CHAT_PATH,
    chat(max_tokens=2, logprobs=True, top_logprobs=0),
    200,
    (
        b'data: {"id": "chatcmpl-f54c5a51-cca1-4b79-b32b-f1e02876a7f9", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f54c5a51-cca1-4b79-b32b-f1e02876a7f9", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " migi"}, "logprobs": {"content": [{"token": " migi", "bytes": null, "logprob": -0.7026247978210449, "top_logprobs": [{"token": " migi", "logprob": -0.7026247978210449, "bytes": null}]}], "refusal": null}, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f54c5a51-cca1-4b79-b32b-f1e02876a7f9", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " homi"}, "logprobs": {"content": [{"token": " homi", "bytes": null, "logprob": -0.013569613918662071, "top_logprobs": [{"token": " homi", "logprob": -0.013569613918662071, "bytes": null}]}], "refusal": null}, "finish_reason": null}]}\n\n'
        b'data: {"id": "chatcmpl-f54c5a51-cca1-4b79-b32b-f1e02876a7f9", "model": "tiny", "created": 1795325740, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "7081b69c09f849a996e73f6a1e3804dd"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


COMPLETIONS_LOGPROBS_STREAM = Sample(  # README item 15
    COMPLETIONS_PATH,
    completion(max_tokens=2, logprobs=2),
    200,
    (
        b'data: {"id": "cmpl-93c63371-4214-4f25-9b5d-c61dc4a3c971", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " rupe", "index": 0, "logprobs": {"tokens": [" rupe"], "text_offset": [14], "token_logprobs": [-0.033172037452459335], "top_logprobs": [{" rupe": -0.033172037452459335, " tomi": -4.256783962249756}]}, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-93c63371-4214-4f25-9b5d-c61dc4a3c971", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": " tosa", "index": 0, "logprobs": {"tokens": [" tosa"], "text_offset": [19], "token_logprobs": [-0.446622371673584], "top_logprobs": [{" tosa": -0.446622371673584, " rumi": -1.535966396331787}]}, "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-93c63371-4214-4f25-9b5d-c61dc4a3c971", "object": "text_completion", "created": 1795325638, "model": "tiny", "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    ),
    (
        ("server", "uvicorn"),
        ("cache-control", "no-store"),
        ("connection", "keep-alive"),
        ("x-accel-buffering", "no"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "472b01fe4a6a465db00ede0380afaf1a"),
        ("vary", "Origin"),
        ("Transfer-Encoding", "chunked"),
    ),
)


COMPLETIONS_LOGPROBS_JSON = Sample(  # README item 15
    COMPLETIONS_PATH,
    completion(stream=False, max_tokens=2, logprobs=2),
    200,
    (
        b'{"id":"cmpl-93a2fd5b-661c-4160-9954-68da57a1a7d7","object":"text_completion","created":1795325638,"model":"tiny","choices":[{"text":" rupe tosa","index":0,"logprobs":{"text_offset":[14,19],"token_logprobs":[-0.03317214921116829,-0.44662219285964966],"tokens":[" rupe"," tosa"],"top_logprobs":[{" rupe":-0.03317214921116829," tomi":-4.256768703460693},{" tosa":-0.44662219285964966," rumi":-1.5359623432159424}]},"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}'
    ),
    (
        ("server", "uvicorn"),
        ("content-length", "506"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "49"),
        ("x-request-id", "0f69daf94dbf4f4f9706a187d3c581c2"),
        ("vary", "Origin"),
    ),
)


MODELS = Sample(  # README item 16
    "/v1/models",
    None,
    200,
    (b'{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me","permissions":[]}]}'),
    (
        ("server", "uvicorn"),
        ("content-length", "90"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "5a2d57fbf66f419d9bc20927c0a56350"),
        ("vary", "Origin"),
    ),
    method="GET",
)


MODELS_POST_405 = Sample(  # README item 16
    "/v1/models",
    {},
    405,
    (b'{"detail":"Method Not Allowed"}'),
    (
        ("server", "uvicorn"),
        ("allow", "GET"),
        ("content-length", "31"),
        ("content-type", "application/json"),
        ("x-request-id", "658db31f61964da3829d67c1b0eb05a6"),
        ("vary", "Origin"),
    ),
)


EXTRAS_TOKENIZE = Sample(  # README item 16
    "/extras/tokenize",
    {"input": "kalo mine"},
    200,
    (b'{"tokens":[1,312,342]}'),
    (
        ("server", "uvicorn"),
        ("content-length", "22"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "0"),
        ("x-request-id", "af41c8dee18746498165eea9fe0ff45f"),
        ("vary", "Origin"),
    ),
)


HEALTH_404 = Sample(  # README item 16
    "/health",
    None,
    404,
    (b'{"detail":"Not Found"}'),
    (
        ("server", "uvicorn"),
        ("content-length", "22"),
        ("content-type", "application/json"),
        ("x-request-id", "6ac13ec258ca45799d680075191a543a"),
        ("vary", "Origin"),
    ),
    method="GET",
)


TOKENIZE_404 = Sample(  # README item 16
    "/tokenize",
    {"content": "kalo"},
    404,
    (b'{"detail":"Not Found"}'),
    (
        ("server", "uvicorn"),
        ("content-length", "22"),
        ("content-type", "application/json"),
        ("x-request-id", "31e1cef6987b45c3b9fc6374d8e5a3fa"),
        ("vary", "Origin"),
    ),
)


METRICS_404 = Sample(  # README item 16
    "/metrics",
    None,
    404,
    (b'{"detail":"Not Found"}'),
    (
        ("server", "uvicorn"),
        ("content-length", "22"),
        ("content-type", "application/json"),
        ("x-request-id", "9acde62f07f74f998bc765596b5f9585"),
        ("vary", "Origin"),
    ),
    method="GET",
)


NON_JSON_BODY = b"{not json"
NON_JSON_500 = Sample(  # NON_JSON_BODY sent: the error handler fails on it too; uvicorn answers
    CHAT_PATH,
    None,
    500,
    b"Internal Server Error",
    (
        ("server", "uvicorn"),
        ("content-length", "21"),
        ("content-type", "text/plain; charset=utf-8"),
    ),
)

# README item 14: a 1300-token chat stream (`chat(max_tokens=1300)`); sse-starlette's first
# ping came 15 s in, after PING_EVENTS_BEFORE events; here the events around it.
PING_EVENTS_BEFORE = 635
PING_EXCERPT = (
    b'data: {"id": "chatcmpl-9398f782-6ad7-4116-a3b9-69c961db9ddd", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " kape"}, "logprobs": null, "finish_reason": null}]}\n\n'
    b": ping - 2026-11-22 05:34:14.442226+00:00\n\n"
    b'data: {"id": "chatcmpl-9398f782-6ad7-4116-a3b9-69c961db9ddd", "model": "tiny", "created": 1795325639, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " hope"}, "logprobs": null, "finish_reason": null}]}\n\n'
)
PING_HEADERS = (
    ("server", "uvicorn"),
    ("cache-control", "no-store"),
    ("connection", "keep-alive"),
    ("x-accel-buffering", "no"),
    ("content-type", "text/event-stream; charset=utf-8"),
    ("openai-processing-ms", "1"),
    ("x-request-id", "b5f364dcfc4249bfa3ef851799957c21"),
    ("vary", "Origin"),
    ("Transfer-Encoding", "chunked"),
)
