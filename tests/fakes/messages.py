"""vLLM 0.32's Anthropic ``/v1/messages``, byte for byte (sans-IO: no aiohttp here).

vLLM serves the Messages API by converting the request to a chat completion and each chat
chunk to Anthropic events (``vllm/entrypoints/anthropic/serving.py``,
``message_stream_converter``): ``event: NAME\\ndata: <model_dump_json(exclude_unset=True)>``,
so the fields each event sets appear, in the model's field order (``type``, ``message``,
``delta``, ``content_block``, ``index``, ``usage``):

- ``message_start`` from the first chat chunk (its ``usage``: the prompt's tokens, 0 out);
- a block per kind of output, started when the first delta of that kind arrives and
  stopped (a ``thinking`` block after a ``signature_delta`` of a random hex) when another
  kind starts, so blocks never overlap; content arriving inside a tool call is held and sent
  as a text block after it;
- with the usage chunk (always asked for: ``include_usage`` and ``continuous_usage_stats``):
  the open block's stop, then ``message_delta`` with ``stop_reason`` and ``stop_sequence``
  and the ``usage``; with the chat stream's ``[DONE]``: ``message_stop``. No ``ping``.

Whole answers are ``model_dump(exclude_none=True)`` in a compact JSONResponse: thinking,
text, then tool_use blocks; one empty text block when there is no output. In-band errors
are ``event: error`` with ``{"type":"error","error":{"type":"internal_error",...}}``.
Checked against real vLLM 0.32.0 bytes (``messages_samples.py``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from .dialects import VLLM_HEADERS, Frame, Json, Step, compact

HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"} | VLLM_HEADERS


def event(name: str, obj: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + compact(obj) + b"\n\n"


def anthropic_error(kind: str, message: str) -> Json:
    return {"type": "error", "error": {"type": kind, "message": message}}


class MessagesRenderer:
    """What the fake's fault injection needs of a renderer (in-band error, no [DONE])."""

    done: bytes | None = None
    headers = HEADERS
    keepalive = b""

    def error(self, message: str) -> bytes:
        return event("error", anthropic_error("internal_error", message))


@dataclass
class _Blocks:
    """vLLM's ``_ActiveBlockState``: one open block at a time."""

    index: int = 0  # the next block's index
    kind: str | None = None
    tool: int | None = None
    frames: list[Frame] = field(default_factory=list)

    def start(self, block: Json) -> None:
        self.kind = block["type"]
        data = {"type": "content_block_start", "content_block": block, "index": self.index}
        self.frames.append(Frame("head", event("content_block_start", data)))

    def delta(self, delta: Json) -> None:
        data = {"type": "content_block_delta", "delta": delta, "index": self.index}
        self.frames.append(Frame("delta", event("content_block_delta", data)))

    def stop(self) -> None:
        if self.kind is None:
            return
        if self.kind == "thinking":
            sig = {"type": "signature_delta", "signature": uuid.uuid4().hex}
            data = {"type": "content_block_delta", "delta": sig, "index": self.index}
            self.frames.append(Frame("head", event("content_block_delta", data)))
        data = {"type": "content_block_stop", "index": self.index}
        self.frames.append(Frame("head", event("content_block_stop", data)))
        self.kind, self.tool = None, None
        self.index += 1


@dataclass
class MessagesStream:
    """One answer's values: the chat stream's id and model, the prompt's tokens."""

    id: str
    model: str
    prompt_tokens: int
    finish_reason: str = "stop"
    stop_reason: str | int | None = None


