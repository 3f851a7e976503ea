"""The ``pii`` rail: personal data in text, found by pattern and then verified.

Text is normalized first (``rails.normalize``, case kept): digits of every script become
ASCII digits, full-width at signs and punctuation their ASCII forms, non-breaking spaces plain
spaces, invisible characters go, and look-alike letters inside Latin words fold. Masks
cover the original characters.

Entities and how a candidate is confirmed:

- ``email``: ``local@domain.tld``, domains in any script (``почта.рф``).
- ``phone``: ``+`` international / E.164, NANP (``(415) 555-2671``, ``415-555-2671``,
  ``1-800-555-0199``), trunk-prefix national forms (``020 7946 0958``) and the French
  pairs (``01 42 68 53 00``); groups split by a dot, a dash or up to three spaces; 7 to 15
  digits. Bare digit runs (years, order numbers) and dates are not phones. Google's
  ``phonenumbers`` was measured against this pattern and not adopted
  (``bench/efficacy/phones.md``).
- ``credit_card``: a maximal run of 13 to 19 digits with up to three of `` .-/`` between
  any two, the same separator throughout (``4111  1111  1111  1111``,
  ``4111.1111.1111.1111``; a date and a time are not one number), a card network's first
  digit (2 to 6; 13 digits only for 4) and a valid Luhn sum (``stdnum.luhn``).
- ``ssn``: US ``ddd-dd-dddd``; or nine digits, plain or split by spaces, dots or dashes,
  right after a keyword (``SSN``, ``social security number``, ``SS#``); valid by
  ``stdnum.us.ssn`` (no area 000, 666 or 9xx, group 00, serial 0000, no advertised
  numbers).
- ``iban``: country code, check digits, 11 to 30 characters (plain or in groups of four),
  valid by ``stdnum.iban`` (ISO 7064 mod-97 and the country's length and format).
- ``ip``: IPv4 and IPv6 candidates confirmed by the ``ipaddress`` module.

Reasons name entity kinds ("email address"), never the matched value. Masks default to
``[EMAIL]``, ``[CREDIT_CARD]``, ...: ``mask_with`` is a template over ``{entity}``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection
from typing import ClassVar, Literal, get_args

from pydantic import Field, field_validator
from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn
from stdnum.us import ssn as stdnum_ssn

from rails.base import CheckContext, RailConfig, Verdict
from rails.builtin.regex import Action, Detector, accept_all, judge
from rails.normalize import normalize
from rails.resources import Resources

Entity = Literal["email", "phone", "credit_card", "ssn", "iban", "ip"]
ENTITIES: tuple[Entity, ...] = get_args(Entity)


_CARD_SEPARATORS = re.compile(r"[ ./-]+")


def luhn_ok(candidate: str) -> bool:
    """13 to 19 digits (separators ignored), not all the same, with a valid Luhn sum."""
    digits = "".join(c for c in candidate if c.isdigit())
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    return bool(stdnum_luhn.is_valid(digits))


def card_ok(candidate: str) -> bool:
    """``luhn_ok``, one separator string throughout, and a card network's first digit."""
    digits = "".join(c for c in candidate if c.isdigit())
    if len(set(_CARD_SEPARATORS.findall(candidate))) > 1:
        return False
    if digits[0] not in "23456" or (len(digits) == 13 and digits[0] != "4"):
        return False
    return luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    """A valid IBAN (spaces ignored): mod-97 and the country's format."""
    return bool(stdnum_iban.is_valid(candidate))


def ssn_ok(candidate: str) -> bool:
    return bool(stdnum_ssn.is_valid("".join(c for c in candidate if c.isdigit())))


def phone_ok(candidate: str) -> bool:
    return 7 <= sum(c.isdigit() for c in candidate) <= 15


def ipv4_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def ipv6_ok(candidate: str) -> bool:
    """A valid IPv6 address with two or more groups and a digit, so that ``::``,
    ``::1`` and C++-style ``A::B`` are not taken for addresses."""
    groups = [g for g in re.split(r"[:.]", candidate) if g]
    if len(groups) < 2 or not any(c.isdigit() for c in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


_HEX = "[0-9A-Fa-f]"
_SEP = "(?:[.-]| {1,3})"
_PATTERNS: dict[Entity, str] = {
    "credit_card": (
        r"[0-9](?<![0-9][0-9])(?<![0-9][ ./-][0-9])(?<![0-9][ ./-]{2}[0-9])"
        r"(?<![0-9][ ./-]{3}[0-9])(?:[ ./-]{0,3}[0-9]){12,18}(?![ ./-]{0,3}[0-9])"
    ),
    "iban": (
        r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}"
        r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])"
    ),
    "ssn": (
        r"(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9-])"
        r"|(?i:\bssn|\bsocial\s+security(?:\s+(?:number|no))?|\bss\s?\#)"
        r"(?:\W{0,4}(?:is|was|number|no|of)\b)?\W{0,4}"
        r"(?P<secret>(?<![0-9])[0-9]{3}(?P<sep>[ .-]?)[0-9]{2}(?P=sep)[0-9]{4}(?![0-9]))"
    ),
    "email": (
        r"(?<![\w.%+-])[\w.%+-]+@"
        r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
    ),
    "ip": (
        r"(?<![\w.:])(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
        rf"|(?:{_HEX}{{0,4}}:){{2,7}}(?:{_HEX}{{1,4}}|(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}})?)"
        r"(?![\w:]|\.[0-9])"
    ),
    "phone": (  # _SEP: one dot or dash, or up to three spaces
        rf"(?<![\w+])(?:\+[0-9]{{1,3}}(?:{_SEP}?\(?[0-9]{{1,4}}\)?)?(?:{_SEP}?[0-9]{{2,5}}){{1,5}}"
        rf"|(?:1{_SEP}?)?(?:\([0-9]{{3}}\){_SEP}?|[0-9]{{3}}{_SEP})[0-9]{{3}}{_SEP}[0-9]{{4}}"
        rf"|0[0-9]{{1,4}}{_SEP}[0-9]{{3,4}}{_SEP}?[0-9]{{3,4}}"
        rf"|0[1-9](?:{_SEP}[0-9]{{2}}){{4}})(?!\w)"
    ),
}
_LABELS: dict[Entity, str] = {
    "credit_card": "credit card number",
    "iban": "IBAN",
    "ssn": "US social security number",
    "email": "email address",
    "ip": "IP address",
    "phone": "phone number",
}


