"""The python rail: the shipped example class (configs/examples/user_rails.py) and odd
classes from tests/rails/builtin/sample_user_rail.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rails.base import CheckContext, Verdict
from rails.builtin.python import PythonConfig, PythonRail
from rails.resources import Resources

OUT = CheckContext(stage="output")
EXAMPLES = Path(__file__).parents[3] / "configs" / "examples"
LOUD = "THIS IS VERY LOUD INDEED FRIENDS"


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.syspath_prepend(str(EXAMPLES))


def make_rail(class_path: str, **options: Any) -> PythonRail:
    config = PythonConfig.model_validate({"class": class_path, "options": options})
    return PythonRail("mine", config, Resources())


@pytest.mark.parametrize(
    ("options", "text", "expected"),
    [
        ({}, LOUD, Verdict.block("too much shouting")),
        ({}, LOUD.capitalize(), Verdict.allow()),
        ({}, "SHORT BUT LOUD", Verdict.allow()),
        ({"max_upper_ratio": 1.0}, LOUD, Verdict.allow()),
        ({"min_letters": 100}, LOUD, Verdict.allow()),
    ],
)
async def test_user_class_judges(options: dict[str, Any], text: str, expected: Verdict) -> None:
    assert await make_rail("user_rails:ShoutingRail", **options).check(text, OUT) == expected


async def test_modify_and_context_pass_through() -> None:
    verdict = await make_rail("sample_user_rail:Redactor").check("a cat", OUT)
    assert verdict == Verdict.modify("a ***", "output redacted")


def test_config_accepts_field_name_too() -> None:
    config = PythonConfig.model_validate({"class_": "user_rails:ShoutingRail"})
    assert config.class_ == "user_rails:ShoutingRail"
    assert config.options == {}


@pytest.mark.parametrize(
    ("class_path", "needle"),
    [
        ("sample_user_rail", "is not of the form 'package.module:ClassName'"),
        ("no_such_module_4711:Rail", "cannot import 'no_such_module_4711'"),
        ("sample_user_rail:Missing", "module 'sample_user_rail' has no class 'Missing'"),
        ("sample_user_rail:not_a_class", "has no class 'not_a_class'"),
        ("sample_user_rail:SyncCheck", "has no 'async def check(self, text, ctx)'"),
    ],
)
def test_unloadable_class_is_a_config_error(class_path: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PythonConfig.model_validate({"class": class_path})
    assert needle in str(caught.value)
    assert caught.value.errors()[0]["loc"] == ("class",)


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"nope": 1}, "unexpected keyword"), ({"max_upper_ratio": 2}, "max_upper_ratio")],
)
def test_rejected_options_are_a_value_error(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make_rail("user_rails:ShoutingRail", **options)


async def test_non_verdict_answer_raises() -> None:
    with pytest.raises(TypeError, match="check returned bool, not Verdict"):
        await make_rail("sample_user_rail:WrongAnswer").check("x", OUT)


async def test_check_exceptions_propagate() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await make_rail("sample_user_rail:Exploding").check("x", OUT)
