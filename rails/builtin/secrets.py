"""The ``secrets`` rail: credentials in text, by their published formats.

Kinds (all on by default): AWS access key IDs (``AKIA``/``ASIA``/``ABIA``/``ACCA`` + 16),
GitHub tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``), Slack
tokens (``xoxb-`` and friends), Stripe live secret and restricted keys, OpenAI-style
``sk-`` keys (20+ characters holding a digit and a capital, so ``sk-learn`` is not one),
Google API keys (``AIza`` + 35), private key blocks (``-----BEGIN ... PRIVATE KEY-----``
up to the matching END line, or to the end of the text when the END line has not arrived
yet), JWTs (three base64url segments, the first starting ``eyJ``), ``Bearer`` tokens
(20+ characters holding a digit; only the token is masked), AWS secret access keys (40
base64 characters after an access key ID or a secret-key name such as
``aws_secret_access_key``), GitLab tokens (``glpat-`` and the other ``gl..-`` prefixes),
Hugging Face tokens (``hf_`` + 34), Azure storage account keys (``AccountKey=`` + 86 +
``==``) and Entra ID client secrets (``...Q~...``), and GCP service-account
``private_key_id`` values (the key itself is a private key block).

Opt-in (not in the default ``kinds``): ``password_assignment``, a value of 8+ characters
assigned to ``password``, ``passwd``, ``secret``, ``api_key``, ``token`` and the like with
``=`` or ``:``, whose Shannon entropy is at least 3 bits per character (so
``password = changeme`` passes, ``password = "x7#Kp2!qZ9"`` does not).

With ``action: mask``, a private key block longer than one window is masked whole: the
window that opens it masks from the BEGIN line to its end and hands the engine an open
span (``rails.base.OpenSpan``); each next window of the same text masks its new text up to
and including the END line, and a text that ends before the END line comes is blocked.
The part of a BEGIN line that an earlier window already let out (it did not yet spell a
key) stays; the key's lines never do.

Text is normalized first (``rails.normalize``, case kept): a key with zero-width
characters, full-width letters or look-alike letters inside is still found, and masks
cover the original characters. Reasons name the kind ("AWS access key ID"), never the
value.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any, ClassVar, Literal, get_args

import ahocorasick
from pydantic import Field

from rails.base import CheckContext, OpenSpan, RailConfig, Verdict
from rails.builtin.regex import (
    Action,
    Detector,
    Span,
    accept_all,
    judge,
    normalized_scan,
    reason_for,
    redact,
)
from rails.normalize import normalize
from rails.resources import Resources

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
    "aws_secret_key",
    "gitlab_token",
    "huggingface_token",
    "azure_key",
    "gcp_service_account",
    "password_assignment",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
OPT_IN: frozenset[Kind] = frozenset({"password_assignment"})
DEFAULT_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k not in OPT_IN)

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
    "aws_secret_key": (
        "AWS secret access key",
        r"(?:(?:AKIA|ASIA)[A-Z0-9]{16}|(?i:aws.{0,20}secret|secret.?access.?key))"
        r"[^A-Za-z0-9/+]{1,40}?(?P<secret>(?<![A-Za-z0-9/+])"
        r"(?=[A-Za-z0-9/+]*[0-9])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    ),
    "gitlab_token": (
        "GitLab token",
        r"(?<![A-Za-z0-9_-])(?:glpat|gldt|glrt|glptt|glcbt|glft|glsoat|glimt|gloas)-"
        r"[A-Za-z0-9_-]{20,64}(?![A-Za-z0-9_-])",
    ),
    "huggingface_token": (
        "Hugging Face token",
        r"(?<![A-Za-z0-9_])(?:hf_|api_org_)[A-Za-z0-9]{34}(?![A-Za-z0-9_])",
    ),
    "azure_key": (
        "Azure key",
        r"(?i:AccountKey|SharedAccessKey)\s*=\s*(?P<secret>[A-Za-z0-9+/]{43,86}={0,2})"
        r"|(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
    ),
    "gcp_service_account": (
        "GCP service account key",
        r'"private_key_id"\s*:\s*"(?P<secret>[0-9a-f]{40})"',
    ),
    "password_assignment": (
        "password assignment",
        r"(?i:(?<![a-z])(?:password|passwd|pwd|pass|secret|api_?key|access_?token|auth_?token|token))"
        r"[\"']?\s*[:=]\s*[\"']?(?P<secret>[^\s\"',;]{8,128})",
    ),
}


_END_LINE = r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_END_KEY = re.compile(_END_LINE)
# A key block no END line closes (a cut "-----END " does not close it).
_OPEN_KEY = re.compile(
    rf"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:(?!{_END_LINE}).)*\Z", re.S
)
_TAIL = 96  # chars of an open key carried to its next window: more than any END line
_KEY_REASON = "secret detected: private key"
_UNCLOSED = "secret detected: private key (the text ended before its END line)"

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
    "gcp_service_account": r"private_key_id",
    "gitlab_token": r"gl(?:pat|dt|rt|ptt|cbt|ft|soat|imt|oas)-",  # a literal "gl" first: fast
}
_GITLAB = ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glsoat-", "glimt-", "gloas-")


def _any_of(cased: tuple[str, ...], caseless: tuple[str, ...] = ()) -> Callable[[str], bool]:
    """Substring scans (a regex alternation, or a case-blind one, costs 10 to 40x more)."""

    def gate(text: str) -> bool:
        if any(s in text for s in cased):
            return True
        return bool(caseless) and any(s in _lower(text) for s in caseless)

    return gate


@functools.lru_cache(maxsize=4)  # the gates and the prefilter of one window share it
def _lower(text: str) -> str:
    return text.lower()


_FUNCTION_GATES: dict[Kind, Callable[[str], bool]] = {
    "bearer_token": _any_of((), ("bearer",)),
    "aws_secret_key": _any_of(("AKIA", "ASIA"), ("secret",)),
    "huggingface_token": _any_of(("hf_", "api_org_")),
    "azure_key": _any_of(("Q~",), ("accountkey", "accesskey")),
    "password_assignment": _any_of((), ("pass", "pwd", "secret", "key", "token")),
}


# Every kind's match contains one of these ("IA" and "CCA" cover the AWS prefixes); each
# is a ~1 µs substring scan. _GATES has the exact test per kind.
_LITERALS: tuple[str, ...] = ("-----BEGIN ", "eyJ", "github_pat_", "IA", "CCA", "xox")
_LITERALS += ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")  # not "gh": "light", "right", ...
_LITERALS += ("k_live_", "AIza", "sk-", "hf_", "api_org_", "Q~", "private_key_id")
_LITERALS += _GITLAB
# Case-blind words (tested on the lower-cased text): secret-key names, Azure's key names,
# bearer, and the password_assignment names (its detector is off unless asked for).
_WORDS: tuple[str, ...] = ("secret", "bearer", "accountkey", "accesskey")
_PASSWORD_WORDS: tuple[str, ...] = ("pass", "pwd", "key", "token")


def entropy_ok(value: str) -> bool:
    """At least 3 bits of Shannon entropy per character."""
    counts = Counter(value).values()
    bits = -sum(c / len(value) * math.log2(c / len(value)) for c in counts)
    return bits >= 3.0


def _gate(kind: Kind) -> Callable[[str], object]:
    return _FUNCTION_GATES.get(kind) or re.compile(_GATES[kind]).search


def _valid(kind: Kind) -> Callable[[str], bool]:
    return entropy_ok if kind == "password_assignment" else accept_all


def detectors(kinds: Collection[Kind]) -> tuple[Detector, ...]:
    """Detectors for ``kinds``, in overlap priority order."""
    return tuple(
        Detector(kind, label, re.compile(pattern), _valid(kind), _gate(kind))
        for kind, (label, pattern) in _DETECTORS.items()
        if kind in kinds
    )


def prefilter(kinds: Collection[Kind]) -> Callable[[str], bool]:
    """A cheap test every text holding a secret of ``kinds`` passes: the literals in the
    text and the words in its lower-cased form, each set found by one Aho-Corasick scan
    (twenty substring scans cost 3x more)."""
    words = _WORDS + (_PASSWORD_WORDS if "password_assignment" in kinds else ())
    literals, caseless = _automaton(_LITERALS), _automaton(words)

    def maybe(text: str) -> bool:
        if next(literals.iter(text), None) is not None:
            return True
        return next(caseless.iter(_lower(text)), None) is not None

    return maybe


def _automaton(needles: Collection[str]) -> Any:
    automaton = ahocorasick.Automaton()
    for needle in needles:
        automaton.add_word(needle, needle)
    automaton.make_automaton()
    return automaton


class SecretsConfig(RailConfig):
    kinds: list[Kind] = Field(default_factory=lambda: list(DEFAULT_KINDS), min_length=1)
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
        self._maybe = prefilter(config.kinds)
        self._action = config.action
        self._mask = config.mask_with
        self._spans = "private_key" in config.kinds and config.action == "mask"

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        if self._spans:
            span = ctx.spans.get(self.name)
            if span is not None:
                return self._go_on(text, ctx.new_at, span)
            return self._masked(text, ctx.new_at)
        # Most text: a dozen substring scans of the normalized text, no detector runs.
        if not self._maybe(normalize(text, casefold=False).text):
            return Verdict.allow()
        return judge(
            text,
            self._detectors,
            self._action,
            "secret detected",
            lambda _: self._mask,
            normalized=True,
        )

    def _masked(self, text: str, new_at: int) -> Verdict:
        """Every finding masked; a key block the text does not close is masked to the end
        and left open (``OpenSpan``). A key match that starts before ``new_at`` (a BEGIN
        line cut by the window boundary, its first part already out) is masked from there."""
        normalized = normalize(text, casefold=False).text
        if not self._maybe(normalized):
            return Verdict.allow()
        found = [_from(span, new_at) for span in normalized_scan(text, self._detectors)]
        found = [span for span in found if span.end > span.start]
        if not found:
            return Verdict.allow()
        masked = redact(text, found, lambda _: self._mask)
        last = found[-1]
        if last.end < len(text) or not _OPEN_KEY.search(normalized):
            return Verdict.modify(masked, reason_for("secret detected", found))
        carried = text[max(last.start, len(text) - _TAIL) :]
        return Verdict.modify(masked, reason_for("secret detected", found), _open(carried))

    def _go_on(self, text: str, new_at: int, span: OpenSpan) -> Verdict:
        """A window inside an open key block: its new text is masked (with nothing: the
        block's mask was written where it began) up to and including the END line, and
        what follows is judged as any text."""
        new = text[new_at:]
        joined = span.state + new
        folded = normalize(joined, casefold=False)
        end = _END_KEY.search(folded.text)
        if end is None:
            return Verdict.modify(text[:new_at], _KEY_REASON, _open(joined[-_TAIL:]))
        stop = max(0, folded.span(end.start(), end.end())[1] - len(span.state))
        rest = self._masked(new[stop:], 0)
        if rest.text is None:
            return Verdict.modify(text[:new_at] + new[stop:], _KEY_REASON)
        labels = ["private key", *rest.reason.removeprefix("secret detected: ").split(", ")]
        reason = f"secret detected: {', '.join(dict.fromkeys(labels))}"
        return Verdict.modify(text[:new_at] + rest.text, reason, rest.span)


def _from(span: Span, new_at: int) -> Span:
    """A key match cut to start no earlier than ``new_at``."""
    if span.kind != "private_key" or span.start >= new_at:
        return span
    return Span(new_at, span.end, span.kind, span.label)


def _open(carried: str) -> OpenSpan:
    return OpenSpan(_UNCLOSED, carried)
