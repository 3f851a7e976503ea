"""Start, wait for and stop a real model server process (stdlib only: the setup scripts run
the server modules with the servers' own venvs, as `python -m conformance.<module>`).

Every server runs on a free 127.0.0.1 port, in its own process group (so its children stop with
it), with its output in a log file under the cache's `logs/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

FORBIDDEN_FROM = 30  # the forbidden word first appears at this word index or later


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "railproxy-conformance"
    return Path(os.environ.get("RAILPROXY_CONFORMANCE_CACHE") or default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would point Python at our venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"PYTHONUNBUFFERED": "1"}


@dataclass
class ServerProcess:
    """A running server process (the leader of its own process group) and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, deadline_s: float) -> float:
        """Poll GET /v1/models until 200; raise (with the log's tail) on exit or timeout."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if models_ok(self.base_url):
                return time.monotonic() - start
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {deadline_s:.0f} s:\n{self.log_tail()}")

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived the leader


def launch(name: str, cmd: list[str], env: dict[str, str], cache: Path, port: int) -> ServerProcess:
    """Start `cmd` in its own session, output to logs/<name>-<time>-<port>.log in `cache`."""
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return ServerProcess(name, proc, port, log)


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def served(server: S, deadline_s: float) -> Iterator[S]:
    """Wait until ``server`` answers, yield it, and stop it whatever happens."""
    try:
        took = server.wait_ready(deadline_s)
        print(f"\n{server.name} ready on {server.base_url} in {took:.1f} s (log: {server.log})")
        yield server
    finally:
        server.stop()


def greedy_chat(base_url: str, model: str, prompt: str, tokens: int, timeout: float = 60) -> str:
    """The model's answer to ``prompt`` at temperature 0, ``tokens`` long."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
    }
    answer = post_json(base_url + "/v1/chat/completions", body, timeout)
    return str(answer["choices"][0]["message"]["content"])


def write_facts(path: Path, facts: dict[str, Any]) -> None:
    """Record what discovery found (the setup scripts' last step)."""
    path.write_text(json.dumps(facts, indent=2) + "\n")
    print(f"forbidden word: {facts['forbidden']!r} (first at word {facts['forbidden_index']})")


def models_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def post_json(url: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def pick_forbidden(words: list[str]) -> tuple[str, int]:
    """The first word whose first appearance is at FORBIDDEN_FROM or later."""
    first: dict[str, int] = {}
    for i, w in enumerate(words):
        first.setdefault(w, i)
    late = sorted((i, w) for w, i in first.items() if i >= FORBIDDEN_FROM)
    if not late:
        raise RuntimeError(f"no word first appears after index {FORBIDDEN_FROM}: {words}")
    index, word = late[0]
    return word, index
