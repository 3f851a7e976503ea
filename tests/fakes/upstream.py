"""A scripted fake of vLLM, TGI and llama.cpp's server, on a real loopback socket.

    async with FakeUpstream(Script(text=["Hi", "!"], dialect="tgi")) as fake:
        ...  # point the proxy at fake.base_url (no /v1)
        assert fake.sent[0] == bytes_the_client_got

Routes: `POST /v1/chat/completions`, `POST /v1/completions` (stream or not, in the script's
dialect), TGI native `POST /generate_stream` and `POST /generate` (whatever the dialect),
`GET /v1/models`, `POST /v1/embeddings`, `POST /tokenize` and `/v1/tokenize`, `GET /health`,
`GET /info`. Faults (see `faults.py`) apply to the four generation routes only.

Every request is recorded in `requests` (in arrival order) and every response body in `sent`
(same index), exactly as written. A generation handler that sees its client go away
(`ConnectionResetError` on write, or cancellation: the runner uses `handler_cancellation`)
appends `time.monotonic()` to `disconnects`. `last_stream_done` is cleared when a generation
handler starts and set when it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import string
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from . import vllm_rules
from .dialects import (
    VLLM_FINGERPRINT,
    VLLM_HEADERS,
    Frame,
    Json,
    LlamaCppChat,
    LlamaCppCompletions,
    Renderer,
    Step,
    Stream,
    TgiChat,
    TgiCompletions,
    TgiGenerateStream,
    VllmChat,
    VllmCompletions,
    compact,
    llamacpp_error,
    render,
    tgi_error,
    vllm_error,
)
from .faults import MALFORMED_DEFAULT, PRE_RESPONSE, Fault, FaultKind, drop, hang

Dialect = Literal["vllm", "tgi", "llamacpp"]
Endpoint = Literal["chat", "completions", "generate"]


@dataclass
class Script:
    """What the fake answers. Tests may replace `FakeUpstream.script` between requests.

    Each of the `n` choices streams the same deltas (`choice_text` overrides one choice's
    content), interleaved step by step as vLLM does: reasoning, then content, then tool calls
    (a name delta, then argument fragments). Completions and `/generate*` stream content only.
    `finish_reason` is spelled as the chat API spells it; TGI's native routes and completions
    report `stop` as `eos_token`; vLLM and llama.cpp report `tool_calls` when tools streamed.
    `include_usage=None` follows the request's `stream_options.include_usage`; llama.cpp never
    sends usage in a stream, TGI completions always do. `keepalive_comments` writes the
    dialect's keep-alive comment (vLLM's `: keep-alive\\n\\n`, TGI's `:\\n\\n`) before every
    other delta. Pacing: `first_token_delay_s` before the first delta (after the headers and
    role chunks), then `1 / tokens_per_s` before each later delta. `prompt_tokens` overrides
    the count of the prompt's words.

    The vllm dialect speaks as vLLM 0.32.0 does by default (tests/conformance/README.md,
    "Where real vLLM 0.32.0 differs"; `vllm_samples.py` holds real bytes):

    - the finish rides on each choice's last delta, unless a stop *token* ended it
      (`finish_reason="stop"` with `stop_reason` None, i.e. EOS, or an int token id): that
      token comes as its own `"delta":{"content":""}` chunk and counts in usage. A stop string
      (`stop_reason="..."`) rides on the last delta. Script a stop string's holdback as the
      pieces vLLM sends (`text=[" r", "uru d", "ovi "]`).
    - `system_fingerprint` on finishing chunks, on the usage chunk when usage is on, and in
      non-streaming bodies (None: as `--fingerprint-mode none`).
    - ids `chatcmpl-`/`cmpl-` + 16 hex digits, or + the request's `X-Request-Id`.
    - refused before any byte, with vLLM's bodies: request validation errors (`"type":"Bad
      Request"`), `max_tokens` over `max_model_len`, `n > 1` at temperature 0; with
      `reject_unknown_models` (off by default: tests name models freely), any model but
      `model` (404, `param: "model"`).
    - `choice_order`: the choice index of each delta in turn, the rest interleaved after it
      (`[0, 0, 1, 0, 1, 1]`): vLLM interleaves `n > 1` choices strictly only while its API
      server keeps up with the engine, so this stays an option.
    """

    text: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    dialect: Dialect = "vllm"
    n: int = 1
    tokens_per_s: float | None = None
    first_token_delay_s: float = 0.0
    include_usage: bool | None = None
    finish_reason: str = "stop"
    tool_calls: list[tuple[str, list[str]]] | None = None
    reasoning: list[str] | None = None
    reasoning_field: str = "reasoning"
    logprobs: bool = False
    keepalive_comments: bool = False
    fault: Fault | None = None
    model: str = "fake-model"
    choice_text: dict[int, list[str]] = field(default_factory=dict)
    stop_reason: str | int | None = None
    prompt_tokens: int | None = None
    system_fingerprint: str | None = VLLM_FINGERPRINT
    max_model_len: int = 4096
    choice_order: list[int] | None = None
    reject_unknown_models: bool = False

    def steps(self, content_only: bool) -> list[Step]:
        """The deltas of all choices in `choice_order`, then interleaved; each choice's last
        one is marked."""
        queues = [deque(self._choice_steps(c, content_only)) for c in range(self.n)]
        out = [queues[c].popleft() for c in self.choice_order or [] if c < self.n and queues[c]]
        longest = max((len(q) for q in queues), default=0)
        return out + [q[k] for k in range(longest) for q in queues if k < len(q)]

    def _choice_steps(self, c: int, content_only: bool) -> list[Step]:
        steps = [] if content_only else [Step(c, "reasoning", r) for r in self.reasoning or []]
        steps += [Step(c, "content", t) for t in self.choice_text.get(c, self.text)]
        for t, (name, args) in enumerate([] if content_only else self.tool_calls or []):
            steps.append(Step(c, "tool_name", name, tool=t))
            steps += [Step(c, "tool_args", a, tool=t) for a in args]
        if steps:
            last = steps[-1]
            steps[-1] = Step(last.choice, last.kind, last.text, last.tool, last=True)
        return steps


@dataclass
class RecordedRequest:
    """One request as the fake saw it, and what happened to its response."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = None  # the parsed body, or None when it is not JSON
    sent: bytearray = field(default_factory=bytearray)
    deltas_sent: int = 0
    disconnected_at: float | None = None


