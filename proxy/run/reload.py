"""Config reload: a changed config file, or SIGHUP, swaps the rails configs new requests use.

Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and swapping
the ``..data`` symlink to it (``config.yaml -> ..data/config.yaml``): the path never changes,
its target, inode and mtime do. ``Reloader.watch`` polls a fingerprint of exactly those every
``server.reload_poll_s`` (0: no polling; SIGHUP still reloads). No inotify, no dependency, and
symlink swaps are seen that a watch on the file itself would miss.

A reload loads and builds the new config completely (what ``railproxy check`` does) before
anything changes:

* valid: the reload hooks run with the new set (metrics), then ``ServerState.configs`` points
  at it. Requests in flight keep the Guard they picked; the old set is closed once every
  request that was in flight at the swap has ended.
* invalid: nothing changes, the error is logged, the hooks get ``"error"``. The next change
  of the file is tried again (an editor's half-written file is followed by the whole one).

Only the rails configs are reloaded. Server, upstream and logging sections that differ from
the running ones are logged as waiting for a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy.configs import ConfigSet, config_files
from proxy.loader import LoadedConfig
from proxy.state import SETTINGS, STATE, InFlight, live_configs

log = logging.getLogger("railproxy.reload")

# One entry per config file: (name, resolved target, inode, mtime in ns, size).
Fingerprint = tuple[tuple[str, str, int, int, int], ...]
RESTART_SECTIONS = ("server", "upstream", "logging")


@dataclass(frozen=True, slots=True)
class ReloadSource:
    """Where a server's config comes from: the ``--config`` path and how to load it again
    (with the same command-line overrides); ``poll_s`` 0 disables polling."""

    path: Path
    load: Callable[[], LoadedConfig]
    poll_s: float = 2.0


def fingerprint(path: Path) -> Fingerprint:
    """What changes when ``path`` (a file, or a directory of ``*.yaml``) is rewritten or its
    symlinks are swapped. A missing file has target ``""`` and -1 for the numbers."""
    files = config_files(path) if path.is_dir() else {path.name: path}
    return tuple(_stat(name, p) for name, p in sorted(files.items()))


def _stat(name: str, p: Path) -> tuple[str, str, int, int, int]:
    try:
        st = p.stat()  # follows symlinks: the inode and mtime of the current target
    except OSError:
        return (name, "", -1, -1, -1)
    return (name, os.path.realpath(p), st.st_ino, st.st_mtime_ns, st.st_size)


class Reloader:
    """Swaps the live rails configs of one running app (see the module docstring)."""

    def __init__(self, app: web.Application, source: ReloadSource, inflight: InFlight) -> None:
        self._app = app
        self._source = source
        self._inflight = inflight
        self._seen = fingerprint(source.path)
        self._retiring: set[asyncio.Task[None]] = set()

    def reload(self) -> bool:
        """Load the config now and switch to it if it is valid; True when switched.

        Never raises: any failure to load is the refused-reload path. Call it on the event
        loop (it schedules closing the old set)."""
        self._seen = fingerprint(self._source.path)
        try:
            loaded = self._source.load()
        except Exception as e:
            refused = {"source": str(self._source.path), "error": str(e)}
            log.error("config reload refused; still serving the previous config", extra=refused)
            self._notify("error", None)
            return False
        self._notify("ok", loaded.configs)
        self._swap(loaded.configs)
        self._warn_restart_needed(loaded)
        log.info("config reloaded", extra={"source": loaded.source, "configs": loaded.configs.ids})
        return True

    def changed(self) -> bool:
        """True when the file's fingerprint differs from the one last loaded."""
        return fingerprint(self._source.path) != self._seen

    async def watch(self) -> None:
        """Poll every ``poll_s`` and reload on a change; runs until cancelled."""
        if self._source.poll_s <= 0:
            return
        while True:
            await asyncio.sleep(self._source.poll_s)
            if self.changed():
                self.reload()

    async def aclose(self) -> None:
        """Close every retired set now, and the live set when a reload made it (the app's
        cleanup closes its own). Call after the server stopped serving."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        state = self._app[STATE]
        if state.configs is not None:
            await state.configs.aclose()

    def _notify(self, result: str, configs: ConfigSet | None) -> None:
        for hook in self._app[STATE].reload_hooks:
            try:
                hook(result, configs)
            except Exception:
                log.exception("reload hook failed", extra={"hook": repr(hook)})

    def _swap(self, configs: ConfigSet) -> None:
        old = live_configs(self._app)
        self._app[STATE].configs = configs
        task = asyncio.get_running_loop().create_task(self._retire(old, self._inflight.snapshot()))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(old: ConfigSet, in_flight: frozenset[asyncio.Task[Any]]) -> None:
        """Close ``old`` once the requests that may hold its guards have ended."""
        try:
            if in_flight:
                await asyncio.wait(in_flight)
        finally:
            try:
                await old.aclose()
            except Exception:
                log.exception("closing the previous rails configs failed")

    def _warn_restart_needed(self, loaded: LoadedConfig) -> None:
        running = self._app[SETTINGS]
        changed = [
            s for s in RESTART_SECTIONS if getattr(loaded.settings, s) != getattr(running, s)
        ]
        if changed:
            log.warning(
                "config sections changed that apply at restart", extra={"sections": changed}
            )
