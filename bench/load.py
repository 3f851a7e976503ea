"""The load generator: ``c`` concurrent streaming clients in one process, one aiohttp
``ClientSession``.

Each worker starts after ``ramp * i / c`` seconds (so paced streams are spread in phase,
as real traffic is), then sends requests back to back until it has made ``--requests``
of them or ``--duration`` seconds have passed since the measured phase began. Per request
it measures, on ``time.perf_counter``:

- ``ttft``: from just before sending the request to the arrival of the first chunk whose
  ``delta.content`` is non-empty (the first non-empty ``response.output_text.delta``, or
  ``text_delta``, on the other APIs);
- ``total``: to the end of the response body;
- ``mark``: to the arrival of content delta number ``--mark`` (0-based), e.g. the delta
  that completes the first rail window; omitted when ``--mark`` is not given.

With ``--burst`` there are no workers but rounds: all ``c`` requests of a round start at
the same instant (no ramp), and the next round starts when every one has ended, at most
``--requests`` rounds. With ``--no-stream`` the requests ask for one whole answer (its
``ttft`` and ``total`` are both the time to its end).

Every stream is checked: HTTP 200, content equal to the expected text, no error event,
ending with ``[DONE]`` (``--api responses``: the Responses API, whose content is each
``response.output_text.delta`` and whose end is ``response.completed``; ``--api messages``:
the Anthropic Messages API, whose content is each ``text_delta`` and whose end is
``message_stop``). Anything else counts as an error, by kind.

Before the measured phase, ``--warmup`` sends one short full-speed request per worker at
once (opening every connection, in this client and in the proxy's pool). Protocol on
stdout: ``START`` when the measured phase begins, ``END`` when it is over, then one line
``RESULT <json>`` (with ``--result PATH``: the JSON in that file, and ``RESULT @PATH``).

Run: ``python -m bench.load --url http://127.0.0.1:N/v1/chat/completions -c 64 ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson

from bench.serve import run
from bench.text import PROFILES, expected_text, request_body

_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Outcome:
    """What the measured phase produced; ``ttft``/``total``/``mark`` in seconds."""

    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    mark: list[float] = field(default_factory=list)
    deltas: int = 0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    warmup_errors: int = 0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Sample:
    ttft: float
    total: float
    mark: float | None
    deltas: int


class StreamError(Exception):
    """A stream that does not match what the fake upstream sends; ``str()`` is its kind.
    ``detail``: the error event's ``error`` object, or for a non-200 answer a ``Refusal``."""

    def __init__(self, kind: str, detail: Any = None) -> None:
        super().__init__(kind)
        self.detail = detail


@dataclass(frozen=True)
class Refusal:
    """A non-200 answer: status, ``Retry-After``, body, seconds from sending to its end."""

    status: int
    retry_after: str | None
    body: bytes
    elapsed: float


class Client:
    """One session, one request shape, the expected text to compare against."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: dict[str, Any],
        expected: str,
        mark: int | None,
        api: str = "chat",
    ) -> None:
        self._read = _READERS[api]
        self._session = session
        self._url = url
        self._body = orjson.dumps(body)
        self._expected = expected
        self._mark = mark

    async def one(self) -> Sample:
        """One streamed request, measured and verified; raises on any mismatch."""
        started = time.perf_counter()
        async with self._session.post(self._url, data=self._body, headers=_HEADERS) as resp:
            if resp.status != 200:
                body = await resp.read()
                elapsed = time.perf_counter() - started
                refusal = Refusal(resp.status, resp.headers.get("Retry-After"), body, elapsed)
                raise StreamError(f"http_{resp.status}", refusal)
            ttft: float | None = None
            mark_at: float | None = None
            parts: list[str] = []
            done = False
            buf = b""
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                buf += chunk
                *events, buf = buf.split(b"\n\n")
                for event in events:
                    at = event.find(b"data:")
                    if at < 0:
                        continue  # comments (keep-alives)
                    payload = event[at + 5 :].strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    content = self._read(orjson.loads(payload))
                    if content is _COMPLETED:
                        done = True
                        continue
                    if content:
                        if ttft is None:
                            ttft = now - started
                        if len(parts) == self._mark:
                            mark_at = now - started
                        parts.append(content)
            total = time.perf_counter() - started
        if not done or buf.strip():
            raise StreamError("no_done")
        if ttft is None or "".join(parts) != self._expected:
            raise StreamError("content_mismatch")
        if self._mark is not None and mark_at is None:
            raise StreamError("mark_not_reached")
        return Sample(ttft, total, mark_at, len(parts))

    async def whole(self) -> Sample:
        """One non-streamed request, verified; its ``ttft`` is the whole answer's time."""
        started = time.perf_counter()
        async with self._session.post(self._url, data=self._body, headers=_HEADERS) as resp:
            body = await resp.read()
            total = time.perf_counter() - started
            if resp.status != 200:
                refusal = Refusal(resp.status, resp.headers.get("Retry-After"), body, total)
                raise StreamError(f"http_{resp.status}", refusal)
        obj = orjson.loads(body)
        if not isinstance(obj, dict) or "error" in obj:
            raise StreamError("error_event", obj)
        content = obj["choices"][0]["message"]["content"]
        if content != self._expected:
            raise StreamError("content_mismatch")
        return Sample(total, total, None, 1)


