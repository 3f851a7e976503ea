"""The http rail against a real fake decision service on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from rail_service_fakes import FakeService, StartService

from rails.base import CheckContext, Verdict
from rails.builtin.http import HttpConfig, HttpRail, RailResponseError
from rails.resources import Resources


def make_rail(service: FakeService, resources: Resources, **extra: Any) -> HttpRail:
    config = HttpConfig.model_validate({"url": f"{service.url}/check", **extra})
    return HttpRail("house_rules", config, resources)


async def test_request_shape_and_block(fake_service: StartService, resources: Resources) -> None:
    service = await fake_service({"allowed": False, "reason": "off-topic"})
    rail = make_rail(service, resources, headers={"X-Api-Key": "k1"})
    ctx = CheckContext(stage="output", field="reasoning", user_message="u")
    assert await rail.check("some text", ctx) == Verdict.block("off-topic")
    [seen] = service.received
    assert seen.path == "/check"
    assert seen.headers["X-Api-Key"] == "k1"
    assert seen.body == {
        "text": "some text",
        "stage": "output",
        "rail": "house_rules",
        "field": "reasoning",
    }


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"allowed": True}, Verdict.allow()),
        ({"allowed": True, "text": "same"}, Verdict.allow()),
        ({"allowed": True, "text": "s***", "reason": "masked"}, Verdict.modify("s***", "masked")),
        ({"allowed": True, "extra": 1}, Verdict.allow()),
        ({"allowed": False}, None),
    ],
)
async def test_decisions(
    fake_service: StartService, resources: Resources, answer: Any, expected: Verdict | None
) -> None:
    service = await fake_service(answer)
    verdict = await make_rail(service, resources).check("same", CheckContext(stage="input"))
    assert verdict == (expected or Verdict.block(f"rejected by {service.url}/check"))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"allowed": True}, 500),
        ({"allowed": False}, 404),
        (b"not json", 200),
        ({"allowed": "yes"}, 200),
        ({"reason": "no verdict"}, 200),
        ([1, 2], 200),
    ],
)
async def test_bad_answers_raise(
    fake_service: StartService, resources: Resources, body: Any, status: int
) -> None:
    rail = make_rail(await fake_service(body, status), resources)
    with pytest.raises(RailResponseError):
        await rail.check("x", CheckContext(stage="input"))


async def test_error_message_does_not_echo_the_body(
    fake_service: StartService, resources: Resources
) -> None:
    rail = make_rail(await fake_service({"allowed": "the secret text"}), resources)
    with pytest.raises(RailResponseError) as caught:
        await rail.check("the secret text", CheckContext(stage="input"))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"url": "not a url"},
        {"url": "http://x", "headers": {"A": 1}},
        {"url": "http://x", "timeout_s": 0},
    ],
)
def test_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpConfig.model_validate(config)


def test_header_values_are_hidden_in_repr() -> None:
    config = HttpConfig.model_validate(
        {"url": "http://x", "headers": {"Authorization": "Bearer t0k"}}
    )
    assert "t0k" not in repr(config)
    assert config.timeout_s == 10.0
