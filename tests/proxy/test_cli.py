"""The ``railproxy`` command, run as a real process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

RAILPROXY = [sys.executable, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAILPROXY, *args], capture_output=True, text=True, timeout=30, check=False, cwd=cwd
    )


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "c.yaml"


def test_check_prints_effective_settings_with_secrets_masked(cfg: Path) -> None:
    cfg.write_text(
        "upstream: {base_url: 'http://h:1/v1', api_key: sk-very-secret}\n"
        "rails: {output: {flows: [secrets]}}\n"
    )
    result = run("check", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret" not in result.stdout
    data = json.loads(result.stdout.split("\n", 1)[1])
    assert data["upstream"]["base_url"] == "http://h:1/v1"
    assert data["configs"]["default"]["output"] == ["secrets"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {prot: 1}\n", r"server\.prot: unknown key"),
        ("server: {port: -3}\n", r"server\.port: .*-3"),
        ("rails: {output: {flows: [nothing]}}\n", r"nothing.*(blocklist|built-in)"),
        (
            "rails: {config: {b: {type: blocklist, wrods: [x]}}, output: {flows: [b]}}\n",
            r"rails\.config\.b\.wrods: unknown key.*words",
        ),
        ("rails: {config: {b: {type: nosuch}}, output: {flows: [b]}}\n", r"nosuch.*regex"),
    ],
)
def test_check_reports_bad_configs(cfg: Path, text: str, expected: str) -> None:
    cfg.write_text(text)
    result = run("check", "--config", str(cfg))
    assert result.returncode == 1
    assert re.search(expected, result.stderr, re.S), result.stderr


def test_check_accepts_every_shipped_config() -> None:
    root = Path(__file__).parents[2] / "configs"
    for path in [root / "default.yaml", *sorted((root / "examples").glob("*.yaml"))]:
        # The python rail's example class (user_rails.py) is importable from its directory.
        result = run("check", "--config", str(path), cwd=path.parent)
        assert result.returncode == 0, (path, result.stderr)


@pytest.fixture
def started(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*RAILPROXY, *request.param],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def wait_for(proc: subprocess.Popen[str], pattern: str, timeout: float = 20) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"{pattern!r} not printed; got {''.join(seen)!r}")


@pytest.mark.parametrize("started", [["serve", "--port", "0"]], indirect=True)
async def test_serve_runs_and_stops_on_sigterm(started: subprocess.Popen[str]) -> None:
    port = wait_for(started, r'"url": ?"http://127\.0\.0\.1:(\d+)"').group(1)
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
        assert r.status == 200
    started.send_signal(signal.SIGTERM)
    assert started.wait(timeout=10) == 0


@pytest.mark.parametrize("started", [["demo", "--port", "0"]], indirect=True)
async def test_demo_streams_blocks_and_masks(started: subprocess.Popen[str]) -> None:
    base = wait_for(started, r"proxy at (http://127\.0\.0\.1:\d+/v1)").group(1)
    url = base + "/chat/completions"

    async def ask(question: str) -> bytes:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": question}]}
        async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
            assert r.status == 200
            return await r.read()

    hello = await ask("hi")
    assert b"railproxy demo model" not in hello  # words arrive as separate deltas
    assert b'" demo"' in hello
    assert hello.endswith(b"data: [DONE]\n\n")
    blocked = await ask("Tell me about Project Falcon")
    assert b"Blocked by banned rails." in blocked
    assert b"Falcon" not in blocked
    masked = await ask("How do I contact you?")
    assert b"[EMAIL]" in masked
    assert b"jane" not in masked
    started.send_signal(signal.SIGINT)
    assert started.wait(timeout=10) == 0
