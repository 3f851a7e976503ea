"""The pii rail: candidates found by pattern, confirmed by checksum or parser."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rails.base import Action, CheckContext, Verdict
from rails.builtin.pii import ENTITIES, PiiConfig, PiiRail, detectors, iban_ok, luhn_ok
from rails.builtin.regex import scan
from rails.resources import Resources

OUT = CheckContext(stage="output")


async def judge(text: str, **config: Any) -> Verdict:
    rail = PiiRail("pii", PiiConfig.model_validate(config), Resources())
    return await rail.check(text, OUT)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        ("4111 1111 1111 1112", False),
        ("378282246310005", True),
        ("378282246310006", False),
        ("6011111111111117", True),
        ("0000 0000 0000 0000", False),
        ("4111", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_ok(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89 3704 0044 0532 0130 00", True),
        ("DE89370400440532013000", True),
        ("DE89 3704 0044 0532 0130 01", False),
        ("GB82WEST12345698765432", True),
        ("GB82WEST12345698765433", False),
        ("GB82WEST", False),
    ],
)
def test_iban_mod97(iban: str, valid: bool) -> None:
    assert iban_ok(iban) is valid


@pytest.mark.parametrize(
    ("entity", "text", "found"),
    [
        ("email", "mail jane.doe+x@example.co.uk now", True),
        ("email", "Write to ops@corp.example.", True),
        ("email", "user@localhost", False),
        ("email", "see example.com", False),
        ("phone", "call +1 415 555 2671", True),
        ("phone", "E.164: +14155552671", True),
        ("phone", "call (415) 555-2671 today", True),
        ("phone", "call 415-555-2671", True),
        ("phone", "call 415.555.2671", True),
        ("phone", "call 1-800-555-0199", True),
        ("phone", "+44 20 7946 0958", True),
        ("phone", "020 7946 0958", True),
        ("phone", "call (415)  555-2671", True),  # double spaces
        ("phone", "+44  20  7946  0958", True),
        ("phone", "appelez le 01 42 68 53 00", True),  # French pairs
        ("phone", "+33 1 42 68 53 00", True),
        ("phone", "back in 2024", False),
        ("phone", "in 2019  2020  2021", False),
        ("phone", "rooms 101 102 103", False),
        ("phone", "order 1234567890", False),
        ("phone", "on 2024-01-15", False),
        ("phone", "pages 100-2000", False),
        ("phone", "+5 12", False),
        ("credit_card", "card 4111 1111 1111 1111 exp", True),
        ("credit_card", "card 4111-1111-1111-1111", True),
        ("credit_card", "card 4111111111111111", True),
        ("credit_card", "amex 3782 822463 10005", True),
        ("credit_card", "card 4111 1111 1111 1112", False),
        ("credit_card", "id 41111111111111110000000", False),
        ("ssn", "ssn 123-45-6789", True),
        ("ssn", "ssn 000-12-3456", False),
        ("ssn", "ssn 666-12-3456", False),
        ("ssn", "ssn 912-12-3456", False),
        ("ssn", "ssn 123-00-4567", False),
        ("ssn", "ssn 123-45-0000", False),
        ("ssn", "ssn 123456789", True),  # a keyword: no dashes needed
        ("ssn", "SSN: 123 45 6789", True),
        ("ssn", "social security number is 123.45.6789", True),
        ("ssn", "order 123456789", False),  # no keyword: nine digits are not an SSN
        ("ssn", "ssn 123 456 789", False),
        ("ssn", "ssn 078-05-1120", False),  # advertised (stdnum's list)
        ("credit_card", "card 4111  1111  1111  1111", True),
        ("credit_card", "card 4111.1111.1111.1111", True),
        ("credit_card", "card 4111/1111/1111/1111", True),
        ("credit_card", "card 4111\u00a01111\u00a01111\u00a01111", True),
        ("credit_card", "card \uff14\uff11\uff11\uff11 1111 1111 1111", True),
        ("credit_card", "card \u0664\u0661\u0661\u0661111111111111", True),
        ("credit_card", "on 2024-01-15 12/03/2024", False),  # mixed separators
        ("credit_card", "ISBN 978-0-306-40615-7", False),  # 13 digits, not a 4
        ("email", "mail jane\uff20example.com", True),  # full-width at sign
        ("email", "mail user@\u043f\u043e\u0447\u0442\u0430.\u0440\u0444", True),
        ("ssn", "tel 0123-45-6789", False),
        ("iban", "IBAN DE89 3704 0044 0532 0130 00.", True),
        ("iban", "IBAN DE89370400440532013000", True),
        ("iban", "IBAN DE89 3704 0044 0532 0130 01", False),
        ("iban", "code DE12ABC", False),
        ("ip", "from 192.168.1.20.", True),
        ("ip", "host 2001:db8::8a2e:370:7334", True),
        ("ip", "mapped ::ffff:192.0.2.1", True),
        ("ip", "bad 999.1.1.1", False),
        ("ip", "version 1.2.3", False),
        ("ip", "at 12:30:45", False),
        ("ip", "use std::vector", False),
        ("ip", "slice x[::2]", False),
        ("ip", "mac 00:1A:2B:3C:4D:5E", False),
        ("ip", "semver 1.2.3.4.5", False),
    ],
)
async def test_detection(entity: str, text: str, found: bool) -> None:
    verdict = await judge(text, entities=[entity])
    assert verdict.action is (Action.BLOCK if found else Action.ALLOW), verdict


@pytest.mark.parametrize(
    ("config", "text", "masked"),
    [
        ({}, "mail a@b.io or call +1 415 555 2671", "mail [EMAIL] or call [PHONE]"),
        ({}, "pay 4111 1111 1111 1111 now", "pay [CREDIT_CARD] now"),
        ({}, "ssn 123-45-6789, ip 10.0.0.1", "ssn [SSN], ip [IP]"),
        ({}, "to DE89 3704 0044 0532 0130 00!", "to [IBAN]!"),
        ({"mask_with": "<{entity}>"}, "ssn 123-45-6789", "ssn <SSN>"),
        ({"mask_with": "***"}, "a@b.io and c@d.io", "*** and ***"),
        ({"entities": ["email"]}, "a@b.io 123-45-6789", "[EMAIL] 123-45-6789"),
    ],
)
async def test_mask(config: dict[str, Any], text: str, masked: str) -> None:
    verdict = await judge(text, action="mask", **config)
    assert verdict.action is Action.MODIFY
    assert verdict.text == masked


async def test_reason_names_kinds_not_values() -> None:
    text = "card 4111 1111 1111 1111 or a@b.io, card 5555 5555 5555 4444"
    verdict = await judge(text)
    assert verdict == Verdict.block("PII detected: credit card number, email address")


async def test_clean_text_is_allowed() -> None:
    assert await judge("The meeting is at 10:30 in room 4, year 2024.") == Verdict.allow()


@pytest.mark.parametrize(
    "config",
    [{"entities": []}, {"entities": ["passport"]}, {"mask_with": "{name}"}, {"mask": "x"}],
)
def test_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PiiConfig.model_validate(config)


# -- the gates are necessary conditions: they never hide a match ---------------------------

_PII_ALPHABET = "0123456789 .-()+:@abcdefxyzABFGZ_\n"
_PII_PIECES = [
    "+44 20 7946 0958",
    "+1 (2) 34 56 78",  # 3 separators between digits: the phone gate's widest gap
    "(415) 555-2671",
    "020 7946 0958",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "192.168.0.1",
    "2001:db8::8a2e:370:7334",
    "fe80::1ff:fe23:4567:890a",
    "DE89370400440532013000",
    "::1",
    "123-45-6789",
    "a.b@example.com",
    " in 1984 ",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(_PII_ALPHABET, max_size=12), st.sampled_from(_PII_PIECES)),
        max_size=12,
    )
)
def test_gated_scan_finds_what_the_ungated_scan_finds(parts: list[str]) -> None:
    text = "".join(parts)
    gated = detectors(ENTITIES)
    ungated = tuple(dataclasses.replace(d, gate=None) for d in gated)
    assert scan(text, gated) == scan(text, ungated)


@pytest.mark.parametrize("piece", _PII_PIECES)
def test_the_samples_are_real_matches_or_real_near_misses(piece: str) -> None:
    """So that the property test compares real matches (and "::1", a year: not PII)."""
    found = scan(f"say {piece} now", detectors(ENTITIES))
    assert bool(found) is (piece not in ("::1", " in 1984 "))
