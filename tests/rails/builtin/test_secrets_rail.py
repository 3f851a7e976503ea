"""The secrets rail. Fake credentials are assembled at run time so that no
credential-shaped string sits in the repository."""

from __future__ import annotations

from typing import Any

import pytest

from rails.base import Action, CheckContext, OpenSpan, Verdict
from rails.builtin.secrets import SecretsConfig, SecretsRail
from rails.resources import Resources

OUT = CheckContext(stage="output")

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp" + "_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z00"
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0" + "x" * 12 + "_" + "y" * 59
SLACK = "xox" + "b-1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
OPENAI = "sk" + "-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
JWT = (
    "eyJ"
    + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
BEARER = "Authorization: Bearer " + "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
KEY_BODY = "MIIEowIBAAKCAQEA7v1" + "\n" + "q2w3e4r5t6y7u8i9o0p"
PRIVATE_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
GITLAB = "glpat" + "-" + "xY7aB9cD2eF4gH6jK8mN"
HF = "hf" + "_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
AZURE_STORAGE = "AccountKey=" + "Ab1" * 28 + "cd=="
AZURE_CLIENT = "abc8Q" + "~" + "dEfGhIjKlMnOpQrStUvWxYz0123456789"
GCP_KEY_ID = '"private_key_id": "' + "0123456789abcdef" * 2 + '01234567"'


async def judge(text: str, **config: Any) -> Verdict:
    rail = SecretsRail("secrets", SecretsConfig.model_validate(config), Resources())
    return await rail.check(text, OUT)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (f"key={AWS}", "AWS access key ID"),
        (f"id {'ASIA' + 'Y34FZKBOKMUTVV7A'} ok", "AWS access key ID"),
        (f"token {GITHUB}", "GitHub token"),
        (f"token {GITHUB.replace('ghp', 'ghs')}", "GitHub token"),
        (f"token {GITHUB_PAT}", "GitHub token"),
        (f"slack {SLACK}", "Slack token"),
        (f"stripe {STRIPE}", "Stripe live key"),
        (f"stripe {STRIPE.replace('sk', 'rk', 1)}", "Stripe live key"),
        (f"OPENAI_API_KEY={OPENAI}", "OpenAI-style API key"),
        (f"key: {GOOGLE}", "Google API key"),
        (f"here:\n{PRIVATE_KEY}\n", "private key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r", "private key"),
        (f"cookie={JWT}", "JWT"),
        (f"Authorization: Bearer {JWT}", "JWT"),
        (BEARER, "bearer token"),
        (f"aws_secret_access_key = {AWS_SECRET}", "AWS secret access key"),
        (f"SecretAccessKey: {AWS_SECRET}", "AWS secret access key"),
        (f"token {GITLAB}", "GitLab token"),
        (f"HF_TOKEN={HF}", "Hugging Face token"),
        (f"DefaultEndpointsProtocol=https;{AZURE_STORAGE};", "Azure key"),
        (f"client_secret {AZURE_CLIENT}", "Azure key"),
        ("{" + GCP_KEY_ID + "}", "GCP service account key"),
        (f"key=A\u200bKIA{AWS[4:]}", "AWS access key ID"),  # zero-width space inside
        (f"key=\uff21KIA{AWS[4:]}", "AWS access key ID"),  # full-width A
    ],
)
async def test_detects(text: str, label: str) -> None:
    assert await judge(text) == Verdict.block(f"secret detected: {label}")


@pytest.mark.parametrize(
    "text",
    [
        "uses sk-learn-compatible-classifier-models",
        "the task-force met",
        "AKIA1234 is too short",
        f"{AWS}X is too long",
        "ghp_short",
        "sk" + "_test_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "eyJhbGciOi.abc.def",
        "send a Bearer token in the header",
        "Bearer authentication-without-digits-here",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq",
        "xoxb-short",
    ],
)
async def test_ignores(text: str) -> None:
    assert await judge(text) == Verdict.allow()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"key={AWS} end", "key=[REDACTED] end"),
        (BEARER, "Authorization: Bearer [REDACTED]"),
        (f"a {PRIVATE_KEY} b", "a [REDACTED] b"),
        (f"{GITHUB} and {STRIPE}", "[REDACTED] and [REDACTED]"),
    ],
)
async def test_mask(text: str, masked: str) -> None:
    verdict = await judge(text, action="mask")
    assert verdict.action is Action.MODIFY
    assert verdict.text == masked
    assert verdict.reason.startswith("secret detected: ")


async def test_a_key_block_the_text_does_not_close_is_masked_to_the_end_and_left_open() -> None:
    """The window that opens a key masks it to its end and says the span is open: the
    engine hands the span back with the next window, and blocks a text that ends in it."""
    verdict = await judge("x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN", action="mask")
    assert (verdict.action, verdict.text) == (Action.MODIFY, "x [REDACTED]")
    assert verdict.span is not None
    assert "END line" in verdict.span.reason
    assert verdict.span.state.endswith("MIIEvQIBADAN")  # kept to find an END line cut in two


