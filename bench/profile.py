"""Where railproxy's CPU goes per request: py-spy samples a running ``railproxy serve``
under the loads of issue 18, and the top functions are written as text.

``python -m bench.profile [--seconds 8] [--out-dir bench/results]`` (needs ``py-spy`` from
PyPI: ``pip install py-spy``). For the bare relay (``bench/bare_relay.py``, the floor) and
railproxy with each rails setup (none; regex+pii+secrets+blocklist, 200/50, stream_first
true), under each load (the burst: 64 clients starting 20-token streams at 50 tokens/s at
once, round after round; 1-token streams at c = 16, full speed): starts the fake upstream
and the relay, sends a short warm-up load, attaches ``py-spy record --pid`` (raw format,
no line numbers, 250 samples/s, only stacks holding the GIL), runs the load for
``--seconds``, stops py-spy, and writes ``profile-<setup>-<load>.txt``: samples and
requests, then the top functions by own time (the innermost frame of a sample; native code
counts for the Python function that called it), by cumulative time (every sample whose
stack holds the function, counted once), and railproxy's own functions by cumulative time,
each as a share of the samples and as CPU µs per request (that share of the relay's CPU
time, measured, per request served, warm-up included). py-spy pauses the relay for each
sample (``--nonblocking`` read torn stacks for up to half the samples under load); samples
are wall-clock, so on a busy machine a runnable but descheduled relay is sampled too:
read shares, not sample counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.floor import load_command
from bench.proc import (
    ROOT,
    Sampler,
    Service,
    ServiceError,
    Services,
    env_for_children,
    free_port,
)
from bench.scenarios import FLOOR_RAILS, PACED_RATE, FloorLoad, Rails

PY = sys.executable
LOADS = {
    "burst": FloorLoad("burst of 64", "burst", 64, 20, PACED_RATE, requests=10_000),
    "1token": FloorLoad("1-token streams", "request", 16, 1),
}
TOP = 40
RATE_HZ = 250


def railproxy_command() -> list[str]:
    script = Path(PY).with_name("railproxy")
    if script.exists():
        return [PY, str(script)]
    return [PY, "-c", "import sys; from proxy.cli import main; sys.exit(main())"]


def parse_raw(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """py-spy's raw (collapsed) stacks -> (samples, own, cumulative) per function; the
    cumulative count of ``<module>`` frames says how many stacks were read whole."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    return total, own, cumulative


