"""The ``railproxy`` command: ``serve``, ``check``, ``demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from proxy.app import create_app
from proxy.loader import LoadedConfig, load_config
from proxy.logs import configure_logging
from proxy.server import run, serve_forever
from proxy.settings import SettingsError

log = logging.getLogger("railproxy")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="railproxy", description=__doc__)
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
    return p


def _load(args: argparse.Namespace) -> LoadedConfig | None:
    try:
        return load_config(
            args.config,
            **{
                "server.host": getattr(args, "host", None),
                "server.port": getattr(args, "port", None),
                "upstream.base_url": getattr(args, "upstream", None),
            },
        )
    except (SettingsError, ValueError) as e:
        print(f"railproxy: invalid config: {e}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return 1
    print(loaded.describe())
    return 0


def _serve(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return 1
    configure_logging(loaded.settings.logging)
    app = create_app(loaded.settings, loaded.configs)
    s = loaded.settings.server
    run(serve_forever(app, s.host, s.port, lambda port: _announce(s.host, port)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from proxy.demo import run_demo

    run(run_demo(args.port, args.config))
    return 0


def _announce(host: str, port: int) -> None:
    log.info("railproxy listening", extra={"url": f"http://{host}:{port}"})
