"""Start and stop llama-cpp-python's OpenAI server from the conformance cache (stdlib only).

Used by the test fixtures (conftest.py) and by setup_llamacpp.sh, which runs it in the cache's
llama.cpp venv to find the word the model emits
(`PYTHONPATH=tests python -m conformance.llamacpp_server discover`). Layout of the cache:

    $RAILPROXY_CONFORMANCE_CACHE (default ~/.cache/railproxy-conformance)
      llamacpp-venv/        llama-cpp-python[server] compiled from its sdist, and gguf
      llamacpp-wheels/      the compiled wheel (a rebuilt venv does not compile again)
      llamacpp-model/       tiny.gguf written by build_gguf.py, and its model.sha256
      llamacpp-facts.json   what setup learned: versions, the greedy text, the forbidden word
      logs/                 one llamacpp-*.log per server run
"""

from __future__ import annotations

import contextlib
import json
import sys
from importlib.metadata import version
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
N_CTX = 4096
PROMPT = "kalo mine rusa"
DISCOVER_TOKENS = 200
START_DEADLINE_S = 120.0
FACTS = "llamacpp-facts.json"


def missing_parts(cache: Path) -> list[str]:
    """What setup_llamacpp.sh has not built yet (empty when that part of the cache is complete)."""
    parts = {
        "llamacpp-venv": cache / "llamacpp-venv" / ".railproxy-ok",
        "llamacpp-model": cache / "llamacpp-model" / ".railproxy-ok",
        FACTS: cache / FACTS,
    }
    return [name for name, path in parts.items() if not path.exists()]


def load_facts(cache: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((cache / FACTS).read_text())
    return facts


def server_cmd(cache: Path, port: int) -> list[str]:
    """`--interrupt_requests False`: by default a new request makes the one in progress stop
    (with `[DONE]`); without it requests wait for the model's lock, one at a time."""
    return [
        str(cache / "llamacpp-venv" / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        *("--model", str(cache / "llamacpp-model" / "tiny.gguf"), "--model_alias", MODEL_NAME),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--n_ctx", str(N_CTX), "--n_threads", "1", "--n_threads_batch", "1"),
        *("--interrupt_requests", "False", "--verbose", "True"),
    ]


def start(cache: Path) -> ServerProcess:
    """Launch llama.cpp's server on a free loopback port; the caller waits for it and stops it."""
    port = free_port()
    return launch("llamacpp", server_cmd(cache, port), clean_env(), cache, port)


def running(cache: Path) -> contextlib.AbstractContextManager[ServerProcess]:
    return served(start(cache), START_DEADLINE_S)


def discover(cache: Path) -> dict[str, Any]:
    """Generate once at temperature 0 and record the word the tests will forbid."""
    with running(cache) as server:
        text = greedy_chat(server.base_url, MODEL_NAME, PROMPT, DISCOVER_TOKENS, timeout=120)
    words = text.split()
    if len(words) != DISCOVER_TOKENS or " ".join(words) != text.strip():
        raise RuntimeError(f"expected {DISCOVER_TOKENS} space-separated words, got {text!r}")
    word, index = pick_forbidden(words)
    sha = (cache / "llamacpp-model" / "model.sha256").read_text().split()[0]
    return {
        "server_version": version("llama-cpp-python"),  # run in its venv
        "model": MODEL_NAME,
        "model_sha256": sha,
        "prompt": PROMPT,
        "text": text,
        "forbidden": word,
        "forbidden_index": index,
    }


def main() -> None:
    if sys.argv[1:] != ["discover"]:
        sys.exit("usage: python -m conformance.llamacpp_server discover")
    cache = cache_dir()
    write_facts(cache / FACTS, discover(cache))


if __name__ == "__main__":
    main()
