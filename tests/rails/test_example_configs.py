"""Every configs/examples/*.yaml is a config whose rails build without a problem, and
every built-in rail type has an example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rails.config import RailsConfig
from rails.registry import BUILTIN, check_config

EXAMPLES = Path(__file__).parents[2] / "configs" / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rails_config(data: dict[str, Any]) -> RailsConfig:
    return RailsConfig.model_validate({k: data[k] for k in ("streaming", "rails") if k in data})


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_example_is_valid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # python.yaml's class lives beside it
    data = load(path)
    assert "upstream" in data
    cfg = rails_config(data)
    assert check_config(cfg) == []
    assert cfg.output_streaming_enabled
    assert cfg.rails.output.flows


def test_every_builtin_type_has_its_example() -> None:
    assert {p.stem for p in FILES} >= set(BUILTIN)
    for name in BUILTIN:
        entries = load(EXAMPLES / f"{name}.yaml")["rails"].get("config", {})
        types = {entry["type"] for entry in entries.values()}
        assert name in types
