"""A run against a baseline: the CPU figures of two ``bench.run`` JSON files, as ratios.

``python -m bench.run --compare bench/results/baseline.json`` prints this table after its
own; ``python -m bench.compare OLD.json NEW.json`` compares two saved runs. Only CPU time
per delta and per request (railproxy's, and the bare relay's for the floor rows) and
railproxy's ratios to the bare relay are compared: on a shared machine latency is noise,
CPU time much less so. Not for CI: a figure is only printed, never judged.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.results import BARE


def figures(run: dict[str, Any]) -> dict[str, float]:
    """Every CPU figure of a run JSON, by a name that stays the same between runs."""
    out: dict[str, float] = {}
    for case in run.get("cases", []):
        c = case["case"]
        pacing = f"{c['rate']:g} tok/s" if c["rate"] > 0 else "full speed"
        name = f"{c['rails_label']}, {pacing}, c={c['concurrency']}, {c['deltas']} deltas"
        out[f"{name}: CPU µs per delta"] = case["proxy_cpu_us_per_delta"]
    for row in run.get("floor", []):
        load = row["load"]
        where = f"floor: {load['name']}, c={load['concurrency']}, {load['deltas']} deltas"
        per = "request" if load["kind"] == "request" else "delta"
        for target, t in row["targets"].items():
            out[f"{where}, {target}: CPU µs per {per}"] = t[f"cpu_us_per_{per}"]
            if target != BARE and load["kind"] != "burst" and t["ratios_to_bare"][0] is not None:
                out[f"{where}, {target}: x bare relay"] = t["ratios_to_bare"][0]
    return {k: v for k, v in out.items() if v is not None and not math.isnan(v)}


def table(base: dict[str, Any], new: dict[str, Any]) -> str:
    """Markdown: each figure present in both runs, the baseline's, the new one's, new/base."""
    old, now = figures(base), figures(new)
    rows = [
        f"| {name} | {old[name]:.2f} | {now[name]:.2f} | {now[name] / old[name]:.2f} |"
        for name in now
        if name in old and old[name] > 0
    ]
    missing = [name for name in old if name not in now]
    info = base.get("info", {})
    lines = [
        f"### Against the baseline ({info.get('date', '?')}, `{info.get('command', '?')}`)",
        "",
        "| figure | baseline | now | now / baseline |",
        "| --- | --- | --- | --- |",
        *rows,
    ]
    if missing:
        lines += ["", f"Not measured in this run: {len(missing)} figure(s) of the baseline."]
    return "\n".join(lines) + "\n"


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a bench.run JSON object")
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("baseline", type=Path)
    p.add_argument("new", type=Path)
    args = p.parse_args(argv)
    print(table(load(args.baseline), load(args.new)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
