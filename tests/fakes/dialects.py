"""How each fake upstream dialect renders a stream, byte for byte (sans-IO: no aiohttp here).

A stream is planned as abstract `Step`s (one content / reasoning / tool-call delta of one
choice). A `Renderer` turns the plan into `Frame`s: the exact bytes of each SSE event, tagged
with the part of the stream it belongs to, so the server can pace deltas and inject faults
between events without knowing any dialect.

Sources (see /work/shared/reference/wire-formats.md, sections 1 and 2):

- vLLM 0.32.0 (checked against a real server: tests/conformance/README.md, "Where real vLLM
  0.32.0 differs"): `data: <json>\\n\\n`; JSON compact as pydantic's
  `model_dump_json(exclude_unset=True)`, so explicitly set nulls appear; a role chunk per
  choice, content chunks, the finish on the last content chunk (a separate empty chunk only
  when a stop token ended the choice), `system_fingerprint` on finishing chunks or the usage
  chunk, an optional usage chunk with `choices: []`, `data: [DONE]`. In-band errors are
  `json.dumps` output (with spaces). `server: uvicorn`, `vary: Origin`, no `cache-control`.
- TGI (axum 0.7): `data:<json>\\n\\n` with no space; serde field order (`object` first, from the
  internally tagged enum); `id: ""`, `system_fingerprint` and `usage: null` on every chat chunk;
  the EOS token chunk carries `content: ""` and the finish reason. Native `/generate_stream`
  has no `[DONE]`.
- llama.cpp server: `data: <json>\\n\\n` in its insertion order (`choices` first); a role-only
  first chunk, a finish chunk with `delta: {}`; no usage in streams.
- llama-cpp-python's server (checked against a real 0.3.36: tests/conformance/README.md,
  "Where llama-cpp-python's server differs"): `json.dumps` events (`, ` and `: `, non-ASCII
  escaped), envelope `id, model, created, object, choices` (chat), `logprobs: null` on every
  chat choice, a finish chunk with `delta: {}`; compact FastAPI bodies; no usage in streams,
  no fingerprint.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FrameKind = Literal["head", "delta", "comment", "tail", "done"]
StepKind = Literal["content", "reasoning", "tool_name", "tool_args"]
Json = dict[str, Any]

LOGPROB = -0.25  # exactly representable, so every dialect prints it the same way
TGI_FINGERPRINT = "3.3.6-native"
LLAMACPP_FINGERPRINT = "b6881-8b11deea4"
KEEPALIVE = b":\n\n"  # axum's KeepAlive (TGI); the fake uses it for llama.cpp too
VLLM_KEEPALIVE = b": keep-alive\n\n"  # `--sse-keep-alive-interval` (sse_keep_alive.py)
VLLM_FINGERPRINT = "vllm-0.32.0-35f02103"
VLLM_HEADERS = {"Server": "uvicorn", "Vary": "Origin"}  # uvicorn; Starlette's CORSMiddleware
EOS_TOKEN = "</s>"


@dataclass(frozen=True)
class Frame:
    """One SSE event as written on the wire (one `resp.write`)."""

    kind: FrameKind
    data: bytes


@dataclass(frozen=True)
class Step:
    """One delta of one choice. `text` is the tool name for `tool_name` steps."""

    choice: int
    kind: StepKind
    text: str
    tool: int = 0
    last: bool = False


@dataclass
class Stream:
    """Per-response values every chunk of a stream repeats, plus running token counts."""

    model: str
    id: str
    n: int = 1
    created: int = 0
    prompt_tokens: int = 1
    finish_reason: str = "stop"
    include_usage: bool = False
    continuous_usage: bool = False
    logprobs: bool = False
    details: bool = False
    reasoning_field: str = "reasoning"
    fingerprint: str | None = None  # vLLM's system_fingerprint (None: `--fingerprint-mode none`)
    stop_reason: str | int | None = None  # vLLM: the stop string or stop token id that matched
    top_logprobs: int = 0  # vLLM chat: alternatives per token (the request's `top_logprobs`)
    prompt_chars: int = 0  # llama-cpp-python completions: `text_offset` starts after the prompt
    tokens: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # choice 0's content deltas, in order

    def __post_init__(self) -> None:
        self.tokens = [0] * self.n
        self.texts = [""] * self.n

    def completion_tokens(self) -> int:
        """Deltas generated so far, over all choices."""
        return sum(self.tokens)


class Renderer(Protocol):
    """One dialect of one endpoint. `head`/`finish`/`usage` return None when not sent."""

    prefix: bytes
    done: bytes | None
    headers: dict[str, str]

    @property
    def keepalive(self) -> bytes: ...

    def head(self, s: Stream, choice: int) -> Json | None: ...
    def step(self, s: Stream, step: Step) -> Json: ...
    def finish(self, s: Stream, choice: int) -> Json | None: ...
    def usage(self, s: Stream) -> Json | None: ...
    def error(self, message: str) -> bytes: ...
    def complete(self, s: Stream, outputs: list[Json]) -> Json: ...


def compact(obj: Any) -> bytes:
    """Serialize like pydantic's `model_dump_json` / serde_json: no spaces, raw UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def render(r: Renderer, s: Stream, steps: Iterable[Step], keepalive: bool = False) -> list[Frame]:
    """Render a whole stream. With `keepalive`, the dialect's keep-alive comment precedes
    every other delta."""
    frames = [Frame("head", _event(r, h)) for c in range(s.n) if (h := r.head(s, c)) is not None]
    for i, step in enumerate(steps):
        if keepalive and i % 2 == 0:
            frames.append(Frame("comment", r.keepalive))
        s.tokens[step.choice] += 1
        if step.kind == "content":
            s.texts[step.choice] += step.text
            if step.choice == 0:
                s.pieces.append(step.text)
        frames.append(Frame("delta", _event(r, r.step(s, step))))
    tails = [r.finish(s, c) for c in range(s.n)] + [r.usage(s)]
    frames += [Frame("tail", _event(r, t)) for t in tails if t is not None]
    if r.done is not None:
        frames.append(Frame("done", r.done))
    return frames