def frames(s: MessagesStream, steps: list[Step]) -> list[Frame]:
    """The whole stream (choice 0's steps), one frame per event."""
    usage = {"input_tokens": s.prompt_tokens, "output_tokens": 0}
    message = {"id": s.id, "type": "message", "role": "assistant", "content": []}
    message |= {"model": s.model, "stop_reason": None, "stop_sequence": None, "usage": usage}
    head = Frame("head", event("message_start", {"type": "message_start", "message": message}))
    blocks = _Blocks(frames=[head])
    held: list[str] = []
    tool_used = False
    for step in steps:
        if step.kind == "content" and blocks.kind == "tool_use":
            held.append(step.text)
            continue
        wanted = {"content": "text", "reasoning": "thinking"}.get(step.kind, "tool_use")
        if step.kind == "tool_name" or blocks.kind != wanted:
            _flush(blocks, held)
            blocks.start(_block(step))
            tool_used = tool_used or step.kind == "tool_name"
        if step.kind != "tool_name":
            blocks.delta(_delta(step))
    _flush(blocks, held)
    reason, sequence = _stop_reason(s, tool_used)
    delta = {"stop_reason": reason, "stop_sequence": sequence}
    usage = {"input_tokens": s.prompt_tokens, "output_tokens": len(steps)}
    tail = {"type": "message_delta", "delta": delta, "usage": usage}
    blocks.frames.append(Frame("tail", event("message_delta", tail)))
    blocks.frames.append(Frame("done", event("message_stop", {"type": "message_stop"})))
    return blocks.frames


def _flush(blocks: _Blocks, held: list[str]) -> None:
    """vLLM's ``stop_and_flush``: stop the open block; content held during a tool call
    follows as a text block of its own."""
    blocks.stop()
    if held:
        blocks.start({"type": "text", "text": ""})
        blocks.delta({"type": "text_delta", "text": "".join(held)})
        blocks.stop()
        held.clear()


def _block(step: Step) -> Json:
    if step.kind == "content":
        return {"type": "text", "text": ""}
    if step.kind == "reasoning":
        return {"type": "thinking", "thinking": ""}
    tool_id = f"chatcmpl-tool-{uuid.uuid4().hex[:16]}"
    return {"type": "tool_use", "id": tool_id, "name": step.text, "input": {}}


def _delta(step: Step) -> Json:
    if step.kind == "content":
        return {"type": "text_delta", "text": step.text}
    if step.kind == "reasoning":
        return {"type": "thinking_delta", "thinking": step.text}
    return {"type": "input_json_delta", "partial_json": step.text}


def _stop_reason(s: MessagesStream, tool_used: bool) -> tuple[str | None, str | None]:
    """vLLM's ``_to_anthropic_stop_reason``."""
    if s.finish_reason == "length":
        return "max_tokens", None
    if tool_used:
        return "tool_use", None
    if isinstance(s.stop_reason, str):
        return "stop_sequence", s.stop_reason
    return "end_turn", None


def whole(s: MessagesStream, steps: list[Step]) -> Json:
    """The non-streaming answer (``messages_full_converter``, dumped without nulls)."""
    content: list[Json] = []
    reasoning = "".join(st.text for st in steps if st.kind == "reasoning")
    text = "".join(st.text for st in steps if st.kind == "content")
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": uuid.uuid4().hex})
    if text:
        content.append({"type": "text", "text": text})
    tools = _tools(steps)
    for name, args in tools:
        tool_id = f"chatcmpl-tool-{uuid.uuid4().hex[:16]}"
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": args})
    reason, sequence = _stop_reason(s, bool(tools))
    body: Json = {"id": s.id, "type": "message", "role": "assistant"}
    body |= {"content": content or [{"type": "text", "text": ""}], "model": s.model}
    body["stop_reason"] = reason
    if sequence is not None:
        body["stop_sequence"] = sequence
    body["usage"] = {"input_tokens": s.prompt_tokens, "output_tokens": len(steps)}
    return body


def _tools(steps: list[Step]) -> list[tuple[str, Any]]:
    calls: list[tuple[str, list[str]]] = []
    for st in steps:
        if st.kind == "tool_name":
            calls.append((st.text, []))
        elif st.kind == "tool_args" and calls:
            calls[-1][1].append(st.text)
    return [(name, json.loads("".join(args) or "{}")) for name, args in calls]


def prompt_tokens(body: Json) -> int:
    """Whitespace-separated words of the system prompt and messages (at least 1)."""
    texts: list[str] = []
    system = body.get("system")
    texts += [system] if isinstance(system, str) else []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return max(1, sum(len(t.split()) for t in texts))