@dataclass(frozen=True)
class Cost:
    """The relay's measured CPU seconds over the load, the requests it served (warm-up
    included), and py-spy's sample count: a function's share of the samples times the CPU
    per request is its CPU per request."""

    requests: int
    cpu_s: float
    samples: int

    @property
    def us_per_request(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6

    def us(self, n: int) -> float:
        return self.us_per_request * n / max(self.samples, 1)


def render(title: str, cost: Cost, own: Counter[str], cumulative: Counter[str]) -> str:
    """The top functions by own and by cumulative time, then railproxy's own functions
    (``proxy/``, ``rails/``) by cumulative time: share of the samples, samples, and CPU µs
    per request (share x the relay's measured CPU per request)."""
    ours = Counter({f: n for f, n in cumulative.items() if _OURS.search(f)})
    whole = sum(n for f, n in cumulative.items() if f.startswith("<module>"))
    lines = [
        title,
        f"requests: {cost.requests}; relay CPU (user+system, measured): {cost.cpu_s:.2f} s, "
        f"{cost.us_per_request:.0f} µs per request; samples: {cost.samples} "
        f"({cost.samples / RATE_HZ / max(cost.cpu_s, 1e-9):.2f} x the CPU time at {RATE_HZ} Hz)",
        f"stacks read whole (down to <module>): {100 * whole / max(cost.samples, 1):.0f}%",
    ]
    head = f"{'share':>7}  {'samples':>7}  {'µs/req':>7}  function (file)"
    for what, counts in (("own", own), ("cumulative", cumulative)):
        lines += ["", f"top {TOP} by {what} time:", "", head]
        lines += [_line(f, n, cost) for f, n in counts.most_common(TOP)]
    lines += ["", f"top {TOP} of proxy/ and rails/ by cumulative time:", "", head]
    lines += [_line(f, n, cost) for f, n in ours.most_common(TOP)]
    return "\n".join(lines) + "\n"


_OURS = re.compile(r"\((proxy|rails)/")


def _line(frame: str, n: int, cost: Cost) -> str:
    return f"{100 * n / cost.samples:6.2f}%  {n:7d}  {cost.us(n):7.1f}  {frame}"


def profile_one(
    rails: Rails | None, load_key: str, seconds: float, workdir: Path, out_dir: Path, py_spy: str
) -> Path:
    """Profile railproxy with ``rails`` (or the bare relay, ``None``) under one load."""
    load = LOADS[load_key]
    key = "bare" if rails is None else rails.key
    with Services() as services:
        up_port, port = free_port(), free_port()
        upstream = services.add(
            Service("upstream", [PY, "-m", "bench.upstream", "--port", str(up_port)], workdir)
        )
        upstream.start(f"http://127.0.0.1:{up_port}/v1/models")
        if rails is None:
            cmd = [PY, "-m", "bench.bare_relay", "--port", str(port)]
            cmd += ["--upstream", f"http://127.0.0.1:{up_port}/v1"]
        else:
            config = rails.proxy_config(port, up_port, 0)
            path = workdir / f"railproxy-{rails.key}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            cmd = [*railproxy_command(), "serve", "--config", str(path), "--port", str(port)]
        proxy = services.add(Service(f"relay-{key}", cmd, workdir))
        proxy.start(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        warm = FloorLoad(load.name, load.kind, load.concurrency, load.deltas, load.rate, 2, 1.0)
        _run_load(warm, url, 60)
        raw = workdir / f"{key}-{load_key}.raw"
        spy_cmd = [py_spy, "record", "--pid", str(proxy.pid), "--rate", str(RATE_HZ)]
        spy_cmd += ["--gil", "--format", "raw", "--nolineno", "--output", str(raw)]
        spy = subprocess.Popen(
            spy_cmd,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "py-spy.log").open("ab"),
        )
        sampler = Sampler(proxy.pid)
        try:
            time.sleep(1.0)  # py-spy attaches
            cpu0 = sampler.cpu()
            timed = dataclasses.replace(load, duration=seconds)
            requests = _run_load(timed, url, seconds + 120) + load.concurrency  # + warm-up
            cpu_s = sampler.cpu() - cpu0
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            code = spy.wait(60)
        if code != 0 or not raw.exists():
            log = (workdir / "py-spy.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"py-spy failed: {log}")
    total, own, cumulative = parse_raw(raw.read_text(errors="replace"))
    what = "bench/bare_relay.py" if rails is None else f"railproxy serve, rails: {rails.label}"
    title = (
        f"{what}; load: {load.name}, c={load.concurrency}, "
        f"{load.deltas} deltas, {'full speed' if not load.rate else f'{load.rate:g} tok/s'}; "
        f"py-spy record --pid --gil, {RATE_HZ} Hz, {seconds:g} s of load"
    )
    out = out_dir / f"profile-{key}-{load_key}.txt"
    cost = Cost(requests, cpu_s, total)
    out.write_text(render(title, cost, own, cumulative), encoding="utf-8")
    return out


def _run_load(load: FloorLoad, url: str, timeout: float) -> int:
    """Run the load generator; the number of requests it made."""
    done = subprocess.run(
        load_command(load, url, PY),
        cwd=ROOT,
        env=env_for_children(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 or b"RESULT " not in done.stdout:
        raise ServiceError(f"load failed: {done.stderr.decode(errors='replace')[-2000:]}")
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith("RESULT "))
    return int(json.loads(line[7:])["requests"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--loads", default="burst,1token", help="any of: burst, 1token")
    args = p.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("bench.profile: needs py-spy (pip install py-spy)", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="railproxy-profile-") as tmp:
        for rails in (None, *FLOOR_RAILS):
            for key in args.loads.split(","):
                out = profile_one(rails, key, args.seconds, Path(tmp), args.out_dir, py_spy)
                print(f"bench.profile: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
