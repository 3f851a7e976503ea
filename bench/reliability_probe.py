"""``railproxy serve`` with a task-count probe beside it, for the soak.

railproxy exposes no count of its asyncio tasks, so the soak starts it through this
launcher instead of the console script: the same ``proxy.cli.main`` with the same
arguments, in the same kind of process, plus

- a wrapper around the event loop factory (uvloop's, else asyncio's) that keeps the loop
  ``proxy.run.server.run`` creates;
- one daemon thread serving ``GET /tasks`` on 127.0.0.1:``--probe-port`` (stdlib
  ``http.server``, one connection at a time, closed after each answer), which asks the
  loop, from a ``call_soon_threadsafe`` callback (so on the loop's own thread, between
  callbacks, itself no task), for ``len(asyncio.all_tasks(loop))``.

The probe adds one listening socket and one thread to the process, both constant; nothing
in the proxy's request path changes. Read ``/proc/<pid>/fd`` before asking the probe, not
just after: the probe's own connection may still be open for a moment after it answers.

Run: ``python -m bench.reliability_probe --probe-port N serve --config FILE ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import concurrent.futures
import contextlib
import http.server
import json
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
_loops: list[asyncio.AbstractEventLoop] = []


def _keeping(factory: LoopFactory) -> LoopFactory:
    def make() -> asyncio.AbstractEventLoop:
        loop = factory()
        _loops.append(loop)
        return loop

    return make


def capture_loops() -> None:
    """Keep every event loop created from now on (the server's is the last one)."""
    try:
        import uvloop
    except ImportError:
        asyncio.events.new_event_loop = _keeping(asyncio.events.new_event_loop)
    else:
        uvloop.new_event_loop = cast(Any, _keeping(uvloop.new_event_loop))


def count_tasks(timeout: float = 5.0) -> int | None:
    """Unfinished tasks of the last loop created, counted on its own thread; None before
    any loop, or after it closed."""
    if not _loops or _loops[-1].is_closed():
        return None
    loop = _loops[-1]
    answer: concurrent.futures.Future[int] = concurrent.futures.Future()

    def count() -> None:
        answer.set_result(len(asyncio.all_tasks(loop)))

    try:
        loop.call_soon_threadsafe(count)
    except RuntimeError:  # closed meanwhile
        return None
    return answer.result(timeout)


class _Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/tasks":
            self.send_error(404)
            return
        try:
            tasks = count_tasks()
        except concurrent.futures.TimeoutError:
            tasks = None
        body = json.dumps({"tasks": tasks, "threads": threading.active_count()}).encode()
        self.send_response(200 if tasks is not None else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_probe(port: int) -> http.server.HTTPServer:
    server = http.server.HTTPServer(("127.0.0.1", port), _Probe)
    threading.Thread(target=server.serve_forever, name="task-probe", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reliability_probe", description=__doc__)
    p.add_argument("--probe-port", type=int, required=True)
    args, rest = p.parse_known_args(argv)
    capture_loops()
    server = start_probe(args.probe_port)
    from proxy.cli import main as railproxy

    try:
        return railproxy(rest)
    finally:
        with contextlib.suppress(OSError):
            server.server_close()


if __name__ == "__main__":
    sys.exit(main())
