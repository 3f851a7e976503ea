"""Route handlers: thin. Parse and check the request, pick a config, run input rails,
open the upstream, hand the response to the relay (streams) or judge it whole.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy import requests as req
from proxy.configs import HEADER as CONFIG_HEADER
from proxy.errors import (
    BadRequest,
    TooManyRequests,
    UpstreamTimeout,
    UpstreamUnreachable,
    json_error,
)
from proxy.keys import CONFIGS, METRICS, SETTINGS, STATE, UPSTREAM
from proxy.protocol import CHAT, COMPLETIONS, TGI_NATIVE, Dialect, Envelope, abort_body
from proxy.record import RECORD, RequestRecord
from proxy.relay import Relay, RelayResult, RelaySpec
from proxy.sse import Event
from proxy.upstream import response_headers
from proxy.writer import SSEWriter
from rails.guard import Guard
from rails.stream import Blocked

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
NO_RETRY = {"x-should-retry": "false"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/generate_stream", generate_stream)
    app.router.add_post("/generate", generate)
    app.router.add_post("/", compat_generate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/rails/configs", list_configs)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)


@dataclass(slots=True)
class Call:
    """One guarded request, as the handlers pass it around."""

    request: web.Request
    dialect: Dialect
    path: str
    native: bool
    body: dict[str, Any]
    raw: bytes
    stream: bool
    request_id: str
    config_id: str
    guard: Guard
    record: RequestRecord
    strip_usage: bool = False


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, CHAT, "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, COMPLETIONS, "/completions")


async def generate_stream(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, TGI_NATIVE, "/generate_stream", native=True)


async def generate(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, TGI_NATIVE, "/generate", native=True)


async def compat_generate(request: web.Request) -> web.StreamResponse:
    """TGI's ``POST /``: ``/generate_stream`` when the body says ``"stream": true``, else
    ``/generate`` (huggingface_hub's ``text_generation`` posts here)."""
    return await _guarded(request, TGI_NATIVE, "/generate", native=True, compat=True)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    if not await request.app[UPSTREAM].ready():
        return web.json_response({"status": "upstream unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def list_configs(request: web.Request) -> web.Response:
    configs = request.app[CONFIGS]
    data = [{"id": i, "default": i == configs.default} for i in configs.ids]
    return web.json_response({"object": "list", "data": data})


# -- guarded routes -------------------------------------------------------------------


async def _guarded(
    request: web.Request, dialect: Dialect, path: str, native: bool = False, compat: bool = False
) -> web.StreamResponse:
    call = await _prepare(request, dialect, path, native)
    if compat and call.stream:
        call.path = "/generate_stream"
    if call.stream and call.guard.guards_output:
        _require_streaming_rails(call)
    blocked = await _input_rails(call)
    if blocked is not None:
        return await _respond_blocked(call, blocked)
    state = request.app[STATE]
    if call.stream:
        _admit(request)
        state.active_streams += 1
    try:
        return await _forward(call)
    finally:
        if call.stream:
            state.active_streams -= 1


async def _prepare(request: web.Request, dialect: Dialect, path: str, native: bool) -> Call:
    raw = await request.read()
    body = req.parse_body(raw)
    req.validate(dialect.name, body, path)
    stream = path == "/generate_stream" or body.get("stream") is True
    config_id, guard, changed = request.app[CONFIGS].pick(body, request.headers.get(CONFIG_HEADER))
    if changed:
        raw = orjson.dumps(body)
    rid = request_id(request)
    record = request[RECORD]
    record.request_id, record.config, record.stream = rid, config_id, stream
    call = Call(request, dialect, path, native, body, raw, stream, rid, config_id, guard, record)
    if stream and not native and request.app[SETTINGS].upstream.request_usage:
        _ask_for_usage(call)
    return call


def request_id(request: web.Request) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a new one."""
    rid = request.headers.get("X-Request-Id", "")
    return rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex


def _ask_for_usage(call: Call) -> None:
    """Ask the upstream for a usage chunk (token accounting) when the client did not;
    the relay then keeps that chunk from the client."""
    options = call.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return
    if options is not None and not isinstance(options, dict):
        return  # the upstream will reject it; do not hide that
    call.body["stream_options"] = {**(options or {}), "include_usage": True}
    call.raw = orjson.dumps(call.body)
    call.strip_usage = True


def _require_streaming_rails(call: Call) -> None:
    if not call.guard.config.output_streaming_enabled:
        raise BadRequest(
            "Output rails are configured but streaming output rails are disabled: set "
            "rails.output.streaming.enabled: true in the rails config, or send stream: false.",
            param="stream",
            code="streaming_rails_disabled",
        )


def _admit(request: web.Request) -> None:
    limit = request.app[SETTINGS].server.max_concurrent_streams
    if request.app[STATE].active_streams >= limit:
        raise TooManyRequests(
            f"railproxy is serving its maximum of {limit} concurrent streams; retry shortly.",
            headers={"Retry-After": "1"},
        )


async def _input_rails(call: Call) -> Blocked | None:
    guard = call.guard
    if not guard.guards_input:
        return None
    messages = req.input_messages(call.dialect.name, call.body)
    outcome, changes = await guard.check_input(messages)
    if outcome.blocked:
        return Blocked(outcome.rail or "", outcome.reason)
    if changes:
        req.apply_input_changes(call.dialect.name, call.body, changes)
        call.raw = orjson.dumps(call.body)
    return None


async def _forward(call: Call) -> web.StreamResponse:
    request, up = call.request, call.request.app[UPSTREAM]
    metrics = request.app[METRICS]
    headers = up.headers(request.headers, call.request_id, _auth_on(request))
    call.record.upstream_sent()
    try:
        resp = await up.open("POST", up.url(call.path, call.native), headers, call.raw)
    except UpstreamTimeout:
        metrics.upstream_errors.labels("timeout").inc()
        raise
    except UpstreamUnreachable:
        metrics.upstream_errors.labels("connect").inc()
        raise
    try:
        if resp.status >= 400:
            metrics.upstream_errors.labels("status").inc()
        if resp.status >= 300 or not _is_sse(resp) or not call.stream:
            return await _whole(call, resp)
        return await _stream(call, resp)
    finally:
        resp.close()


def _auth_on(request: web.Request) -> bool:
    return bool(request.app[SETTINGS].server.api_keys)


def _is_sse(resp: aiohttp.ClientResponse) -> bool:
    return resp.content_type == "text/event-stream"


async def _stream(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    app = call.request.app
    guard, metrics = call.guard, app[METRICS]
    writer = SSEWriter([*response_headers(resp.headers), ("X-Request-Id", call.request_id)])
    engine = None
    if guard.guards_output:
        user = req.last_user_text(call.dialect.name, call.body)
        engine = guard.open_stream(user, call.dialect.rewrite)
    spec = RelaySpec(
        call.dialect,
        app[SETTINGS].upstream.max_event_bytes,
        guard.config.rails.abort,
        strip_usage=call.strip_usage,
        hold=engine is not None and not guard.streaming.stream_first,
    )
    await writer.prepare(call.request)
    relay = Relay(resp, writer, spec, call.record, metrics, engine)
    metrics.active_streams.inc()
    try:
        await relay.run()
    except (asyncio.CancelledError, ConnectionResetError):
        metrics.disconnects.inc()
        call.record.outcome = "client_disconnected"
        raise
    finally:
        metrics.active_streams.dec()
    _account(call, relay.result, spec)
    await writer.write_eof()
    return writer


def _account(call: Call, result: RelayResult, spec: RelaySpec) -> None:
    """A finished stream's counters: outcome, blocks, tokens, windows, usage."""
    metrics, record = call.request.app[METRICS], call.record
    record.outcome = result.outcome
    kind = _UPSTREAM_ERROR_KINDS.get(result.outcome)
    if kind is not None:
        metrics.upstream_errors.labels(kind).inc()
    if result.blocked is not None:
        metrics.streams_blocked.labels(result.blocked.rail).inc()
        record.blocked(result.blocked.rail, result.blocked.reason)
    metrics.tokens.labels("relayed").inc(result.text_events)
    if spec.hold:
        metrics.tokens.labels("held").inc(result.text_events)
    metrics.windows.inc(result.windows)
    if record.completion_tokens is None:
        record.completion_tokens = result.text_events


_UPSTREAM_ERROR_KINDS = {
    "in_band_error": "in_band",
    "eof": "eof",
    "disconnected": "eof",
    "too_large": "eof",
    "timeout": "timeout",
}


async def _whole(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """A non-streamed response (or an upstream error): read, judge if 2xx JSON, relay."""
    body = await resp.read()
    headers = {k: v for k, v in response_headers(resp.headers)}
    headers["X-Request-Id"] = call.request_id
    if resp.status < 300:
        _whole_usage(call.record, body)
    if resp.status < 300 and call.guard.guards_output and resp.content_type == "application/json":
        judged = await _judge_whole(call, body)
        if isinstance(judged, web.StreamResponse):
            return judged
        body = judged
    return web.Response(status=resp.status, body=body, headers=headers)


def _whole_usage(record: RequestRecord, body: bytes) -> None:
    found = CHAT.usage(Event(b"", body))
    if found is not None:
        record.prompt_tokens, record.completion_tokens = found


async def _judge_whole(call: Call, body: bytes) -> bytes | web.StreamResponse:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(obj, dict):
        return body
    user = req.last_user_text(call.dialect.name, call.body)
    changed = False
    for index, text in call.dialect.final_text(obj):
        outcome = await call.guard.check_output(text, user)
        if outcome.blocked:
            return await _respond_blocked(call, Blocked(outcome.rail or "", outcome.reason))
        if outcome.text != text:
            call.dialect.set_final_text(obj, index, outcome.text)
            changed = True
    return orjson.dumps(obj) if changed else body


async def _respond_blocked(call: Call, blocked: Blocked) -> web.StreamResponse:
    """Input blocks and non-streaming output blocks: HTTP 400 with the abort body, or for
    ``abort.style: content_filter`` a 200 carrying the refusal."""
    abort = call.guard.config.rails.abort
    call.request.app[METRICS].streams_blocked.labels(blocked.rail).inc()
    call.record.blocked(blocked.rail, blocked.reason)
    call.record.outcome = "blocked"
    if abort.style != "content_filter" or call.dialect is TGI_NATIVE:
        body = abort_body(blocked)
        if call.dialect is TGI_NATIVE:
            body = {"error": body["error"]["message"], "error_type": "guardrails_violation"}
        return json_error(400, body, {**NO_RETRY, "X-Request-Id": call.request_id})
    if call.stream:
        writer = SSEWriter([("X-Request-Id", call.request_id), *NO_RETRY.items()])
        await writer.prepare(call.request)
        env = Envelope(id="chatcmpl-" + call.request_id, model=str(call.body.get("model", "")))
        await writer.send(call.dialect.abort(blocked, abort.style, abort.refusal_message, env))
        await writer.write_eof()
        return writer
    body = req.refusal_response(call.dialect.name, call.body, abort.refusal_message)
    return web.json_response(body, headers={**NO_RETRY, "X-Request-Id": call.request_id})


# -- everything else under /v1 -----------------------------------------------------------


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Any other ``/v1/*`` path (models, embeddings, tokenize...), streamed both ways."""
    tail = request.match_info["tail"]
    req.check_path(tail)
    up = request.app[UPSTREAM]
    rid = request_id(request)
    request[RECORD].request_id = rid
    headers = up.headers(request.headers, rid, _auth_on(request))
    url = up.url("/" + tail) + (f"?{request.query_string}" if request.query_string else "")
    body = await request.read() if request.can_read_body else None
    resp = await up.open(request.method, url, headers, body)
    try:
        out = web.StreamResponse(status=resp.status, reason=resp.reason)
        out.headers.update(response_headers(resp.headers))
        out.headers["X-Request-Id"] = rid
        await out.prepare(request)
        try:
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
        except (aiohttp.ClientError, TimeoutError):
            out.force_close()  # a cut body must not look complete to the client
            return out
        await out.write_eof()
        return out
    finally:
        resp.close()
