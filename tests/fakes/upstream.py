"""A scripted fake of vLLM, TGI, llama.cpp's server and llama-cpp-python's, on a real
loopback socket.

    async with FakeUpstream(Script(text=["Hi", "!"], dialect="tgi")) as fake:
        ...  # point the proxy at fake.base_url (no /v1)
        assert fake.sent[0] == bytes_the_client_got

Routes: `POST /v1/chat/completions`, `POST /v1/completions` (stream or not, in the script's
dialect), TGI native `POST /generate_stream` and `POST /generate` (whatever the dialect),
`GET /v1/models`, `POST /v1/embeddings`, `POST /tokenize` and `/v1/tokenize`, `GET /health`,
`GET /info`, and llama-cpp-python's `POST /extras/tokenize` and `/extras/tokenize/count`.
With the `llama-cpp-python` dialect only the routes that server has answer (others are its
`404 {"detail":"Not Found"}`). Faults (see `faults.py`) apply to the four generation routes
only.

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

from . import llamacpp_python_rules, responses_api, vllm_rules
from . import messages as anthropic
from .dialects import (
    LLAMACPP_PYTHON_HEADERS,
    VLLM_FINGERPRINT,
    VLLM_HEADERS,
    Frame,
    Json,
    LlamaCppChat,
    LlamaCppCompletions,
    LlamaCppPythonChat,
    LlamaCppPythonCompletions,
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
    llamacpp_python_error,
    render,
    tgi_error,
    vllm_error,
)
from .faults import MALFORMED_DEFAULT, PRE_RESPONSE, Fault, FaultKind, drop, hang

Dialect = Literal["vllm", "tgi", "llamacpp", "llama-cpp-python"]
LLAMACPP_PYTHON = "llama-cpp-python"
# The routes llama-cpp-python's server has (of the fake's); any other path is its 404.
LLAMACPP_PYTHON_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/embeddings",
        "/extras/tokenize",
        "/extras/tokenize/count",
    }
)
_RID = web.RequestKey("llamacpp_python_request_id", str)
_STARTED = web.RequestKey("llamacpp_python_started", float)
_CRASHED = web.RequestKey("llamacpp_python_crashed", bool)
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

    The `llama-cpp-python` dialect is llama-cpp-python 0.3.36's `llama_cpp.server` (the
    `llamacpp` dialect is llama.cpp's C++ `llama-server`, unchanged): see
    tests/conformance/README.md, "Where llama-cpp-python's server differs";
    `llamacpp_python_samples.py` holds real bytes. Always, as that server does:

    - streams in `json.dumps` spacing (non-ASCII escaped), chat envelope `id, model, created,
      object, choices`, completions `id, object, created, model, choices`; every chat choice
      with `"logprobs": null`; a separate finish chunk (`"delta": {}` / `"text": ""`); no
      usage chunk and no `system_fingerprint`; ids `chatcmpl-`/`cmpl-` + a dashed uuid4.
    - compact non-streaming bodies (`content` before `role`; usage prompt, completion, total).
    - `stream_options` and `n` ignored (the Script's `include_usage` and `n` too); any model
      name served and echoed (`reject_unknown_models` is not used).
    - logprobs as the request asks (chat: `logprobs: true` and `top_logprobs`; completions:
      `logprobs: <int>`), with `bytes: null` and `refusal: null` in chat; the Script's
      `logprobs` is not used.
    - `X-Request-Id` checked as a UUID before routing (400, empty body), echoed, or made up;
      `server: uvicorn`, `vary: Origin`, `openai-processing-ms`, the SSE headers.
    - schema errors for `messages`, `max_tokens`, `stream` as its `500`; a body that is not
      JSON as uvicorn's plain `500`.

    Scriptable: a prompt of `max_model_len` (the server's `n_ctx`, default 4096) tokens or
    more (`prompt_tokens`) is the `400 context_length_exceeded`, or, streaming, a `200` whose
    body ends with no event (the model's failure, visible only in the server's log);
    `keepalive_comments` writes sse-starlette's `: ping - <UTC now>` (the real server sends
    one every 15 s); a `stop` string is scripted as its pieces with `finish_reason="stop"`.
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
    LLAMACPP_PYTHON: LlamaCppPythonChat,
}
COMPLETIONS: dict[str, Callable[[bool], Renderer]] = {
    "vllm": VllmCompletions,
    "tgi": lambda _tools: TgiCompletions(),
    "llamacpp": LlamaCppCompletions,
    LLAMACPP_PYTHON: LlamaCppPythonCompletions,
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
        # POST /v1/responses writes these events instead, when set (responses_api.py)
        self.responses_events: list[bytes] | None = None

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
        app = web.Application(
            client_max_size=16 * 1024 * 1024, middlewares=[self._llamacpp_python_gate]
        )
        app.add_routes(self._routes())
        app.on_response_prepare.append(self._llamacpp_python_headers)
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
            web.post("/v1/messages", self._messages),
            web.post("/v1/responses", self._responses),
            web.post("/generate_stream", self._generate_stream),
            web.post("/generate", self._generate),
            web.get("/v1/models", self._models),
            web.post("/v1/embeddings", self._embeddings),
            web.post("/tokenize", self._tokenize),
            web.post("/v1/tokenize", self._tokenize),
            web.get("/health", self._health),
            web.get("/info", self._info),
            web.post("/extras/tokenize", self._extras_tokenize),
            web.post("/extras/tokenize/count", self._extras_tokenize),
        ]

    # -- llama-cpp-python's middleware ----------------------------------------------------

    @web.middleware
    async def _llamacpp_python_gate(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """llama-cpp-python only: starlette-context's X-Request-Id check before routing
        (400, empty body), and FastAPI's JSON 404/405 for paths it does not serve."""
        if self.script.dialect != LLAMACPP_PYTHON:
            response: web.StreamResponse = await handler(request)
            return response
        request[_STARTED] = time.perf_counter()
        rid = llamacpp_python_rules.request_id(request.headers.get("X-Request-Id"))
        if rid is None:
            await self._record(request)
            return web.Response(status=400)
        request[_RID] = rid
        if request.path not in LLAMACPP_PYTHON_ROUTES:
            rec = await self._record(request)
            return self._reply(rec, {"detail": "Not Found"}, 404)
        try:
            response = await handler(request)
        except web.HTTPMethodNotAllowed as e:
            rec = await self._record(request)
            reply = self._reply(rec, {"detail": "Method Not Allowed"}, 405)
            reply.headers["Allow"] = ", ".join(sorted(e.allowed_methods - {"HEAD"}))
            return reply
        return response

    async def _llamacpp_python_headers(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        """uvicorn's `server`, CORSMiddleware's `vary`, the echoed `x-request-id`, and
        `openai-processing-ms` on the routes' own answers (not on errors)."""
        if self.script.dialect != LLAMACPP_PYTHON:
            return
        response.headers["Server"] = "uvicorn"
        if request.get(_CRASHED):  # uvicorn's own 500: nothing of the app's headers
            return
        response.headers.update(LLAMACPP_PYTHON_HEADERS)
        rid = request.get(_RID)
        if rid is None:
            return
        if response.status < 400:
            elapsed = time.perf_counter() - request[_STARTED]
            response.headers["openai-processing-ms"] = str(int(elapsed * 1000))
        response.headers["x-request-id"] = rid

    # -- generation ---------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, "completions")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """vLLM's Anthropic Messages API (`messages.py`), streamed or whole."""
        rec = await self._record(request)
        script = self.script
        if script.fault is not None and script.fault.kind in PRE_RESPONSE:
            return await self._refuse(request, rec, script, script.fault)
        body = rec.json if isinstance(rec.json, dict) else {}
        rid = rec.headers.get("x-request-id")
        s = anthropic.MessagesStream(
            id=_response_id("vllm", "chat", rid),
            model=body.get("model") if isinstance(body.get("model"), str) else script.model,
            prompt_tokens=script.prompt_tokens or anthropic.prompt_tokens(body),
            finish_reason=script.finish_reason,
            stop_reason=script.stop_reason,
        )
        steps = [step for step in script.steps(content_only=False) if step.choice == 0]
        if body.get("stream") is True:
            frames = anthropic.frames(s, steps)
            renderer = anthropic.MessagesRenderer()
            return await self._stream(request, rec, script, renderer, frames)  # type: ignore[arg-type]
        return await self._complete(rec, script, anthropic.whole(s, steps), len(steps))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await responses_api.serve(self, request)

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
        python = script.dialect == LLAMACPP_PYTHON and endpoint != "generate"
        if python:
            early = await self._llamacpp_python_refusal(request, rec, script, endpoint)
            if early is not None:
                return early
        else:
            refused = _refusal(script, endpoint, body)
            if refused is not None:  # a real server validates its request model first
                return self._reply(rec, refused[1], refused[0])
        renderer = self._renderer(script, endpoint)
        ctx = self._stream_ctx(script, endpoint, body, rec.headers.get("x-request-id"))
        steps = script.steps(content_only=endpoint != "chat")
        if python:  # `n` is not passed to the model: one choice
            steps = [step for step in steps if step.choice == 0]
        frames = render(renderer, ctx, steps, script.keepalive_comments)
        streaming = bool(body.get("stream")) if stream is None else stream
        if python:
            streaming = bool(llamacpp_python_rules.lax_bool(body.get("stream", False)))
        if streaming:
            return await self._stream(request, rec, script, renderer, frames)
        outputs = self._outputs(script, ctx, endpoint)
        return await self._complete(rec, script, renderer.complete(ctx, outputs), len(steps))

    async def _llamacpp_python_refusal(
        self, request: web.Request, rec: RecordedRequest, script: Script, endpoint: Endpoint
    ) -> web.StreamResponse | None:
        """What llama-cpp-python answers before generating (`llamacpp_python_rules`): a
        body that is no JSON crashes the error handler itself (uvicorn's plain 500); schema
        errors are 500; a prompt of `max_model_len` (`n_ctx`) tokens or more is a 400, or,
        streaming, a 200 whose body ends with no event. None: generate."""
        chat = endpoint == "chat"
        body = rec.json
        if body is None:
            request[_CRASHED] = True
            rec.sent.extend(b"Internal Server Error")
            return web.Response(status=500, text="Internal Server Error")
        if not isinstance(body, dict):  # not captured from the real server: pydantic's wording
            msg = "Input should be a valid dictionary or object to extract fields from"
            error = {"type": "model_attributes_type", "loc": ("body",), "msg": msg, "input": body}
            return self._reply(rec, llamacpp_python_rules.schema_error([error], chat), 500)
        errors = llamacpp_python_rules.validation_errors(body, chat)
        if errors:
            return self._reply(rec, llamacpp_python_rules.schema_error(errors, chat), 500)
        prompt_tokens = script.prompt_tokens or _prompt_tokens(body)
        if prompt_tokens < script.max_model_len:
            return None
        if not llamacpp_python_rules.lax_bool(body.get("stream", False)):
            error = llamacpp_python_rules.context_error(
                body, chat, prompt_tokens, script.max_model_len
            )
            return self._reply(rec, error, 400)
        resp = web.StreamResponse(headers=self._renderer(script, endpoint).headers)
        async with self._serving(rec):  # the model raised before its first token
            await resp.prepare(request)
            await resp.write_eof()
        return resp

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
        ctx = Stream(
            model=model or script.model,
            id=_response_id(script.dialect, endpoint, request_id),
            n=1 if endpoint == "generate" or script.dialect == LLAMACPP_PYTHON else script.n,
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
        if script.dialect == LLAMACPP_PYTHON and endpoint != "generate":
            # stream_options is no field of its request model; the request decides logprobs
            ctx.include_usage = ctx.continuous_usage = False
            asked = llamacpp_python_rules.logprobs_asked(body, endpoint == "chat")
            ctx.logprobs, ctx.top_logprobs = asked is not None, asked or 0
            prompt = body.get("prompt")
            ctx.prompt_chars = len(prompt) if isinstance(prompt, str) else 0
        return ctx

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
        elif dialect == LLAMACPP_PYTHON:
            entry = {"id": model, "object": "model", "owned_by": "me", "permissions": []}
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

    async def _extras_tokenize(self, request: web.Request) -> web.Response:
        """llama-cpp-python's `POST /extras/tokenize` (`{"input"}`, BOS included) and
        `/extras/tokenize/count`; no such route elsewhere."""
        if self.script.dialect != LLAMACPP_PYTHON:
            raise web.HTTPNotFound()
        rec = await self._record(request)
        body = rec.json if isinstance(rec.json, dict) else {}
        ids = [1] + [100 + i for i in range(len(str(body.get("input", "")).split()))]
        if request.path.endswith("/count"):
            return self._reply(rec, {"count": len(ids)})
        return self._reply(rec, {"tokens": ids})

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
    if script.dialect == LLAMACPP_PYTHON:
        return llamacpp_python_error(message, status)
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
    if dialect == LLAMACPP_PYTHON:  # a uuid4, dashes and all; X-Request-Id is not used
        return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + str(uuid.uuid4())
    if dialect == "llamacpp":
        alphabet = string.ascii_letters + string.digits
        return "chatcmpl-" + "".join(secrets.choice(alphabet) for _ in range(32))
    # vLLM's _base_request_id: the X-Request-Id header, else random_uuid() (64 bits in hex)
    base = request_id if request_id is not None else f"{uuid.uuid4().int & (2**64 - 1):016x}"
    return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + base


def _prompt_tokens(body: Json) -> int:
    """Whitespace-separated words of the prompt, messages or inputs (at least 1)."""
    messages = body.get("messages")
    given = messages if isinstance(messages, list) else []  # (a completion may carry null)
    parts = [m.get("content") for m in given if isinstance(m, dict)]
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