def _event(r: Renderer, obj: Json) -> bytes:
    encode: Callable[[Json], bytes] = getattr(r, "encode", compact)  # llama-cpp-python's own
    return r.prefix + encode(obj) + b"\n\n"


def _token_logprobs(text: str, with_bytes: bool) -> Json:
    entry: Json = {"token": text, "logprob": LOGPROB}
    if with_bytes:
        entry["bytes"] = list(text.encode())
    entry["top_logprobs"] = []
    return {"content": [entry]}


def _tool_call(step: Step, tool_id: str, args_with_name: str | None = None) -> Json:
    """OpenAI/vLLM tool-call delta: id, type and name first, argument fragments after."""
    if step.kind == "tool_name":
        fn: Json = {"name": step.text}
        if args_with_name is not None:
            fn["arguments"] = args_with_name
        return {"id": tool_id, "type": "function", "index": step.tool, "function": fn}
    return {"index": step.tool, "function": {"arguments": step.text}}


def _openai_delta(s: Stream, step: Step, tool_id: str) -> Json:
    if step.kind == "content":
        return {"content": step.text}
    if step.kind == "reasoning":
        return {s.reasoning_field: step.text}
    return {"tool_calls": [_tool_call(step, tool_id)]}


def chat_finish_reason(s: Stream, has_tools: bool) -> str:
    """vLLM and llama.cpp report `tool_calls` when tools were streamed and the model stopped."""
    return "tool_calls" if has_tools and s.finish_reason == "stop" else s.finish_reason


