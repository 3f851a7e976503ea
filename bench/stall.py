"""``/healthz`` latency while railproxy handles 8 MB prompts, against idle (issue 12).

One invocation, real processes on loopback (``bench/proc.py``): the fake upstream
(``bench/upstream.py``, which reports no usage, so railproxy counts each prompt's tokens
itself) and railproxy twice, with the same config: input rails regex+pii+secrets+blocklist
(they judge the whole prompt), output rails regex+pii+secrets on the streamed answer.

- **offload**: ``railproxy serve`` as shipped (texts over ``rails.offload.INLINE_CHARS``
  counted and judged in the worker process);
- **inline**: the same through ``bench/stall_inline.py``, which handles every text on the
  event loop, as railproxy did before (the reference).

For each, after one unmeasured 8 MB request (it starts the worker process): ``--probes``
``GET /healthz``, one at a time, ``--pause`` apart, on an idle proxy; then the same probes
while a second client sends ``--big`` 8 MB prompts one after another (``stream: true``, 16
deltas, the words of ``bench/text.py``). A loaded probe counts only if an 8 MB request was
in flight when it was sent. Latency is from sending a probe to reading its whole answer.
*Other load* is CPU used meanwhile by processes outside the benchmark (the upstream,
railproxy and its worker, and this client are the benchmark): near 0 means a quiet box.

Run: ``python -m bench.stall`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import yaml

from bench.proc import CpuUse, Service, Services, free_port, wait_for_quiet
from bench.run import PY, railproxy_command
from bench.scenarios import CHUNK_SIZE, CONTEXT_SIZE, LOCAL_FLOWS, LOCAL_RAIL_CONFIG
from bench.text import deltas

PROMPT_BYTES = 8_000_000
DELTAS = 16


@dataclass(frozen=True)
class Row:
    proxy: str
    phase: str
    latencies_ms: list[float]
    big_s: list[float]
    other_cores: float

    def cells(self) -> list[str]:
        lat = sorted(self.latencies_ms)
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        big = f"{statistics.mean(self.big_s):.2f}" if self.big_s else "-"
        return [
            self.proxy,
            self.phase,
            str(len(lat)),
            f"{statistics.median(lat):.2f}",
            f"{p99:.2f}",
            f"{lat[-1]:.2f}",
            big,
            f"{self.other_cores:.2f}",
        ]


HEADER = ["railproxy", "phase", "probes", "p50 ms", "p99 ms", "max ms", "8 MB request s"]
HEADER.append("other load (cores)")


def prompt() -> str:
    words = "".join(deltas("words", 1000))
    return (words * (PROMPT_BYTES // len(words) + 1))[:PROMPT_BYTES]


def big_body() -> bytes:
    return orjson.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": prompt()}],
            "stream": True,
            "max_tokens": DELTAS,
            "bench": {"rate": 0, "profile": "words"},
        }
    )


def proxy_config(port: int, upstream_port: int) -> dict[str, Any]:
    flows = [*LOCAL_FLOWS, "banned"]
    config = {**LOCAL_RAIL_CONFIG, "banned": {"type": "blocklist", "words": ["project falcon"]}}
    streaming = {"enabled": True, "chunk_size": CHUNK_SIZE, "context_size": CONTEXT_SIZE}
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "upstream": {"base_url": f"http://127.0.0.1:{upstream_port}/v1"},
        "logging": {"level": "warning"},
        "streaming": True,
        "rails": {
            "config": config,
            "input": {"flows": flows},
            "output": {"flows": list(LOCAL_FLOWS), "streaming": streaming},
        },
    }


# -- measuring ---------------------------------------------------------------------------


async def _probe(http: aiohttp.ClientSession, url: str) -> float:
    t0 = time.perf_counter()
    async with http.get(url) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"/healthz answered {r.status}")
    return (time.perf_counter() - t0) * 1000


async def _big(http: aiohttp.ClientSession, url: str, body: bytes) -> float:
    t0 = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=body, headers=headers) as r:
        raw = await r.read()
    if r.status != 200 or not raw.endswith(b"data: [DONE]\n\n"):
        raise RuntimeError(f"the 8 MB request failed: {r.status} {raw[-300:]!r}")
    return time.perf_counter() - t0


async def _idle(base: str, probes: int, pause: float) -> list[float]:
    async with aiohttp.ClientSession() as http:
        await _probe(http, base + "/healthz")  # connect
        out = []
        for _ in range(probes):
            out.append(await _probe(http, base + "/healthz"))
            await asyncio.sleep(pause)
        return out


async def _loaded(
    base: str, body: bytes, big: int, pause: float
) -> tuple[list[float], list[float]]:
    """Probe while ``big`` 8 MB requests run one after another; (probe ms, big s)."""
    in_flight = False
    durations: list[float] = []
    latencies: list[float] = []

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal in_flight
        for _ in range(big):
            in_flight = True
            durations.append(await _big(http, base + "/v1/chat/completions", body))
            in_flight = False

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as big_http, aiohttp.ClientSession() as http:
        await _probe(http, base + "/healthz")  # connect
        task = asyncio.create_task(sender(big_http))
        while not task.done():
            loaded = in_flight
            ms = await _probe(http, base + "/healthz")
            if loaded:
                latencies.append(ms)
            await asyncio.sleep(pause)
        await task
    return latencies, durations


def measure(
    name: str,
    cmd: Sequence[str],
    upstream: tuple[int, int],
    workdir: Path,
    args: argparse.Namespace,
) -> list[Row]:
    """Start railproxy (``cmd``) in front of the upstream (port, pid); its rows."""
    upstream_port, upstream_pid = upstream
    port = free_port()
    path = workdir / f"railproxy-{name}.yaml"
    path.write_text(yaml.safe_dump(proxy_config(port, upstream_port)), encoding="utf-8")
    full = [*cmd, "serve", "--config", str(path), "--port", str(port)]
    body = big_body()
    base = f"http://127.0.0.1:{port}"
    rows = []
    with Services() as services:
        proxy = services.add(Service(f"railproxy-{name}", full, workdir))
        proxy.start(base + "/healthz")
        asyncio.run(_loaded(base, body, 1, args.pause))  # warm-up: the worker starts
        ours = {"railproxy": proxy.pid, "upstream": upstream_pid, "bench": os.getpid()}
        children = psutil.Process(proxy.pid).children(recursive=True)
        use = CpuUse(ours | {f"child {c.pid}": c.pid for c in children})
        for phase in ("idle", "8 MB prompts"):
            wait_for_quiet(args.quiet_wait)
            use.start()
            if phase == "idle":
                latencies, big_s = asyncio.run(_idle(base, args.probes, args.pause)), []
            else:
                latencies, big_s = asyncio.run(_loaded(base, body, args.big, args.pause))
            use.stop()
            rows.append(Row(name, phase, latencies, big_s, use.other_cores))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stall", description=__doc__)
    p.add_argument("--probes", type=int, default=200, help="idle /healthz probes (200)")
    p.add_argument("--big", type=int, default=3, help="measured 8 MB requests (3)")
    p.add_argument("--pause", type=float, default=0.005, help="seconds between probes")
    p.add_argument("--quiet-wait", type=float, default=5.0, help="max wait for a quiet box")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="railproxy-stall-") as tmp, Services() as services:
        workdir = Path(tmp)
        up_port = free_port()
        cmd = [PY, "-m", "bench.upstream", "--port", str(up_port)]
        up = services.add(Service("upstream", cmd, workdir))
        up.start(f"http://127.0.0.1:{up_port}/v1/models")
        rows = measure("offload", railproxy_command(), (up_port, up.pid), workdir, args)
        inline = [PY, "-m", "bench.stall_inline"]
        rows += measure("inline", inline, (up_port, up.pid), workdir, args)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
