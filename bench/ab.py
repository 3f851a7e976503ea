"""railproxy at two commits, side by side, in one run: ``python -m bench.ab --base REV``.

A saved baseline (``bench.run --compare``) is only as good as the machine is steady, and a
shared machine is not: the bare relay's CPU per request moved by half between two quiet
runs a few hours apart. This runs both versions in the same invocation instead, so that
whatever the machine does falls on both alike.

It checks out ``--base`` (any git revision) into a temporary worktree, starts the fake
upstream, the bare relay (``bench/bare_relay.py``), and ``railproxy serve`` from the base
and from this tree (each with no rails and with regex+pii+secrets+blocklist, 200/50,
stream_first true), then runs each load against every relay, round after round, relays in
turn within a round. It prints each relay's median CPU per request (1-token streams,
non-streamed answers) or per delta (420-delta streams at full speed and at 50 tok/s), the
rounds themselves, its ratio to the bare relay, and this tree's ratio to the base's. The
worktree and every process are removed on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.floor import run_load
from bench.proc import Service, Services, env_for_children, free_port
from bench.scenarios import FLOOR_RAILS, PACED_RATE, RAILS_DELTAS, FloorLoad

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
BARE = "bare relay"


def loads(seconds: float) -> dict[str, FloorLoad]:
    return {
        "1token": FloorLoad("1-token streams", "request", 16, 1, duration=seconds),
        "whole": FloorLoad("non-streamed", "request", 16, 1, duration=seconds, stream=False),
        "delta": FloorLoad("full speed", "delta", 64, RAILS_DELTAS, duration=seconds),
        "paced": FloorLoad(
            "50 tok/s", "delta", 64, RAILS_DELTAS, PACED_RATE, requests=1, duration=60.0, ramp=1.0
        ),
    }


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev`` checked out in a temporary worktree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="railproxy-ab-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
        )


def start_relays(
    services: Services, work: Path, upstream_port: int, trees: dict[str, Path]
) -> dict[str, tuple[Service, int]]:
    """The bare relay, then railproxy from each tree with each of ``FLOOR_RAILS``."""
    relays: dict[str, tuple[Service, int]] = {}
    port = free_port()
    cmd = [PY, "-m", "bench.bare_relay", "--port", str(port)]
    bare = services.add(
        Service("bare", [*cmd, "--upstream", f"http://127.0.0.1:{upstream_port}/v1"], work)
    )
    bare.start(f"http://127.0.0.1:{port}/healthz")
    relays[BARE] = (bare, port)
    serve = "import sys; from proxy.cli import main; sys.exit(main())"
    for label, tree in trees.items():
        for rails in FLOOR_RAILS:
            port = free_port()
            config = work / f"{label}-{rails.key}.yaml"
            config.write_text(yaml.safe_dump(rails.proxy_config(port, upstream_port, 0)))
            env = {**env_for_children(), "PYTHONPATH": str(tree)}
            cmd = [PY, "-c", serve, "serve", "--config", str(config), "--port", str(port)]
            name = f"{label}, {rails.label}"
            svc = Service(f"{label}-{rails.key}", cmd, work, env=env, cwd=tree)
            services.add(svc).start(f"http://127.0.0.1:{port}/healthz")
            relays[name] = (svc, port)
    return relays


def measure(
    chosen: dict[str, FloorLoad],
    relays: dict[str, tuple[Service, int]],
    upstream: Service,
    work: Path,
    rounds: int,
) -> dict[tuple[str, str], list[float]]:
    """CPU µs per request (or per delta) of every relay under every load, per round."""
    found: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for key, load in chosen.items():
            for name, (svc, port) in relays.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                run = run_load(load, url, svc, upstream, work, PY, 0.0)
                if run.error_count:
                    raise SystemExit(f"bench.ab: {name}, {load.name}: errors {run.errors}")
                units = run.deltas if load.kind == "delta" else run.requests
                found.setdefault((key, name), []).append(run.cpu_s["proxy"] / units * 1e6)
    return found


def table(
    chosen: dict[str, FloorLoad], found: dict[tuple[str, str], list[float]], base: str
) -> str:
    lines = [
        "| load | relay | CPU µs (median) | rounds | x bare relay | this tree / base |",
        "|---|---|---|---|---|---|",
    ]
    for key, load in chosen.items():
        unit = "per delta" if load.kind == "delta" else "per request"
        bare = statistics.median(found[(key, BARE)])
        for (k, name), values in found.items():
            if k != key:
                continue
            median = statistics.median(values)
            ratio = ""
            if name.startswith("this tree"):
                other = statistics.median(found[(key, name.replace("this tree", base, 1))])
                ratio = f"{median / other:.2f}"
            rounds = ", ".join(f"{v:.0f}" if v >= 100 else f"{v:.1f}" for v in values)
            lines.append(
                f"| {load.name} ({unit}) | {name} | {median:.1f} | {rounds} | "
                f"{median / bare:.2f} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    p.add_argument("--base", required=True, help="a git revision, e.g. HEAD~3 or a commit")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0, help="per full-speed run")
    p.add_argument("--loads", default="1token,whole,delta", help="of: 1token, whole, delta, paced")
    args = p.parse_args(argv)
    every = loads(args.seconds)
    chosen = {key: every[key] for key in args.loads.split(",")}
    base = f"base {args.base}"
    with worktree(args.base) as tree, Services() as services:
        work = Path(tempfile.mkdtemp(prefix="railproxy-ab-run-"))
        up_port = free_port()
        cmd = [PY, "-m", "bench.upstream", "--port", str(up_port)]
        upstream = services.add(Service("upstream", cmd, work))
        upstream.start(f"http://127.0.0.1:{up_port}/v1/models")
        relays = start_relays(services, work, up_port, {base: tree, "this tree": ROOT})
        found = measure(chosen, relays, upstream, work, args.rounds)
    print(f"`python -m bench.ab {' '.join(argv if argv is not None else sys.argv[1:])}`")
    print(f"(rounds: {args.rounds}; load average at the end: {os.getloadavg()[0]:.2f})\n")
    print(table(chosen, found, base))


if __name__ == "__main__":
    main()
