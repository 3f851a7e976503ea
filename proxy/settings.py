"""railproxy's settings: pydantic models loaded from YAML with ``${VAR}`` expansion.

Our own files are strict (``extra="forbid"``): a typo is an error naming the key. Strings
may hold ``${VAR}`` or ``${VAR:-default}``; expansion happens on parsed scalars (never on
raw YAML text, so a variable's value cannot inject YAML). An unset variable without a
default is an error naming the variable and the key that used it.

Every problem of a file is reported at once, one line each, as
``file: key: value: what is wrong (did you mean ...)``: the settings' own keys and the rails
under ``rails.config`` (validated by ``rails.registry``) in the same pass.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from proxy.routes import BUILTIN, PassRoute
from rails.config import InputRails, OutputRails, RailsConfig, RailsSection
from rails.registry import check_config

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """A config file that cannot be used; ``problems`` holds one line per problem, each
    naming the key and the value (the message is those lines)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def within(self, source: str) -> SettingsError:
        """The same problems, each line prefixed with ``source: ``."""
        return SettingsError(*(f"{source}: {p}" for p in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKey(_Strict):
    """One client key: its name (what logs and metrics show; never the key), the rails
    configs it may use (None: every config; else the first is its default) and whether it
    is an operator's key (operator-only features, such as the playground's debug channel)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    key: SecretStr
    configs: tuple[str, ...] | None = Field(default=None, min_length=1)
    operator: bool = False

    @field_validator("key")
    @classmethod
    def _not_blank(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("must not be empty")
        return v


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    max_concurrent_streams: int = Field(default=1024, ge=1)
    # The listen queue (the kernel caps it at net.core.somaxconn): a burst of new clients
    # past it waits for SYN retransmits (1 s, then 3 s), not for railproxy.
    backlog: int = Field(default=2048, ge=1)
    drain_timeout_s: float = Field(default=30.0, ge=0)
    workers: int = Field(default=1, ge=1, le=64)
    reload_poll_s: float = Field(default=2.0, ge=0)
    # A connection without a complete request head (idle between requests, or still
    # sending its request line and headers) this long after it opened or after its last
    # response is closed (aiohttp's keep-alive timer, which partial bytes do not reset).
    idle_timeout_s: float = Field(default=75.0, gt=0)
    # The whole request body must arrive within this long of its head: else 408, closed.
    body_timeout_s: float = Field(default=60.0, gt=0)
    # Client API keys (Authorization: Bearer <key> or x-api-key: <key>): one
    # comma-separated string (one environment variable), a list of keys, or a list of
    # {name, key, configs, operator} (ApiKey). Empty: no client authentication.
    api_keys: tuple[ApiKey, ...] = ()
    metrics_auth: bool = False  # /metrics needs a client key too
    # GET /ui (the playground page) and the debug channel it reads (proxy/debug.py).
    playground: bool = False
    # More routes relayed unjudged whatever the rails ("METHOD /v1/path/{param}"): only
    # routes that generate no text (proxy/routes.py).
    passthrough_routes: tuple[str, ...] = ()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _named_keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split(",")
        if not isinstance(v, list | tuple):
            return v
        plain = [k for k in v if not isinstance(k, str) or k.strip()]
        return tuple(
            {"name": f"key-{i}", "key": k.strip()} if isinstance(k, str) else k
            for i, k in enumerate(plain, 1)
        )

    @field_validator("api_keys")
    @classmethod
    def _distinct_keys(cls, v: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
        names = [k.name for k in v]
        if len(set(names)) != len(names):
            raise ValueError("two keys share a name")
        if len({k.key.get_secret_value() for k in v}) != len(v):
            raise ValueError("the same key is listed twice")
        return v

    @field_validator("passthrough_routes")
    @classmethod
    def _routes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for text in v:
            PassRoute.parse(text)
        return v

    @property
    def pass_routes(self) -> tuple[PassRoute, ...]:
        """The pass-through allow-list: the built-in routes, then the operator's."""
        return (*BUILTIN, *(PassRoute.parse(t) for t in self.passthrough_routes))


class UpstreamSettings(_Strict):
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: SecretStr | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)
    # Pooled connections to the upstream: at least server.max_concurrent_streams (fewer
    # would queue admitted streams even with no other traffic).
    max_connections: int = Field(default=2048, ge=1)
    max_event_bytes: int = Field(default=1 << 20, ge=1024)
    # A non-streamed answer (or error body), decoded: larger ones are a 502, not a 500 or
    # an unbounded read.
    max_response_bytes: int = Field(default=64 << 20, ge=1024)
    # Ask for a usage chunk on streams whose client did not (exact token accounting);
    # the chunk is kept from that client. Off by default: it changes the upstream's bytes
    # (vLLM drops system_fingerprint from the finish chunk when usage is on).
    request_usage: bool = False
    probe_path: str = "/models"
    probe_ttl_s: float = Field(default=5.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @property
    def root_url(self) -> str:
        """The server root: ``base_url`` without a trailing ``/v1`` (TGI's native routes)."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url


class LoggingSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    # Opt-in: a block's log line carries the text the blocking rail judged (the window
    # with its context, or the input message), so false blocks can be reviewed. That text
    # may hold personal data or secrets: off by default. Monitor-mode rails' would-be
    # blocks and masks (railproxy.rails "monitor: ..." lines) carry it as ``text`` too.
    include_text: bool = False


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    logging: LoggingSettings = LoggingSettings()
    streaming: bool | None = None
    rails: RailsSection = RailsSection()

    @model_validator(mode="after")
    def _pool_fits_the_streams(self) -> Settings:
        streams, pool = self.server.max_concurrent_streams, self.upstream.max_connections
        if pool < streams:
            raise ValueError(
                f"upstream.max_connections ({pool}) is below server.max_concurrent_streams "
                f"({streams}): admitted streams would queue for a connection. Raise "
                "max_connections or lower max_concurrent_streams."
            )
        return self

    @property
    def rails_config(self) -> RailsConfig:
        return RailsConfig(streaming=self.streaming, rails=self.rails)

    def with_overrides(self, **flat: Any) -> Settings:
        """Apply CLI flags such as ``server.port=9000``; None values are ignored."""
        data = self.model_dump(mode="python")
        for dotted, value in flat.items():
            if value is None:
                continue
            section, key = dotted.split(".")
            data[section][key] = value
        return _validate(_reveal(data))


def load(path: str | Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file (None: all defaults). Every problem line of the
    ``SettingsError`` starts with the file's name."""
    if path is None:
        return Settings()
    p = Path(path)
    raw = read_yaml(p)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: the top level must be a mapping, got {type(raw).__name__}")
    try:
        return _validate(expand(raw, os.environ if env is None else env))
    except SettingsError as e:
        raise e.within(str(p)) from None


def read_yaml(p: Path) -> Any:
    """The parsed YAML of ``p`` (None for an empty file); errors name the file and line."""
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingsError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SettingsError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        raise SettingsError(f"{p}: {_yaml_problem(e, p)}") from None


def _yaml_problem(e: yaml.YAMLError, p: Path) -> str:
    """PyYAML's several-line message as one line: where, and what."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or not problem:
        return "not valid YAML: " + " ".join(str(e).replace("<unicode string>", str(p)).split())
    context = getattr(e, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def expand(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(node, dict):
        return {k: expand(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [expand(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _VAR.sub(lambda m: _lookup(m, env, path), node)
    return node


def _lookup(m: re.Match[str], env: Mapping[str, str], path: str) -> str:
    name, default = m.group(1), m.group(2)
    if name in env:
        return env[name]
    if default is not None:
        return default
    raise SettingsError(f"{path}: environment variable {name} is not set (use ${{{name}:-x}})")


def _validate(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(*describe(e), *_rail_problems(data)) from None


def describe(e: ValidationError) -> list[str]:
    """One line per problem: ``key.path: value: message``. Secrets are not echoed."""
    lines = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        shown = "***" if "key" in key else _short(err.get("input"))
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: {shown}: unknown key{_key_hint(loc)}")
        elif err["type"] == "missing":
            lines.append(f"{key}: required key missing")
        elif not loc:
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{key}: {shown}: {err['msg'].removeprefix('Value error, ')}")
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key_hint(loc: list[str]) -> str:
    """`` (did you mean 'port'?); known keys: ...`` for an unknown key at ``loc``."""
    model: Any = Settings
    for part in loc[:-1]:
        is_model = isinstance(model, type) and issubclass(model, BaseModel)
        field = model.model_fields.get(part) if is_model else None
        model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; known keys: {', '.join(known)}"


def _rail_problems(data: dict[str, Any]) -> list[str]:
    """What ``rails.registry`` finds wrong with the rails under ``rails.config`` and the
    flows naming them, when the settings around them did not validate (when they do, the
    loader builds the rails and reports the same problems)."""
    rails = data.get("rails")
    if not isinstance(rails, dict):
        return []
    config = rails.get("config") or {}
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        return []
    section = RailsSection.model_construct(
        config=config,
        input=InputRails.model_construct(flows=_flows(rails, "input")),
        output=OutputRails.model_construct(flows=_flows(rails, "output")),
    )
    return check_config(RailsConfig.model_construct(rails=section))


def _flows(rails: dict[str, Any], stage: str) -> tuple[str, ...]:
    flows = rails.get(stage, {}).get("flows") if isinstance(rails.get(stage), dict) else None
    if isinstance(flows, list) and all(isinstance(f, str) for f in flows):
        return tuple(flows)
    return ()


def _reveal(data: Any) -> Any:
    """model_dump keeps SecretStr objects; unwrap them so the data validates again."""
    if isinstance(data, dict):
        return {k: _reveal(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_reveal(v) for v in data]
    if isinstance(data, SecretStr):
        return data.get_secret_value()
    return data
