"""railproxy beside its peers: ``python -m bench.peers [--quick] [--out FILE] [--json FILE]``.

Creates (once) its own virtual environments under ``~/.cache/railproxy-bench-peers``
(``--cache``) with pinned releases of NeMo Guardrails (its server) and LiteLLM's proxy,
then runs, against the same fake upstream (``bench/upstream.py``) and with the same loads:
the upstream directly, the bare relay (``bench/bare_relay.py``, the floor), railproxy, NeMo
Guardrails and LiteLLM, each with one equivalent keyword output rail (the pattern
``alice\\.smith@example\\.com``) judged in windows of 200 tokens with 50 of context,
stream_first true:

- railproxy: its ``regex`` rail;
- NeMo Guardrails: its own ``regex check output`` rail, output rails streaming with the
  same window (``bench/peers_config/nemo``), no dialog rails and no message examples, so no
  embeddings index or model; usage telemetry off (``NEMO_GUARDRAILS_NO_USAGE_STATS``,
  ``DO_NOT_TRACK``, and its report URL pointed at a closed loopback port);
- LiteLLM: a custom guardrail written as LiteLLM's ``CustomGuardrail`` class
  (``bench/peers_config/litellm/keyword_guardrail.py``), ``LITELLM_LOCAL_MODEL_COST_MAP``
  set so it fetches no cost map.

Prints one table: CPU per delta (full speed) and per request (1-token streams), added TTFT
at full speed and paced (50 tokens/s), peak RSS, and what a client receives when the rail
blocks (a stream holding the pattern: does the forbidden text reach the socket, how the
stream ends). Installs take minutes; this stays out of ``.ci/run``. Network: the package
registry for the installs, loopback for everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.floor import run_load
from bench.proc import HTTP, Service, ServiceError, Services, free_port
from bench.report import _f, _table
from bench.results import LoadRun
from bench.scenarios import PACED_RATE, FloorLoad
from bench.text import CANARY_SECRET, request_body

PY = sys.executable
CONFIGS = Path(__file__).resolve().parent / "peers_config"
PATTERN = r"alice\.smith@example\.com"
FORBIDDEN = CANARY_SECRET.strip()
CHUNK, CONTEXT = 200, 50
BLOCK_DELTAS = 420  # the canary sits at delta 210, in the second window


@dataclass(frozen=True)
class Env:
    """One pinned virtual environment: ``name`` under the cache, the pip requirements,
    and the distribution whose version proves the install."""

    name: str
    requirements: tuple[str, ...]
    check: tuple[str, str]  # distribution, version

    def python(self, cache: Path) -> Path:
        return cache / self.name / "bin" / "python"


NEMO_ENV = Env(
    "nemo",
    ("nemoguardrails[server]==0.24.1", "langchain-openai==1.8.1"),
    ("nemoguardrails", "0.24.1"),
)
LITELLM_ENV = Env("litellm", ("litellm[proxy]==1.80.0",), ("litellm", "1.80.0"))


def installed(env: Env, cache: Path) -> bool:
    py = env.python(cache)
    if not py.exists():
        return False
    dist, version = env.check
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([py, "-c", code], capture_output=True, text=True, check=False)
    return done.returncode == 0 and done.stdout.strip() == version


def ensure(env: Env, cache: Path, say: Callable[[str], None]) -> Path:
    """The environment's python, creating or updating the environment first if needed."""
    if not installed(env, cache):
        say(f"peers: installing {' '.join(env.requirements)} into {cache / env.name}")
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-m", "venv", cache / env.name], check=True)
        pip = [str(env.python(cache)), "-m", "pip", "install", "-q", *env.requirements]
        subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
        if not installed(env, cache):
            raise ServiceError(f"{env.name}: {env.check[0]} {env.check[1]} did not install")
    return env.python(cache)


