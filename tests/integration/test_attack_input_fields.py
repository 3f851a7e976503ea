"""Attack findings on the input side: strings the model reads that input rails skipped.

Through the real proxy on loopback, stock clients, and the recording fake upstream, with a
blocklist on "project falcon" and ``rails.input.messages: all`` (which judges every field of
every chat message a template renders: tool calls' names and ids included).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from fakes.upstream import FakeUpstream
from integration.conftest import ProxyFactory

pytestmark = pytest.mark.usefixtures("no_leaks")


def rails(messages: str) -> dict[str, Any]:
    config = {"banned": {"type": "blocklist", "words": ["project falcon"]}}
    return {"rails": {"config": config, "input": {"flows": ["banned"], "messages": messages}}}


CALL = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "42"}

# vLLM turns a function_call item into an assistant message's tool call (its name and
# call_id as the template renders them) and a function_call_output into a tool message
# with that tool_call_id: the same strings chat's ``messages: all`` judges.
RESPONSES_HIDING_PLACES = {
    "function-call-name": [{**CALL, "name": "project falcon"}, OUTPUT],
    "function-call-id": [{**CALL, "call_id": "project falcon"}, OUTPUT],
    "output-call-id": [CALL, {**OUTPUT, "call_id": "project falcon"}],
}


@pytest.mark.parametrize(
    "items", RESPONSES_HIDING_PLACES.values(), ids=RESPONSES_HIDING_PLACES.keys()
)
async def test_responses_tool_call_names_and_ids_are_judged_with_all(
    fake: FakeUpstream, proxy: ProxyFactory, items: list[dict[str, Any]]
) -> None:
    p = await proxy(**rails("all"))
    given = [{"role": "user", "content": "hi"}, *items]
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="m", input=given)  # type: ignore[arg-type]
        assert caught.value.code == "content_blocked"
        assert fake.requests == []
        # the same items with nothing banned in them pass, untouched
        await client.responses.create(model="m", input=[given[0], CALL, OUTPUT])  # type: ignore[list-item]
    assert fake.requests[0].json["input"][1:] == [CALL, OUTPUT]


async def test_a_messages_tool_result_id_is_judged_with_all(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    """vLLM turns a tool_result block into a tool message whose tool_call_id is its
    tool_use_id (rendered by templates that show call ids), as chat's is judged."""
    use = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "project falcon", "content": "42"}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    body = {"model": "m", "max_tokens": 9, "messages": messages}
    p = await proxy(**rails("all"))
    status, raw = await p.post_stream("/v1/messages", body)
    assert status == 400, raw
    assert json.loads(raw)["error"]["type"] == "guardrails_violation"
    assert fake.requests == []
    result["tool_use_id"] = "toolu_1"  # nothing banned: passes, untouched
    assert (await p.post_stream("/v1/messages", body))[0] == 200
    assert fake.requests[0].json["messages"] == messages
