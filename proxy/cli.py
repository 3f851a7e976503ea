"""The ``railproxy`` command: ``serve``, ``check``, ``demo``, ``chat``.

Exit codes: 0 done; 1 ``check`` found problems; 2 ``serve`` or ``demo`` could not start
(a config that cannot be used, a bad flag, an address that cannot be listened on), said in
one line per problem on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proxy import __version__
from proxy.app import create_app
from proxy.loader import LoadedConfig, load_config
from proxy.observe.logs import configure_logging
from proxy.run import workers
from proxy.run.reload import ReloadSource
from proxy.run.server import run, serve_forever
from proxy.settings import SettingsError

log = logging.getLogger("railproxy")
DESCRIPTION = "A streaming guardrails reverse proxy for OpenAI-compatible LLM servers."
EPILOG = "Start with: railproxy demo (then railproxy chat in another terminal)."
CANNOT_START = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="railproxy", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"railproxy {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="a YAML config file, or a directory of them")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--upstream", help="the upstream's OpenAI base URL, e.g. http://h:8000/v1")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check", help="validate a config and print the effective settings")
    check.add_argument("--config", required=True)
    check.set_defaults(func=_check)
    demo = sub.add_parser("demo", help="a demo upstream and the proxy in front of it")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--config", help="rails config for the demo (default: the demo's own)")
    demo.set_defaults(func=_demo)
    chat = sub.add_parser("chat", help="an interactive chat through railproxy")
    where = chat.add_mutually_exclusive_group()
    where.add_argument("--base-url", help="a running railproxy (default http://127.0.0.1:8080/v1)")
    where.add_argument("--config", help="start the proxy in-process with this config")
    chat.add_argument("--model", help="default: the first id from GET {base}/models")
    chat.add_argument(
        "--streaming",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream replies (the default) or ask for whole ones",
    )
    chat.add_argument("--config-id", help="send X-Rails-Config: ID (pick a rails config)")
    chat.set_defaults(func=_chat)
    return p


def _load(args: argparse.Namespace) -> LoadedConfig | None:
    """The config, or None after printing each problem on its own line."""
    try:
        return load_config(args.config, **_overrides(args))
    except (SettingsError, ValueError) as e:
        problems = e.problems if isinstance(e, SettingsError) else str(e).splitlines()
        for problem in problems:
            print(f"railproxy: {problem}", file=sys.stderr)
        return None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "upstream.base_url": getattr(args, "upstream", None),
    }


def _check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return 1
    print(loaded.describe())
    return 0


def _serve(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return CANNOT_START
    configure_logging(loaded.settings.logging)
    s = loaded.settings.server
    _warn_if_open(s.host, bool(s.api_keys))
    if s.workers > 1 and not workers.in_worker():
        return workers.supervise(_serve_args(args), s)
    if workers.in_worker():
        workers.exit_with_supervisor()
    app = create_app(loaded.settings, loaded.configs)
    reload = _reload_source(args, s.reload_poll_s)

    def announce(port: int) -> None:
        _announce(s.host, port)

    try:
        run(serve_forever(app, s.host, s.port, announce, reuse_port=s.workers > 1, reload=reload))
    except OSError as e:
        return cannot_listen(s.host, s.port, e)
    return 0


def cannot_listen(host: str, port: int, e: OSError) -> int:
    """Say in one line why ``host:port`` cannot be listened on, and what to do."""
    what = {
        errno.EADDRINUSE: "the address is in use: stop the process using it or pick another --port",
        errno.EACCES: "permission denied: ports below 1024 need privileges, pick another --port",
        errno.EADDRNOTAVAIL: "no such address on this machine: check --host",
    }.get(e.errno or 0, e.strerror or str(e))
    print(f"railproxy: cannot listen on {host}:{port}: {what}", file=sys.stderr)
    return CANNOT_START


def _warn_if_open(host: str, has_keys: bool) -> None:
    """An empty key list (e.g. an unset variable) means no client authentication: say so
    when the proxy listens beyond loopback."""
    if not has_keys and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "server.api_keys is empty: any client that reaches this address may use the proxy",
            extra={"host": host},
        )


def _reload_source(args: argparse.Namespace, poll_s: float) -> ReloadSource | None:
    """SIGHUP and file changes reload ``--config`` with the same flags."""
    if not args.config:
        return None

    def load() -> LoadedConfig:
        return load_config(args.config, **_overrides(args))

    return ReloadSource(Path(args.config), load, poll_s)


def _serve_args(args: argparse.Namespace) -> list[str]:
    """``serve`` with the flags given, less ``--port`` (a supervisor gives each worker one)."""
    flags = {"--config": args.config, "--host": args.host, "--upstream": args.upstream}
    return ["serve", *[x for k, v in flags.items() if v is not None for x in (k, v)]]


def _demo(args: argparse.Namespace) -> int:
    from proxy.run.demo import run_demo

    loaded = None
    if args.config:
        # Validated before anything starts; the demo upstream's URL replaces the file's.
        loaded = _load(args)
        if loaded is None:
            return CANNOT_START
    try:
        run(run_demo(args.port, loaded))
    except OSError as e:
        return cannot_listen("127.0.0.1", args.port, e)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from proxy.chat.session import main as chat_main

    return chat_main(args)


def _announce(host: str, port: int) -> None:
    log.info("railproxy listening", extra={"url": f"http://{host}:{port}"})