class VllmChat:
    """vLLM 0.32 `/v1/chat/completions` (`chat_completion_stream_generator`).

    Chunks are `model_dump_json(exclude_unset=True)`: the fields vLLM sets explicitly appear
    even when null (`prompt_token_ids`/`prompt_text` on role chunks, `token_ids` on every
    other choice). The finish rides on the last delta (`length`, a stop string), except when a
    stop *token* ended the choice (EOS, `stop_token_ids`): that token decodes to no text, so it
    comes as its own `"delta":{"content":""}` chunk and counts as a generated token.
    `system_fingerprint` goes on each finishing chunk, or on the usage chunk when usage is on.
    """

    prefix = b"data: "
    done: bytes | None = b"data: [DONE]\n\n"
    keepalive = VLLM_KEEPALIVE
    headers = {"Content-Type": "text/event-stream; charset=utf-8"} | VLLM_HEADERS
    object = "chat.completion.chunk"

    def __init__(self, has_tools: bool = False) -> None:
        self.has_tools = has_tools

    def _envelope(self, s: Stream) -> Json:
        return {"id": s.id, "object": self.object, "created": s.created, "model": s.model}

    def _chunk(self, s: Stream, choice: Json, c: int, finishing: bool = False) -> Json:
        obj = self._envelope(s) | {"choices": [choice]}
        if s.continuous_usage:
            obj["usage"] = self._running_usage(s, c)
        if finishing and s.fingerprint is not None and not s.include_usage:
            obj["system_fingerprint"] = s.fingerprint
        return obj

    @staticmethod
    def _running_usage(s: Stream, c: int) -> Json:
        return vllm_usage(s.prompt_tokens, s.tokens[c]) | {"completion_tokens_details": None}

    def head(self, s: Stream, choice: int) -> Json | None:
        delta = {"role": "assistant", "content": ""}
        body = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": None}
        return self._chunk(s, body, choice) | {"prompt_token_ids": None, "prompt_text": None}

    def step(self, s: Stream, step: Step) -> Json:
        lp = None
        if s.logprobs and step.kind == "content":
            lp = vllm_chat_logprobs(step.text, s.top_logprobs)
        delta = _openai_delta(s, step, f"chatcmpl-tool-{uuid.uuid4().hex}")
        body: Json = {"index": step.choice, "delta": delta, "logprobs": lp}
        finishing = step.last and not vllm_stops_on_token(s)
        body |= self._finish_fields(s) if finishing else {"finish_reason": None}
        return self._chunk(s, body | {"token_ids": None}, step.choice, finishing)

    def _finish_fields(self, s: Stream) -> Json:
        reason = chat_finish_reason(s, self.has_tools)
        return {"finish_reason": reason, "stop_reason": s.stop_reason}

    def finish(self, s: Stream, choice: int) -> Json | None:
        if s.tokens[choice] and not vllm_stops_on_token(s):
            return None  # the finish rode on the last delta
        if vllm_stops_on_token(s):
            s.tokens[choice] += 1  # the stop token is generated (and counted), with no text
        lp = vllm_chat_logprobs(EOS_TOKEN, s.top_logprobs) if s.logprobs else None
        body: Json = {"index": choice, "delta": {"content": ""}, "logprobs": lp}
        body |= self._finish_fields(s) | {"token_ids": None}
        return self._chunk(s, body, choice, finishing=True)

    def usage(self, s: Stream) -> Json | None:
        if not s.include_usage:
            return None
        obj = self._envelope(s) | {"choices": []}
        obj["usage"] = vllm_usage(s.prompt_tokens, s.completion_tokens())
        if s.fingerprint is not None:  # exclude_none: no null fingerprint here
            obj["system_fingerprint"] = s.fingerprint
        return obj

    def error(self, message: str) -> bytes:
        return b"data: " + vllm_error(message, 500).encode() + b"\n\n"

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """The non-streaming `ChatCompletionResponse.model_dump()`, every field present."""
        reason = chat_finish_reason(s, self.has_tools)
        tail = {"logprobs": None, "finish_reason": reason, "stop_reason": s.stop_reason}
        tail |= {"token_ids": None, "routed_experts": None}
        choices = [
            {"index": i, "message": vllm_message(out["message"], s.reasoning_field)} | tail
            for i, out in enumerate(outputs)
        ]
        head = self._envelope(s) | {"object": "chat.completion", "choices": choices}
        return head | vllm_body_tail(s) | VLLM_CHAT_EXTRAS