def _content(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        raise StreamError("not_an_object")
    if "error" in obj:
        raise StreamError("error_event", obj["error"])
    choices = obj.get("choices")
    if not choices:
        return None
    delta = choices[0].get("delta") or {}
    return cast(str | None, delta.get("content"))


_COMPLETED = "\0completed"


def _responses_content(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        raise StreamError("not_an_object")
    kind = obj.get("type")
    if kind == "response.output_text.delta":
        return cast(str, obj["delta"])
    if kind == "response.completed":
        return _COMPLETED
    if "error" in obj or kind == "error":
        raise StreamError("error_event", obj.get("error") or obj)
    return None


def _messages_content(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        raise StreamError("not_an_object")
    kind = obj.get("type")
    if kind == "content_block_delta":
        delta = obj["delta"]
        return cast(str, delta["text"]) if delta.get("type") == "text_delta" else None
    if kind == "message_stop":
        return _COMPLETED
    if "error" in obj or kind == "error":
        raise StreamError("error_event", obj.get("error") or obj)
    return None


_READERS = {"chat": _content, "responses": _responses_content, "messages": _messages_content}
APIS = tuple(_READERS)


def _merge(body: dict[str, Any], extra: str | None) -> dict[str, Any]:
    """``body`` with the top-level keys of the JSON object ``extra`` set (null removes)."""
    if not extra:
        return body
    out = dict(body)
    for key, value in json.loads(extra).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, StreamError):
        return str(exc)
    return type(exc).__name__


async def measure(args: argparse.Namespace) -> Outcome:
    out = Outcome()
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        body = request_body(args.deltas, args.rate, args.profile, args.api)
        body["stream"] = not args.no_stream
        body = _merge(body, args.extra)
        expected = expected_text(args.profile, args.deltas)
        client = Client(session, args.url, body, expected, args.mark, args.api)
        one = client.whole if args.no_stream else client.one
        if args.warmup:
            out.warmup_errors = await _warmup(
                session, args.url, args.concurrency, args.extra, args.api
            )
        print("START", flush=True)
        started = time.perf_counter()
        deadline = started + args.duration

        async def request() -> None:
            try:
                s = await one()
            except (aiohttp.ClientError, TimeoutError, StreamError, ValueError) as e:
                errors[_error_kind(e)] += 1
                out.requests += 1
                return
            out.requests += 1
            out.ttft.append(s.ttft)
            out.total.append(s.total)
            if s.mark is not None:
                out.mark.append(s.mark)
            out.deltas += s.deltas

        async def worker(i: int) -> None:
            await asyncio.sleep(args.ramp * i / args.concurrency)
            for _ in range(args.requests):
                if time.perf_counter() >= deadline:
                    return
                await request()

        if args.burst:
            for _ in range(args.requests):
                if time.perf_counter() >= deadline:
                    break
                await asyncio.gather(*(request() for _ in range(args.concurrency)))
        else:
            await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
        out.wall_s = time.perf_counter() - started
        print("END", flush=True)
    out.errors = dict(errors)
    return out


async def _warmup(
    session: aiohttp.ClientSession,
    url: str,
    concurrency: int,
    extra: str | None = None,
    api: str = "chat",
) -> int:
    """One short full-speed request per worker, all at once; returns how many failed."""
    warm_body = _merge(request_body(8, 0.0, api=api), extra)
    client = Client(session, url, warm_body, expected_text("words", 8), None, api)
    results = await asyncio.gather(
        *(client.one() for _ in range(concurrency)), return_exceptions=True
    )
    return sum(isinstance(r, BaseException) for r in results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    p.add_argument("--url", required=True, help="the chat completions URL")
    p.add_argument("-c", "--concurrency", type=int, required=True)
    p.add_argument("--requests", type=int, required=True, help="per worker, at most")
    p.add_argument("--duration", type=float, required=True, help="seconds, at most")
    p.add_argument("--deltas", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.0, help="tokens/s; 0: full speed")
    p.add_argument("--profile", choices=PROFILES, default="words")
    p.add_argument("--mark", type=int, default=None, help="record this content delta's time")
    p.add_argument("--ramp", type=float, default=0.0, help="seconds over which workers start")
    p.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    p.add_argument("--warmup", action="store_true")
    p.add_argument("--api", choices=APIS, default="chat")
    p.add_argument(
        "--burst",
        action="store_true",
        help="rounds: all c requests start at once, the next round when all have ended; "
        "--requests is the number of rounds",
    )
    p.add_argument("--no-stream", action="store_true", help="non-streamed requests")
    p.add_argument("--result", type=Path, help="write the result JSON to this file")
    p.add_argument(
        "--extra",
        metavar="JSON",
        help="a JSON object whose keys are set in every request body (null removes one), "
        "e.g. a peer's model name or config id",
    )
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.requests < 1 or args.duration <= 0:
        p.error("--concurrency and --requests must be >= 1 and --duration > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result: list[Outcome] = []

    async def go() -> None:
        result.append(await measure(args))

    run(go())
    text = json.dumps(asdict(result[0]))
    if args.result:  # a file: a large result never travels through a pipe
        args.result.write_text(text, encoding="utf-8")
        print(f"RESULT @{args.result}", flush=True)
    else:
        print("RESULT " + text, flush=True)


def read_result(line: str) -> dict[str, Any]:
    """The result of a ``RESULT ...`` line: inline JSON, or ``@PATH`` of a file."""
    rest = line.removeprefix("RESULT ")
    if rest.startswith("@"):
        rest = Path(rest[1:]).read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(rest))


if __name__ == "__main__":
    main()
