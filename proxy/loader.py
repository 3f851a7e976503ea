"""Loading ``--config``: one file, or a directory of files (one rails config each).

A directory's server, upstream and logging settings come from its ``default.yaml`` (or,
without one, from defaults); every file contributes its ``streaming``/``rails`` sections
as a config whose id is the file's stem. Each config's rails are built (and so fully
validated) at start-up, never on a request. Every problem of every file is reported in one
``SettingsError``, a line each starting with the file's name (``--port``, ``--host`` and
``--upstream`` problems with the flag's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.auth import check_bindings
from proxy.configs import DEFAULT_ID, ConfigSet, config_files
from proxy.settings import Settings, SettingsError, load, read_yaml
from rails.guard import Guard
from rails.registry import RailsConfigError
from rails.resources import Resources


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
        notes = [f"# {note}\n" for note in self.notes()]
        head = f"# {self.source}: OK{_empty_note(self.source)}\n"
        return head + "".join(notes) + json.dumps(data, indent=2)

    def notes(self) -> list[str]:
        """What is valid but likely unintended: output rails whose streaming is off, so
        every streaming request gets a 400."""
        out = []
        for cid in self.configs.ids:
            guard = self.configs.get(cid)
            off = guard.config.streaming_switches_off
            if guard.guards_output and off:
                settings = " and ".join(f"{name}: true" for name in off)
                out.append(
                    f"config {cid!r}: output rails are configured but {' and '.join(off)} "
                    f"{'are' if len(off) > 1 else 'is'} false: streaming requests get a 400 "
                    f"(set {settings} to stream through the rails)"
                )
        return out


FLAGS = {"server.host": "--host", "server.port": "--port", "upstream.base_url": "--upstream"}


def load_config(path: str | None, **overrides: Any) -> LoadedConfig:
    """Read ``path`` (file, directory or None for defaults) and apply CLI overrides."""
    p = Path(path) if path else None
    if p is not None and p.is_dir():
        loaded = _load_dir(p, overrides)
    else:
        settings = _override(load(p), overrides)
        guards = {DEFAULT_ID: _guard(settings, str(p or "defaults"))}
        loaded = LoadedConfig(settings, ConfigSet(guards, DEFAULT_ID), str(p or "defaults"))
    check_bindings(loaded.settings.server.api_keys, loaded.configs.ids)
    return loaded


def _override(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """``settings`` with the command line's flags; a bad value names the flag."""
    try:
        return settings.with_overrides(**overrides)
    except SettingsError as e:
        lines = []
        for problem in e.problems:
            key = problem.split(":", 1)[0]
            flag = FLAGS.get(key)
            lines.append(f"{flag}{problem[len(key) :]}" if flag else problem)
        raise SettingsError(*lines) from None


def _load_dir(directory: Path, overrides: dict[str, Any]) -> LoadedConfig:
    files = config_files(directory)
    if not files:
        raise SettingsError(f"{directory}: no *.yaml config files in this directory")
    problems: list[str] = []
    resources = Resources()
    guards: dict[str, Guard] = {}
    base = Settings()
    for cid, f in files.items():
        try:
            loaded = load(f)
            guards[cid] = _guard(loaded, str(f), resources)
        except SettingsError as e:
            problems.extend(e.problems)
            continue
        if cid == DEFAULT_ID:
            base = loaded
    if problems:
        raise SettingsError(*problems)
    settings = _override(base, overrides)
    default = DEFAULT_ID if DEFAULT_ID in guards else None
    return LoadedConfig(settings, ConfigSet(guards, default), str(directory))


def _guard(settings: Settings, source: str, resources: Resources | None = None) -> Guard:
    try:
        return Guard(settings.rails_config, resources)
    except RailsConfigError as e:
        raise SettingsError(*(f"{source}: {p}" for p in e.problems)) from None


def _empty_note(source: str) -> str:
    """For an empty config file: say that every setting has its default."""
    p = Path(source)
    if p.is_file() and read_yaml(p) is None:
        return " (the file is empty: every setting has its default value)"
    return ""


def _summary(guard: Guard) -> dict[str, Any]:
    r = guard.config.rails
    return {
        "input": [rail.name for rail in guard.input.rails],
        "output": [rail.name for rail in guard.output.rails],
        "output_streaming": r.output.streaming.model_dump(),
        "streaming_enabled": guard.config.output_streaming_enabled,
        "abort": r.abort.model_dump(),
    }
