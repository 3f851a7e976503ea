"""In-process load for the soak and the overload (``bench.load``'s ``Client`` checks every
stream; this module decides what to send and counts what came back).

- ``soak``: ``concurrency`` workers share ``streams`` tickets; worker ``i`` always uses
  rails config ``configs[i % len(configs)]`` (so the configs run side by side, in equal
  shares), and every ``canary_every``-th ticket is a canary stream (an e-mail address in
  the text) that the pii rail must end with ``content_blocked``.
- ``overload``: ``offered`` workers start at once on warmed connections and send paced
  streams back to back until a deadline; a 429 is timed, checked (``Retry-After``,
  OpenAI's error shape) and retried after its ``Retry-After`` or after ``pause_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.load import Client, Refusal, Sample, StreamError, _error_kind
from bench.text import Profile, expected_text, request_body

FAILURES = (aiohttp.ClientError, TimeoutError, StreamError, ValueError)


@dataclass
class Tally:
    """Streams finished so far, by outcome; ``errors`` by kind."""

    ok: int = 0
    blocked: int = 0  # canaries ended by content_blocked, as they must be
    canaries: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return self.ok + self.blocked + sum(self.errors.values())


def session(timeout_s: float) -> aiohttp.ClientSession:
    """One client session, no connection limit (as ``bench.load``'s)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
    )


def client(
    http: aiohttp.ClientSession,
    url: str,
    deltas: int,
    rate: float,
    profile: Profile = "words",
    config_id: str | None = None,
) -> Client:
    body: dict[str, Any] = request_body(deltas, rate, profile)
    if config_id is not None:
        body["config_id"] = config_id  # railproxy removes it before the upstream
    return Client(http, url, body, expected_text(profile, deltas), None)


def content_blocked(e: StreamError) -> bool:
    return (
        str(e) == "error_event"
        and isinstance(e.detail, dict)
        and (e.detail.get("code") == "content_blocked")
    )


async def _one(c: Client, canary: bool, tally: Tally) -> None:
    try:
        await c.one()
    except FAILURES as e:
        if canary and isinstance(e, StreamError) and content_blocked(e):
            tally.blocked += 1
        else:
            tally.errors[_error_kind(e)] += 1
        return
    if canary:
        tally.errors["canary_not_blocked"] += 1
    else:
        tally.ok += 1


@dataclass(frozen=True)
class SoakLoad:
    url: str
    streams: int
    concurrency: int
    deltas: int
    configs: tuple[str, ...]
    canary_every: int  # 0: no canaries


async def soak(http: aiohttp.ClientSession, load: SoakLoad, tally: Tally) -> None:
    """Run the soak's streams, counting into ``tally`` as they finish."""
    clients = {
        (cid, profile): client(http, load.url, load.deltas, 0.0, profile, cid)
        for cid in load.configs
        for profile in ("words", "canary")
    }
    tickets = itertools.count()
    every = load.canary_every

    async def worker(i: int) -> None:
        cid = load.configs[i % len(load.configs)]
        while (k := next(tickets)) < load.streams:
            canary = every > 0 and k % every == every - 1
            tally.canaries += canary
            await _one(clients[cid, "canary" if canary else "words"], canary, tally)

    await asyncio.gather(*(worker(i) for i in range(load.concurrency)))


async def sampled(
    work: Awaitable[None], every_s: float, sample: Callable[[], Awaitable[None]]
) -> None:
    """Await ``work``, calling ``sample`` every ``every_s`` seconds meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=every_s)
        if not task.done():
            await sample()
    await task


# -- overload -----------------------------------------------------------------------------


@dataclass
class OverloadRun:
    """What ``offered`` concurrent clients got from a proxy admitting ``limit`` streams:
    ``burst_*`` from one request per client sent all at once, the rest from the sustained
    phase that follows."""

    offered: int
    burst_admitted: int = 0
    burst_refused: int = 0
    admitted: list[Sample] = field(default_factory=list)
    refused_s: list[float] = field(default_factory=list)  # send to end of each 429
    bad_refusals: int = 0  # a 429 without Retry-After or OpenAI's error shape
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)  # CPU used, by process
    other_cores: float = 0.0  # CPU used by processes outside the benchmark

    def record(self, outcome: Sample | Exception, burst: bool = False) -> Refusal | None:
        """Count one attempt; the 429 when it was refused."""
        if isinstance(outcome, Sample):
            if burst:
                self.burst_admitted += 1
            else:
                self.admitted.append(outcome)
            return None
        refusal = outcome.detail if isinstance(outcome, StreamError) else None
        if isinstance(refusal, Refusal) and refusal.status == 429:
            self.bad_refusals += not well_formed_429(refusal)
            if burst:
                self.burst_refused += 1
            else:
                self.refused_s.append(refusal.elapsed)
            return refusal
        self.errors[_error_kind(outcome)] += 1
        return None


@dataclass(frozen=True)
class OverloadLoad:
    url: str
    warm_url: str  # a GET through the proxy that is no stream (opens the connections)
    deltas: int
    rate: float
    duration_s: float
    ramp_s: float  # the sustained phase's clients start over this long
    pause_s: float | None = None  # after a 429, before trying again; None: Retry-After


def well_formed_429(r: Refusal) -> bool:
    """``Retry-After`` in whole seconds, and OpenAI's error shape with our type/code."""
    try:
        err = orjson.loads(r.body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        r.retry_after is not None
        and r.retry_after.isdigit()
        and int(r.retry_after) >= 1
        and isinstance(err, dict)
        and isinstance(err.get("message"), str)
        and "param" in err
        and err.get("type") == "rate_limit_error"
        and err.get("code") == "too_many_streams"
    )


async def _attempt(c: Client) -> Sample | Exception:
    try:
        return await c.one()
    except FAILURES as e:
        return e


async def overload(http: aiohttp.ClientSession, load: OverloadLoad, offered: int) -> OverloadRun:
    """Warm ``offered`` connections; the burst (one stream per client, all at once, until
    all end); then ``offered`` clients, started over ``ramp_s``, send streams back to back
    until ``duration_s`` has passed, pausing after each 429 (``pause_s``, or what its
    ``Retry-After`` asks)."""
    run = OverloadRun(offered)

    async def warm() -> None:
        async with http.get(load.warm_url) as resp:
            await resp.read()

    await asyncio.gather(*(warm() for _ in range(offered)))
    c = client(http, load.url, load.deltas, load.rate)
    for outcome in await asyncio.gather(*(_attempt(c) for _ in range(offered))):
        run.record(outcome, burst=True)
    started = time.perf_counter()
    deadline = started + load.duration_s

    async def worker(i: int) -> None:
        await asyncio.sleep(load.ramp_s * i / offered)
        while time.perf_counter() < deadline:
            refusal = run.record(await _attempt(c))
            if refusal is not None:
                await asyncio.sleep(_pause(load.pause_s, refusal))

    await asyncio.gather(*(worker(i) for i in range(offered)))
    run.wall_s = time.perf_counter() - started
    return run


def _pause(pause_s: float | None, refusal: Refusal) -> float:
    if pause_s is not None:
        return pause_s
    ra = refusal.retry_after
    return float(ra) if ra is not None and ra.isdigit() else 1.0
