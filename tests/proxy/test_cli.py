"""The ``railproxy`` command, run as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

RAILPROXY = [sys.executable, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]


ROOT = Path(__file__).parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: from another directory, `proxy` is still this checkout's, not whatever
    # railproxy is installed.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*RAILPROXY, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        env=env,
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
    data = json.loads(result.stdout[result.stdout.index("\n{") + 1 :])
    assert data["upstream"]["base_url"] == "http://h:1/v1"
    assert data["configs"]["default"]["output"] == ["secrets"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {prot: 1}\n", r"server\.prot: 1: unknown key \(did you mean 'port'\?\)"),
        ("server: {port: -3}\n", r"server\.port: -3: .*greater"),
        ("rails: {output: {flows: [nothing]}}\n", r"nothing.*(blocklist|built-in)"),
        (
            "rails: {config: {b: {type: blocklist, wrods: [x]}}, output: {flows: [b]}}\n",
            r"rails\.config\.b\.wrods: \['x'\]: unknown key.*words",
        ),
        ("rails: {config: {b: {type: nosuch}}, output: {flows: [b]}}\n", r"nosuch.*regex"),
    ],
)
def test_check_reports_bad_configs(cfg: Path, text: str, expected: str) -> None:
    cfg.write_text(text)
    result = run("check", "--config", str(cfg))
    assert result.returncode == 1
    assert re.search(expected, result.stderr, re.S), result.stderr


@pytest.mark.parametrize(
    ("switches", "note"),
    [
        (
            "rails: {output: {flows: [secrets]}}\n",
            "streaming and rails.output.streaming.enabled are false: streaming requests get a "
            "400 (set streaming: true and rails.output.streaming.enabled: true",
        ),
        (
            "streaming: true\nrails: {output: {flows: [secrets]}}\n",
            "rails.output.streaming.enabled is false: streaming requests get a 400 (set "
            "rails.output.streaming.enabled: true",
        ),
        (
            "rails: {output: {flows: [secrets], streaming: {enabled: true}}}\n",
            "streaming is false: streaming requests get a 400 (set streaming: true",
        ),
    ],
)
def test_check_notes_output_rails_that_cannot_stream(cfg: Path, switches: str, note: str) -> None:
    """Valid, but every streaming request would get a 400: check says so."""
    cfg.write_text(switches)
    result = run("check", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    expected = f"# config 'default': output rails are configured but {note} to stream through "
    assert result.stdout.splitlines()[1] == expected + "the rails)"


def test_check_has_no_note_when_both_switches_are_on(cfg: Path) -> None:
    cfg.write_text(
        "streaming: true\nrails: {output: {flows: [secrets], streaming: {enabled: true}}}\n"
    )
    result = run("check", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "{"


def test_check_reports_every_problem_in_one_pass(cfg: Path) -> None:
    """A bad settings value (chunk_size) does not hide the rails' own problems; every line
    is `file: key: value: what is wrong`."""
    cfg.write_text(
        "server: {prot: 1}\n"
        "rails:\n"
        "  config: {b: {type: blocklist, wrods: [x], action: mask}}\n"
        "  output: {flows: [b, pi], streaming: {chunk_size: 0}}\n"
    )
    result = run("check", "--config", str(cfg))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    expected = [
        r"server\.prot: 1: unknown key \(did you mean 'port'\?\); known keys: host, ",
        r"rails\.output\.streaming\.chunk_size: 0: Input should be greater than or equal to 1$",
        r"rails\.output\.flows: 'pi': names no rail \(did you mean 'pii'\?\)",
        r"rails\.config\.b\.words: required key missing$",
        r"rails\.config\.b\.wrods: \['x'\]: unknown key \(did you mean 'words'\?\)",
        r"rails\.config\.b\.action: 'mask': unknown key; known keys for blocklist",
    ]
    assert len(lines) == len(expected), result.stderr
    for line, pattern in zip(lines, expected, strict=True):
        assert line.startswith(f"railproxy: {cfg}: "), line
        assert re.search(pattern, line), (pattern, line)


def test_check_of_an_empty_file_says_every_default_applies(cfg: Path) -> None:
    cfg.write_text("# nothing yet\n")
    result = run("check", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == f"# {cfg}: OK (the file is empty: every setting has its default value)"


def test_yaml_errors_name_the_file_and_line_in_one_line(cfg: Path) -> None:
    cfg.write_text("server:\n  port: 1\n bad: 2\n")
    result = run("check", "--config", str(cfg))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"railproxy: {cfg}: line 3, column 2: not valid YAML: expected <block end>, but "
        "found '<block mapping start>' (while parsing a block mapping)"
    ]
    assert "<unicode string>" not in result.stderr


def test_help_is_plain_and_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "``" not in result.stdout
    for command in ("serve", "check", "demo", "chat"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), result.stdout
    version = run("--version")
    assert version.returncode == 0
    assert re.fullmatch(r"railproxy \d+\.\d+\.\d+\n", version.stdout)


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_is_one_line_and_exit_2(busy_port: int, command: str) -> None:
    result = run(command, "--port", str(busy_port))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"railproxy: cannot listen on 127.0.0.1:{busy_port}: the address is in use: stop the "
        "process using it or pick another --port"
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--config", "/nonexistent/c.yaml"], "/nonexistent/c.yaml: cannot read: No such"),
        (["demo", "--config", "/nonexistent/c.yaml"], "/nonexistent/c.yaml: cannot read: No such"),
        (["serve", "--upstream", "localhost:8000"], "--upstream: 'localhost:8000': must be an"),
        (["serve", "--config", "BINARY"], "BINARY: not UTF-8 text (byte 0)"),
    ],
)
def test_unusable_config_or_flag_is_one_line_and_exit_2(
    cfg: Path, args: list[str], expected: str
) -> None:
    cfg.write_bytes(b"\xff\xfe")
    args = [str(cfg) if a == "BINARY" else a for a in args]
    result = run(*args)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("railproxy: " + expected.replace("BINARY", str(cfg))), line


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
    wait_for(started, r"output rails banned, pii \(windows of 8 tokens, stream_first: false\)")
    wait_for(started, rf"playground: {base.removesuffix('/v1')}/ui$")
    wait_for(started, rf"railproxy chat --base-url {base}$")
    wait_for(started, r"Ask about \"Project Falcon\" to see a block")
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
    wait_for(started, r"^  /v1/chat/completions 200 stream ok$")
    blocked = await ask("Tell me about Project Falcon")
    assert b"Blocked by banned rails." in blocked
    assert b"Falcon" not in blocked
    wait_for(started, r"^  /v1/chat/completions 200 stream blocked by rail 'banned'$")
    masked = await ask("How do I contact you?")
    assert b"[EMAIL]" in masked
    assert b"jane" not in masked
    started.send_signal(signal.SIGINT)
    assert started.wait(timeout=10) == 0


DEMO_CONFIG = """
rails:
  config: {banned: {type: blocklist, words: [secret plan]}}
  output: {flows: [banned], streaming: {chunk_size: 6, stream_first: true}}
"""


@pytest.fixture
def demo_config(tmp_path: Path) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(DEMO_CONFIG)
    return str(path)


@pytest.fixture
def own_demo(demo_config: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*RAILPROXY, "demo", "--port", "0", "--config", demo_config],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_demo_banner_describes_the_config_loaded(
    own_demo: subprocess.Popen[str], demo_config: str
) -> None:
    """No playground that is off, no masking example for a config without pii."""
    wait_for(own_demo, r"proxy at http://127\.0\.0\.1:\d+/v1")
    lines = [wait_for(own_demo, r".+").group(0) for _ in range(2)]
    assert lines == [
        f"  config: {demo_config}",
        "    output rails banned (windows of 6 tokens, stream_first: true); streaming requests "
        "get a 400 until streaming: true and rails.output.streaming.enabled: true; abort "
        "style error",
    ]
    assert wait_for(own_demo, r"playground: .*").group(0) == (
        "playground: off (server.playground: true turns it on)"
    )
    rest = wait_for(own_demo, r"your config's rails judge those answers").string
    assert "masking" not in rest
