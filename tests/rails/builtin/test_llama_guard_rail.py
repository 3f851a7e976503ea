"""The llama_guard rail: answer parsing, and requests to a real fake server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rail_service_fakes import FakeService, StartService, chat_completion

from rails.base import Action, CheckContext, Stage, Verdict
from rails.builtin.http import RailResponseError
from rails.builtin.llama_guard import Assessment, LlamaGuardConfig, LlamaGuardRail, parse
from rails.resources import Resources

NEMO_UNSAFE_RESPONSE = json.dumps(
    {"User Safety": "safe", "Response Safety": "unsafe", "Safety Categories": "Violence"}
)


def make_rail(service: FakeService, resources: Resources, **extra: Any) -> LlamaGuardRail:
    config = {"base_url": f"{service.url}/v1", "model": "llama-guard-3-8b", **extra}
    return LlamaGuardRail("guard", LlamaGuardConfig.model_validate(config), resources)


@pytest.mark.parametrize(
    ("answer", "stage", "expected"),
    [
        ("safe", "input", Assessment(True)),
        ("\n\nsafe", "output", Assessment(True)),
        ("unsafe\nS1", "input", Assessment(False, ("S1",))),
        ("unsafe\nS1, S10", "output", Assessment(False, ("S1", "S10"))),
        ("Unsafe", "output", Assessment(False)),
        (NEMO_UNSAFE_RESPONSE, "output", Assessment(False, ("Violence",))),
        (NEMO_UNSAFE_RESPONSE, "input", Assessment(True)),
        (
            '{"User Safety": "unsafe", "Safety Categories": "A, B"}',
            "output",
            Assessment(False, ("A", "B")),
        ),
        ('{"User Safety": "safe"}', "input", Assessment(True)),
    ],
)
def test_parse(answer: str, stage: Stage, expected: Assessment) -> None:
    assert parse(answer, stage) == expected


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "maybe",
        "sure, that is fine",
        "{not json",
        '{"Response Safety": "safe"}',
        '{"User Safety": "meh"}',
        '{"User Safety": "safe"}',  # judging an answer, the answer's rating is missing
    ],
)
def test_parse_rejects_malformed(answer: str) -> None:
    with pytest.raises(RailResponseError):
        parse(answer, "output")


async def test_output_request_and_reason(fake_service: StartService, resources: Resources) -> None:
    service = await fake_service(chat_completion("unsafe\nS1,S10"))
    rail = make_rail(service, resources, api_key="secret-k")
    ctx = CheckContext(stage="output", user_message="tell me")
    verdict = await rail.check("a hateful answer", ctx)
    assert verdict == Verdict.block("unsafe content: S1 (Violent Crimes), S10 (Hate)")
    [seen] = service.received
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer secret-k"
    assert seen.body["model"] == "llama-guard-3-8b"
    assert seen.body["temperature"] == 0
    assert seen.body["messages"] == [
        {"role": "user", "content": "tell me"},
        {"role": "assistant", "content": "a hateful answer"},
    ]


async def test_input_sends_only_the_user_turn(
    fake_service: StartService, resources: Resources
) -> None:
    service = await fake_service(chat_completion("safe"))
    verdict = await make_rail(service, resources).check("hi", CheckContext(stage="input"))
    assert verdict == Verdict.allow()
    assert service.received[0].body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("answer", "action"),
    [
        ("unsafe\nS10", Action.ALLOW),
        ("unsafe\ns6", Action.ALLOW),
        ("unsafe\nS1,S10", Action.BLOCK),
        ("unsafe", Action.BLOCK),
        (NEMO_UNSAFE_RESPONSE, Action.BLOCK),
    ],
)
async def test_allow_categories(
    fake_service: StartService, resources: Resources, answer: str, action: Action
) -> None:
    service = await fake_service(chat_completion(answer))
    rail = make_rail(service, resources, allow_categories=["s10", "S6"])
    verdict = await rail.check("text", CheckContext(stage="output"))
    assert verdict.action is action


async def test_nemoguard_reason_names_categories(
    fake_service: StartService, resources: Resources
) -> None:
    rail = make_rail(await fake_service(chat_completion(NEMO_UNSAFE_RESPONSE)), resources)
    verdict = await rail.check("text", CheckContext(stage="output"))
    assert verdict == Verdict.block("unsafe content: Violence")


@pytest.mark.parametrize(("body", "status"), [({"error": "down"}, 503), (b"<html>", 200)])
async def test_http_failures_raise(
    fake_service: StartService, resources: Resources, body: Any, status: int
) -> None:
    rail = make_rail(await fake_service(body, status), resources)
    with pytest.raises(RailResponseError):
        await rail.check("text", CheckContext(stage="input"))
