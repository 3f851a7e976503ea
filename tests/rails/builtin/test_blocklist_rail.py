"""The blocklist rail: whole words, caseless, normalized, across separators."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rails.base import Action, CheckContext, Verdict
from rails.builtin.blocklist import BlocklistConfig, BlocklistRail
from rails.resources import Resources

OUT = CheckContext(stage="output")
RUSSIAN = "\u042d\u0442\u043e \u0441\u043e\u0440 \u0438 \u043c\u0443\u0441\u043e\u0440"


async def judge(words: list[str], text: str) -> Verdict:
    config = BlocklistConfig.model_validate({"words": words})
    return await BlocklistRail("banned", config, Resources()).check(text, OUT)


@pytest.mark.parametrize(
    ("words", "text", "blocked"),
    [
        (["falcon"], "Project Falcon launches", True),
        (["falcon"], "falcon", True),
        (["falcon"], "(falcon).", True),
        (["falcon"], "falconry is fun", False),
        (["falcon"], "a peregrinefalcon", False),
        (["falcon"], "the_falcon", True),  # "_" separates words
        (["falcon"], "falcon2", False),
        (["falcon"], "\uff26\uff21\uff2c\uff23\uff2f\uff2e", True),
        (["FALCON"], "falcon", True),
        (["project falcon"], "Project\nFalcon", True),
        (["project falcon"], "project \t  falcon", True),
        (["project   falcon"], "project falcon", True),
        (["project falcon"], "project\u00a0falcon", True),
        (["project falcon"], "project falconry", False),
        (["project falcon"], "project, falcon", False),
        (["project falcon"], "project-falcon", True),
        (["project falcon"], "project_falcon", True),
        (["project falcon"], "project.falcon", True),
        (["project falcon"], "projectfalcon", True),
        (["project falcon"], "projected falconry", False),
        (["project falcon"], "p r o j e c t  f a l c o n", True),
        (["falcon"], "fal-con", True),
        (["falcon"], "f.a.l.c.o.n", True),
        (["falcon"], "fal_con", True),
        (["falcon"], "I saw a f a l c o n today", True),
        (["falcon"], "f a l c o", False),
        (["falcon"], "fa\u200blcon", True),
        (["falcon"], "f\u0430lc\u043en", True),  # Cyrillic a and o
        (["falcon"], "f\u0336a\u0336l\u0336c\u0336o\u0336n\u0336", True),  # strike marks
        (["falcon"], "\u8fd9\u662ffalcon\u7684", True),  # between Chinese characters
        (
            ["cop"],
            "\u042d\u0442\u043e \u0441\u043e\u0440 \u0438 \u043c\u0443\u0441\u043e\u0440",
            False,
        ),
        (["straße"], "STRASSE", True),
        (["file"], "a \ufb01le", True),
        (["café"], "cafe\u0301 au lait", True),
        (["c++"], "I write c++ daily", True),
        (["c++"], "I write c daily", False),
        (["alpha", "beta"], "only beta here", True),
        (["alpha", "beta"], "neither", False),
    ],
)
async def test_matching(words: list[str], text: str, blocked: bool) -> None:
    verdict = await judge(words, text)
    assert verdict.action is (Action.BLOCK if blocked else Action.ALLOW)


async def test_reason_names_the_configured_term() -> None:
    verdict = await judge(["Project Falcon"], "about PROJECT  falcon")
    assert verdict == Verdict.block("matched blocklisted term 'Project Falcon'")


async def test_longest_term_is_reported() -> None:
    verdict = await judge(["project", "project falcon"], "project falcon")
    assert verdict.reason == "matched blocklisted term 'project falcon'"


@pytest.mark.parametrize("words", [[], [" "], ["ok", "\n"]])
def test_empty_or_blank_terms_are_rejected(words: list[str]) -> None:
    with pytest.raises(ValidationError):
        BlocklistConfig.model_validate({"words": words})