class VllmCompletions(VllmChat):
    """vLLM `/v1/completions`: no role chunk; every choice sets `stop_reason`,
    `prompt_token_ids` and `token_ids`; running usage has no `completion_tokens_details`."""

    object = "text_completion"

    def head(self, s: Stream, choice: int) -> Json | None:
        return None

    @staticmethod
    def _running_usage(s: Stream, c: int) -> Json:
        return vllm_usage(s.prompt_tokens, s.tokens[c])

    def step(self, s: Stream, step: Step) -> Json:
        finishing = step.last and not vllm_stops_on_token(s)
        return self._text_chunk(s, step.choice, step.text, s.tokens[step.choice], finishing)

    def _text_chunk(self, s: Stream, c: int, text: str, offset: int, finishing: bool) -> Json:
        lp = None
        if s.logprobs and text:
            lp = {"text_offset": [offset], "token_logprobs": [LOGPROB], "tokens": [text]}
            lp["top_logprobs"] = [{text: LOGPROB}]
        reason = s.finish_reason if finishing else None
        stop = s.stop_reason if finishing else None
        body = {"index": c, "text": text, "logprobs": lp, "finish_reason": reason}
        body |= {"stop_reason": stop, "prompt_token_ids": None, "token_ids": None}
        return self._chunk(s, body, c, finishing)

    def finish(self, s: Stream, choice: int) -> Json | None:
        if s.tokens[choice] and not vllm_stops_on_token(s):
            return None
        offset = len(s.texts[choice])
        if vllm_stops_on_token(s):
            s.tokens[choice] += 1
        return self._text_chunk(s, choice, "", offset, True)

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """The non-streaming `CompletionResponse.model_dump()`."""
        tail = {"logprobs": None, "finish_reason": s.finish_reason, "stop_reason": s.stop_reason}
        tail |= {"token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None}
        tail["routed_experts"] = None
        choices = [{"index": i, "text": out["text"]} | tail for i, out in enumerate(outputs)]
        head = self._envelope(s) | {"choices": choices}
        return head | vllm_body_tail(s) | VLLM_COMPLETION_EXTRAS


VLLM_CHAT_EXTRAS: Json = {
    "prompt_logprobs": None,
    "prompt_token_ids": None,
    "prompt_text": None,
    "kv_transfer_params": None,
    "ec_transfer_params": None,
    "metrics": None,
}
VLLM_COMPLETION_EXTRAS: Json = {
    "kv_transfer_params": None,
    "ec_transfer_params": None,
    "metrics": None,
}


def vllm_stops_on_token(s: Stream) -> bool:
    """EOS or a `stop_token_ids` hit: a generated token that adds no text (vs `length` or a
    stop string, which end on a text delta)."""
    return s.finish_reason == "stop" and not isinstance(s.stop_reason, str)


def vllm_body_tail(s: Stream) -> Json:
    """What follows `choices` in a non-streaming vLLM body, up to `usage`."""
    usage = vllm_usage(s.prompt_tokens, s.completion_tokens())
    usage |= {"prompt_tokens_details": None, "completion_tokens_details": None}
    return {"service_tier": None, "system_fingerprint": s.fingerprint, "usage": usage}


def vllm_message(message: Json, reasoning_field: str) -> Json:
    """`ChatMessage.model_dump()`: OpenAI's fields, `tool_calls` only when there are some,
    then vLLM's `reasoning` (under the scripted name)."""
    out: Json = {"role": message["role"], "content": message.get("content")}
    out |= {"refusal": None, "annotations": None, "audio": None, "function_call": None}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    out[reasoning_field] = message.get(reasoning_field)
    return out


def vllm_chat_logprobs(text: str, top: int) -> Json:
    """One token's chat logprobs; each of the `top` alternatives carries `bytes` as well,
    the sampled token first."""
    alternatives = [(text, LOGPROB)] + [(f" alt{k}", LOGPROB - 4 * k) for k in range(1, top)]
    tops = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives]
    entry = {"token": text, "logprob": LOGPROB, "bytes": list(text.encode())}
    return {"content": [entry | {"top_logprobs": tops[:top]}]}


def vllm_usage(prompt: int, completion: int) -> Json:
    """vLLM's `UsageInfo` field order: prompt, total, completion."""
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }


def vllm_error(message: str, status: int, compact_json: bool = False) -> str:
    """vLLM `ErrorResponse`; `json.dumps` in-band (spaces), compact in HTTP bodies."""
    kind = {400: "BadRequestError", 404: "NotFoundError", 501: "NotImplementedError"}
    info = {"message": message, "type": kind.get(status, "InternalServerError")}
    obj = {"error": info | {"param": None, "code": status}}
    return (
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        if compact_json
        else json.dumps(obj)
    )