async def test_a_closed_key_leaves_no_span_and_the_block_action_none() -> None:
    assert (await judge(f"a {PRIVATE_KEY} b", action="mask")).span is None
    assert (await judge("-----BEGIN PRIVATE KEY-----\nMIIE")).span is None  # blocks


def _next(context: str, new: str, span: OpenSpan | None) -> CheckContext:
    spans = {"secrets": span} if span is not None else {}
    return CheckContext("output", new_at=len(context), spans=spans)


async def mask_windows(windows: list[str], context: int = 12) -> tuple[str, list[Verdict]]:
    """Judge ``windows`` as the engine does: each with the tail of the masked text before
    it as context, the previous verdict's span handed back. The masked text, verdicts."""
    rail = SecretsRail("secrets", SecretsConfig(action="mask"), Resources())
    out, verdicts, span = "", [], None
    for new in windows:
        ctx_text = out[-context:] if context else ""
        verdict = await rail.check(ctx_text + new, _next(ctx_text, new, span))
        judged = verdict.text if verdict.text is not None else ctx_text + new
        assert judged.startswith(ctx_text), "a mask reached into released text"
        out += judged[len(ctx_text) :]
        verdicts.append(verdict)
        span = verdict.span
    return out, verdicts


BODY_LINES = [f"MIIEowIBAAKCAQEA{i:02d}q2w3e4r5t6y7u8i9o0p" for i in range(6)]
LONG_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(BODY_LINES) + "\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize("context", [0, 12])
@pytest.mark.parametrize("pieces", [2, 3, 5])
async def test_a_key_over_several_windows_is_masked_whole(pieces: int, context: int) -> None:
    text = f"Here: {LONG_KEY}\nThat is all."
    size = -(-len(text) // pieces)
    windows = [text[i : i + size] for i in range(0, len(text), size)]
    out, verdicts = await mask_windows(windows, context)
    assert out == "Here: [REDACTED]\nThat is all."
    assert verdicts[-1].span is None


async def test_every_cut_of_the_begin_and_end_lines() -> None:
    """A window boundary at every character of the key: the key's lines never show. A BEGIN
    line cut before it spelled a key keeps its first part (already out when the next
    window judges); that part holds no key material."""
    text = f"Here: {LONG_KEY}\nThat is all."
    for cut in range(1, len(text)):
        out, verdicts = await mask_windows([text[:cut], text[cut:]], context=40)
        assert verdicts[-1].span is None, cut
        assert not any(line in out for line in BODY_LINES), cut
        assert "END RSA" not in out, cut
        assert "KEY-----" not in out, cut
        assert out.endswith("[REDACTED]\nThat is all."), cut
        assert out.count("[REDACTED]") == 1, cut


async def test_several_keys_and_what_follows_one_are_judged() -> None:
    second = LONG_KEY.replace("RSA", "EC")
    text = f"one {LONG_KEY} two {second}"
    windows = [text[i : i + 40] for i in range(0, len(text), 40)] + [f" three {GITHUB} four"]
    out, verdicts = await mask_windows(windows, context=40)  # covers a cut BEGIN line
    # The second BEGIN line is cut by a window boundary: its first part went out before
    # it spelled a key.
    assert out == "one [REDACTED] two -----BEGIN EC PRIVATE [REDACTED] three [REDACTED] four"
    assert verdicts[-1].span is None


async def test_a_window_inside_a_key_is_masked_whole() -> None:
    span = OpenSpan("open", "-----BEGIN PRIVATE KEY-----\nMIIE")
    rail = SecretsRail("secrets", SecretsConfig(action="mask"), Resources())
    verdict = await rail.check("ctx [REDACTED]" + "abcd\nefgh", _next("ctx [REDACTED]", "", span))
    assert (verdict.text, verdict.span is not None) == ("ctx [REDACTED]", True)


async def test_reason_never_holds_the_value() -> None:
    verdict = await judge(f"{AWS} {OPENAI}")
    assert verdict.reason == "secret detected: AWS access key ID, OpenAI-style API key"
    assert AWS not in verdict.reason


async def test_aws_pair_is_both_masked() -> None:
    verdict = await judge(f"{AWS} {AWS_SECRET} done", action="mask")
    assert verdict.text == "[REDACTED] [REDACTED] done"


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ('password = "x7#Kp2!qZ9vB"', True),
        ("db_password: Tr0ub4dor&3xyz", True),
        ("password = changeme", False),  # low entropy
        ("password = aaaaaaaaaaaa", False),
        ("the password is long", False),
    ],
)
async def test_password_assignment_is_opt_in(text: str, blocked: bool) -> None:
    assert (await judge(text)).action is Action.ALLOW
    verdict = await judge(text, kinds=["password_assignment"])
    assert (verdict.action is Action.BLOCK) is blocked


async def test_kinds_limit_detection() -> None:
    assert await judge(f"key={AWS}", kinds=["jwt"]) == Verdict.allow()
    masked = await judge(f"key={AWS}", kinds=["aws_access_key"], action="mask", mask_with="*")
    assert masked.text == "key=*"
