"""Rail types by name, and building a config's rails once at start-up.

``BUILTIN`` maps each built-in ``type`` name to its class; it is built from an explicit
tuple (no entry points, no import side effects). A flow name resolves to the entry of the
same name under ``rails.config`` or, failing that, to the built-in type of that name built
with its defaults (``flows: [secrets]`` needs no entry).

Every problem is a ``RailsConfigError`` line naming the key path and the bad value and
listing what is available::

    rails.config.banned.wrods: ['x']: unknown key (did you mean 'words'?); known keys
        for blocklist: words, timeout_s, on_error, fields
    rails.config.banned.timeout_s: -1: Input should be greater than 0
    rails.output.flows: 'pi': names no rail (did you mean 'pii'?); configured: [banned];
        built-in types: [regex, blocklist, pii, ...]

that is ``key: value: what is wrong``, the value left out where there is none (a missing
key).

Values under keys holding secrets (``api_key``, ``headers``) are shown as ``***``.

``build_rails`` raises one error holding all problems; ``check_config`` returns them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, cast

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rails.base import Rail, RailConfig, RailType
from rails.builtin.blocklist import BlocklistRail
from rails.builtin.http import HttpRail
from rails.builtin.llama_guard import LlamaGuardRail
from rails.builtin.llm_judge import LlmJudgeRail
from rails.builtin.pii import PiiRail
from rails.builtin.python import PythonRail
from rails.builtin.regex import RegexRail
from rails.builtin.secrets import SecretsRail
from rails.config import RailsConfig
from rails.resources import Resources


class _BuiltinType(Protocol):
    """A built-in rail class: ``RailType`` plus its ``type_name``."""

    @property
    def type_name(self) -> str: ...

    @property
    def Config(self) -> type[RailConfig]: ...

    def __call__(self, name: str, config: Any, resources: Resources) -> Rail: ...


_TYPES: tuple[_BuiltinType, ...] = (
    RegexRail,
    BlocklistRail,
    PiiRail,
    SecretsRail,
    LlmJudgeRail,
    LlamaGuardRail,
    HttpRail,
    PythonRail,
)
# cast: RailType declares Config as a ClassVar, which mypy never matches with a class
# object; _BuiltinType above checks the same shape.
BUILTIN: Mapping[str, RailType] = MappingProxyType({t.type_name: cast(RailType, t) for t in _TYPES})


class RailsConfigError(ValueError):
    """A rails config that cannot be built; ``problems`` holds one line per problem."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class BuiltRails:
    """The rails of each stage, in flow order."""

    input: tuple[Rail, ...]
    output: tuple[Rail, ...]


def build_rail(name: str, spec: Mapping[str, Any], resources: Resources) -> Rail:
    """Build the rail configured as ``rails.config.<name>`` (``spec`` includes ``type``).

    Raises ``RailsConfigError`` for a missing or unknown type, a key or value the type's
    ``Config`` rejects, or a constructor's ``ValueError`` (e.g. a class that will not
    import); each line names ``rails.config.<name>[.<key>]``.
    """
    rail_type = _type_of(name, spec)
    try:
        config = rail_type.Config.model_validate(dict(spec))
    except ValidationError as exc:
        raise RailsConfigError(*(_describe(name, spec, e) for e in exc.errors())) from None
    try:
        return rail_type(name, config, resources)
    except ValueError as exc:
        raise RailsConfigError(f"rails.config.{name}: {exc}") from exc


def build_rails(cfg: RailsConfig, resources: Resources) -> BuiltRails:
    """Build every rail of ``cfg`` once (a rail in both stages is one shared instance).

    Entries under ``rails.config`` that no flow names are built too, so that a typo in
    them fails start-up. Raises ``RailsConfigError`` listing every problem.
    """
    problems: list[str] = []
    built = _build_all(cfg, resources, problems)
    if problems:
        raise RailsConfigError(*problems)
    return built


def check_config(cfg: RailsConfig) -> list[str]:
    """Every problem ``build_rails`` would raise, as messages; never raises for them.

    Rails are built with a throwaway ``Resources`` (constructors open no sessions), so
    ``python`` rails' classes are imported and constructed.
    """
    problems: list[str] = []
    _build_all(cfg, Resources(), problems)
    return problems


def _build_all(cfg: RailsConfig, resources: Resources, problems: list[str]) -> BuiltRails:
    section = cfg.rails
    specs: dict[str, Mapping[str, Any]] = dict(section.config)
    implicit: set[str] = set()
    for stage, flows in (("input", section.input.flows), ("output", section.output.flows)):
        for flow in flows:
            if flow in specs:
                continue
            if flow in BUILTIN:
                specs[flow] = {"type": flow}
                implicit.add(flow)
            else:
                problems.append(_unknown_flow(stage, flow, section.config))
    built: dict[str, Rail] = {}
    for name, spec in specs.items():
        try:
            built[name] = build_rail(name, spec, resources)
        except RailsConfigError as exc:
            note = f" (no entry under rails.config, so built as type {name})"
            problems.extend(p + note if name in implicit else p for p in exc.problems)
    return BuiltRails(
        input=tuple(built[f] for f in section.input.flows if f in built),
        output=tuple(built[f] for f in section.output.flows if f in built),
    )


def _type_of(name: str, spec: Mapping[str, Any]) -> RailType:
    type_name = spec.get("type")
    types = _listing(BUILTIN)
    if not type_name:
        raise RailsConfigError(f"rails.config.{name}: no 'type' key; built-in types: {types}")
    rail_type = BUILTIN.get(type_name) if isinstance(type_name, str) else None
    if rail_type is None:
        hint = _hint(type_name, BUILTIN)
        raise RailsConfigError(
            f"rails.config.{name}.type: {type_name!r}: not a rail type{hint}; "
            f"built-in types: {types}"
        )
    return rail_type


def _unknown_flow(stage: str, flow: str, configured: Mapping[str, Any]) -> str:
    return (
        f"rails.{stage}.flows: {flow!r}: names no rail{_hint(flow, [*configured, *BUILTIN])}; "
        f"configured: {_listing(configured)}; built-in types: {_listing(BUILTIN)}"
    )


def _describe(name: str, spec: Mapping[str, Any], err: ErrorDetails) -> str:
    loc = [str(part) for part in err["loc"]]
    path = ".".join(["rails", "config", name, *loc])
    type_name = str(spec["type"])
    shown = _shown(loc, err["input"])
    if err["type"] == "extra_forbidden":
        keys = known_keys(BUILTIN[type_name].Config)
        hint = _hint(loc[-1], keys)
        return f"{path}: {shown}: unknown key{hint}; known keys for {type_name}: {', '.join(keys)}"
    if err["type"] == "missing":
        return f"{path}: required key missing"
    error = err.get("ctx", {}).get("error")
    message = str(error) if err["type"] == "value_error" and error else err["msg"]
    return f"{path}: {shown}: {message}"


def known_keys(config: type[RailConfig]) -> list[str]:
    """The keys a rail type accepts: its own first, then the common ones (not ``type``)."""
    common = [k for k in RailConfig.model_fields if k != "type"]
    own = [f.alias or k for k, f in config.model_fields.items() if k not in RailConfig.model_fields]
    return own + common


def _shown(loc: list[str], value: Any) -> str:
    """The bad value for a message: secrets (keys, headers) are never echoed."""
    if any("key" in part or part == "headers" for part in loc):
        return "***"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _hint(value: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(names: Iterable[str]) -> str:
    return "[" + ", ".join(names) + "]"
