"""``railproxy chat``: an interactive terminal chat through railproxy.

It keeps the conversation history, streams each reply as it arrives and shows an abort
for what it is: which rail, its message, and (when text had already been shown, as with
``stream_first: true``) which text is retracted. Blocked, failed and stopped replies are
not added to the history. Ctrl-C stops the reply being streamed; at the prompt, Ctrl-C or
Ctrl-D ends the session. With ``--config`` the proxy runs in this process on a free
loopback port; with ``--base-url`` it talks to a running railproxy or any OpenAI-compatible
server (``OPENAI_API_KEY``, when set, is sent as the bearer token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

import aiohttp
from aiohttp import web

from proxy.app import create_app
from proxy.chat import render
from proxy.chat.wire import End, Target, Text, fetch_model, probe, stream_reply, whole_reply
from proxy.configs import HEADER
from proxy.loader import LoadedConfig, load_config
from proxy.run.server import bound_port
from proxy.settings import SettingsError

T = TypeVar("T")
CANNOT_START = 2
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"


def main(args: argparse.Namespace) -> int:
    """Run the ``chat`` subcommand; the exit code (2: no config or no server to talk to)."""
    loaded = None
    if args.config:
        try:
            loaded = load_config(args.config)
        except (SettingsError, ValueError) as e:
            problems = e.problems if isinstance(e, SettingsError) else str(e).splitlines()
            for problem in problems:
                print(f"railproxy: {problem}", file=sys.stderr)
            return CANNOT_START
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the session starts
        return asyncio.run(_chat(args, loaded))
    return 0


async def _chat(args: argparse.Namespace, loaded: LoadedConfig | None) -> int:
    headers = _headers(args.config_id)
    async with contextlib.AsyncExitStack() as stack:
        base_url = (args.base_url or DEFAULT_BASE_URL).rstrip("/")
        if loaded is not None:
            base_url = await stack.enter_async_context(in_process_proxy(loaded))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        problem = await probe(session, base_url, headers)
        if problem is not None:
            print(f"railproxy chat: {problem}", file=sys.stderr)
            return CANNOT_START
        model = args.model or await fetch_model(session, base_url, headers)
        target = Target(base_url, model, headers)
        chat = Chat(session, target, args.streaming, LineReader(sys.stdin.fileno()), sys.stdout)
        sys.stdout.write(render.banner(base_url, model, args.streaming, args.config_id))
        await chat.run()
    return 0


def _headers(config_id: str | None) -> dict[str, str]:
    headers = {HEADER: config_id} if config_id else {}
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


@contextlib.asynccontextmanager
async def in_process_proxy(loaded: LoadedConfig) -> AsyncIterator[str]:
    """Serve the proxy for ``loaded`` on 127.0.0.1 (a free port); yield its base URL."""
    app = create_app(loaded.settings, loaded.configs)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{bound_port(runner)}/v1"
    finally:
        await runner.cleanup()


class LineReader:
    """Lines from a file descriptor without blocking the event loop: a terminal or pipe
    is watched with ``loop.add_reader``; what cannot be watched (a regular file,
    ``/dev/null``) never blocks, so it is read directly. Cancelling ``readline`` leaves no
    thread behind."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pollable = True
        self._buf = b""
        self._eof = False

    async def readline(self) -> str | None:
        """The next line without its newline; None at end of input."""
        while b"\n" not in self._buf and not self._eof:
            chunk = await self._next_chunk()
            self._eof = not chunk
            self._buf += chunk
        if not self._buf:
            return None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    async def _next_chunk(self) -> bytes:
        if self._pollable:
            try:
                await self._readable()
            except PermissionError:  # epoll refuses fds that cannot block
                self._pollable = False
        try:
            return os.read(self.fd, 65536)
        except OSError:  # e.g. the terminal hung up
            return b""

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.fd, _settle, ready)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class Reply:
    """One reply as it arrives: the text shown so far and how it ended."""

    shown: str = ""
    end: End | None = None


@dataclass
class Chat:
    """The session: prompt, history, one reply at a time, Ctrl-C handling."""

    session: aiohttp.ClientSession
    target: Target
    streaming: bool
    reader: LineReader
    out: TextIO
    history: list[dict[str, str]] = field(default_factory=list)
    _current: asyncio.Task[Any] | None = field(default=None, init=False, repr=False)

    @property
    def tty(self) -> bool:
        return self.out.isatty()

    async def run(self) -> None:
        """Prompt and answer until /exit, end of input or Ctrl-C at the prompt."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.interrupt)  # Unix, as the server is
        try:
            while (line := await self._prompt()) is not None and line != "/exit":
                await self._handle(line)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def interrupt(self) -> None:
        """SIGINT: cancel what is running (the reply, or the prompt, which ends the chat)."""
        if self._current is not None:
            self._current.cancel()

    async def _prompt(self) -> str | None:
        self._write(render.PROMPT)
        line = await self._interruptible(self.reader.readline())
        if line is None:
            self._write("\n")
        elif not os.isatty(self.reader.fd):
            self._write(line + "\n")  # echo what a pipe sends, so transcripts read well
        return None if line is None else line.strip()

    async def _handle(self, line: str) -> None:
        if line == "/reset":
            self.history.clear()
            self._write("[history cleared]\n")
        elif line.startswith("/"):
            self._write(f"[unknown command {line.split()[0]!r}] {render.HELP}\n")
        elif line:
            await self._ask(line)

    async def _ask(self, question: str) -> None:
        messages = [*self.history, {"role": "user", "content": question}]
        reply = Reply()
        if not await self._interruptible(self._receive(messages, reply)):
            self._write(render.stopped(reply.shown, self.tty))
            return
        self._write(render.finish(reply.end, reply.shown, self.tty, retract=self.streaming))
        if reply.end is None:
            self.history[:] = [*messages, {"role": "assistant", "content": reply.shown}]

    async def _receive(self, messages: list[dict[str, str]], reply: Reply) -> bool:
        """Print the reply as it arrives, recording it in ``reply``; True when done."""
        ask = stream_reply if self.streaming else whole_reply
        async with aclosing(ask(self.session, self.target, messages)) as events:
            async for event in events:
                if isinstance(event, Text):
                    reply.shown += event.text
                    self._write(render.clean(event.text))
                else:
                    reply.end = event
        return True

    async def _interruptible(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """Run ``coro`` as the task Ctrl-C cancels; its result, or None when cancelled."""
        task = asyncio.create_task(coro)
        self._current = task
        try:
            await asyncio.wait([task])
        finally:
            self._current = None
            task.cancel()
        return None if task.cancelled() else task.result()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