class TgiChat:
    """TGI `/v1/chat/completions` (router/src/lib.rs `ChatCompletionChunk`)."""

    prefix = b"data:"
    done: bytes | None = b"data:[DONE]\n\n"
    keepalive = KEEPALIVE
    headers = {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }

    def _chunk(self, s: Stream, choices: list[Json], usage: Json | None = None) -> Json:
        obj: Json = {"object": "chat.completion.chunk", "id": "", "created": s.created}
        obj |= {"model": s.model, "system_fingerprint": TGI_FINGERPRINT}
        return obj | {"choices": choices, "usage": usage}

    def head(self, s: Stream, choice: int) -> Json | None:
        return None

    def step(self, s: Stream, step: Step) -> Json:
        delta: Json = {"role": "assistant"}
        if step.kind == "content":
            delta["content"] = step.text
        elif step.kind == "reasoning":
            delta[s.reasoning_field] = step.text
        else:
            delta["tool_calls"] = [self._tool(step)]
        lp = _token_logprobs(step.text, False) if s.logprobs and step.kind == "content" else None
        body = {"index": step.choice, "delta": delta, "logprobs": lp, "finish_reason": None}
        return self._chunk(s, [body])

    @staticmethod
    def _tool(step: Step) -> Json:
        name = step.text if step.kind == "tool_name" else None
        args = "" if step.kind == "tool_name" else step.text
        fn = {"name": name, "arguments": args}
        return {"index": step.tool, "id": "", "type": "function", "function": fn}

    def finish(self, s: Stream, choice: int) -> Json | None:
        delta = {"role": "assistant", "content": ""}
        body = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": s.finish_reason}
        return self._chunk(s, [body])

    def usage(self, s: Stream) -> Json | None:
        return self._chunk(s, [], tgi_usage(s)) if s.include_usage else None

    def error(self, message: str) -> bytes:
        return (
            b"data:" + compact({"error": {"message": message, "http_status_code": 422}}) + b"\n\n"
        )

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """TGI `ChatCompletion` / `CompletionFinal` (the `object` tag first)."""
        chat = "message" in outputs[0]
        reason = s.finish_reason if chat else tgi_native_reason(s.finish_reason)
        choices = [
            {"index": i} | out | {"logprobs": None, "finish_reason": reason}
            for i, out in enumerate(outputs)
        ]
        obj: Json = {"object": "chat.completion" if chat else "text_completion", "id": ""}
        obj |= {"created": s.created, "model": s.model, "system_fingerprint": TGI_FINGERPRINT}
        return obj | {"choices": choices, "usage": tgi_usage(s)}


def tgi_usage(s: Stream) -> Json:
    """TGI counts the EOS token as generated when the stream ended on it."""
    completion = s.completion_tokens() + (s.n if s.finish_reason == "stop" else 0)
    prompt = s.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def tgi_native_reason(reason: str) -> str:
    """TGI's `FinishReason` as `to_string()` spells it: `stop` is `eos_token` there."""
    return "eos_token" if reason == "stop" else reason


class TgiCompletions(TgiChat):
    """TGI `/v1/completions`: intermediate `finish_reason: ""`, a final chunk with usage."""

    def step(self, s: Stream, step: Step) -> Json:
        body = {"index": step.choice, "text": step.text, "logprobs": None, "finish_reason": ""}
        obj: Json = {"object": "text_completion", "id": "", "created": s.created}
        return obj | {"choices": [body], "model": s.model, "system_fingerprint": TGI_FINGERPRINT}

    def finish(self, s: Stream, choice: int) -> Json | None:
        reason = tgi_native_reason(s.finish_reason)
        body = {"index": choice, "text": "", "logprobs": None, "finish_reason": reason}
        obj: Json = {"object": "text_completion", "id": "", "created": s.created, "model": s.model}
        obj |= {"system_fingerprint": TGI_FINGERPRINT, "choices": [body]}
        return obj | {"usage": tgi_usage(s)}

    def usage(self, s: Stream) -> Json | None:
        return None


