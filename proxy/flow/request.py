"""The guarded request flow: parse and check, pick a config, input rails, admission,
then the upstream, whose response goes to ``proxy.flow.respond``."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.clients import client_of
from proxy.configs import HEADER as CONFIG_HEADER
from proxy.errors import BadRequest, UpstreamTimeout, UpstreamUnreachable
from proxy.flow.admission import admit
from proxy.flow.call import Call
from proxy.flow.request_body import read_body
from proxy.flow.respond import raw_response, respond_blocked, stream_response, whole_response
from proxy.flow.upstream_body import Unreadable, UpstreamBody
from proxy.observe.record import RECORD, request_id
from proxy.state import SETTINGS, STATE, UPSTREAM, live_configs
from proxy.wire.dialect import Dialect
from rails.base import Blocked


async def guarded(
    request: web.Request, dialect: Dialect, path: str, compat: bool = False
) -> web.StreamResponse:
    call = await _prepare(request, dialect, path)
    if compat and call.stream:
        call.path = "/generate_stream"
    if call.stream and call.guard.guards_output:
        _require_streaming_rails(call)
    if call.guard.guards_output:
        dialect.refuse_unguarded_output(call.body)
    state = request.app[STATE]
    if call.stream:  # before input rails: no judge call for a stream we would refuse
        admit(request)
        state.active_streams += 1
    try:
        blocked = await _input_rails(call)
        if blocked is not None:
            return await respond_blocked(call, blocked)
        return await _forward(call)
    finally:
        if call.stream:
            state.active_streams -= 1


async def _prepare(request: web.Request, dialect: Dialect, path: str) -> Call:
    raw = await read_body(request)
    body = parse_body(raw)
    dialect.validate(body)
    stream = path == "/generate_stream" or body.get("stream") is True
    config_id, guard, changed = live_configs(request.app).pick(
        body, request.headers.get(CONFIG_HEADER), client_of(request)
    )
    if changed:
        raw = orjson.dumps(body)
    record = request[RECORD]
    record.request_id, record.config, record.stream = request_id(request), config_id, stream
    call = Call(request, dialect, path, body, raw, guard, record)
    usage = request.app[SETTINGS].upstream.request_usage
    if stream and not dialect.native and dialect.asks_usage and usage:
        _ask_for_usage(call)
    return call


def _ask_for_usage(call: Call) -> None:
    """Ask the upstream for a usage chunk (token accounting) when the client did not;
    the relay then keeps that chunk from the client."""
    options = call.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return
    if options is not None and not isinstance(options, dict):
        return  # the upstream will reject it; do not hide that
    call.body["stream_options"] = {**(options or {}), "include_usage": True}
    call.body_changed()
    call.strip_usage = True


def _require_streaming_rails(call: Call) -> None:
    """NeMo's ``stream_async()`` refuses output rails without streaming enabled
    (``StreamingNotSupportedError``); so does railproxy, naming the switch that is off."""
    off = call.guard.config.streaming_switches_off
    if off:
        raise BadRequest(
            streaming_off_message(off), param="stream", code="streaming_rails_disabled"
        )


def streaming_off_message(off: list[str]) -> str:
    switches = " and ".join(off)
    verb = "are" if len(off) > 1 else "is"
    settings = " and ".join(f"{name}: true" for name in off)
    return (
        "stream: true cannot be used when output rails are configured but "
        f"{switches} {verb} false. Either set {settings} in the rails config, or send "
        "stream: false."
    )


async def _input_rails(call: Call) -> Blocked | None:
    guard = call.guard
    if not guard.guards_input:
        return None
    if guard.enforces_input:
        allow_ids = guard.config.rails.input.allow_token_ids
        call.dialect.refuse_unjudged_input(call.body, allow_ids)
    messages = call.dialect.input_messages(call.body)
    definitions = call.dialect.input_definitions(call.body)
    every = call.dialect.batch_input
    outcome, changes = await guard.check_input(messages, definitions, every)
    if outcome.blocked:
        return Blocked(outcome.rail or "", outcome.reason, text=outcome.text)
    if changes:
        call.dialect.apply_input_changes(call.body, changes)
        call.body_changed()
    return None


async def _forward(call: Call) -> web.StreamResponse:
    request, up, record = call.request, call.request.app[UPSTREAM], call.record
    headers = up.headers(request.headers, call.request_id, auth_on(request), call.dialect.x_api_key)
    record.upstream_sent()
    try:
        resp = await up.open("POST", up.url(call.path, call.dialect.native), headers, call.raw)
    except UpstreamTimeout:
        record.upstream_failed("timeout")
        raise
    except UpstreamUnreachable:
        record.upstream_failed("connect")
        raise
    try:
        if resp.status >= 400:
            record.upstream_failed("status")
        if not call.guard.guards_output:
            return await _unjudged(call, resp)
        try:
            return await _judged(call, UpstreamBody(resp, _limit(call)))
        except Unreadable:
            record.upstream_failed("unreadable")
            raise
    finally:
        resp.close()


async def _judged(call: Call, body: UpstreamBody) -> web.StreamResponse:
    """Output rails on: the body is read in its real format, whatever its label says; a
    format we cannot judge is refused (DESIGN.md, "The boundary fails closed")."""
    if body.status >= 300:
        return await whole_response(call, body)
    found = await body.sniff()
    if call.stream and found in ("sse", "empty"):  # empty: the relay reports the cut
        return await stream_response(call, body)
    if found == "json":
        return await whole_response(call, body)
    asked = "a streaming" if call.stream else "a non-streaming"
    what = {"sse": "an event stream", "empty": "an empty body"}.get(
        found, "a body of unknown format"
    )
    raise Unreadable(
        f"The upstream answered {asked} request with {what}, which railproxy cannot judge."
    )


async def _unjudged(call: Call, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """No output rails: relayed as before, byte for byte; a compressed body keeps its
    ``Content-Encoding`` (nothing here needs to read it)."""
    coded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if coded:
        return await raw_response(call, resp)
    body = UpstreamBody(resp, _limit(call))
    if resp.status >= 300 or not _is_sse(resp) or not call.stream:
        return await whole_response(call, body)
    return await stream_response(call, body)


def _limit(call: Call) -> int:
    return call.request.app[SETTINGS].upstream.max_response_bytes


def auth_on(request: web.Request) -> bool:
    return bool(request.app[SETTINGS].server.api_keys)


def _is_sse(resp: aiohttp.ClientResponse) -> bool:
    return resp.content_type == "text/event-stream"


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (invalid UTF-8 is invalid JSON too); a 400 in
    OpenAI's error shape otherwise."""
    if not raw.strip():
        raise BadRequest("The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON (UTF-8).") from None
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, not {_kind(body)}.")
    return body


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
