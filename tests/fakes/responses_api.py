"""The fake upstream's `POST /v1/responses`, as vLLM 0.32.0 answers it.

A message item streams as `responses_samples.STREAM` shows (pinned byte for byte, ids and
times aside, by tests/fakes/test_responses_fake.py): `response.created`,
`response.in_progress`, `output_item.added`, `content_part.added`, one
`output_text.delta` per scripted piece, `output_text.done`, `content_part.done`,
`output_item.done`, `response.completed` (no `[DONE]`). A scripted `reasoning` streams first
as a reasoning item (`reasoning_text.delta`), and each of `tool_calls` after the message as a
`function_call` item (`function_call_arguments.delta`, `.done` with the name), in the event
shapes of vLLM's `streaming_events.py` (the tiny model emits neither, so they are not
captured). `FakeUpstream.responses_events`, when set, is written instead, one event per write
(a hostile upstream).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .faults import PRE_RESPONSE

if TYPE_CHECKING:
    from .upstream import FakeUpstream, Script

Json = dict[str, Any]
HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "vary": "Origin"}


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def event(obj: Json) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + _dump(obj) + b"\n\n"


def response_object(
    body: Json, rid: str, created: int, output: list[Json], status: str, usage: Json | None
) -> Json:
    tools = body.get("tools") or []
    return {
        "id": rid,
        "created_at": created,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": None,
        "model": body.get("model", "fake-model"),
        "object": "response",
        "output": output,
        "parallel_tool_calls": True,
        "temperature": float(body.get("temperature", 1.0)),
        "tool_choice": "auto" if tools else "none",
        "tools": tools,
        "top_p": 1.0,
        "background": False,
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "previous_response_id": body.get("previous_response_id"),
        "prompt": None,
        "reasoning": None,
        "service_tier": "auto",
        "status": status,
        "text": None,
        "top_logprobs": None,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "input_messages": None,
        "output_messages": None,
    }


def _usage(prompt: int, output: int) -> Json:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "input_tokens_per_turn": [],
            "cached_tokens_per_turn": [],
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": 0,
            "tool_output_tokens": 0,
            "output_tokens_per_turn": [],
            "tool_output_tokens_per_turn": [],
        },
        "total_tokens": prompt + output,
    }


def _hex() -> str:
    return uuid.uuid4().hex[:16]


def _text_part(text: str, logprobs: list[Any] | None) -> Json:
    return {"annotations": [], "text": text, "type": "output_text", "logprobs": logprobs}


def _message(item_id: str, parts: list[Json], status: str) -> Json:
    return {
        "id": item_id,
        "content": parts,
        "role": "assistant",
        "status": status,
        "type": "message",
        "phase": None,
    }


class _Builder:
    """The events of one answer, sequence numbers in order, each marked delta or meta."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.output: list[Json] = []

    def add(self, obj: Json, kind: str = "meta") -> None:
        obj["sequence_number"] = len(self.events)
        obj = dict(sorted(obj.items()))  # vLLM's event models name their fields in order
        self.events.append((kind, event(obj)))

    def reasoning(self, pieces: list[str]) -> None:
        oi, item_id = len(self.output), f"rs_{_hex()}"
        at = {"item_id": item_id, "output_index": oi}
        item = {"id": item_id, "summary": [], "type": "reasoning", "content": None}
        item |= {"encrypted_content": None, "status": "in_progress"}
        self.add({"item": item, "output_index": oi, "type": "response.output_item.added"})
        self.add(
            {
                "content_index": 0,
                **at,
                "part": {"text": "", "type": "reasoning_text"},
                "type": "response.content_part.added",
            }
        )
        for p in pieces:
            self.add(
                {"content_index": 0, "delta": p, **at, "type": "response.reasoning_text.delta"},
                "delta",
            )
        text = "".join(pieces)
        part = {"text": text, "type": "reasoning_text"}
        self.add({"content_index": 0, **at, "text": text, "type": "response.reasoning_text.done"})
        self.add({"content_index": 0, **at, "part": part, "type": "response.content_part.done"})
        done = item | {"content": [part], "status": "completed"}
        self.output.append(done)
        self.add({"item": done, "output_index": oi, "type": "response.output_item.done"})

    def message(self, pieces: list[str]) -> None:
        oi, item_id = len(self.output), f"msg_{_hex()}"
        self.add(
            {
                "item": _message(item_id, [], "in_progress"),
                "output_index": oi,
                "type": "response.output_item.added",
            }
        )
        at = {"content_index": 0, "item_id": item_id}
        self.add(
            {
                **at,
                "output_index": oi,
                "part": _text_part("", []),
                "type": "response.content_part.added",
            }
        )
        for p in pieces:
            self.add(
                {
                    "content_index": 0,
                    "delta": p,
                    "item_id": item_id,
                    "logprobs": [],
                    "output_index": oi,
                    "type": "response.output_text.delta",
                },
                "delta",
            )
        text = "".join(pieces)
        self.add(
            {
                **at,
                "logprobs": [],
                "output_index": oi,
                "text": text,
                "type": "response.output_text.done",
            }
        )
        part = _text_part(text, None)
        self.add({**at, "output_index": oi, "part": part, "type": "response.content_part.done"})
        done = _message(item_id, [part] if text else [], "completed")
        self.output.append(done)
        self.add({"item": done, "output_index": oi, "type": "response.output_item.done"})

    def function_call(self, name: str, pieces: list[str]) -> None:
        oi, item_id, call_id = len(self.output), f"fc_{_hex()}", f"call_{_hex()}"
        item = {"arguments": "", "call_id": call_id, "name": name, "type": "function_call"}
        item |= {"id": item_id, "namespace": None, "status": "in_progress"}
        self.add({"item": item, "output_index": oi, "type": "response.output_item.added"})
        for p in pieces:
            self.add(
                {
                    "delta": p,
                    "item_id": item_id,
                    "output_index": oi,
                    "type": "response.function_call_arguments.delta",
                },
                "delta",
            )
        args = "".join(pieces)
        self.add(
            {
                "arguments": args,
                "item_id": item_id,
                "name": name,
                "output_index": oi,
                "type": "response.function_call_arguments.done",
            }
        )
        done = item | {"arguments": args, "status": "completed"}
        self.output.append(done)
        self.add({"item": done, "output_index": oi, "type": "response.output_item.done"})