class TgiGenerateStream:
    """TGI native `/generate_stream` (`StreamResponse`): token events, no `[DONE]`.

    Token ids are `100 + position`; the EOS token (`id` 2, `</s>`, `special: true`) ends the
    stream when the finish reason is `eos_token`, otherwise the last text token carries
    `generated_text` (and `details` when the request asked for them).
    """

    prefix = b"data:"
    done: bytes | None = None
    keepalive = KEEPALIVE
    headers = TgiChat.headers

    def head(self, s: Stream, choice: int) -> Json | None:
        return None

    def _event(self, s: Stream, token: Json, final: bool) -> Json:
        generated = s.texts[0] if final else None
        details = self._details(s) if final and s.details else None
        return {
            "index": s.tokens[0],
            "token": token,
            "generated_text": generated,
            "details": details,
        }

    def _details(self, s: Stream) -> Json:
        reason = tgi_native_reason(s.finish_reason)
        generated = s.tokens[0]
        return {
            "finish_reason": reason,
            "generated_tokens": generated,
            "seed": None,
            "input_length": s.prompt_tokens,
        }

    def step(self, s: Stream, step: Step) -> Json:
        token = {"id": 100 + s.tokens[0], "text": step.text, "logprob": LOGPROB, "special": False}
        return self._event(s, token, step.last and s.finish_reason != "stop")

    def finish(self, s: Stream, choice: int) -> Json | None:
        if s.finish_reason != "stop" and s.tokens[0]:
            return None
        s.tokens[0] += 1
        token = {"id": 2, "text": "</s>", "logprob": LOGPROB, "special": True}
        return self._event(s, token, True)

    def usage(self, s: Stream) -> Json | None:
        return None

    def error(self, message: str) -> bytes:
        return b"data:" + compact({"error": message, "error_type": "generation"}) + b"\n\n"

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """TGI `/generate`: `{"generated_text"}` plus `details` when asked for."""
        body: Json = {"generated_text": outputs[0].get("text", "")}
        if s.details:
            body["details"] = self._details(s) | {"prefill": [], "tokens": []}
        return body


class LlamaCppChat:
    """llama.cpp server `/v1/chat/completions` (nlohmann ordered_json, `choices` first)."""

    prefix = b"data: "
    done: bytes | None = b"data: [DONE]\n\n"
    keepalive = KEEPALIVE
    headers = {"Content-Type": "text/event-stream"}
    object = "chat.completion.chunk"

    def __init__(self, has_tools: bool = False) -> None:
        self.has_tools = has_tools

    def _chunk(self, s: Stream, choice: Json) -> Json:
        obj: Json = {"choices": [choice], "created": s.created, "id": s.id, "model": s.model}
        return obj | {"system_fingerprint": LLAMACPP_FINGERPRINT, "object": self.object}

    def head(self, s: Stream, choice: int) -> Json | None:
        return self._chunk(
            s, {"finish_reason": None, "index": choice, "delta": {"role": "assistant"}}
        )

    def step(self, s: Stream, step: Step) -> Json:
        delta = _openai_delta(s, step, uuid.uuid4().hex)
        body: Json = {"finish_reason": None, "index": step.choice, "delta": delta}
        if s.logprobs and step.kind == "content":
            body["logprobs"] = _token_logprobs(step.text, True)
        return self._chunk(s, body)

    def finish(self, s: Stream, choice: int) -> Json | None:
        reason = chat_finish_reason(s, self.has_tools)
        return self._chunk(s, {"finish_reason": reason, "index": choice, "delta": {}})

    def usage(self, s: Stream) -> Json | None:
        return None

    def error(self, message: str) -> bytes:
        return b"data: " + compact(llamacpp_error(message, 500)) + b"\n\n"

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """llama.cpp's non-streaming OpenAI response (usage: completion, prompt, total)."""
        reason = chat_finish_reason(s, self.has_tools)
        choices = [{"finish_reason": reason, "index": i} | out for i, out in enumerate(outputs)]
        done = s.completion_tokens()
        usage = {"completion_tokens": done, "prompt_tokens": s.prompt_tokens}
        obj = "chat.completion" if self.object == "chat.completion.chunk" else self.object
        body: Json = {"choices": choices, "created": s.created, "model": s.model}
        body |= {"system_fingerprint": LLAMACPP_FINGERPRINT, "object": obj}
        return body | {"usage": usage | {"total_tokens": done + s.prompt_tokens}, "id": s.id}


class LlamaCppCompletions(LlamaCppChat):
    """llama.cpp `/v1/completions`: text chunks, then a finishing chunk with empty text."""

    object = "text_completion"

    def head(self, s: Stream, choice: int) -> Json | None:
        return None

    def step(self, s: Stream, step: Step) -> Json:
        return self._chunk(
            s, {"text": step.text, "index": step.choice, "logprobs": None, "finish_reason": None}
        )

    def finish(self, s: Stream, choice: int) -> Json | None:
        body = {"text": "", "index": choice, "logprobs": None, "finish_reason": s.finish_reason}
        return self._chunk(s, body)


def llamacpp_error(message: str, status: int) -> Json:
    """llama.cpp `format_error_response` (code, message, type)."""
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"code": status, "message": message, "type": kind}}


