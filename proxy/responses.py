"""Answering a guarded request: relaying a stream, or judging a whole response; and the
answers railproxy writes itself when a rail blocks."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from proxy import debug
from proxy import requests as req
from proxy.call import Call
from proxy.errors import json_error
from proxy.keys import METRICS, SETTINGS, STATE
from proxy.protocol import CHAT, TGI_NATIVE, Envelope, abort_body
from proxy.record import RequestRecord
from proxy.relay import Relay, RelayResult, RelaySpec
from proxy.sse import Event
from proxy.upstream import response_headers
from proxy.writer import SSEWriter
from rails.offload import count_tokens
from rails.stream import Blocked

NO_RETRY = {"x-should-retry": "false"}


async def stream_response(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
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
        debug=debug.channel_for(call.request, call.config_id, guard),
    )
    await writer.prepare(call.request)
    relay = Relay(resp, writer, spec, call.record, metrics, engine)
    metrics.active_streams.inc()
    # At the drain deadline, end the stream with an error event rather than a cut.
    stopping = asyncio.ensure_future(app[STATE].stopping.wait())
    stopping.add_done_callback(lambda f: None if f.cancelled() else relay.shut_down())
    try:
        await relay.run()
    except asyncio.CancelledError:  # handler_cancellation: the client went away
        _client_left(call)
        raise
    except ConnectionResetError:  # a write found the client gone: nothing left to send
        _client_left(call)
        return writer
    finally:
        stopping.cancel()
        metrics.active_streams.dec()
    _account(call, relay.result, spec)
    await count_prompt(call)
    await writer.write_eof()
    return writer


def _client_left(call: Call) -> None:
    call.request.app[METRICS].disconnects.inc()
    call.record.outcome = "client_disconnected"


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
    if record.completion_tokens is None:  # the upstream reported no usage (llama.cpp)
        record.completion_tokens = result.tokens or result.text_events


async def count_prompt(call: Call) -> None:
    """Prompt tokens counted with tiktoken when the upstream reported no usage (a huge
    prompt is counted in a worker process: ``rails.offload``)."""
    if call.record.prompt_tokens is None:
        text = "\n".join(req.message_texts(call.dialect.name, call.body))
        call.record.prompt_tokens = await count_tokens(text)


_UPSTREAM_ERROR_KINDS = {
    "in_band_error": "in_band",
    "eof": "eof",
    "disconnected": "eof",
    "too_large": "eof",
    "timeout": "timeout",
}


async def whole_response(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """A non-streamed response (or an upstream error): read, judge if 2xx JSON, relay."""
    body = await resp.read()
    # Case-insensitive and multi-valued, as HTTP headers are: the upstream's own
    # x-request-id is replaced, not doubled, and repeated headers all survive.
    headers = CIMultiDict(response_headers(resp.headers))
    headers["X-Request-Id"] = call.request_id
    if resp.status < 300:
        _whole_usage(call.record, body)
        await count_prompt(call)
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
            return await respond_blocked(call, Blocked(outcome.rail or "", outcome.reason))
        if outcome.text != text:
            call.dialect.set_final_text(obj, index, outcome.text)
            changed = True
    return orjson.dumps(obj) if changed else body


async def respond_blocked(call: Call, blocked: Blocked) -> web.StreamResponse:
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
