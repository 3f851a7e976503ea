"""Loading ``--config``: one file, or a directory of files (one rails config each).

A directory's server, upstream and logging settings come from its ``default.yaml`` (or,
without one, from defaults); every file contributes its ``streaming``/``rails`` sections
as a config whose id is the file's stem. Each config's rails are built (and so fully
validated) at start-up, never on a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.auth import check_bindings
from proxy.configs import DEFAULT_ID, ConfigSet, config_files
from proxy.settings import Settings, SettingsError, load
from rails.base import Resources
from rails.guard import Guard
from rails.registry import RailsConfigError


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    configs: ConfigSet
    source: str

    def describe(self) -> str:
        """The effective settings as JSON, secrets masked, plus each config's rails."""
        data: dict[str, Any] = self.settings.model_dump(mode="json", exclude={"rails"})
        data["configs"] = {cid: _summary(self.configs.get(cid)) for cid in self.configs.ids}
        data["default_config"] = self.configs.default
        return f"# {self.source}: OK\n" + json.dumps(data, indent=2)


def load_config(path: str | None, **overrides: Any) -> LoadedConfig:
    """Read ``path`` (file, directory or None for defaults) and apply CLI overrides."""
    p = Path(path) if path else None
    if p is not None and p.is_dir():
        loaded = _load_dir(p, overrides)
    else:
        settings = load(p).with_overrides(**overrides)
        guards = {DEFAULT_ID: _guard(settings, str(p or "defaults"))}
        loaded = LoadedConfig(settings, ConfigSet(guards, DEFAULT_ID), str(p or "defaults"))
    check_bindings(loaded.settings.server.api_keys, loaded.configs.ids)
    return loaded


def _load_dir(directory: Path, overrides: dict[str, Any]) -> LoadedConfig:
    files = config_files(directory)
    if not files:
        raise SettingsError(f"{directory}: no *.yaml config files in this directory")
    base = files.get(DEFAULT_ID)
    settings = (load(base) if base else Settings()).with_overrides(**overrides)
    resources = Resources()
    guards = {cid: _guard(load(f), str(f), resources) for cid, f in files.items()}
    default = DEFAULT_ID if DEFAULT_ID in guards else None
    return LoadedConfig(settings, ConfigSet(guards, default), str(directory))


def _guard(settings: Settings, source: str, resources: Resources | None = None) -> Guard:
    try:
        return Guard(settings.rails_config, resources)
    except RailsConfigError as e:
        raise SettingsError(f"{source}: {e}") from None


def _summary(guard: Guard) -> dict[str, Any]:
    r = guard.config.rails
    return {
        "input": [rail.name for rail in guard.input.rails],
        "output": [rail.name for rail in guard.output.rails],
        "output_streaming": r.output.streaming.model_dump(),
        "streaming_enabled": guard.config.output_streaming_enabled,
        "abort": r.abort.model_dump(),
    }
