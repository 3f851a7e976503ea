"""The ``llama_guard`` rail: a content-safety model behind an OpenAI-compatible endpoint.

Works with Llama Guard 3 (e.g. served by vLLM, whose chat template builds the safety
prompt from the messages) and NVIDIA NemoGuard content safety. The conversation is sent
as chat messages: on input the judged text as the user turn; on output the request's
last user message, then the judged text as the assistant turn.

Answers understood:

- Llama Guard: first line ``safe`` or ``unsafe``, second line category codes such as
  ``S1,S10`` (named in reasons from the Llama Guard 3 taxonomy).
- NemoGuard JSON: ``{"User Safety": "unsafe", "Response Safety": "unsafe",
  "Safety Categories": "Violence, Threat"}``; output checks read "Response Safety"
  (falling back to "User Safety" when absent), input checks read "User Safety".

Text that is unsafe only in ``allow_categories`` (case-insensitive) is allowed; unsafe
without categories is blocked. Any other answer raises ``RailResponseError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rails.base import CheckContext, RailConfig, Stage, Verdict
from rails.builtin.http import RailResponseError
from rails.builtin.llm_judge import ChatEndpoint, EndpointConfig
from rails.resources import Resources

LLAMA_GUARD_3_CATEGORIES = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}


@dataclass(frozen=True, slots=True)
class Assessment:
    safe: bool
    categories: tuple[str, ...] = ()


class _NemoGuardAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str = Field(alias="User Safety")
    response: str | None = Field(default=None, alias="Response Safety")
    categories: str = Field(default="", alias="Safety Categories")


def _split(categories: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in categories.split(",") if c.strip())


def _rating(value: str) -> bool:
    """True for safe, False for unsafe; anything else is a malformed answer."""
    rating = value.strip().casefold()
    if rating not in ("safe", "unsafe"):
        raise RailResponseError("safety model answered neither 'safe' nor 'unsafe'")
    return rating == "safe"


def parse(answer: str, stage: Stage) -> Assessment:
    """Read a Llama Guard or NemoGuard answer for ``stage``."""
    text = answer.strip()
    if text.startswith("{"):
        return _parse_json(text, stage)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RailResponseError("safety model answered nothing")
    safe = _rating(lines[0])
    return Assessment(safe, () if safe or len(lines) < 2 else _split(lines[1]))


def _parse_json(text: str, stage: Stage) -> Assessment:
    try:
        data = _NemoGuardAnswer.model_validate_json(text)
    except ValidationError:
        raise RailResponseError("safety model answered JSON without 'User Safety'") from None
    rating = data.response if stage == "output" and data.response is not None else data.user
    safe = _rating(rating)
    if safe and stage == "output" and data.response is None:
        # A safe *user* rating says nothing about the answer: not an allow.
        raise RailResponseError("safety model rated the answer without 'Response Safety'")
    return Assessment(safe, () if safe else _split(data.categories))


def _describe(category: str) -> str:
    name = LLAMA_GUARD_3_CATEGORIES.get(category.upper())
    return f"{category} ({name})" if name else category


class LlamaGuardConfig(EndpointConfig):
    allow_categories: list[str] = Field(default_factory=list)
    max_tokens: int = Field(default=100, ge=1)


class LlamaGuardRail:
    """Blocks what the safety model rates unsafe outside ``allow_categories``."""

    type_name: ClassVar[str] = "llama_guard"
    Config: ClassVar[type[RailConfig]] = LlamaGuardConfig

    def __init__(self, name: str, config: LlamaGuardConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._endpoint = ChatEndpoint(config, resources)
        self._allowed = frozenset(c.strip().casefold() for c in config.allow_categories)

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        if ctx.stage == "input":
            messages = [{"role": "user", "content": text}]
        else:
            messages = [
                {"role": "user", "content": ctx.user_message},
                {"role": "assistant", "content": text},
            ]
        assessment = parse(await self._endpoint.complete(messages), ctx.stage)
        found = {c.casefold() for c in assessment.categories}
        if assessment.safe or (found and found <= self._allowed):
            return Verdict.allow()
        named = ", ".join(map(_describe, assessment.categories)) or "no category given"
        return Verdict.block(f"unsafe content: {named}")