CHAT: dict[str, Callable[[bool], Renderer]] = {
    "vllm": VllmChat,
    "tgi": lambda _tools: TgiChat(),
    "llamacpp": LlamaCppChat,
}
COMPLETIONS: dict[str, Callable[[bool], Renderer]] = {
    "vllm": VllmCompletions,
    "tgi": lambda _tools: TgiCompletions(),
    "llamacpp": LlamaCppCompletions,
}


class FakeUpstream:
    """The fake server. `start()` binds 127.0.0.1 on a free port; `close()` stops it."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[float] = []
        self.deltas_sent = 0
        self.last_stream_done = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def active_handlers(self) -> int:
        """Generation handlers still running (a request the proxy has not let go of)."""
        return sum(1 for t in self._handlers if not t.done())

    @property
    def sent(self) -> list[bytes]:
        """The exact response body bytes written for each request, in `requests` order."""
        return [bytes(r.sent) for r in self.requests]

    async def start(self) -> None:
        """Serve on a free loopback port; `base_url` is set once this returns."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.add_routes(self._routes())
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving; handlers still running are cancelled (not counted as disconnects).

        They are cancelled here rather than by the runner, whose graceful shutdown would wait
        `shutdown_timeout` for each one, twice.
        """
        self._closing = True
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_disconnect(self) -> float:
        """Wait for the first recorded client disconnect and return its monotonic time.

        Wrap it in `asyncio.timeout(...)`: it waits forever if the client never goes away.
        """
        await self.disconnected.wait()
        return self.disconnects[0]

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/v1/completions", self._completions),
            web.post("/generate_stream", self._generate_stream),
            web.post("/generate", self._generate),
            web.get("/v1/models", self._models),
            web.post("/v1/embeddings", self._embeddings),
            web.post("/tokenize", self._tokenize),
            web.post("/v1/tokenize", self._tokenize),
            web.get("/health", self._health),
            web.get("/info", self._info),
        ]

    # -- generation ---------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "completions")

    async def _generate_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "generate", stream=True)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "generate", stream=False)

    async def _generation(
        self, request: web.Request, endpoint: Endpoint, stream: bool | None = None
    ) -> web.StreamResponse:
        rec = await self._record(request)
        script = self.script
        if script.fault is not None and script.fault.kind in PRE_RESPONSE:
            return await self._refuse(request, rec, script, script.fault)
        body = rec.json
        refused = _refusal(script, endpoint, body)
        if refused is not None:  # a real server validates its request model first
            return self._reply(rec, refused[1], refused[0])
        renderer = self._renderer(script, endpoint)
        ctx = self._stream_ctx(script, endpoint, body, rec.headers.get("x-request-id"))
        steps = script.steps(content_only=endpoint != "chat")
        frames = render(renderer, ctx, steps, script.keepalive_comments)
        streaming = bool(body.get("stream")) if stream is None else stream
        if streaming:
            return await self._stream(request, rec, script, renderer, frames)
        outputs = self._outputs(script, ctx, endpoint)
        return await self._complete(rec, script, renderer.complete(ctx, outputs), len(steps))

    @staticmethod
    def _renderer(script: Script, endpoint: Endpoint) -> Renderer:
        if endpoint == "generate":
            return TgiGenerateStream()
        table = CHAT if endpoint == "chat" else COMPLETIONS
        return table[script.dialect](bool(script.tool_calls))

    @staticmethod
    def _stream_ctx(
        script: Script, endpoint: Endpoint, body: Json, request_id: str | None
    ) -> Stream:
        opts = body.get("stream_options") or {}
        usage = script.include_usage
        usage = bool(opts.get("include_usage")) if usage is None else usage
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if script.dialect == "tgi" and model in (None, "tgi"):
            model = script.model
        params = body.get("parameters") or {}
        return Stream(
            model=model or script.model,
            id=_response_id(script.dialect, endpoint, request_id),
            n=1 if endpoint == "generate" else script.n,
            created=int(time.time()),
            prompt_tokens=script.prompt_tokens or _prompt_tokens(body),
            finish_reason=script.finish_reason,
            include_usage=usage,
            continuous_usage=usage and bool(opts.get("continuous_usage_stats")),
            logprobs=script.logprobs,
            details=bool(params.get("details")),
            reasoning_field=script.reasoning_field,
            fingerprint=script.system_fingerprint if script.dialect == "vllm" else None,
            stop_reason=script.stop_reason,
            top_logprobs=_count(body.get("top_logprobs")),
        )

    @staticmethod
    def _outputs(script: Script, ctx: Stream, endpoint: Endpoint) -> list[Json]:
        if endpoint != "chat":
            return [{"text": text} for text in ctx.texts]
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": n, "arguments": "".join(a)},
            }
            for i, (n, a) in enumerate(script.tool_calls or [])
        ]
        outputs = []
        for text in ctx.texts:
            message: Json = {"role": "assistant", "content": text or (None if calls else "")}
            if script.reasoning:
                message[script.reasoning_field] = "".join(script.reasoning)
            outputs.append({"message": message | ({"tool_calls": calls} if calls else {})})
        return outputs

    async def _complete(
        self, rec: RecordedRequest, script: Script, body: Json, deltas: int
    ) -> web.StreamResponse:
        """A non-streaming answer, after the time the stream would have taken."""
        delay = script.first_token_delay_s
        if script.tokens_per_s and deltas > 1:
            delay += (deltas - 1) / script.tokens_per_s
        async with self._serving(rec):
            await asyncio.sleep(delay)
            if script.fault is not None and script.fault.kind is FaultKind.HANG_AFTER:
                await hang()
        return self._reply(rec, body)

    async def _refuse(
        self, request: web.Request, rec: RecordedRequest, script: Script, fault: Fault
    ) -> web.StreamResponse:
        """The faults that strike before any response byte."""
        if fault.kind is FaultKind.HTTP_STATUS:
            body = fault.body
            if body is None:
                body = compact(self._error_body(script, fault.status, fault.message))
            return self._reply(rec, body, fault.status)
        if fault.kind is FaultKind.DROP_BEFORE_HEADERS:
            drop(request)
            return web.Response()
        async with self._serving(rec):
            await hang()
        return web.Response()

    # -- streaming ------------------------------------------------------------------------

    async def _stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        script: Script,
        renderer: Renderer,
        frames: list[Frame],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers=renderer.headers)
        async with self._serving(rec):
            await resp.prepare(request)
            await self._play(request, resp, rec, script, renderer, frames)
        return resp

    @contextlib.asynccontextmanager
    async def _serving(self, rec: RecordedRequest) -> AsyncIterator[None]:
        """Track the handler's life; a vanished client is recorded, not raised (except cancel)."""
        self.last_stream_done.clear()
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            yield
        except ConnectionResetError:
            self._disconnected(rec)
        except asyncio.CancelledError:
            self._disconnected(rec)
            raise
        finally:
            if task is not None:
                self._handlers.discard(task)
            self.last_stream_done.set()

    def _disconnected(self, rec: RecordedRequest) -> None:
        if self._closing:
            return
        rec.disconnected_at = time.monotonic()
        self.disconnects.append(rec.disconnected_at)
        self.disconnected.set()

    async def _play(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        rec: RecordedRequest,
        script: Script,
        renderer: Renderer,
        frames: list[Frame],
    ) -> None:
        """Write the frames one event per write, pacing deltas and firing the fault once."""
        fault = script.fault
        if fault is not None and fault.kind is FaultKind.EOF_NO_DONE and fault.after is None:
            frames, fault = [f for f in frames if f.kind != "done"], None
        at = fault.position(sum(f.kind == "delta" for f in frames)) if fault else -1
        for frame in frames:
            if frame.kind == "delta":
                await self._pace(script, rec.deltas_sent)
            if fault and frame.kind in ("delta", "tail", "done") and rec.deltas_sent == at:
                if await self._inject(request, resp, rec, renderer, fault, frame):
                    return
                fault = None
            await self._write(resp, rec, frame.data)
            if frame.kind == "delta":
                rec.deltas_sent += 1
                self.deltas_sent += 1
        if fault is not None:
            await self._inject(request, resp, rec, renderer, fault, None)

    @staticmethod
    async def _pace(script: Script, written: int) -> None:
        delay = script.first_token_delay_s if written == 0 else 0.0
        if written and script.tokens_per_s:
            delay = 1.0 / script.tokens_per_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def _inject(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        rec: RecordedRequest,
        renderer: Renderer,
        fault: Fault,
        upcoming: Frame | None,
    ) -> bool:
        """Fire a mid-stream fault; True when the stream ends here."""
        if fault.kind is FaultKind.MALFORMED:
            await self._write(resp, rec, MALFORMED_DEFAULT if fault.body is None else fault.body)
            return False
        if fault.kind is FaultKind.IN_BAND_ERROR:
            await self._write(resp, rec, renderer.error(fault.message))
            if renderer.done is not None:
                await self._write(resp, rec, renderer.done)
        elif fault.kind is FaultKind.DROP_MID_EVENT:
            if upcoming is not None:
                await self._write(resp, rec, upcoming.data[: len(upcoming.data) // 2])
            drop(request)
        elif fault.kind is FaultKind.HANG_AFTER:
            await hang()
        return True

    @staticmethod
    async def _write(resp: web.StreamResponse, rec: RecordedRequest, data: bytes) -> None:
        await resp.write(data)
        rec.sent.extend(data)

    # -- the other routes -----------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        rec = RecordedRequest(
            request.method, request.path, request.query_string, headers, raw, parsed
        )
        self.requests.append(rec)
        return rec

    def _reply(
        self, rec: RecordedRequest, body: Json | list[Json] | bytes, status: int = 200
    ) -> web.Response:
        data = body if isinstance(body, bytes) else compact(body)
        rec.sent.extend(data)
        headers = VLLM_HEADERS if self.script.dialect == "vllm" else None
        return web.Response(
            body=data, status=status, content_type="application/json", headers=headers
        )

    @staticmethod
    def _error_body(script: Script, status: int, message: str) -> Json:
        return _error_body(script, status, message)

    async def _models(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        model, dialect = self.script.model, self.script.dialect
        entry: Json = {"id": model, "object": "model", "created": int(time.time())}
        if dialect == "vllm":
            entry |= {"owned_by": "vllm", "root": model, "parent": None}
            entry["max_model_len"] = self.script.max_model_len
        elif dialect == "tgi":
            entry |= {"created": 0, "owned_by": model}
        else:
            entry |= {"owned_by": "llamacpp", "meta": None}
        return self._reply(rec, {"object": "list", "data": [entry]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        body = rec.json if isinstance(rec.json, dict) else {}
        inputs = body.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": embed(text)}
            for i, text in enumerate(inputs)
        ]
        used = sum(len(t.split()) for t in inputs)
        usage = {"prompt_tokens": used, "total_tokens": used}
        model = body.get("model", self.script.model)
        return self._reply(rec, {"object": "list", "data": data, "model": model, "usage": usage})

    async def _tokenize(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        body = rec.json if isinstance(rec.json, dict) else {}
        text = str(body.get("prompt", body.get("inputs", body.get("content", ""))))
        words = text.split()
        if self.script.dialect == "tgi":
            spans: list[Json] = []
            start = 0
            for i, word in enumerate(words):
                start = text.index(word, start)
                spans.append(
                    {"id": 100 + i, "text": word, "start": start, "stop": start + len(word)}
                )
                start += len(word)
            return self._reply(rec, spans)
        ids = [100 + i for i in range(len(words))]
        if self.script.dialect == "llamacpp":
            return self._reply(rec, {"tokens": ids})
        limit = self.script.max_model_len
        return self._reply(rec, {"count": len(ids), "max_model_len": limit, "tokens": ids})

    async def _health(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if self.script.dialect == "llamacpp":
            return self._reply(rec, {"status": "ok"})
        return web.Response(status=200)

    async def _info(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        info: Json = {
            "model_id": self.script.model,
            "model_sha": None,
            "model_dtype": "torch.float16",
        }
        info |= {"model_device_type": "cuda", "max_concurrent_requests": 128}
        info |= {"max_input_tokens": 4095, "max_total_tokens": 4096, "version": "3.3.6"}
        return self._reply(rec, info | {"sha": None, "docker_label": None})


def _error_body(script: Script, status: int, message: str) -> Json:
    if script.dialect == "tgi":
        return tgi_error(message, status)
    if script.dialect == "llamacpp":
        return llamacpp_error(message, status)
    body: Json = json.loads(vllm_error(message, status))
    return body


def _refusal(script: Script, endpoint: Endpoint, body: Any) -> tuple[int, Json] | None:
    """What the server refuses before answering: vLLM's own checks on its OpenAI routes;
    elsewhere a 400 (TGI: 422 in reality) in the dialect's shape for a malformed body."""
    if script.dialect == "vllm" and endpoint != "generate":
        return vllm_rules.refusal(
            body,
            endpoint == "chat",
            script.model,
            script.max_model_len,
            script.reject_unknown_models,
        )
    problem = _invalid(body)
    return (400, _error_body(script, 400, problem)) if problem else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _invalid(body: Any) -> str:
    """What a real server's request validation would reject in the fields the fake reads."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for name in ("stream_options", "parameters"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"{name} must be an object"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream must be a boolean"
    return ""


def embed(text: str, dims: int = 8) -> list[float]:
    """A deterministic small vector in [0, 1] derived from the text's SHA-256."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:dims]]


def _response_id(dialect: Dialect, endpoint: Endpoint, request_id: str | None) -> str:
    if dialect == "tgi":
        return ""
    if dialect == "llamacpp":
        alphabet = string.ascii_letters + string.digits
        return "chatcmpl-" + "".join(secrets.choice(alphabet) for _ in range(32))
    # vLLM's _base_request_id: the X-Request-Id header, else random_uuid() (64 bits in hex)
    base = request_id if request_id is not None else f"{uuid.uuid4().int & (2**64 - 1):016x}"
    return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + base


def _prompt_tokens(body: Json) -> int:
    """Whitespace-separated words of the prompt, messages or inputs (at least 1)."""
    parts = [m.get("content") for m in body.get("messages", []) if isinstance(m, dict)]
    parts += [body.get("prompt"), body.get("inputs")]
    return max(1, sum(len(p.split()) for p in parts if isinstance(p, str)))


@contextlib.asynccontextmanager
async def running(script: Script | None = None) -> AsyncIterator[FakeUpstream]:
    """`async with running(Script(...)) as fake:` starts a fake and always closes it."""
    fake = FakeUpstream(script)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
