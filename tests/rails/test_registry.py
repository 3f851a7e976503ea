"""rails.registry: type lookup, building flows, and error messages naming key and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rails.builtin.blocklist import BlocklistRail
from rails.builtin.pii import PiiRail
from rails.builtin.secrets import SecretsRail
from rails.config import RailsConfig
from rails.registry import (
    BUILTIN,
    RailsConfigError,
    build_rail,
    build_rails,
    check_config,
    known_keys,
)
from rails.resources import Resources

TYPES = "[regex, blocklist, pii, secrets, llm_judge, llama_guard, http, python]"


def config(
    entries: dict[str, Any], input: list[str] | None = None, output: list[str] | None = None
) -> RailsConfig:
    return RailsConfig.model_validate(
        {
            "rails": {
                "config": entries,
                "input": {"flows": input or []},
                "output": {"flows": output or []},
            }
        }
    )


def problems(entries: dict[str, Any], **flows: list[str]) -> list[str]:
    return check_config(config(entries, **flows))


def test_builtin_is_a_read_only_mapping_of_every_type() -> None:
    assert "[" + ", ".join(BUILTIN) + "]" == TYPES
    assert all(cls.type_name == name for name, cls in BUILTIN.items())
    with pytest.raises(TypeError):
        BUILTIN["x"] = BUILTIN["pii"]  # type: ignore[index]


def test_builtin_flow_needs_no_config_entry() -> None:
    built = build_rails(config({}, input=["secrets"], output=["pii", "secrets"]), Resources())
    assert [type(r) for r in built.input] == [SecretsRail]
    assert [type(r) for r in built.output] == [PiiRail, SecretsRail]
    assert built.output[0].name == "pii"


def test_flows_keep_order_and_share_instances_across_stages() -> None:
    entries = {
        "banned": {"type": "blocklist", "words": ["x"]},
        "mail": {"type": "pii", "entities": ["email"]},
    }
    built = build_rails(config(entries, input=["banned"], output=["mail", "banned"]), Resources())
    assert [r.name for r in built.output] == ["mail", "banned"]
    assert built.input[0] is built.output[1]
    assert isinstance(built.input[0], BlocklistRail)


def test_entry_name_wins_over_builtin_type_name() -> None:
    entries = {"pii": {"type": "pii", "entities": ["ssn"], "action": "mask"}}
    [rail] = build_rails(config(entries, output=["pii"]), Resources()).output
    assert rail.config.model_dump()["entities"] == ["ssn"]


def test_build_rail_validates_against_the_type_config() -> None:
    rail = build_rail("b", {"type": "blocklist", "words": ["w"], "timeout_s": 2}, Resources())
    assert rail.config.timeout_s == 2
    assert rail.config.on_error == "block"


@pytest.mark.parametrize(
    ("entries", "flows", "expected"),
    [
        (
            {"banned": {"type": "blocklist", "words": ["x"], "wrods": ["y"]}},
            {"output": ["banned"]},
            "rails.config.banned.wrods: ['y']: unknown key (did you mean 'words'?); "
            "known keys for blocklist: words, timeout_s, on_error, fields, mode",
        ),
        (
            {"banned": {"type": "blocklist", "words": ["x"], "timeout_s": -1}},
            {},
            "rails.config.banned.timeout_s: -1: Input should be greater than 0",
        ),
        (
            {"banned": {"type": "blocklist", "words": ["x"], "on_error": "ignore"}},
            {},
            "rails.config.banned.on_error: 'ignore': Input should be 'allow' or 'block'",
        ),
        (
            {"banned": {"type": "blocklist"}},
            {},
            "rails.config.banned.words: required key missing",
        ),
        (
            {"ids": {"type": "regex", "patterns": ["ok", "(bad"]}},
            {},
            "rails.config.ids.patterns.1: '(bad': pattern '(bad' does not compile: "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            {"mine": {"words": ["x"]}},
            {},
            f"rails.config.mine: no 'type' key; built-in types: {TYPES}",
        ),
        (
            {"mine": {"type": "pi"}},
            {},
            "rails.config.mine.type: 'pi': not a rail type (did you mean 'pii'?); "
            f"built-in types: {TYPES}",
        ),
        (
            {"banned": {"type": "blocklist", "words": ["x"]}},
            {"output": ["pi"]},
            "rails.output.flows: 'pi': names no rail (did you mean 'pii'?); "
            f"configured: [banned]; built-in types: {TYPES}",
        ),
        (
            {},
            {"input": ["regex"]},
            "rails.config.regex.patterns: required key missing "
            "(no entry under rails.config, so built as type regex)",
        ),
        (
            {"judge": {"type": "llm_judge", "base_url": "http://x/v1", "model": "m", "api_key": 5}},
            {},
            "rails.config.judge.api_key: ***: Input should be a valid string",
        ),
        (
            {"mine": {"type": "python", "class": "no_such_module_4711:Rail"}},
            {},
            "rails.config.mine.class: 'no_such_module_4711:Rail': cannot import "
            "'no_such_module_4711' for "
            "'no_such_module_4711:Rail': ModuleNotFoundError(\"No module named "
            "'no_such_module_4711'\")",
        ),
        (
            {"mine": {"type": "python", "class": "collections:OrderedDict"}},
            {},
            "rails.config.mine.class: 'collections:OrderedDict': 'collections:OrderedDict' has "
            "no 'async def check(self, text, ctx)'",
        ),
    ],
)
def test_problem_messages(
    entries: dict[str, Any], flows: dict[str, list[str]], expected: str
) -> None:
    assert problems(entries, **flows) == [expected]
    with pytest.raises(RailsConfigError) as caught:
        build_rails(config(entries, **flows), Resources())
    assert caught.value.problems == (expected,)
    assert str(caught.value) == expected


def test_constructor_value_errors_name_the_rail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "configs" / "examples"))
    spec = {
        "type": "python",
        "class": "user_rails:ShoutingRail",
        "options": {"min_letters": 1, "max_upper_ratio": 3},
    }
    with pytest.raises(
        RailsConfigError,
        match=r"^rails\.config\.shout: user_rails:ShoutingRail\(\*\*options\) failed",
    ):
        build_rail("shout", spec, Resources())


def test_check_config_lists_every_problem_and_build_raises_them_all() -> None:
    entries = {
        "banned": {"type": "blocklist", "wrods": ["x"], "timeout_s": 0},
        "unused": {"type": "nope"},
        "fine": {"type": "secrets"},
    }
    cfg = config(entries, input=["fine", "ghost"], output=["banned"])
    found = check_config(cfg)
    assert len(found) == 5
    assert found[0].startswith("rails.input.flows: 'ghost': names no rail")
    assert {p.split(":")[0] for p in found[1:]} == {
        "rails.config.banned.words",
        "rails.config.banned.wrods",
        "rails.config.banned.timeout_s",
        "rails.config.unused.type",
    }
    with pytest.raises(RailsConfigError) as caught:
        build_rails(cfg, Resources())
    assert list(caught.value.problems) == found


def test_check_config_of_a_good_config_is_empty() -> None:
    entries = {"banned": {"type": "blocklist", "words": ["x"]}}
    assert problems(entries, input=["banned", "secrets"], output=["pii", "banned"]) == []
    assert problems({}) == []


@pytest.mark.parametrize(
    ("type_name", "keys"),
    [
        ("blocklist", ["words", "timeout_s", "on_error", "fields", "mode"]),
        ("python", ["class", "options", "timeout_s", "on_error", "fields", "mode"]),
        ("http", ["url", "headers", "timeout_s", "on_error", "fields", "mode"]),
    ],
)
def test_known_keys(type_name: str, keys: list[str]) -> None:
    assert known_keys(BUILTIN[type_name].Config) == keys
