"""The file-descriptor leak check of ``no_leaks`` catches leaks, and only leaks.

Each test leaks something on purpose and calls the checker (``open_fds`` / ``fd_leaks`` /
``settle``) directly, then cleans up and checks again; the last one runs the real
``no_leaks`` fixture in a child pytest on a test that leaks a socket, and expects that
test to error in teardown.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from fakes.faults import Fault, FaultKind
from fakes.upstream import FakeUpstream, Script
from integration.conftest import chat_body, fd_leaks, open_fds, settle
from proxy.app import create_app
from proxy.run.server import bound_port
from proxy.settings import Settings
from proxy.state import UPSTREAM

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not open_fds(), reason="needs /proc/self/fd (Linux)")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_socket_left_open_to_the_upstream_is_reported(fake: FakeUpstream) -> None:
    baseline = open_fds()
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(fake.base_url))
    try:
        leaks = await settle(lambda: fd_leaks(baseline), seconds=0.2)
        assert len(leaks) == 2  # our end, and the fake's end (it runs in this process)
        assert f"-> 127.0.0.1:{port_of(fake.base_url)} ESTABLISHED" in leaks[0] + leaks[1]
    finally:
        writer.close()
        await writer.wait_closed()
    assert await settle(lambda: fd_leaks(baseline)) == []


async def test_a_file_left_open_is_reported() -> None:
    baseline = open_fds()
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert fd_leaks(baseline) == [f"fd {fd} -> {os.devnull}"]
    finally:
        os.close(fd)
    assert fd_leaks(baseline) == []


async def start_proxy(fake: FakeUpstream) -> tuple[web.AppRunner, str]:
    """The ``proxy`` fixture's steps, by hand, so the test can tear the proxy down itself."""
    app = create_app(Settings.model_validate({"upstream": {"base_url": fake.base_url + "/v1"}}))
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{bound_port(runner)}"


async def test_pooled_connections_are_not_leaks_once_the_proxy_is_gone(
    fake: FakeUpstream,
) -> None:
    """The sound definition: baseline before the proxy, check after its teardown. While it
    runs, the pools hold keep-alive sockets on purpose (the check would see them)."""
    baseline = open_fds()
    runner, base = await start_proxy(fake)
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                async with client.post(base + "/v1/chat/completions", json=chat_body()) as r:
                    assert r.status == 200
                    await r.read()
            pooled = fd_leaks(baseline)
            assert sum("ESTABLISHED" in leak for leak in pooled) >= 4  # both pools, both ends
    finally:
        await runner.cleanup()
    assert await settle(lambda: fd_leaks(baseline)) == []


async def test_a_leaked_fd_of_a_requests_upstream_connection_is_reported(
    fake: FakeUpstream,
) -> None:
    """A descriptor of a request's upstream connection that outlives the proxy (a dup
    nobody closes) keeps that connection open after the proxy's teardown: reported."""
    fake.script = Script(fault=Fault(FaultKind.HANG_AFTER, after=1))  # the stream stays open
    baseline = open_fds()
    runner, _ = await start_proxy(fake)
    leaked = -1
    try:
        app = runner.app
        assert isinstance(app, web.Application)
        url = fake.base_url + "/v1/chat/completions"
        async with app[UPSTREAM].session.post(url, json=chat_body()) as resp:
            assert resp.connection is not None
            assert resp.connection.transport is not None
            leaked = os.dup(resp.connection.transport.get_extra_info("socket").fileno())
        await runner.cleanup()
        leaks = await settle(lambda: fd_leaks(baseline), seconds=0.3)
        ours = [leak for leak in leaks if leak.startswith(f"fd {leaked} -> socket:")]
        assert len(ours) == 1
        assert f"-> 127.0.0.1:{port_of(fake.base_url)} ESTABLISHED" in ours[0]
        assert len(leaks) == 2  # and the fake's end, which the leak keeps open
    finally:
        await runner.cleanup()
        if leaked >= 0:
            os.close(leaked)
    assert await settle(lambda: fd_leaks(baseline)) == []


LEAKY_TEST = """
import socket

import pytest

from integration.conftest import _fds_back_to_baseline, chat_body, fake, no_leaks, proxy
from integration.conftest import started_apps

pytestmark = pytest.mark.usefixtures("no_leaks")
LEFT_OPEN = []


async def test_clean(fake, proxy):
    p = await proxy()
    status, _ = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200


async def test_leaky(fake, proxy):
    p = await proxy()
    status, _ = await p.post_stream("/v1/chat/completions", chat_body())
    assert status == 200
    port = int(fake.base_url.rsplit(":", 1)[1])
    LEFT_OPEN.append(socket.create_connection(("127.0.0.1", port)))


def teardown_module():
    for sock in LEFT_OPEN:
        sock.close()
"""


async def test_no_leaks_fails_a_test_that_leaks_a_socket(tmp_path: Path) -> None:
    """The real fixture, in a child pytest: the leaky test errors in teardown, naming the
    socket; the clean one passes (so the error is the leak, not the harness)."""
    test = tmp_path / "test_leaky.py"
    test.write_text(LEAKY_TEST)
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"),
        *("-c", str(ROOT / "pyproject.toml")),
        *("--rootdir", str(ROOT), str(test)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(60):
            out, _ = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    report = out.decode(errors="replace")
    assert child.returncode == 1, report
    assert "2 passed, 1 error" in report, report
    assert "ERROR at teardown of test_leaky" in report, report
    assert "ESTABLISHED" in report, report
