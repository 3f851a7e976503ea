"""``railproxy serve`` as a real process: SIGTERM drains, SIGHUP reloads, workers share a port.

The fake upstream runs in the test's event loop; railproxy runs as a subprocess whose log
(JSON lines on stderr) goes to a file the tests poll. Every wait is bounded, and every
process started here is stopped (workers included) whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from fakes.upstream import FakeUpstream, Script

RAILPROXY = [sys.executable, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]
LISTENING = re.compile(r'"url": ?"http://127\.0\.0\.1:(\d+)"')


class Railproxy:
    """One ``railproxy serve --config FILE --host 127.0.0.1 --port 0`` process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *RAILPROXY,
                    "serve",
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_log(self, pattern: str, count: int = 1, within_s: float = 15) -> list[str]:
        """Wait until ``pattern`` matched ``count`` log lines; return the matches' group 1
        (or whole match)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            found = [m.group(m.re.groups and 1) for m in re.finditer(pattern, self.text())]
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{pattern!r} x{count} not logged; log:\n{self.text()}")

    async def started(self, workers: int = 1) -> Railproxy:
        self.port = int((await self.wait_log(LISTENING.pattern, workers))[0])
        return self

    async def exit_code(self, within_s: float) -> int:
        deadline = time.monotonic() + within_s
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {within_s}s; log:\n{self.text()}")
            await asyncio.sleep(0.05)
        return code

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        for p in [*self.children(), psutil.Process(self.proc.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait(timeout=10)


Start = Callable[..., Awaitable[Railproxy]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as f:
        yield f


@pytest.fixture
async def start(tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Start]:
    """``await start(server={...}, rails=...)``: write a config and start railproxy on it."""
    started: list[Railproxy] = []

    async def go(workers: int = 1, config: str = "", **server: object) -> Railproxy:
        path = tmp_path / "config.yaml"
        if not config:
            fields = ", ".join(f"{k}: {v}" for k, v in {"workers": workers, **server}.items())
            config = f"server: {{{fields}}}\nupstream: {{base_url: '{fake.base_url}/v1'}}\n"
        path.write_text(config)
        proc = Railproxy(path, tmp_path / f"railproxy-{len(started)}.log")
        started.append(proc)
        return await proc.started(workers)

    try:
        yield go
    finally:
        for proc in started:
            if proc.proc.poll() is None or proc.children():
                proc.kill()


def chat(stream: bool = True) -> dict[str, object]:
    return {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def refused(url: str) -> bool:
    async with aiohttp.ClientSession() as s:
        try:
            async with s.get(url + "/healthz"):
                return False
        except aiohttp.ClientConnectorError:
            return True


async def test_sigterm_lets_a_stream_finish_and_refuses_new_connections(
    start: Start, fake: FakeUpstream
) -> None:
    fake.script = Script(text=[f" t{i}" for i in range(12)], tokens_per_s=10)
    rp = await start(drain_timeout_s=10, reload_poll_s=0)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
    async with session as s, s.post(rp.url + "/v1/chat/completions", json=chat()) as resp:
        first = await resp.content.readline()
        rp.signal(signal.SIGTERM)
        await rp.wait_log(r'"msg": ?"draining"')
        assert await refused(rp.url)
        body = first + await resp.read()
    assert body == fake.sent[0]
    assert body.endswith(b"data: [DONE]\n\n")
    assert await rp.exit_code(within_s=5) == 0
    assert re.search(r'"cut": ?0', rp.text())


async def test_sigterm_ends_a_stream_that_outlives_the_drain_timeout(
    start: Start, fake: FakeUpstream
) -> None:
    fake.script = Script(text=[f" t{i}" for i in range(200)], tokens_per_s=10)
    rp = await start(drain_timeout_s=0.5, reload_poll_s=0)
    t0 = time.monotonic()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
    async with session as s, s.post(rp.url + "/v1/chat/completions", json=chat()) as resp:
        await resp.content.readline()
        rp.signal(signal.SIGTERM)
        body = await resp.read()
    # At the deadline the stream ends well-formed: an error event saying retry, then [DONE].
    assert b'"code":"server_shutdown"' in body
    assert body.endswith(b"data: [DONE]\n\n")
    assert await rp.exit_code(within_s=5) == 0
    assert time.monotonic() - t0 < 5
    async with asyncio.timeout(3):
        await fake.wait_disconnect()  # the upstream request was closed: generation stops
    assert re.search(r'"cut": ?0', rp.text())


async def test_sighup_reloads_a_valid_config_and_refuses_an_invalid_one(
    start: Start, fake: FakeUpstream, tmp_path: Path
) -> None:
    plain = f"server: {{reload_poll_s: 0}}\nupstream: {{base_url: '{fake.base_url}/v1'}}\n"
    rp = await start(config=plain)
    config = tmp_path / "config.yaml"
    config.write_text(plain + "rails: {output: {flows: [no_such_rail]}}\n")
    rp.signal(signal.SIGHUP)
    await rp.wait_log(r'"msg": ?"config reload refused[^"]*".*no_such_rail')
    async with aiohttp.ClientSession() as s, s.get(rp.url + "/healthz") as r:
        assert r.status == 200  # still serving, on the old config
    config.write_text(plain + "rails: {output: {flows: [secrets]}}\n")
    rp.signal(signal.SIGHUP)
    await rp.wait_log(r'"msg": ?"config reloaded"')
    rp.signal(signal.SIGTERM)
    assert await rp.exit_code(within_s=5) == 0


async def test_a_config_file_change_is_picked_up_by_polling(
    start: Start, fake: FakeUpstream, tmp_path: Path
) -> None:
    plain = f"server: {{reload_poll_s: 0.1}}\nupstream: {{base_url: '{fake.base_url}/v1'}}\n"
    rp = await start(config=plain)
    (tmp_path / "config.yaml").write_text(plain + "rails: {output: {flows: [secrets]}}\n")
    await rp.wait_log(r'"msg": ?"config reloaded"', within_s=5)
    rp.signal(signal.SIGTERM)
    assert await rp.exit_code(within_s=5) == 0


def is_dir(path: str) -> bool:
    return Path(path).is_dir()


def listening_ports(proc: psutil.Process) -> set[int]:
    return {c.laddr.port for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


async def test_two_workers_share_the_port_and_stop_together(
    start: Start, fake: FakeUpstream
) -> None:
    rp = await start(workers=2, drain_timeout_s=5, reload_poll_s=0)
    workers = rp.children()
    assert len(workers) == 2
    assert all(rp.port in listening_ports(w) for w in workers)
    assert rp.port not in listening_ports(psutil.Process(rp.proc.pid))
    metrics_dirs = {w.environ()["PROMETHEUS_MULTIPROC_DIR"] for w in workers}
    assert len(metrics_dirs) == 1
    (metrics_dir,) = metrics_dirs
    assert is_dir(metrics_dir)
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
    async with aiohttp.ClientSession(connector=connector) as s:
        for _ in range(20):
            async with s.get(rp.url + "/healthz") as r:
                assert r.status == 200
        async with s.post(rp.url + "/v1/chat/completions", json=chat()) as r:
            assert (await r.read()).endswith(b"data: [DONE]\n\n")
        # Whichever worker answers a scrape, it counts every worker's requests.
        for _ in range(6):
            async with s.get(rp.url + "/metrics") as r:
                scrape = await r.text()
            assert 'railproxy_requests_total{code="200",route="/healthz"} 20.0' in scrape
            assert re.search(r"railproxy_time_to_first_token_seconds_count\{[^}]*\} 1\.0", scrape)
    rp.signal(signal.SIGTERM)
    assert await rp.exit_code(within_s=8) == 0
    assert not any(w.is_running() for w in workers)
    assert not is_dir(metrics_dir)


def listen_queue(port: int) -> list[str]:
    """``ss``'s State, Recv-Q and Send-Q (the backlog) of the socket listening on ``port``."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.split()[:3]


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
async def test_listen_backlog_is_the_configured_one(start: Start) -> None:
    """A burst of new clients is queued by the kernel, not refused into SYN retries: the
    listening socket's queue (ss's Send-Q) is server.backlog (default 2048, capped by
    net.core.somaxconn)."""
    somaxconn = int(await asyncio.to_thread(Path("/proc/sys/net/core/somaxconn").read_text))
    for backlog, expected in ((None, min(2048, somaxconn)), (300, 300)):
        proc = await (start() if backlog is None else start(backlog=backlog))
        assert await asyncio.to_thread(listen_queue, proc.port) == ["LISTEN", "0", str(expected)]
        proc.kill()


async def test_serve_logs_the_routes_it_guards_passes_and_refuses(start: Start) -> None:
    """At start, one log line names the guarded, passed-through and refused routes."""
    proc = await start()
    lines = [json.loads(x) for x in proc.text().splitlines() if x.startswith("{")]
    [line] = [x for x in lines if x.get("msg") == "routes"]
    assert "POST /v1/chat/completions" in line["guarded"]
    assert "GET /v1/models" in line["passthrough"]
    assert line["refused"]
    proc.signal(signal.SIGTERM)
    assert await proc.exit_code(10) == 0
