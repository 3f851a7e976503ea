"""Settings: YAML, ${VAR} expansion, strictness, error messages naming key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.settings import Settings, SettingsError, expand, load


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_serve_a_local_vllm() -> None:
    s = Settings()
    assert s.upstream.base_url == "http://127.0.0.1:8000/v1"
    assert s.upstream.root_url == "http://127.0.0.1:8000"
    assert s.server.port == 8080


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("x${A}y", {"A": "1"}, "x1y"),
        ("${A:-d}", {}, "d"),
        ("${A:-}", {}, ""),
        ("${A:-d}", {"A": "set"}, "set"),
        ("$A", {"A": "1"}, "$A"),
        ("${A}${B:-2}", {"A": "1"}, "12"),
    ],
)
def test_expansion(value: str, env: dict[str, str], expected: str) -> None:
    assert expand({"k": value}, env) == {"k": expected}


def test_expansion_is_on_scalars_not_yaml_text(tmp_path: Path) -> None:
    p = write(tmp_path, "upstream:\n  api_key: ${KEY}\n")
    s = load(p, {"KEY": "a: b\nserver: {port: 1}"})
    assert s.upstream.api_key is not None
    assert s.upstream.api_key.get_secret_value() == "a: b\nserver: {port: 1}"
    assert s.server.port == 8080


def test_unset_variable_names_it_and_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, "upstream:\n  base_url: ${NOPE}\n")
    with pytest.raises(SettingsError, match=r"upstream.base_url: environment variable NOPE"):
        load(p, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  prot: 1\n", r"c.yaml: server.prot: 1: unknown key \(did you mean 'port'"),
        ("server:\n  port: nine\n", r"c.yaml: server.port: 'nine': "),
        ("upstream:\n  base_url: ftp://x\n", r"upstream.base_url: .*http"),
        ("- a\n- b\n", r"top level must be a mapping"),
        ("server: [\n", r"not valid YAML"),
        ("rails:\n  output:\n    streaming:\n      chunk_size: 0\n", r"chunk_size"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(write(tmp_path, text), {})


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    p = write(tmp_path, "upstream:\n  api_key: [not, a, string]\n")
    with pytest.raises(SettingsError) as e:
        load(p, {})
    assert "not" not in str(e.value).split("api_key")[1]


def test_empty_api_key_means_none(tmp_path: Path) -> None:
    s = load(write(tmp_path, "upstream:\n  api_key: ${K:-}\n"), {})
    assert s.upstream.api_key is None


def test_overrides() -> None:
    s = Settings().with_overrides(
        **{"server.port": 9, "upstream.base_url": "http://h:1/v1/", "server.host": None}
    )
    assert s.server.port == 9
    assert s.server.host == "127.0.0.1"
    assert s.upstream.base_url == "http://h:1/v1"


def test_default_config_file_loads() -> None:
    s = load(Path(__file__).parents[2] / "configs" / "default.yaml", {})
    assert s.upstream.api_key is None
    assert s.server.port == 8080


def test_the_upstream_pool_must_fit_the_admitted_streams(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {max_concurrent_streams: 64}\nupstream: {max_connections: 32}\n")
    with pytest.raises(SettingsError, match=r"max_connections \(32\) is below .*streams \(64\)"):
        load(cfg)
    cfg.write_text("server: {max_concurrent_streams: 64}\nupstream: {max_connections: 64}\n")
    assert load(cfg).upstream.max_connections == 64
    defaults = Settings()
    assert defaults.upstream.max_connections >= defaults.server.max_concurrent_streams
