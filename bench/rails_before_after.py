"""The local rails before and after normalization, timed in one run.

``python -m bench.rails_before_after [--before COMMIT]`` loads the ``regex``, ``pii``,
``secrets`` and ``blocklist`` rails of ``COMMIT`` (default: the commit before
normalization, 5c3aee2) from git into a temporary package, and times them and the
current ones on the same windows (200 new + 50 context tokens of the benchmark text), in
this process, interleaved: each rail alone, and all four one after another (what a
sequential output pipeline does per window). Windows: the benchmark text (ASCII words),
the same with a year every 20 words, and the same with a curly apostrophe and an em
dash every 20 words (ordinary non-ASCII text: the normalization's slow path).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scenarios import CHUNK_SIZE, CONTEXT_SIZE
from bench.text import deltas
from rails.base import CheckContext
from rails.resources import Resources

_MODULES = ("regex", "pii", "secrets", "blocklist")
_CONFIG: dict[str, dict[str, Any]] = {
    "regex": {"patterns": ["(?i)forbidden phrase"]},
    "pii": {},
    "secrets": {},
    "blocklist": {"words": ["forbidden phrase", "falcon"]},
}
_CLASSES = {
    "regex": "RegexRail",
    "pii": "PiiRail",
    "secrets": "SecretsRail",
    "blocklist": "BlocklistRail",
}


def _load_before(commit: str, root: Path) -> str:
    """Write the rails of ``commit`` as package ``rails_before`` under ``root``."""
    package = root / "rails_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in _MODULES:
        source = subprocess.run(
            ["git", "show", f"{commit}:rails/builtin/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        source = source.replace("from rails.builtin.", "from rails_before.")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(root))
    return "rails_before"


def _build(package: str) -> dict[str, Any]:
    rails = {}
    for name in _MODULES:
        module = importlib.import_module(f"{package}.{name}")
        cls = getattr(module, _CLASSES[name])
        rails[name] = cls(name, cls.Config.model_validate(_CONFIG[name]), Resources())
    return rails


def _windows() -> dict[str, str]:
    words = deltas("words", CONTEXT_SIZE + CHUNK_SIZE)
    years = "".join(f" {1900 + i}" if i % 20 == 19 else w for i, w in enumerate(words))
    quotes = "".join(
        f"{w}\u2019s \u2014" if i % 20 == 19 else w for i, w in enumerate(words)
    )  # "fox's —" with a curly apostrophe and an em dash
    return {"words": "".join(words), "a year every 20 words": years, "curly quotes": quotes}


async def _us(rails: list[Any], text: str, budget_s: float) -> float:
    ctx = CheckContext("output")

    async def once() -> None:
        for rail in rails:
            verdict = await rail.check(text, ctx)
            if verdict.action.value != "allow":
                raise RuntimeError(f"{rail.name} did not pass the window: {verdict}")

    for _ in range(20):
        await once()
    t0 = time.perf_counter()
    await once()
    n = max(20, int(budget_s / 5 / max(time.perf_counter() - t0, 1e-7)))
    batches = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await once()
        batches.append((time.perf_counter() - t0) / n)
    return statistics.median(batches) * 1e6


async def measure(commit: str, budget_s: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        before = _build(_load_before(commit, Path(tmp)))
    after = _build("rails.builtin")
    lines = [
        f"Local rails per window ({CHUNK_SIZE} + {CONTEXT_SIZE} tokens), µs, median of 5 "
        f"batches; before = {commit}, after = this tree.\n",
        "| window | rails | before | after |",
        "|---|---|---:|---:|",
    ]
    for window_name, text in _windows().items():
        for name in (*_MODULES, "all four"):
            names = list(_MODULES) if name == "all four" else [name]
            b = await _us([before[n] for n in names], text, budget_s)
            a = await _us([after[n] for n in names], text, budget_s)
            lines.append(f"| {window_name} | {name} | {b:.1f} | {a:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", default="5c3aee2")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measure")
    args = parser.parse_args()
    print(asyncio.run(measure(args.before, args.budget)))


if __name__ == "__main__":
    main()
