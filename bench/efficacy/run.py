"""The catch-rate report: the corpus streamed through the real proxy.

For each window setting (``chunk_size``/``context_size``) and each rail, one railproxy
(``create_app`` served on 127.0.0.1) in front of the fake upstream (tests/fakes), with
only that rail on the output stage. Each text is streamed as one delta per cl100k token
(the carrier sentence after enough filler words that a window boundary falls inside
it): every attack is streamed once per delta boundary inside it, the boundary of a
window falling there, so a catch counts only if the rail catches it wherever windows
cut. Benign texts are streamed once per boundary position too; any block is a false
block. Recall is per rail and evasion class; held-out cases are reported apart.

Run: ``python -m bench.efficacy`` (about 2 to 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.efficacy.corpus import RAIL_CONFIG, RAILS, Case, RailName, corpus
from bench.text import deltas as filler
from proxy.app import create_app
from proxy.run.server import bound_port
from proxy.settings import Settings
from rails.tokens import _encoding

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from fakes.upstream import FakeUpstream, Script

SETTINGS: tuple[tuple[int, int], ...] = ((200, 50), (64, 16), (32, 8), (16, 4))


def token_pieces(text: str) -> list[str]:
    """``text`` cut at cl100k token boundaries (a token ending inside a UTF-8 character
    is joined with the next one)."""
    enc = _encoding()
    out: list[str] = []
    buf = b""
    for token in enc.encode(text):
        buf += enc.decode_single_token_bytes(token)
        try:
            out.append(buf.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        buf = b""
    return out


@dataclass
class Tally:
    caught: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.caught += ok
        self.total += 1

    @property
    def rate(self) -> float:
        return self.caught / self.total if self.total else 0.0


class Proxies:
    """One railproxy per (rail, chunk, context, stream_first), in front of one fake."""

    def __init__(self, fake: FakeUpstream) -> None:
        self._fake = fake
        self._runners: dict[tuple[Any, ...], tuple[web.AppRunner, str]] = {}

    async def url(self, rail: RailName, chunk: int, context: int, stream_first: bool) -> str:
        key = (rail, chunk, context, stream_first)
        if key not in self._runners:
            settings = Settings.model_validate(
                {
                    "upstream": {"base_url": self._fake.base_url + "/v1"},
                    "streaming": True,
                    "rails": {
                        "config": {rail: RAIL_CONFIG[rail]},
                        "output": {
                            "flows": [rail],
                            "streaming": {
                                "enabled": True,
                                "chunk_size": chunk,
                                "context_size": context,
                                "stream_first": stream_first,
                            },
                        },
                    },
                }
            )
            runner = web.AppRunner(create_app(settings), handler_cancellation=True)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{bound_port(runner)}/v1/chat/completions"
            self._runners[key] = (runner, url)
        return self._runners[key][1]

    async def close(self) -> None:
        for runner, _ in self._runners.values():
            await runner.cleanup()


async def blocked(
    session: aiohttp.ClientSession, fake: FakeUpstream, url: str, pieces: list[str]
) -> bool:
    """Stream ``pieces`` through the proxy at ``url``; whether a rail blocked them."""
    fake.script = Script(text=pieces)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with session.post(url, json=body) as response:
        raw = await response.read()
    return b"Blocked by " in raw


def placements(case: Case, chunk: int) -> Iterable[list[str]]:
    """The case's token pieces after filler words and a space, once per delta boundary
    inside its core (for benign texts: at a quarter, half and three quarters of it): the
    first window closes there."""
    pieces = [" ", *token_pieces(case.text)]
    if case.attack:
        core = token_pieces(case.core)
        start = _core_start(pieces, case)
        cuts: Iterable[int] = range(start + 1, start + max(2, len(core)))
    else:
        cuts = sorted({max(1, len(pieces) * q // 4) for q in (1, 2, 3)})
    for at in cuts:
        lead = max(0, chunk - at)
        yield list(filler("words", lead)) + pieces if lead else pieces


def _core_start(pieces: list[str], case: Case) -> int:
    """The index of the piece where the core starts (where the text before it ends)."""
    before = case.text.find(case.core)
    chars = 0
    for i, piece in enumerate(pieces[1:], 1):
        if chars >= before:
            return i
        chars += len(piece)
    return 1


def core_tokens(case: Case) -> int:
    return len(token_pieces(case.core))


async def measure(
    cases: list[Case], settings: Iterable[tuple[int, int]], stream_first: bool
) -> dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]]:
    fake = FakeUpstream()
    await fake.start()
    proxies = Proxies(fake)
    results: dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for chunk, context in settings:
                table = results[(chunk, context)] = collections.defaultdict(Tally)
                for case in cases:
                    url = await proxies.url(case.rail, chunk, context, stream_first)
                    for pieces in placements(case, chunk):
                        hit = await blocked(session, fake, url, pieces)
                        table[(case.rail, case.evasion, case.held_out)].add(hit)
    finally:
        await proxies.close()
        await fake.close()
    return results


def _pct(t: Tally) -> str:
    return f"{100 * t.rate:.0f}%" if t.total else "-"


def report(results: dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]]) -> str:
    settings = list(results)
    head = " | ".join(f"{c}/{x}" for c, x in settings)
    lines = [
        f"| rail | evasion class | longest attack (tokens) | {head} |",
        "|---|---|---:|" + "---:|" * len(settings),
    ]
    classes = sorted({(r, e) for table in results.values() for (r, e, _) in table})
    longest = {(c.rail, c.evasion): 0 for c in corpus()}
    for c in corpus():
        if c.attack:
            longest[(c.rail, c.evasion)] = max(longest[(c.rail, c.evasion)], core_tokens(c))
    for held in (False, True):
        label = "held-out" if held else "tuned"
        for rail in RAILS:
            for r, evasion in classes:
                if r != rail or evasion == "benign":
                    continue
                cells = [_pct(results[s].get((rail, evasion, held), Tally())) for s in settings]
                if any(c != "-" for c in cells):
                    n = longest[(rail, evasion)]
                    lines.append(f"| {rail} ({label}) | {evasion} | {n} | {' | '.join(cells)} |")
        for rail in RAILS:
            cells = [_pct(results[s].get((rail, "benign", held), Tally())) for s in settings]
            row = " | ".join(cells)
            lines.append(f"| {rail} ({label}) | **false blocks** (benign) | | {row} |")
    return "\n".join(lines)


def summary(results: dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]]) -> str:
    lines = ["| setting | recall, tuned | recall, held-out | false blocks | streams |"]
    lines.append("|---|---:|---:|---:|---:|")
    for (chunk, context), table in results.items():
        tuned = _sum(t for (_, e, h), t in table.items() if e != "benign" and not h)
        held = _sum(t for (_, e, h), t in table.items() if e != "benign" and h)
        benign = _sum(t for (_, e, _), t in table.items() if e == "benign")
        streams = tuned.total + held.total + benign.total
        lines.append(
            f"| {chunk}/{context} | {_pct(tuned)} ({tuned.caught}/{tuned.total}) "
            f"| {_pct(held)} ({held.caught}/{held.total}) "
            f"| {_pct(benign)} ({benign.caught}/{benign.total}) | {streams} |"
        )
    return "\n".join(lines)


def per_rail(results: dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]]) -> str:
    """Recall per rail (all its classes), tuned and held-out, and attacks longer than
    context_size tokens as streamed left out (the goal's scope)."""
    settings = list(results)
    head = " | ".join(f"{c}/{x}" for c, x in settings)
    lines = [f"| rail | part | {head} |", "|---|---|" + "---:|" * len(settings)]
    for rail in RAILS:
        for held in (False, True):
            cells = []
            for s in settings:
                t = _sum(
                    v
                    for (r, e, h), v in results[s].items()
                    if r == rail and e != "benign" and h is held
                )
                cells.append(f"{_pct(t)}")
            lines.append(f"| {rail} | {'held-out' if held else 'tuned'} | {' | '.join(cells)} |")
    return "\n".join(lines)


def below(results: dict[tuple[int, int], dict[tuple[RailName, str, bool], Tally]]) -> str:
    """The classes caught less than always at the first setting, with their length."""
    first = next(iter(results))
    longest: dict[tuple[str, str], int] = {}
    for c in corpus():
        if c.attack:
            key = (c.rail, c.evasion)
            longest[key] = max(longest.get(key, 0), core_tokens(c))
    rows = [
        f"{rail} {evasion} ({'held-out' if held else 'tuned'}): {_pct(t)}, "
        f"attack up to {longest[(rail, evasion)]} tokens"
        for (rail, evasion, held), t in sorted(results[first].items())
        if evasion != "benign" and t.caught < t.total
    ]
    return "\n".join(f"- {r}" for r in rows) or "- none"


def _sum(tallies: Iterable[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        out.caught += t.caught
        out.total += t.total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200/50 only")
    parser.add_argument("--hold", action="store_true", help="stream_first: false")
    args = parser.parse_args()
    settings = SETTINGS[:1] if args.quick else SETTINGS
    t0 = time.perf_counter()
    results = asyncio.run(measure(corpus(), settings, stream_first=not args.hold))
    mode = "false" if args.hold else "true"
    print(f"Catch rate through railproxy (stream_first: {mode}), chunk_size/context_size:\n")
    print(summary(results))
    print("\nRecall per rail:\n")
    print(per_rail(results))
    print(f"\nBelow 100% at {SETTINGS[0][0]}/{SETTINGS[0][1]}:\n")
    print(below(results))
    print("\nPer evasion class:\n")
    print(report(results))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
