"""The regex rail, and the scan/merge/redact machinery pii and secrets share."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from rails.base import Action, CheckContext, Verdict
from rails.builtin.regex import Detector, RegexConfig, RegexRail, Span, scan
from rails.resources import Resources

OUT = CheckContext(stage="output")


async def judge(text: str, **config: Any) -> Verdict:
    rail = RegexRail("r", RegexConfig.model_validate({"type": "regex", **config}), Resources())
    return await rail.check(text, OUT)


@pytest.mark.parametrize(
    ("patterns", "flags", "text", "blocked"),
    [
        ([r"\bfoo\d+\b"], [], "see foo123 here", True),
        ([r"\bfoo\d+\b"], [], "seefoo123 here", False),
        (["secret"], [], "a SECRET plan", False),
        (["secret"], ["IGNORECASE"], "a SECRET plan", True),
        (["^total:"], [], "items\ntotal: 3", False),
        (["^total:"], ["MULTILINE"], "items\ntotal: 3", True),
        (["begin.end"], [], "begin\nend", False),
        (["begin.end"], ["DOTALL"], "begin\nend", True),
        (["^a.c$"], ["MULTILINE", "DOTALL"], "x\na\nc\ny", True),
        (["nope", "te.t"], [], "a test", True),
        (["x*"], [], "abc", False),
    ],
)
async def test_block(patterns: list[str], flags: list[str], text: str, blocked: bool) -> None:
    verdict = await judge(text, patterns=patterns, flags=flags)
    assert verdict.action is (Action.BLOCK if blocked else Action.ALLOW)


async def test_block_reason_names_the_pattern() -> None:
    verdict = await judge("id 42", patterns=["zzz", r"\d+"])
    assert verdict == Verdict.block(r"matched: pattern '\\d+'")


@pytest.mark.parametrize(
    ("config", "text", "masked"),
    [
        ({"patterns": [r"\d{4}"]}, "pin 1234 and 5678.", "pin [REDACTED] and [REDACTED]."),
        ({"patterns": [r"\d{4}"], "mask_with": "#"}, "1234-5678", "#-#"),
        ({"patterns": ["abc", "bcd"]}, "xabcdx", "x[REDACTED]x"),
        ({"patterns": ["(a)b"], "mask_with": r"<\1>"}, "cab", r"c<\1>"),
        ({"patterns": ["cat"], "flags": ["IGNORECASE"]}, "Cat or CAT", "[REDACTED] or [REDACTED]"),
    ],
)
async def test_mask(config: dict[str, Any], text: str, masked: str) -> None:
    verdict = await judge(text, action="mask", **config)
    assert verdict.action is Action.MODIFY
    assert verdict.text == masked


async def test_mask_without_match_allows() -> None:
    assert await judge("nothing here", patterns=[r"\d"], action="mask") == Verdict.allow()


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"patterns": ["ok", "(unclosed"]}, "'(unclosed' does not compile"),
        ({"patterns": []}, "at least 1"),
        ({"patterns": ["a"], "flags": ["VERBOSE"]}, "IGNORECASE"),
        ({"patterns": ["a"], "action": "drop"}, "block"),
        ({"patterns": ["a"], "pattern": "b"}, "Extra inputs"),
    ],
)
def test_config_errors(config: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(needle)):
        RegexConfig.model_validate(config)


def test_scan_merges_overlaps_keeping_the_first_label() -> None:
    detectors = [
        Detector("a", "A", re.compile("bcd")),
        Detector("b", "B", re.compile("abc")),
        Detector("c", "C", re.compile("x+"), valid=lambda s: len(s) > 1),
    ]
    assert scan("abcde x xx", detectors) == [Span(0, 4, "b", "B"), Span(8, 10, "c", "C")]


def test_scan_uses_the_secret_group() -> None:
    detector = Detector("k", "K", re.compile(r"key=(?P<secret>\w+)"))
    assert scan("a key=xyz", [detector]) == [Span(6, 9, "k", "K")]


async def test_normalize_is_opt_in() -> None:
    text = "the f\u200borbidden word"
    plain = RegexRail("r", RegexConfig.model_validate({"patterns": ["forbidden"]}), Resources())
    assert (await plain.check(text, OUT)).action is Action.ALLOW
    config = RegexConfig.model_validate({"patterns": ["forbidden"], "normalize": True})
    rail = RegexRail("r", config, Resources())
    assert (await rail.check(text, OUT)).action is Action.BLOCK
    masked = RegexRail("r", config.model_copy(update={"action": "mask"}), Resources())
    assert (await masked.check(text, OUT)).text == "the [REDACTED] word"
