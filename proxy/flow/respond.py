"""Answering a guarded request: relaying a stream, or judging a whole response; and the
answers railproxy writes itself when a rail blocks."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.errors import json_error
from proxy.flow.call import Call
from proxy.flow.relay import Relay, RelaySpec
from proxy.flow.relay_core import RelayCore
from proxy.flow.upstream_body import Unreadable, UpstreamBody
from proxy.flow.writer import SSEWriter
from proxy.playground import channel as debug
from proxy.state import SETTINGS, STATE, UPSTREAM
from proxy.upstream import response_headers
from proxy.wire.client_json import (
    client_json,
    dump_json,
    error_text,
    has_duplicate_keys,
    is_error,
)
from proxy.wire.dialect import Dialect
from proxy.wire.json_text import unescape
from proxy.wire.sse import Event
from rails import offload
from rails.base import Action, Blocked
from rails.offload import count_tokens
from rails.stream import CannotRewrite

NO_RETRY = {"x-should-retry": "false"}
log = logging.getLogger("railproxy.respond")


async def stream_response(call: Call, body: UpstreamBody) -> web.StreamResponse:
    app, record = call.request.app, call.record
    writer, relay, dialect = _relay_for(call, body)
    await writer.prepare(call.request)
    record.stream_opened()
    # At the drain deadline, end the stream with an error event rather than a cut.
    state = app[STATE]
    streams = state.streams
    streams.add(relay.shut_down)
    if state.stopping.is_set():  # it began after the deadline
        relay.shut_down()
    try:
        await relay.run()
    except asyncio.CancelledError:  # handler_cancellation: the client went away
        record.client_left()
        raise
    except ConnectionResetError:  # a write found the client gone: nothing left to send
        record.client_left()
        return writer
    except Exception:  # a fault of ours after the headers went: end the stream, never hang
        log.exception("stream failed", extra={"request_id": call.request_id})
        record.outcome = "internal_error"
        await _end_after_fault(dialect, writer)
        return writer
    finally:
        streams.discard(relay.shut_down)
        record.stream_closed()
    try:
        await relay.finish()
    except ConnectionResetError:  # the client went away before its end (finish recorded it)
        return writer
    await _count_after_end(call)
    return writer


def _relay_for(call: Call, body: UpstreamBody) -> tuple[SSEWriter, Relay, Dialect]:
    """The client's response, and the relay that will fill it (guarded when the config has
    output rails), for one streamed answer."""
    guard = call.guard
    judged = guard.guards_output
    upstream_headers = response_headers(body.resp.headers, judged)
    label = None if judged else body.resp.headers.get("Content-Type")
    writer = SSEWriter([*upstream_headers, ("X-Request-Id", call.request_id)], content_type=label)
    dialect = call.dialect.for_request(call.body)  # it may read events against earlier ones
    engine = guard.open_stream(call.user_text, dialect.rewrite) if judged else None
    hold = engine is not None and guard.holds_output
    core = RelayCore(
        dialect,
        call.record,
        call.request.app[SETTINGS].upstream.max_event_bytes,
        strip_usage=call.strip_usage,
        hold=hold,
        envelope=call.dialect.envelope(call.request_id, call.body),
    )
    spec = RelaySpec(
        guard.config.rails.abort,
        guard.config.rails.output.streaming.keepalive_s,
        debug=debug.channel_for(call.request, call.config_id, guard),
    )
    if body.in_hand and not hold:  # its first bytes go at once: the headers with them
        writer.with_first_bytes()
    return writer, Relay(body, writer, core, spec, call.record, engine), dialect


async def _count_after_end(call: Call) -> None:
    """The prompt counted as ``count_prompt`` does, after the client has its last byte. The
    client may close its connection meanwhile, which cancels this handler: its answer was
    complete all the same, so a count in the worker goes on to its end (bounded by that
    count) and the request is logged as answered, with its prompt tokens; a second cancel
    is not held back."""
    if call.record.prompt_tokens is not None:  # the upstream reported usage
        return
    text = call.prompt_text()
    if offload.inline(text):  # counted here and now: nothing to cancel, no task
        call.record.prompt_tokens = await count_tokens(text)
        return
    counting = asyncio.ensure_future(count_tokens(text))
    try:
        await asyncio.shield(counting)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if counting.cancelled() or task is None or task.uncancel():
            raise
        await counting
    call.record.prompt_tokens = counting.result()


async def _end_after_fault(dialect: Dialect, writer: SSEWriter) -> None:
    """Our error event (in the terms of the stream so far) and the end, or a closed
    connection if even that fails: a client must see the stream end, not wait for its own
    timeout."""
    try:
        await writer.send(dialect.stream_error("railproxy failed.", "internal_error"))
        await writer.write_eof()
    except Exception:
        writer.force_close()


async def count_prompt(call: Call) -> None:
    """Prompt tokens counted with tiktoken when the upstream reported no usage (a huge
    prompt is counted in a worker process: ``rails.offload``)."""
    if call.record.prompt_tokens is None:
        call.record.prompt_tokens = await count_tokens(call.prompt_text())


async def whole_response(call: Call, body: UpstreamBody) -> web.StreamResponse:
    """A non-streamed response (or an upstream error): read, judge when output rails are
    on (answers and error bodies alike), relay."""
    data = await body.read()
    status = body.status
    # Case-insensitive and multi-valued, as HTTP headers are: the upstream's own
    # x-request-id is replaced, not doubled, and repeated headers all survive.
    headers = CIMultiDict(response_headers(body.resp.headers, call.guard.guards_output))
    headers["X-Request-Id"] = call.request_id
    if status < 300:
        _whole_usage(call, data)
        await count_prompt(call)
    else:
        data = without_upstream_key(call, data)
    if call.guard.guards_output:
        judged = await (
            _judge_answer(call, data) if status < 300 else _judge_error(call, data, status)
        )
        if isinstance(judged, web.StreamResponse):
            return judged
        data = judged
    return web.Response(status=status, body=data, headers=headers)


UPSTREAM_KEY_SHOWN = b"[upstream key]"
MIN_KEY = 8  # a shorter key would match ordinary text (and is not worth hiding)


def without_upstream_key(call: Call, data: bytes) -> bytes:
    """An upstream error body with the upstream key railproxy sent it replaced: a server or
    gateway that quotes the key it was given ("invalid x-api-key ...") must not hand it to
    railproxy's clients, who were never given it."""
    key = call.request.app[UPSTREAM].api_key
    if key is None or len(key) < MIN_KEY:
        return data
    secret = key.encode()
    return data.replace(secret, UPSTREAM_KEY_SHOWN) if secret in data else data


