"""What a hostile upstream's cheap bytes cost railproxy, as ratios within one run.

Two measurements on ``POST /v1/messages`` with output rails (``stream_first: false``), an
upstream scripted byte for byte and railproxy in this process, both on 127.0.0.1:

* **gzip**: the same stream of 200 000 ``ping`` events (7.2 MB) sent plain and gzipped
  (21 kB): the longest stall of the event loop (a 10 ms sleeper's lateness) and the growth
  of the process's peak RSS. Decoded a piece at a time, gzip costs what plain costs (ratio
  about 1); decoded a read at a time it stalled the loop ten times longer.
* **blocks**: streams of n and 4n ``tool_use`` blocks: the time each takes end to end.
  Linear in the blocks, the ratio is about 4 (it was about 16 when every block's end
  scanned every channel).

Run: ``python -m bench.hostile_cost`` (about half a minute on 2 cores).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from proxy.app import create_app
from proxy.run.server import bound_port
from proxy.settings import Settings

BODY = {"model": "m", "max_tokens": 9, "stream": True}
BODY["messages"] = [{"role": "user", "content": "hi"}]
PINGS = 200_000
BLOCKS = 4_000


def event(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + json.dumps(obj).encode() + b"\n\n"


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m"}
START = event({"type": "message_start", "message": MESSAGE})
END = event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}})
END += event({"type": "message_stop"})
PING = event({"type": "ping"})


def tool_blocks(n: int) -> bytes:
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    return b"".join(
        event({"type": "content_block_start", "index": i, "content_block": block})
        + event({"type": "content_block_stop", "index": i})
        for i in range(n)
    )


def settings(upstream: str) -> Settings:
    rails = {
        "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
        "output": {"flows": ["banned"], "streaming": {"enabled": True, "stream_first": False}},
    }
    return Settings.model_validate(
        {"upstream": {"base_url": upstream + "/v1"}, "streaming": True, "rails": rails}
    )


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{bound_port(runner)}"


async def measured(run: Callable[[], Awaitable[None]]) -> tuple[float, float, float]:
    """(seconds, the longest loop stall in seconds, peak RSS growth in MB) of ``run``."""
    worst, done = 0.0, False

    async def sleeper() -> None:
        nonlocal worst
        while not done:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - t - 0.01)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    probe = asyncio.create_task(sleeper())
    start = time.monotonic()
    await run()
    seconds = time.monotonic() - start
    done = True
    await probe
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    return seconds, worst, grown


async def main() -> None:
    reply: dict[str, Any] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        out = web.StreamResponse(headers=reply["headers"])
        out.content_type = "text/event-stream"
        await out.prepare(request)
        await out.write(reply["body"])
        await out.write_eof()
        return out

    upstream = web.Application()
    upstream.router.add_post("/v1/messages", answer)
    up_runner, up_url = await serve(upstream)
    proxy_runner, proxy_url = await serve(create_app(settings(up_url)))
    timeout = aiohttp.ClientTimeout(total=600)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def stream(body: bytes, headers: dict[str, str]) -> None:
                reply.update(body=body, headers=headers)
                async with http.post(proxy_url + "/v1/messages", json=BODY) as r:
                    data = await r.read()
                assert data.endswith(b'message_stop"}\n\n'), data[-200:]

            plain = START + PING * PINGS + END
            z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            packed = z.compress(plain) + z.flush()
            rows = []
            for name, body, headers in [
                ("plain", plain, {}),
                ("gzip", packed, {"Content-Encoding": "gzip"}),
            ]:
                seconds, stall, grown = await measured(lambda b=body, h=headers: stream(b, h))
                rows.append((name, len(body), seconds, stall, grown))
            print("| pings, sent as | bytes | s | longest loop stall, s | peak RSS growth, MB |")
            print("|---|---|---|---|---|")
            for name, size, seconds, stall, grown in rows:
                print(f"| {name} | {size} | {seconds:.2f} | {stall:.3f} | {grown:.0f} |")
            print(f"\ngzip / plain loop stall: {rows[1][3] / max(rows[0][3], 1e-3):.2f}\n")
            times = []
            for n in (BLOCKS, 4 * BLOCKS):
                body = START + tool_blocks(n) + END
                seconds, _, _ = await measured(lambda b=body: stream(b, {}))
                times.append(seconds)
                print(f"{n} tool_use blocks: {seconds:.2f} s")
            print(f"4x the blocks / 1x: {times[1] / times[0]:.1f} (linear: about 4)")
    finally:
        await proxy_runner.cleanup()
        await up_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