def answer(script: Script, body: Json) -> tuple[list[tuple[str, bytes]], Json]:
    """The stream's events (kind "delta" or "meta", bytes) and the whole answer."""
    rid, created = f"resp_{_hex()}", int(time.time())
    b = _Builder()
    start = response_object(body, rid, created, [], "in_progress", None)
    b.add({"response": start, "type": "response.created"})
    b.add({"response": start, "type": "response.in_progress"})
    if script.reasoning:
        b.reasoning(script.reasoning)
    if script.text:
        b.message(script.text)
    for name, args in script.tool_calls or []:
        b.function_call(name, args)
    prompt = script.prompt_tokens or len(json.dumps(body.get("input", "")).split())
    words = len("".join(script.text).split()) or 1  # the tiny model's words are tokens
    limit = body.get("max_output_tokens")
    capped = isinstance(limit, int) and words >= limit
    usage = _usage(prompt, min(words, limit) if capped else words)
    status = "incomplete" if capped else "completed"
    final = response_object(body, rid, created, b.output, status, usage)
    if capped:
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    b.add({"response": final, "type": "response.completed"})
    return b.events, final


async def serve(fake: FakeUpstream, request: web.Request) -> web.StreamResponse:
    rec = await fake._record(request)
    script = fake.script
    if script.fault is not None and script.fault.kind in PRE_RESPONSE:
        return await fake._refuse(request, rec, script, script.fault)
    body = rec.json if isinstance(rec.json, dict) else {}
    events, final = answer(script, body)
    if fake.responses_events is not None:
        events = [("delta", e) for e in fake.responses_events]
    if not body.get("stream"):
        return fake._reply(rec, final)
    resp = web.StreamResponse(headers=HEADERS)
    async with fake._serving(rec):
        await resp.prepare(request)
        for kind, data in events:
            if kind == "delta":
                await fake._pace(script, rec.deltas_sent)
            await fake._write(resp, rec, data)
            if kind == "delta":
                rec.deltas_sent += 1
                fake.deltas_sent += 1
        await resp.write_eof()
    return resp