def tgi_error(message: str, status: int) -> Json:
    """TGI `ErrorResponse` for HTTP errors, typed as `InferError::error_type` spells it."""
    kind = {422: "validation", 424: "generation", 429: "overloaded"}.get(status, "generation")
    return {"error": message, "error_type": kind}


# -- llama-cpp-python's server ------------------------------------------------------------
#
# `python -m llama_cpp.server` (llama-cpp-python 0.3.36: FastAPI, uvicorn, sse-starlette,
# starlette-context), a different program from llama.cpp's C++ `llama-server` above. Checked
# against the real server: tests/conformance/README.md, "Where llama-cpp-python's server
# differs", and the bytes in `llamacpp_python_samples.py`.

LLAMACPP_PYTHON_SSE_HEADERS = {  # EventSourceResponse's, in uvicorn's order
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
    "Content-Type": "text/event-stream; charset=utf-8",
}
LLAMACPP_PYTHON_HEADERS = {"Server": "uvicorn", "Vary": "Origin"}  # on every response
# The server's app.py as the conformance venv installed it: FastAPI's validation errors name it.
LLAMACPP_PYTHON_APP_PY = (
    "/root/.cache/railproxy-conformance/llamacpp-venv/lib/python3.11/site-packages/"
    "llama_cpp/server/app.py"
)


def python_json(obj: Any) -> bytes:
    """`json.dumps(chunk)` as llama-cpp-python streams it: `, ` and `: `, non-ASCII escaped."""
    return json.dumps(obj).encode()


def llamacpp_python_ping() -> bytes:
    """sse-starlette's keep-alive comment: `: ping - <datetime.now(timezone.utc)>`."""
    return f": ping - {datetime.datetime.now(datetime.UTC)}\n\n".encode()


class LlamaCppPythonChat:
    """llama-cpp-python's `/v1/chat/completions` stream (`_convert_text_completion_chunks_to_chat`).

    Envelope `id, model, created, object, choices`; every choice `index, delta, logprobs,
    finish_reason`; a role-only first chunk, one chunk per token, a finish chunk with
    `"delta": {}`; no usage, no `system_fingerprint`; `json.dumps` spacing. Tool calls and
    reasoning are rendered as OpenAI deltas (not checked against the real server).
    """

    prefix = b"data: "
    done: bytes | None = b"data: [DONE]\n\n"
    headers = LLAMACPP_PYTHON_SSE_HEADERS
    object = "chat.completion.chunk"
    encode = staticmethod(python_json)

    def __init__(self, has_tools: bool = False) -> None:
        self.has_tools = has_tools

    @property
    def keepalive(self) -> bytes:
        return llamacpp_python_ping()

    def _chunk(self, s: Stream, choice: Json) -> Json:
        obj: Json = {"id": s.id, "model": s.model, "created": s.created, "object": self.object}
        return obj | {"choices": [choice]}

    def head(self, s: Stream, choice: int) -> Json | None:
        delta = {"role": "assistant"}
        return self._chunk(
            s, {"index": choice, "delta": delta, "logprobs": None, "finish_reason": None}
        )

    def step(self, s: Stream, step: Step) -> Json:
        delta = _openai_delta(s, step, f"call_{uuid.uuid4().hex}")
        lp = None
        if s.logprobs and step.kind == "content":
            lp = llamacpp_python_chat_logprobs([step.text], s.top_logprobs, streamed=True)
        body = {"index": step.choice, "delta": delta, "logprobs": lp, "finish_reason": None}
        return self._chunk(s, body)

    def finish(self, s: Stream, choice: int) -> Json | None:
        reason = chat_finish_reason(s, self.has_tools)
        return self._chunk(
            s, {"index": choice, "delta": {}, "logprobs": None, "finish_reason": reason}
        )

    def usage(self, s: Stream) -> Json | None:
        return None  # `stream_options` is not a field of the request model

    def error(self, message: str) -> bytes:
        """Never sent by the real server (a failing stream just ends, see `upstream.py`);
        for the IN_BAND_ERROR fault, the shape of its JSON errors, as `json.dumps` writes."""
        return b"data: " + python_json(llamacpp_python_error(message, 500)) + b"\n\n"

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """The non-streaming body as FastAPI serializes `CreateChatCompletionResponse`."""
        out = outputs[0]
        message: Json = {"content": out["message"].get("content")}
        if out["message"].get("tool_calls"):
            message["tool_calls"] = out["message"]["tool_calls"]
        message["role"] = "assistant"
        lp = None
        if s.logprobs and s.texts[0]:
            lp = llamacpp_python_chat_logprobs(s.pieces, s.top_logprobs, streamed=False)
        reason = chat_finish_reason(s, self.has_tools)
        choice = {"index": 0, "message": message, "logprobs": lp, "finish_reason": reason}
        return self._body(s, "chat.completion", choice)

    @staticmethod
    def _body(s: Stream, obj: str, choice: Json) -> Json:
        done = s.completion_tokens()
        usage = {"prompt_tokens": s.prompt_tokens, "completion_tokens": done}
        usage["total_tokens"] = done + s.prompt_tokens
        head: Json = {"id": s.id, "object": obj, "created": s.created, "model": s.model}
        return head | {"choices": [choice], "usage": usage}


