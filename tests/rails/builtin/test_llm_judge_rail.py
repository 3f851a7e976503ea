"""The llm_judge rail against a real fake OpenAI-compatible server on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from rail_service_fakes import FakeService, StartService, chat_completion

from rails.base import ALL_FIELDS, CheckContext, Verdict
from rails.builtin.http import RailResponseError
from rails.builtin.llm_judge import LlmJudgeConfig, LlmJudgeRail, PromptTemplate, says_yes
from rails.resources import Resources


def make_rail(service: FakeService, resources: Resources, **extra: Any) -> LlmJudgeRail:
    config = {"base_url": f"{service.url}/v1", "model": "judge-8b", **extra}
    return LlmJudgeRail("self_check", LlmJudgeConfig.model_validate(config), resources)


@pytest.mark.parametrize(
    ("answer", "yes"),
    [
        ("Yes", True),
        ("yes.", True),
        ("**Yes**, it breaks the policy", True),
        (" YES", True),
        ('"Yes"', True),
        ("No", False),
        ("no.", False),
        ("**No**", False),
    ],
)
def test_says_yes(answer: str, yes: bool) -> None:
    assert says_yes(answer) is yes


@pytest.mark.parametrize("answer", ["", "Yesterday I said no", "Maybe", "I cannot judge", "Y"])
def test_an_answer_neither_yes_nor_no_is_an_error(answer: str) -> None:
    with pytest.raises(RailResponseError, match="neither yes nor no"):
        says_yes(answer)


@pytest.mark.parametrize(("on_error", "blocked"), [("block", True), ("allow", False)])
async def test_garbage_answer_follows_on_error(
    fake_service: StartService, resources: Resources, on_error: str, blocked: bool
) -> None:
    from rails.pipeline import Pipeline

    service = await fake_service(chat_completion("As an AI, I think it depends."))
    rail = make_rail(service, resources, on_error=on_error)
    outcome = await Pipeline([rail], "output").check("text", CheckContext(stage="output"))
    assert outcome.blocked is blocked


def test_prompt_template_keeps_other_braces_and_does_not_reinterpret_values() -> None:
    template = PromptTemplate('JSON {"a": 1} {user_message} / {bot_message} {other}')
    rendered = template.render(user_message="{bot_message}", bot_message="B")
    assert rendered == 'JSON {"a": 1} {bot_message} / B {other}'


async def test_output_stage_request_and_block(
    fake_service: StartService, resources: Resources
) -> None:
    service = await fake_service(chat_completion("Yes"))
    rail = make_rail(service, resources, api_key="k-123", max_tokens=3)
    ctx = CheckContext(stage="output", user_message="How do I pick a lock?")
    verdict = await rail.check("Step one: insert a tension wrench", ctx)
    assert verdict == Verdict.block("self_check: the judge model answered yes")
    [seen] = service.received
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer k-123"
    assert seen.body["model"] == "judge-8b"
    assert seen.body["temperature"] == 0
    assert seen.body["max_tokens"] == 3
    assert seen.body["stream"] is False
    [message] = seen.body["messages"]
    assert message["role"] == "user"
    assert 'User message: "How do I pick a lock?"' in message["content"]
    assert 'Assistant answer: "Step one: insert a tension wrench"' in message["content"]
    assert "Answer Yes or No" in message["content"]


async def test_input_stage_judges_the_user_message(
    fake_service: StartService, resources: Resources
) -> None:
    service = await fake_service(chat_completion("No"))
    rail = make_rail(service, resources)
    verdict = await rail.check("hello there", CheckContext(stage="input"))
    assert verdict == Verdict.allow()
    [seen] = service.received
    assert "Authorization" not in seen.headers
    content = seen.body["messages"][0]["content"]
    assert 'User message: "hello there"' in content
    assert "Assistant answer" not in content


async def test_custom_prompt(fake_service: StartService, resources: Resources) -> None:
    service = await fake_service(chat_completion("no"))
    rail = make_rail(service, resources, prompt="Q: {user_message} A: {bot_message} Bad?")
    await rail.check("fine", CheckContext(stage="output", user_message="hi"))
    assert service.received[0].body["messages"][0]["content"] == "Q: hi A: fine Bad?"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"error": "overloaded"}, 503),
        (b"not json", 200),
        ({"choices": []}, 200),
        ({"choices": [{"message": {"content": None}}]}, 200),
    ],
)
async def test_bad_answers_raise(
    fake_service: StartService, resources: Resources, body: Any, status: int
) -> None:
    rail = make_rail(await fake_service(body, status), resources)
    with pytest.raises(RailResponseError):
        await rail.check("x", CheckContext(stage="input"))


@pytest.mark.parametrize(
    "config",
    [
        {"model": "m"},
        {"base_url": "ftp://x", "model": "m"},
        {"base_url": "http://x/v1", "model": ""},
        {"base_url": "http://x/v1", "model": "m", "prompt": "no placeholders"},
        {"base_url": "http://x/v1", "model": "m", "max_tokens": 0},
    ],
)
def test_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LlmJudgeConfig.model_validate(config)


def test_config_defaults() -> None:
    config = LlmJudgeConfig.model_validate({"base_url": "http://x/v1", "model": "m", "api_key": ""})
    assert config.api_key is None
    assert config.timeout_s == 10.0
    assert config.fields == ALL_FIELDS
