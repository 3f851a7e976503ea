"""``railproxy chat``'s side of the wire: one reply, streamed or whole, as a few events.

A reply is a run of ``Text`` pieces that ends in at most one ``Abort`` (a rail stopped it:
the ``content_blocked`` error event or HTTP 400 railproxy sends, or a chunk whose
``finish_reason`` is ``content_filter``) or ``Failure`` (anything else: an HTTP error, an
in-band upstream error event, a stream that ends without ``[DONE]`` or a finish). A reply
that ends with neither was complete.
"""

from __future__ import annotations

import enum
import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from proxy.wire.sse import Decoder, Event, SSEError

FALLBACK_MODEL = "default"
REPLY_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
MODELS_TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of the reply's content."""

    text: str


@dataclass(frozen=True, slots=True)
class Abort:
    """A rail ended the reply. ``rail`` is None for a ``content_filter`` finish, which
    names no rail."""

    rail: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The reply failed for a reason other than a rail."""

    message: str


class Mark(enum.Enum):
    """What else an event can say: ``[DONE]``, or a choice finished normally."""

    DONE = "done"
    FINISH = "finish"


End = Abort | Failure
ReplyEvent = Text | Abort | Failure


@dataclass(frozen=True, slots=True)
class Target:
    """Where replies come from: the OpenAI base URL, the model and extra headers."""

    base_url: str
    model: str
    headers: dict[str, str]

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/chat/completions"


def first_model_id(body: Any) -> str:
    """The first model id of a ``GET /models`` body, or ``FALLBACK_MODEL``."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        model = data[0].get("id")
        if isinstance(model, str) and model:
            return model
    return FALLBACK_MODEL


async def fetch_model(
    session: aiohttp.ClientSession, base_url: str, headers: dict[str, str]
) -> str:
    """The server's first model id, falling back to ``FALLBACK_MODEL`` on any failure."""
    try:
        async with session.get(
            f"{base_url}/models", headers=headers, timeout=MODELS_TIMEOUT
        ) as resp:
            if resp.status != 200:
                return FALLBACK_MODEL
            return first_model_id(orjson.loads(await resp.read()))
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return FALLBACK_MODEL


async def probe(
    session: aiohttp.ClientSession, base_url: str, headers: dict[str, str]
) -> str | None:
    """None when ``GET {base_url}/models`` gets an HTTP answer other than 401/403; else
    one line saying what is wrong (nothing listening, a refused key)."""
    try:
        async with session.get(
            f"{base_url}/models", headers=headers, timeout=MODELS_TIMEOUT
        ) as resp:
            if resp.status in (401, 403):
                return f"{base_url} refused the key (HTTP {resp.status}): set OPENAI_API_KEY"
            return None
    except TimeoutError:
        return f"{base_url} did not answer within {MODELS_TIMEOUT.total:g} s"
    except aiohttp.ClientConnectorError as e:
        err = e.os_error.errno
        why = os.strerror(err) if err else str(e.os_error)
        return f"cannot reach {base_url}: {why.lower()} (start one with: railproxy demo)"
    except aiohttp.ClientError as e:
        return f"cannot reach {base_url}: {type(e).__name__}: {e}"


def classify_error(obj: dict[str, Any], prefix: str = "") -> End:
    """An OpenAI-shaped, vLLM flat or TGI native error object as an ``Abort`` (railproxy's
    ``content_blocked``) or a ``Failure``."""
    err = obj.get("error", obj)
    if isinstance(err, str):
        return Failure(prefix + err)
    if not isinstance(err, dict):
        return Failure(prefix + orjson.dumps(obj).decode())
    message = str(err.get("message") or "")
    code = err.get("code")
    if code == "content_blocked":
        param = err.get("param")
        return Abort(param if isinstance(param, str) and param else None, message)
    label = next((str(v) for v in (code, err.get("type")) if v), "")
    return Failure(prefix + (f"{label}: {message}" if label else message or "unknown error"))