async def raw_response(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """A compressed body with no output rails to judge it: relayed as it came, its
    ``Content-Encoding`` kept so the client can read it."""
    data = await resp.read()
    headers = CIMultiDict(response_headers(resp.headers))
    headers["Content-Encoding"] = resp.headers["Content-Encoding"]
    headers["X-Request-Id"] = call.request_id
    return web.Response(status=resp.status, body=data, headers=headers)


def _whole_usage(call: Call, body: bytes) -> None:
    found = call.dialect.usage(Event(b"", body))
    if found is not None:
        call.record.prompt_tokens, call.record.completion_tokens = found


async def _judge_answer(call: Call, data: bytes) -> bytes | web.StreamResponse:
    """A 2xx answer, parsed as the client parses it; a body of another shape is a 502."""
    try:
        obj = client_json(data)
        if has_duplicate_keys(obj, data):
            raise ValueError("a key is given twice in one object")
        if isinstance(obj, dict) and is_error(obj):
            return await _judge_error(call, data, 400)
        dialect = call.dialect.for_request(call.body)
        texts = dialect.final_texts(obj)
    except ValueError as e:
        raise Unreadable(
            f"The upstream's answer is not a {call.dialect.name} response railproxy can "
            f"read ({e}), so it cannot be judged."
        ) from None
    changed = False
    for key, text in texts:
        judged = unescape(text) if key[1] == "tool_arguments" else text
        outcome = await call.guard.check_output(judged, call.user_text, field=key[1])
        if outcome.blocked:
            blocked = Blocked(outcome.rail or "", outcome.reason, text=outcome.text)
            return await respond_blocked(call, blocked)
        if outcome.text == judged:
            continue
        try:
            if judged != text:  # the mask cannot be written back into escaped JSON
                raise CannotRewrite(key[1])
            dialect.set_final_text(obj, key, outcome.text)
        except CannotRewrite:
            reason = outcome.reason or "text modified where it cannot be rewritten"
            return await respond_blocked(call, Blocked(outcome.rail or "", reason))
        changed = True
    return dump_json(obj) if changed else data


async def _judge_error(call: Call, data: bytes, status: int) -> bytes | web.StreamResponse:
    """An upstream error body is output too (servers put the model's text in them): a
    clean one goes out as it came; one a rail blocks, or would change (an error body is
    not masked), becomes our block error with the upstream's status; one we cannot read
    becomes our own error, status kept."""
    try:
        text = _error_body_text(data)
    except ValueError:
        message = (
            f"The upstream answered {status} with a body railproxy cannot read, so cannot "
            "judge; it was withheld."
        )
        body = call.dialect.error_body(message, "upstream_unreadable")
        return json_error(status, body, {"X-Request-Id": call.request_id})
    outcome = await call.guard.check_output(text, call.user_text)
    if outcome.action is Action.ALLOW:
        return data
    blocked = Blocked(outcome.rail or "", outcome.reason or "error text modified", text=text)
    return blocked_error(call, blocked, status)


def _error_body_text(data: bytes) -> str:
    try:
        return error_text(client_json(data))
    except ValueError:
        return data.decode("utf-8")  # plain-text or HTML error pages, judged as they read


def blocked_error(call: Call, blocked: Blocked, status: int = 400) -> web.Response:
    """The block as an error response in the dialect's shape (counted as a block)."""
    call.record.block(blocked)
    body = call.dialect.blocked_body(blocked)
    return json_error(status, body, {**NO_RETRY, "X-Request-Id": call.request_id})


async def respond_blocked(call: Call, blocked: Blocked) -> web.StreamResponse:
    """Input blocks and non-streaming output blocks: HTTP 400 with the abort body, or for
    ``abort.style: content_filter`` a 200 carrying the refusal."""
    abort = call.guard.config.rails.abort
    refusal = call.dialect.refusal_body(call.body, abort.refusal_message)
    if abort.style != "content_filter" or refusal is None:
        return blocked_error(call, blocked)
    call.record.block(blocked)
    if call.stream:
        writer = SSEWriter([("X-Request-Id", call.request_id), *NO_RETRY.items()])
        await writer.prepare(call.request)
        env = call.dialect.envelope(call.request_id, call.body)
        dialect = call.dialect.for_request(call.body)
        await writer.send(dialect.abort(blocked, abort.style, abort.refusal_message, env))
        await writer.write_eof()
        return writer
    return web.json_response(refusal, headers={**NO_RETRY, "X-Request-Id": call.request_id})
