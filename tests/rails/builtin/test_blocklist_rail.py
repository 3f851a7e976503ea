"""The blocklist rail: whole words, caseless, NFKC-normalized, whitespace-collapsed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rails.base import Action, CheckContext, Resources, Verdict
from rails.builtin.blocklist import BlocklistConfig, BlocklistRail

OUT = CheckContext(stage="output")


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
        (["falcon"], "the_falcon", False),
        (["falcon"], "falcon2", False),
        (["falcon"], "\uff26\uff21\uff2c\uff23\uff2f\uff2e", True),
        (["FALCON"], "falcon", True),
        (["project falcon"], "Project\nFalcon", True),
        (["project falcon"], "project \t  falcon", True),
        (["project   falcon"], "project falcon", True),
        (["project falcon"], "project\u00a0falcon", True),
        (["project falcon"], "project falconry", False),
        (["project falcon"], "project, falcon", False),
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