def _ip_ok(candidate: str) -> bool:
    return ipv6_ok(candidate) if ":" in candidate else ipv4_ok(candidate)


_VALIDATORS: dict[Entity, Callable[[str], bool]] = {
    "credit_card": card_ok,
    "ssn": ssn_ok,
    "iban": iban_ok,
    "phone": phone_ok,
    "ip": _ip_ok,
}


def has_digit(text: str) -> bool:
    """Ten substring scans at C speed beat one ``[0-9]`` regex scan by ~10x."""
    return any(d in text for d in "0123456789")


def _has_at(text: str) -> bool:
    return "@" in text


_SSN_DASHED = re.compile(r"-[0-9]{2}-[0-9]{4}").search


def _ssn_shape(text: str) -> bool:
    """A dashed SSN's tail, or a keyword (substring scans: an alternation costs 10x)."""
    if _SSN_DASHED(text):
        return True
    lower = text.lower()
    return any(word in lower for word in ("ssn", "ss#", "ss #", "security"))


_IPV4_SHAPE = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]").search
_IPV6_SHAPE = re.compile(r":[0-9A-Fa-f]{0,4}:").search


def _ip_shape(text: str) -> bool:
    return has_digit(text) and bool(_IPV4_SHAPE(text) or _IPV6_SHAPE(text))


# A fast test every text holding an accepted match passes (see Detector.gate). Each opens
# with a literal or a character class, so the regex engine skips ahead to candidates
# instead of trying every position as the full patterns (lookbehind first) must:
# e-mail needs "@"; an SSN "-NN-NNNN"; a card a digit; a phone
# (7 digits at least, phone_ok) 7 digits with at most 3 of " .()-" between them; an IPv4
# address d.d.d; an IPv6 one two colons with at most 4 hex digits between; an IBAN two
# capitals and its two check digits.
_GATES: dict[Entity, Callable[[str], object]] = {
    "credit_card": has_digit,  # its pattern opens with [0-9] itself
    "iban": re.compile(r"[A-Z][A-Z][0-9][0-9]").search,
    "ssn": _ssn_shape,
    "email": _has_at,
    "ip": _ip_shape,
    "phone": re.compile(r"[0-9](?:[ .()-]{0,3}[0-9]){6}").search,
}


def detectors(entities: Collection[Entity]) -> tuple[Detector, ...]:
    """Detectors for ``entities``, in overlap priority order (card before phone, ...)."""
    return tuple(
        Detector(e, _LABELS[e], re.compile(p), _VALIDATORS.get(e, accept_all), _GATES[e])
        for e, p in _PATTERNS.items()
        if e in entities
    )


class PiiConfig(RailConfig):
    entities: list[Entity] = Field(default_factory=lambda: list(ENTITIES), min_length=1)
    action: Action = "block"
    mask_with: str = "[{entity}]"

    @field_validator("mask_with")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(entity="EMAIL")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"must be a template over {{entity}} only: {exc!r}") from None
        return value


class PiiRail:
    """Blocks text holding any configured entity, or masks each one."""

    type_name: ClassVar[str] = "pii"
    local: ClassVar[bool] = True  # never waits: the pipeline runs it inline
    Config: ClassVar[type[RailConfig]] = PiiConfig

    def __init__(self, name: str, config: PiiConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._detectors = detectors(config.entities)
        self._masks: dict[str, str] = {
            e: config.mask_with.format(entity=e.upper()) for e in config.entities
        }
        self._action = config.action

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        folded = normalize(text, casefold=False).text  # digits of every script are ASCII
        if "@" not in folded and not has_digit(folded):  # most prose: no detector runs
            return Verdict.allow()
        return judge(
            text,
            self._detectors,
            self._action,
            "PII detected",
            lambda s: self._masks[s.kind],
            normalized=True,
        )
