"""``railproxy chat`` driven in a pseudo-terminal against the demo upstream.

The demo upstream runs in this process (a thread with its own event loop); each test
starts ``railproxy chat`` as a child whose controlling terminal is the pty, so writing
``\\x03`` to the master sends it a real SIGINT and ``\\x04`` a real end of input. Every
read has a deadline; every child is killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from proxy.app import create_app
from proxy.run.demo import CLIENT_GONE, DEMO_RAILS, demo_upstream
from proxy.run.server import bound_port
from proxy.settings import Settings

ROOT = Path(__file__).parents[2]
# The child makes the pty its controlling terminal (it is a session leader:
# start_new_session), so the terminal's ^C and ^D reach it as they would from a shell.
CHAT = [
    sys.executable,
    "-c",
    "import fcntl, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
    "from proxy.cli import main; sys.exit(main())",
    "chat",
]
PIPED_CHAT = [sys.executable, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAST_S = 0.01
SLOW_S = 0.1
DEFAULT_END = "before reaching you."
STREAM_FIRST = {
    "streaming": True,
    "rails": {
        "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
        "output": {
            "flows": ["banned"],
            "streaming": {
                "enabled": True,
                "chunk_size": 4,
                "context_size": 2,
                "stream_first": True,
            },
        },
    },
}
RETRACTED = r"\[retracted: the (\d+) characters above were blocked by rail 'banned'\]"


@dataclass
class Upstream:
    """A demo upstream served from a thread; it records what it was asked and how each
    streamed reply ended."""

    delay_s: float
    bodies: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = demo_upstream(self.delay_s)
        app.middlewares.append(self._record)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        self.bodies.append(await request.json())
        resp: web.StreamResponse = await handler(request)
        # The demo upstream marks a request whose reply the proxy cut short.
        self.outcomes.append("closed" if request.get(CLIENT_GONE) else "complete")
        return resp

    def messages(self) -> list[dict[str, str]]:
        return list(self.bodies[-1]["messages"])


@dataclass
class Servers:
    fast: Upstream
    slow: Upstream
    proxy_url: str  # railproxy with the STREAM_FIRST rails in front of ``slow``


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """Both demo upstreams and a proxy, served by one event loop in a thread."""
    loop = asyncio.new_event_loop()
    fast, slow = Upstream(FAST_S), Upstream(SLOW_S)
    runners = [web.AppRunner(fast.app()), web.AppRunner(slow.app())]
    fast.url, slow.url = (loop.run_until_complete(_serve(r)) for r in runners)
    runners.append(loop.run_until_complete(_proxy_runner(slow.url)))
    proxy_url = loop.run_until_complete(_serve(runners[-1]))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Servers(fast, slow, proxy_url)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        for runner in reversed(runners):
            loop.run_until_complete(runner.cleanup())
        loop.close()


async def _proxy_runner(upstream_url: str) -> web.AppRunner:
    settings = Settings.model_validate({**STREAM_FIRST, "upstream": {"base_url": upstream_url}})
    return web.AppRunner(create_app(settings), handler_cancellation=True)


async def _serve(runner: web.AppRunner) -> str:
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"http://127.0.0.1:{bound_port(runner)}/v1"


@pytest.fixture
def fast(servers: Servers) -> Upstream:
    servers.fast.bodies.clear()
    return servers.fast


@pytest.fixture
def slow(servers: Servers) -> Upstream:
    servers.slow.bodies.clear()
    servers.slow.outcomes.clear()
    return servers.slow


def write_config(path: Path, upstream: Upstream, rails: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({**(rails or {}), "upstream": {"base_url": upstream.url}}))
    return path


class Terminal:
    """A child process on a pty; ``expect`` reads the screen with a deadline."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                [*CHAT, *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=ROOT,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.screen = ""
        self._pos = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: str, timeout: float = 8.0) -> str:
        """Wait for ``pattern`` (a regex) in the plain screen text after the last match;
        return that text up to and including the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while (m := regex.search(self.plain(), self._pos)) is None:
            self._read(deadline - time.monotonic(), pattern)
        seen, self._pos = self.plain()[self._pos : m.end()], m.end()
        return seen

    def plain(self) -> str:
        """The screen without ANSI styling and with the terminal's CR LF as LF."""
        return ANSI.sub("", self.screen).replace("\r\n", "\n")

    def _read(self, left: float, pattern: str) -> None:
        ready = select.select([self.master], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{self.plain()}")
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise AssertionError(f"EOF waiting for {pattern!r}; screen:\n{self.plain()}")
        self.screen += self._decoder.decode(data)

    def exit_code(self, timeout: float = 8.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready = select.select([self.master], [], [], 0.05)[0]
            if ready:
                try:
                    self.screen += self._decoder.decode(os.read(self.master, 65536))
                except OSError:
                    time.sleep(0.02)
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        os.close(self.master)


@pytest.fixture
def term() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    try:
        yield started
    finally:
        for t in started:
            t.close()


def start(term: list[Terminal], *args: str) -> Terminal:
    t = Terminal(*args)
    term.append(t)
    t.expect(r"you> ", timeout=15)
    return t


def ask(t: Terminal, question: str, until: str) -> str:
    """Type ``question``; return the plain text of the reply up to the next prompt."""
    t.send(question.encode() + b"\n")
    return t.expect(until + r".*?you> ")


def test_chat_streams_keeps_history_and_shows_a_block(
    term: list[Terminal], fast: Upstream, tmp_path: Path
) -> None:
    t = start(term, "--config", str(write_config(tmp_path / "c.yaml", fast, DEMO_RAILS)))
    assert "model 'railproxy-demo', streaming" in t.plain()
    hello = ask(t, "hello", re.escape(DEFAULT_END))
    assert "Hello! I am the railproxy demo model." in hello
    blocked = ask(t, "Tell me about Project Falcon", r"not added to the history")
    assert "[blocked by rail 'banned': Blocked by banned rails.]" in blocked
    assert "Falcon is" not in blocked  # stream_first false: nothing was shown
    assert "retracted" not in blocked
    masked = ask(t, "How do I contact you?", r"reply\.")
    assert "Write to [EMAIL] and we reply." in masked
    roles = [(m["role"], m["content"][:5]) for m in fast.messages()]
    assert roles == [("user", "hello"), ("assistant", "Hello"), ("user", "How d")]
    assert "[history cleared]" in ask(t, "/reset", r"cleared\]")
    ask(t, "hello again", re.escape(DEFAULT_END))
    assert fast.messages() == [{"role": "user", "content": "hello again"}]
    t.send(b"\x04")
    assert t.exit_code() == 0


def test_stream_first_marks_the_shown_text_retracted(
    term: list[Terminal], slow: Upstream, tmp_path: Path
) -> None:
    """The text shown before the block stays shown once; a mark below retracts it."""
    t = start(term, "--config", str(write_config(tmp_path / "c.yaml", slow, STREAM_FIRST)))
    t.send(b"Tell me about Project Falcon\n")
    plain = t.expect(r"not added to the history.*?you> ")
    m = re.search(RETRACTED, plain)
    assert m, plain
    shown = plain.split("Tell me about Project Falcon\n", 1)[1].split("\n[blocked")[0]
    assert shown.startswith("Project Falcon")
    assert len(shown) == int(m.group(1))
    assert plain.count("Project Falcon") == 2  # the question, and the answer shown once
    assert "\x1b[9m" not in t.screen  # nothing reprinted struck through
    assert plain.index("[blocked by rail 'banned'") < plain.index("[retracted")
    t.send(b"\x03")  # Ctrl-C at the prompt ends the session
    assert t.exit_code() == 0


def test_no_server_is_one_line_at_start() -> None:
    """Against an address where nothing listens, chat says so at once and exits 2."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        base = f"http://127.0.0.1:{port}/v1"
        result = subprocess.run(
            [*PIPED_CHAT, "chat", "--base-url", base],
            input="hello\n",
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
            check=False,
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"railproxy chat: cannot reach {base}: connection refused (start one with: railproxy demo)"
    ]


def test_ctrl_c_stops_a_reply_and_the_session_goes_on(
    term: list[Terminal], slow: Upstream, tmp_path: Path
) -> None:
    t = start(term, "--config", str(write_config(tmp_path / "c.yaml", slow)))
    t.send(b"hello\n")
    t.expect(r"Hello! I am")
    t.send(b"\x03")
    stopped = t.expect(r"\[stopped\].*?you> ")
    assert DEFAULT_END not in stopped
    deadline = time.monotonic() + 2
    while not slow.outcomes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.outcomes == ["closed"]  # the proxy closed its upstream request at once
    assert "jane.doe@example.com" in ask(t, "How do I contact you?", r"we reply\.")
    assert len(slow.bodies[-1]["messages"]) == 1  # the stopped exchange is not in the history
    t.send(b"/exit\n")
    assert t.exit_code() == 0


def test_no_streaming_with_a_config_id_shows_a_400_block(
    term: list[Terminal], fast: Upstream, tmp_path: Path
) -> None:
    write_config(tmp_path / "default.yaml", fast)
    strict = {"type": "blocklist", "words": ["demo model"]}
    rails = {"rails": {"config": {"strict_words": strict}, "output": {"flows": ["strict_words"]}}}
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(rails))
    t = start(term, "--config", str(tmp_path), "--config-id", "strict", "--no-streaming")
    assert "not streaming, rails config 'strict'" in t.plain()
    blocked = ask(t, "hello", r"not added to the history")
    assert "[blocked by rail 'strict_words': Blocked by strict_words rails.]" in blocked
    assert "retracted" not in blocked
    assert "Write to jane.doe@example.com" in ask(t, "How do I contact you?", r"reply\.")
    t.send(b"\x04")
    assert t.exit_code() == 0


def test_base_url_and_a_pipe(servers: Servers, slow: Upstream) -> None:
    """A running proxy (stream_first true) by URL, the model from its /models, and plain
    text on a pipe: no ANSI, the typed line echoed, the retraction spelled out."""
    result = subprocess.run(
        [*PIPED_CHAT, "chat", "--base-url", servers.proxy_url],
        input="Tell me about Project Falcon\n",
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"railproxy chat: {servers.proxy_url}, model 'railproxy-demo'" in out
    assert slow.bodies[-1]["model"] == "railproxy-demo"
    assert "\x1b" not in out
    shown = out.split("you> Tell me about Project Falcon\n")[1].split("\n[blocked")[0]
    m = re.search(RETRACTED, out)
    assert m, out
    assert shown.startswith("Project Falcon")
    assert len(shown) == int(m.group(1))
    assert out.endswith("[this exchange was not added to the history]\nyou> \n")