def http_error(status: int, body: bytes) -> End:
    """A non-2xx response as an ``Abort`` or a ``Failure``."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and ("error" in obj or obj.get("object") == "error"):
        return classify_error(obj, f"HTTP {status}: ")
    text = body.decode(errors="replace").strip()[:300]
    return Failure(f"HTTP {status}" + (f": {text}" if text else ""))


def read_event(data: bytes | None) -> list[ReplyEvent | Mark]:
    """What one SSE event's data says about the reply (choice 0 only)."""
    if data is None:
        return []
    if data.strip() == b"[DONE]":
        return [Mark.DONE]
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(obj, dict):
        return []
    if "error" in obj or obj.get("object") == "error":
        return [classify_error(obj)]
    return _read_choice(obj.get("choices"))


def _read_choice(choices: Any) -> list[ReplyEvent | Mark]:
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return []
    choice = choices[0]
    out: list[ReplyEvent | Mark] = []
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    if isinstance(content, str) and content:
        out.append(Text(content))
    finish = choice.get("finish_reason")
    if finish == "content_filter":
        out.append(Abort(None, "finish_reason: content_filter"))
    elif isinstance(finish, str) and finish:  # TGI sends "" on intermediate chunks
        out.append(Mark.FINISH)
    return out


async def stream_reply(
    session: aiohttp.ClientSession, target: Target, messages: list[dict[str, str]]
) -> AsyncGenerator[ReplyEvent, None]:
    """Stream one reply. Leaving early (Ctrl-C cancels the consumer) closes the response,
    and with it the connection, so the proxy closes its upstream request."""
    body = {"model": target.model, "messages": messages, "stream": True}
    try:
        async with session.post(
            target.completions_url, json=body, headers=target.headers, timeout=REPLY_TIMEOUT
        ) as resp:
            if resp.status != 200 or resp.content_type == "application/json":
                for end in _whole(resp.status, await resp.read()):
                    yield end
                return
            try:
                async with aclosing(_events(resp)) as events:
                    async for event in events:
                        yield event
            finally:
                resp.close()
    except (aiohttp.ClientError, SSEError) as e:
        yield Failure(f"{type(e).__name__}: {e}")


async def _events(resp: aiohttp.ClientResponse) -> AsyncGenerator[ReplyEvent, None]:
    """The reply events of an SSE body, up to ``[DONE]`` or the first abort or failure.
    A body that ends without ``[DONE]`` is complete only if its choice had finished."""
    finished = False
    async with aclosing(_sse(resp)) as events:
        async for sse in events:
            for event in read_event(sse.data):
                if event is Mark.DONE:
                    return
                if isinstance(event, Mark):
                    finished = True
                    continue
                yield event
                if not isinstance(event, Text):
                    return
    if not finished:
        yield Failure("the stream ended without [DONE]")


async def _sse(resp: aiohttp.ClientResponse) -> AsyncGenerator[Event, None]:
    decoder = Decoder()
    async for chunk in resp.content.iter_any():
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


async def whole_reply(
    session: aiohttp.ClientSession, target: Target, messages: list[dict[str, str]]
) -> AsyncGenerator[ReplyEvent, None]:
    """Ask for one reply with ``stream: false`` and yield it as the same events."""
    body = {"model": target.model, "messages": messages, "stream": False}
    try:
        async with session.post(
            target.completions_url, json=body, headers=target.headers, timeout=REPLY_TIMEOUT
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except aiohttp.ClientError as e:
        yield Failure(f"{type(e).__name__}: {e}")
        return
    for event in _whole(status, raw):
        yield event


def _whole(status: int, raw: bytes) -> list[ReplyEvent]:
    return read_whole(raw) if status == 200 else [http_error(status, raw)]


def read_whole(raw: bytes) -> list[ReplyEvent]:
    """A non-streaming chat completion body as reply events."""
    try:
        obj = orjson.loads(raw)
        choice = obj["choices"][0]
        content = choice["message"].get("content") or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return [Failure("the server's response is not a chat completion")]
    out: list[ReplyEvent] = [Text(str(content))] if content else []
    if choice.get("finish_reason") == "content_filter":
        out.append(Abort(None, "finish_reason: content_filter"))
    return out