class LlamaCppPythonCompletions(LlamaCppPythonChat):
    """llama-cpp-python's `/v1/completions` stream: envelope `id, object, created, model,
    choices`; choices `text, index, logprobs, finish_reason`; a finishing chunk with
    `"text": ""`."""

    object = "text_completion"

    def _chunk(self, s: Stream, choice: Json) -> Json:
        obj: Json = {"id": s.id, "object": self.object, "created": s.created, "model": s.model}
        return obj | {"choices": [choice]}

    def head(self, s: Stream, choice: int) -> Json | None:
        return None

    def step(self, s: Stream, step: Step) -> Json:
        lp = None
        if s.logprobs:
            offset = s.prompt_chars + len(s.texts[step.choice]) - len(step.text)
            lp = {"tokens": [step.text], "text_offset": [offset], "token_logprobs": [LOGPROB]}
            lp["top_logprobs"] = [_top_alternatives(step.text, s.top_logprobs)]
        body = {"text": step.text, "index": step.choice, "logprobs": lp, "finish_reason": None}
        return self._chunk(s, body)

    def finish(self, s: Stream, choice: int) -> Json | None:
        body = {"text": "", "index": choice, "logprobs": None, "finish_reason": s.finish_reason}
        return self._chunk(s, body)

    def complete(self, s: Stream, outputs: list[Json]) -> Json:
        """`CreateCompletionResponse` via FastAPI: `CompletionLogprobs` fields reordered."""
        lp = None
        if s.logprobs and s.texts[0]:
            offsets, at = [], s.prompt_chars
            for piece in s.pieces:
                offsets.append(at)
                at += len(piece)
            lp = {"text_offset": offsets, "token_logprobs": [LOGPROB] * len(s.pieces)}
            lp["tokens"] = list(s.pieces)
            lp["top_logprobs"] = [_top_alternatives(p, s.top_logprobs) for p in s.pieces]
        choice = {"text": outputs[0]["text"], "index": 0, "logprobs": lp}
        return self._body(s, "text_completion", choice | {"finish_reason": s.finish_reason})


def _top_alternatives(text: str, top: int) -> dict[str, float]:
    """The sampled token (always present, first at temperature 0) and `top - 1` others."""
    alternatives = {text: LOGPROB}
    alternatives |= {f" alt{k}": LOGPROB - 4 * k for k in range(1, top)}
    return alternatives


def llamacpp_python_chat_logprobs(pieces: list[str], top: int, streamed: bool) -> Json:
    """`_convert_text_completion_logprobs_to_chat`: `bytes` always null, a `refusal` key.
    Streamed entries are `token, bytes, logprob, top_logprobs` (the dict as built);
    non-streaming ones `token, logprob, bytes, top_logprobs` (FastAPI's TypedDict order)."""
    content = []
    for piece in pieces:
        tops = [
            {"token": t, "logprob": lp, "bytes": None}
            for t, lp in _top_alternatives(piece, top).items()
        ]
        entry: Json = (
            {"token": piece, "bytes": None, "logprob": LOGPROB}
            if streamed
            else {"token": piece, "logprob": LOGPROB, "bytes": None}
        )
        content.append(entry | {"top_logprobs": tops})
    return {"content": content, "refusal": None}


def llamacpp_python_error(message: str, status: int, code: str | None = None) -> Json:
    """`RouteErrorHandler`'s `ErrorResponse` (message, type, param, code)."""
    kind = "invalid_request_error" if 400 <= status < 500 else "internal_server_error"
    param = "messages" if code == "context_length_exceeded" else None
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
