"""railproxy's settings: pydantic models loaded from YAML with ``${VAR}`` expansion.

Our own files are strict (``extra="forbid"``): a typo is an error naming the key. Strings
may hold ``${VAR}`` or ``${VAR:-default}``; expansion happens on parsed scalars (never on
raw YAML text, so a variable's value cannot inject YAML). An unset variable without a
default is an error naming the variable and the key that used it.
"""

from __future__ import annotations

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
from rails.config import RailsConfig, RailsSection

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """A config file that cannot be used; the message names the key and the value."""


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
    """Read and validate a config file (None: all defaults)."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingsError(f"{p}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"{p}: not valid YAML: {e}") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: the top level must be a mapping, got {type(raw).__name__}")
    return _validate(expand(raw, os.environ if env is None else env))


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
        raise SettingsError(describe(e)) from None


def describe(e: ValidationError) -> str:
    """One line per problem: ``key.path: message (got 'value')``. Secrets are not echoed."""
    lines = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        shown = "***" if "key" in key else repr(err.get("input"))
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {err['msg']} (got {shown})")
    return "; ".join(lines)


def _reveal(data: Any) -> Any:
    """model_dump keeps SecretStr objects; unwrap them so the data validates again."""
    if isinstance(data, dict):
        return {k: _reveal(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_reveal(v) for v in data]
    if isinstance(data, SecretStr):
        return data.get_secret_value()
    return data