def peer_env() -> dict[str, str]:
    """The peers' environment: no railproxy path, no proxies, telemetry and downloads off."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        NEMO_GUARDRAILS_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        NEMO_GUARDRAILS_USAGE_STATS_SERVER="http://127.0.0.1:9/",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OPENAI_API_KEY="unused",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        NO_PROXY="*",
        no_proxy="*",
    )
    return env


# -- the targets ---------------------------------------------------------------------------


@dataclass
class Target:
    """One relay under test: its running service (None: the upstream directly), its chat
    URL, and the JSON each kind of request adds to the body (model name, config id)."""

    name: str
    service: Service | None
    url: str
    extra: dict[str, str] = field(default_factory=dict)  # load kind -> --extra JSON
    version: str = ""
    hold_url: str | None = None  # where a stream_first false block is probed, if elsewhere


def _upstream_path(base: str, profile: str, rate: float) -> str:
    return f"{base}/bench/{profile}/{rate:g}/v1"


def start_railproxy(
    services: Services, workdir: Path, up_port: int, stream_first: bool = True
) -> Target:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "max_concurrent_streams": 4096},
        "upstream": {"base_url": f"http://127.0.0.1:{up_port}/v1", "max_connections": 4096},
        "logging": {"level": "warning"},
        "streaming": True,
        "rails": {
            "config": {"keyword": {"type": "regex", "patterns": [PATTERN]}},
            "output": {
                "flows": ["keyword"],
                "streaming": {
                    "enabled": True,
                    "chunk_size": CHUNK,
                    "context_size": CONTEXT,
                    "stream_first": stream_first,
                },
            },
        },
    }
    name = "railproxy" if stream_first else "railproxy-hold"
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    script = Path(PY).with_name("railproxy")
    cmd = [str(script)] if script.exists() else [PY, "-m", "proxy.cli"]
    svc = services.add(Service(name, [*cmd, "serve", "--config", str(path)], workdir))
    svc.start(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target("railproxy", svc, url, version=_version(PY, "railproxy"))


def _railproxy_pair(services: Services, workdir: Path, up_port: int) -> Target:
    """railproxy measured with stream_first true; a second one probes a block with false."""
    target = start_railproxy(services, workdir, up_port)
    target.hold_url = start_railproxy(services, workdir, up_port, stream_first=False).url
    return target


def start_bare(services: Services, workdir: Path, up_port: int) -> Target:
    port = free_port()
    cmd = [PY, "-m", "bench.bare_relay", "--port", str(port)]
    cmd += ["--upstream", f"http://127.0.0.1:{up_port}/v1"]
    svc = services.add(Service("bare-relay", cmd, workdir))
    svc.start(f"http://127.0.0.1:{port}/healthz")
    return Target("bare relay", svc, f"http://127.0.0.1:{port}/v1/chat/completions")


def start_nemo(services: Services, workdir: Path, up_port: int, py: Path) -> Target:
    base = f"http://127.0.0.1:{up_port}"
    template = string.Template((CONFIGS / "nemo" / "config.yml").read_text(encoding="utf-8"))
    configs = workdir / "nemo-configs"
    for config_id, (profile, rate) in _ROUTES.items():
        (configs / config_id).mkdir(parents=True)
        text = template.substitute(
            base_url=json.dumps(_upstream_path(base, profile, rate)),
            pattern=json.dumps(PATTERN),
            stream_first="false" if config_id.endswith("-hold") else "true",
        )
        (configs / config_id / "config.yml").write_text(text, encoding="utf-8")
    port = free_port()
    cmd = [str(py), str(CONFIGS / "nemo" / "serve.py"), str(configs), str(port)]
    svc = services.add(Service("nemo", cmd, workdir, env=peer_env(), cwd=workdir))
    svc.start(f"http://127.0.0.1:{port}/v1/rails/configs", timeout=180)
    extra = {
        kind: json.dumps({"bench": None, "guardrails": {"config_id": config_id}})
        for kind, config_id in _KIND_ROUTE.items()
    }
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target("NeMo Guardrails", svc, url, extra, _version(py, "nemoguardrails"))


def start_litellm(services: Services, workdir: Path, up_port: int, py: Path) -> Target:
    base = f"http://127.0.0.1:{up_port}"
    template = string.Template((CONFIGS / "litellm" / "config.yaml").read_text("utf-8"))
    routes = {cid: _upstream_path(base, p, r) for cid, (p, r) in _ROUTES.items() if "-" not in cid}
    home = workdir / "litellm"
    home.mkdir()
    shutil.copy(CONFIGS / "litellm" / "keyword_guardrail.py", home)
    (home / "config.yaml").write_text(template.substitute(routes), encoding="utf-8")
    port = free_port()
    cmd = [str(py.with_name("litellm")), "--config", str(home / "config.yaml")]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    svc = services.add(Service("litellm", cmd, workdir, env=peer_env(), cwd=home))
    svc.start(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    extra = {
        kind: json.dumps({"bench": None, "model": f"bench-{config_id}"})
        for kind, config_id in _KIND_ROUTE.items()
    }
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target("LiteLLM proxy", svc, url, extra, _version(py, "litellm"))


# config id -> (text profile, rate) of the upstream path it points at
_ROUTES = {
    "full": ("words", 0.0),
    "paced": ("words", PACED_RATE),
    "canary": ("canary", 0.0),
    "canary-hold": ("canary", 0.0),  # stream_first false
}
# kind of load -> config id
_KIND_ROUTE = {
    "full": "full",
    "paced": "paced",
    "request": "full",
    "block": "canary",
    "block-hold": "canary-hold",
}


def _version(py: str | Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([py, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


# -- the loads -----------------------------------------------------------------------------


def loads(quick: bool) -> dict[str, FloorLoad]:
    """The same loads for every target: full speed (CPU per delta, TTFT), paced (TTFT),
    1-token streams (CPU per request)."""
    seconds = 1.0 if quick else 4.0
    paced_deltas = 64 if quick else 256
    return {
        "full": FloorLoad("full speed", "delta", 16, 420, duration=seconds),
        "paced": FloorLoad(
            "50 tok/s", "delta", 16, paced_deltas, PACED_RATE, requests=1, duration=60, ramp=1.0
        ),
        "request": FloorLoad("1-token streams", "request", 16, 1, duration=seconds),
    }


@dataclass
class Blocked:
    """What a client saw of a stream the rail blocks."""

    status: int
    forbidden_sent: bool
    ending: str
    content_deltas: int


async def _block_probe(url: str, extra: str | None) -> Blocked:
    body: dict[str, Any] = request_body(BLOCK_DELTAS, 0.0, "canary")
    for key, value in json.loads(extra or "{}").items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    timeout = aiohttp.ClientTimeout(total=120)
    raw = b""
    cut = False
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=body) as resp,
    ):
        status = resp.status
        try:
            async for chunk in resp.content.iter_any():
                raw += chunk
        except aiohttp.ClientError:
            cut = True
    return Blocked(status, FORBIDDEN.encode() in raw, _ending(status, raw, cut), _deltas(raw))


def _events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for event in raw.split(b"\n\n"):
        line = event.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        try:
            out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
        except ValueError:
            out.append("unparsable")
    return out


def _deltas(raw: bytes) -> int:
    n = 0
    for event in _events(raw):
        if isinstance(event, dict):
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    n += 1
    return n


def _ending(status: int, raw: bytes, cut: bool) -> str:
    """How the stream ended, in words: its last events and whether it was cut off."""
    if status != 200:
        return f"HTTP {status}: {raw[:120].decode(errors='replace')}"
    events = _events(raw)
    parts = []
    for event in events[-2:]:
        if event == "[DONE]":
            parts.append("[DONE]")
        elif isinstance(event, dict) and "error" in event:
            err = event["error"]
            code = err.get("code") if isinstance(err, dict) else err
            parts.append(f"error event (code {code})")
        elif isinstance(event, dict):
            reasons = [c.get("finish_reason") for c in event.get("choices") or []]
            parts.append(f"finish_reason {reasons[0]}" if any(reasons) else "content chunk")
        else:
            parts.append(str(event))
    if cut or (events and events[-1] != "[DONE]" and not raw.endswith(b"\n\n")):
        parts.append("connection cut")
    elif not events or events[-1] != "[DONE]":
        parts.append("no [DONE]")
    return ", then ".join(parts) if parts else "nothing"


# -- running -------------------------------------------------------------------------------


@dataclass
class PeerResult:
    name: str
    version: str
    runs: dict[str, LoadRun]
    blocked: Blocked | None
    blocked_hold: Blocked | None
    upstream_calls: float | None = None  # upstream requests per client request (full load)


def measure(
    target: Target,
    plan: dict[str, FloorLoad],
    upstream: Service,
    up_port: int,
    workdir: Path,
    say: Callable[[str], None],
) -> PeerResult:
    runs = {}
    per: float | None = None
    for kind, load in plan.items():
        say(f"peers: {target.name}, {load.name}, c={load.concurrency}")
        calls0 = _calls(up_port)
        runs[kind] = run_load(
            load,
            target.url,
            target.service,
            upstream,
            workdir,
            PY,
            quiet_s=2.0,
            extra=target.extra.get(kind),
            tree=True,
        )
        if kind == "full" and runs[kind].requests:
            per = (_calls(up_port) - calls0) / (runs[kind].requests + load.concurrency)
    blocked = hold = None
    if target.service is not None:
        blocked = asyncio.run(_block_probe(target.url, target.extra.get("block")))
        hold_url = target.hold_url or target.url
        hold = asyncio.run(_block_probe(hold_url, target.extra.get("block-hold")))
    return PeerResult(target.name, target.version, runs, blocked, hold, per)


def _calls(up_port: int) -> int:
    with HTTP.open(f"http://127.0.0.1:{up_port}/stats", timeout=5) as resp:
        return int(json.loads(resp.read())["calls"])


def run(quick: bool, cache: Path, only: list[str], say: Callable[[str], None]) -> list[PeerResult]:
    """Install (if needed), start everything, measure every target in turn."""
    pythons = {}
    if "nemo" in only:
        pythons["nemo"] = ensure(NEMO_ENV, cache, say)
    if "litellm" in only:
        pythons["litellm"] = ensure(LITELLM_ENV, cache, say)
    plan = loads(quick)
    results = []
    with tempfile.TemporaryDirectory(prefix="railproxy-peers-") as tmp, Services() as services:
        workdir = Path(tmp)
        up_port = free_port()
        upstream = services.add(
            Service("upstream", [PY, "-m", "bench.upstream", "--port", str(up_port)], workdir)
        )
        upstream.start(f"http://127.0.0.1:{up_port}/v1/models")
        starters: dict[str, Callable[[], Target]] = {
            "direct": lambda: Target(
                "upstream directly", None, f"http://127.0.0.1:{up_port}/v1/chat/completions"
            ),
            "bare": lambda: start_bare(services, workdir, up_port),
            "railproxy": lambda: _railproxy_pair(services, workdir, up_port),
            "nemo": lambda: start_nemo(services, workdir, up_port, pythons["nemo"]),
            "litellm": lambda: start_litellm(services, workdir, up_port, pythons["litellm"]),
        }
        for key in ["direct", *only]:
            say(f"peers: starting {key}")
            target = starters[key]()
            try:
                results.append(measure(target, plan, upstream, up_port, workdir, say))
            finally:
                if target.service is not None:
                    target.service.stop()
    return results


def markdown(results: list[PeerResult], plan: dict[str, FloorLoad], info: dict[str, str]) -> str:
    direct = results[0].runs
    head = [
        "relay",
        "CPU µs per delta (full speed)",
        "CPU µs per request (1-token streams)",
        "added TTFT p50 / p99, full speed (ms)",
        "added TTFT p50 / p99, 50 tok/s (ms)",
        "peak RSS (MB)",
        "upstream calls per request",
        "errors",
        "blocked, stream_first true: forbidden text reaches the client; the stream's end",
        "blocked, stream_first false: same",
        "other load (cores)",
    ]
    rows = []
    for r in results[1:]:
        full, paced, req = r.runs["full"], r.runs["paced"], r.runs["request"]
        cpu_req = req.cpu_s.get("proxy", 0.0) / req.requests * 1e6 if req.requests else None
        rss = max((x.peak_rss_mb or 0.0) for x in r.runs.values())
        rows.append(
            [
                f"{r.name} {r.version}".strip(),
                _f(full.cpu_per_1k_deltas("proxy") * 1000, 1),
                _f(cpu_req, 0),
                _added(full, direct["full"]),
                _added(paced, direct["paced"]),
                _f(rss, 0),
                _f(r.upstream_calls, 2),
                str(sum(x.error_count for x in r.runs.values())),
                _block_cell(r.blocked),
                _block_cell(r.blocked_hold),
                _f(max(x.other_cores for x in r.runs.values())),
            ]
        )
    f, p, q = plan["full"], plan["paced"], plan["request"]
    return "\n".join(
        [
            f"### railproxy and its peers ({info['date']})",
            "",
            f"Command: `{info['command']}`. Machine: {info['machine']}. Every relay in front of "
            "the same fake vLLM upstream, one keyword output rail (regex "
            f"`{PATTERN}`), windows of {CHUNK} tokens with {CONTEXT} of context, "
            f"stream_first true. Loads: full speed c={f.concurrency}, {f.deltas} deltas; "
            f"{p.rate:g} tok/s c={p.concurrency}, {p.deltas} deltas, starting over "
            f"{p.ramp:g} s; 1-token streams c={q.concurrency}. Added TTFT = through the relay "
            "- directly, same run. The blocked stream holds the pattern at delta 210 of "
            f"{BLOCK_DELTAS} (in the second window). CPU and RSS are the relay's process and "
            "its children.",
            "",
            *_table(head, rows),
            "",
        ]
    )


def _block_cell(b: Blocked | None) -> str:
    if b is None:
        return "n/a"
    sent = "yes" if b.forbidden_sent else "no"
    return f"{sent}; {b.content_deltas} content deltas, then {b.ending}"


def _added(run: LoadRun, direct: LoadRun) -> str:
    return f"{run.ttft.p50 - direct.ttft.p50:+.2f} / {run.ttft.p99 - direct.ttft.p99:+.2f}"


def to_json(results: list[PeerResult]) -> list[dict[str, Any]]:
    from bench.report import _run_json

    return [
        {
            "name": r.name,
            "version": r.version,
            "upstream_calls_per_request": r.upstream_calls,
            "blocked": None if r.blocked is None else vars(r.blocked),
            "blocked_stream_first_false": None if r.blocked_hold is None else vars(r.blocked_hold),
            "runs": {kind: _run_json(run) for kind, run in r.runs.items()},
        }
        for r in results
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short loads (a smoke test)")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--json", type=Path, help="write every number as JSON here")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "railproxy-bench-peers",
        help="where the peers' virtual environments live",
    )
    p.add_argument(
        "--only",
        default="bare,railproxy,nemo,litellm",
        help="targets, in order, any of: bare, railproxy, nemo, litellm",
    )
    args = p.parse_args(argv)
    only = args.only.split(",")
    unknown = set(only) - {"bare", "railproxy", "nemo", "litellm"}
    if unknown:
        p.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        results = run(args.quick, args.cache, only, say)
    except (ServiceError, subprocess.CalledProcessError) as e:
        print(f"peers: failed: {e}", file=sys.stderr)
        return 1
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m bench.peers", *(argv or sys.argv[1:])]),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}, "
        f"python {platform.python_version()}",
    }
    text = markdown(results, loads(args.quick), info)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        data = {"info": info, "results": to_json(results)}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
