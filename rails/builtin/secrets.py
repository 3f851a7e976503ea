"""The ``secrets`` rail: credentials in text, by their published formats.

Kinds (all on by default): AWS access key IDs (``AKIA``/``ASIA``/``ABIA``/``ACCA`` + 16),
GitHub tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``), Slack
tokens (``xoxb-`` and friends), Stripe live secret and restricted keys, OpenAI-style
``sk-`` keys (20+ characters holding a digit and a capital, so ``sk-learn`` is not one),
Google API keys (``AIza`` + 35), private key blocks (``-----BEGIN ... PRIVATE KEY-----``
up to the matching END line, or to the end of the text when the END line has not arrived
yet), JWTs (three base64url segments, the first starting ``eyJ``) and ``Bearer`` tokens
(20+ characters holding a digit; only the token is masked).

Reasons name the kind ("AWS access key ID"), never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import ClassVar, Literal, get_args

from pydantic import Field

from rails.base import CheckContext, RailConfig, Resources, Verdict
from rails.builtin.regex import Action, Detector, judge

Kind = Literal[
    "private_key",
    "jwt",
    "github_token",
    "aws_access_key",
    "slack_token",
    "stripe_key",
    "google_api_key",
    "openai_key",
    "bearer_token",
]
KINDS: tuple[Kind, ...] = get_args(Kind)

_B64URL = "[A-Za-z0-9_-]"
# Listed in overlap priority order: a Bearer JWT is reported as a JWT.
_DETECTORS: dict[Kind, tuple[str, str]] = {
    "private_key": (
        "private key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    "jwt": (
        "JWT",
        rf"(?<!{_B64URL})eyJ{_B64URL}{{10,}}\.{_B64URL}{{10,}}\.{_B64URL}{{10,}}(?!{_B64URL})",
    ),
    "github_token": (
        "GitHub token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
        r"(?![A-Za-z0-9_])",
    ),
    "aws_access_key": (
        "AWS access key ID",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    "slack_token": (
        "Slack token",
        r"(?<![A-Za-z0-9])xox[baprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9])",
    ),
    "stripe_key": (
        "Stripe live key",
        r"(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{16,247}(?![A-Za-z0-9])",
    ),
    "google_api_key": (
        "Google API key",
        rf"(?<!{_B64URL})AIza{_B64URL}{{35}}(?!{_B64URL})",
    ),
    "openai_key": (
        "OpenAI-style API key",
        rf"(?<!{_B64URL})sk-(?={_B64URL}*[0-9])(?={_B64URL}*[A-Z]){_B64URL}{{20,}}(?!{_B64URL})",
    ),
    "bearer_token": (
        "bearer token",
        r"(?i:\bbearer)\s+(?P<secret>(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{20,}=*)",
    ),
}


# What every match of a kind contains, found with a fast literal scan (see Detector.gate).
_GATES: dict[Kind, str] = {
    "private_key": r"-----BEGIN ",
    "jwt": r"eyJ",
    "github_token": r"gh[pousr]_|github_pat_",
    "aws_access_key": r"A[SKBC][IC]A",
    "slack_token": r"xox[baprs]-",
    "stripe_key": r"k_live_",
    "google_api_key": r"AIza",
    "openai_key": r"sk-",
}


# Every kind's match contains one of these ("IA" and "CCA" cover the AWS prefixes); each
# is a ~1 µs substring scan. _GATES has the exact test per kind.
_LITERALS: tuple[str, ...] = ("-----BEGIN ", "eyJ", "gh", "github_pat_", "IA", "CCA", "xox")
_LITERALS += ("k_live_", "AIza", "sk-")


def _maybe_secret(text: str) -> bool:
    return any(lit in text for lit in _LITERALS) or _mentions_bearer(text)


def _mentions_bearer(text: str) -> bool:
    return "bearer" in text.lower()  # a case-blind regex scan costs 10x more


def _gate(kind: Kind) -> Callable[[str], object]:
    return _mentions_bearer if kind == "bearer_token" else re.compile(_GATES[kind]).search


def detectors(kinds: Collection[Kind]) -> tuple[Detector, ...]:
    """Detectors for ``kinds``, in overlap priority order."""
    return tuple(
        Detector(kind, label, re.compile(pattern), gate=_gate(kind))
        for kind, (label, pattern) in _DETECTORS.items()
        if kind in kinds
    )


class SecretsConfig(RailConfig):
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS), min_length=1)
    action: Action = "block"
    mask_with: str = "[REDACTED]"


class SecretsRail:
    """Blocks text holding a credential, or masks each one with ``mask_with``."""

    type_name: ClassVar[str] = "secrets"
    local: ClassVar[bool] = True  # never waits: the pipeline runs it inline
    Config: ClassVar[type[RailConfig]] = SecretsConfig

    def __init__(self, name: str, config: SecretsConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._detectors = detectors(config.kinds)
        self._action = config.action
        self._mask = config.mask_with

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        if not _maybe_secret(text):  # most text: a dozen substring scans, no detector runs
            return Verdict.allow()
        return judge(text, self._detectors, self._action, "secret detected", lambda _: self._mask)
