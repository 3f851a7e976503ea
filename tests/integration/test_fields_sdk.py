"""Every field judged, seen through the stock openai SDK (issue 13's Tests: "the openai
SDK (sync streaming, ``.stream()`` helper, non-streaming), in both release modes").

The hostile upstream plants "Project Falcon" in one field at a time (the streams and
answers of ``test_fields``); the sync client, streaming and through
``chat.completions.stream()``, must raise ``content_blocked`` and, with
``stream_first: false``, never have been handed the phrase in any field; non-streamed,
the SDK raises ``BadRequestError`` (400, ``content_blocked``). A mask (an e-mail in
reasoning or tool arguments) reaches the SDK masked in the field it was in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from fakes.hostile import HostileUpstream, Reply, sse
from integration.conftest import ProxyFactory
from integration.test_fields import (
    EMAIL,
    JSON_CT,
    STREAMS,
    WHOLE,
    delta_chunk,
    finish,
    hostile,  # noqa: F401 (the fixture)
    rails,
    tool,
    whole,
)

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _stream_all(base_url: str) -> tuple[list[str], list[str], list[str]]:
    """The sync client: plain streaming, then the ``.stream()`` helper. Returns what each
    was handed (every chunk as JSON, every helper event as JSON) and the errors' codes."""
    seen: list[str] = []
    helper: list[str] = []
    codes: list[str] = []
    with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
        try:
            for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                seen.append(chunk.model_dump_json(warnings=False))
        except openai.APIError as e:
            codes.append(str(e.code))
        try:
            with client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
                for event in stream:
                    helper.append(event.model_dump_json(warnings=False))
        except openai.APIError as e:
            codes.append(str(e.code))
    return seen, helper, codes


# The helper re-validates what it accumulates: a content list in a delta (released as it
# came with stream_first true) makes pydantic warn inside the SDK.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize("stream_first", [False, True])
@pytest.mark.parametrize("case", sorted(STREAMS))
async def test_the_sync_sdk_and_its_stream_helper_are_blocked(
    hostile: HostileUpstream,  # noqa: F811
    proxy: ProxyFactory,
    case: str,
    stream_first: bool,
) -> None:
    hostile.reply = Reply(sse(*STREAMS[case], finish()))
    p = await proxy(target=hostile.base_url, **rails(stream_first))
    seen, helper, codes = await asyncio.to_thread(_stream_all, p.v1)
    assert codes == ["content_blocked", "content_blocked"]
    if not stream_first:
        assert not [s for s in seen + helper if "Falcon" in s]


@pytest.mark.parametrize("case", sorted(WHOLE))
async def test_the_sdk_gets_a_400_for_a_whole_answer(
    hostile: HostileUpstream,  # noqa: F811
    proxy: ProxyFactory,
    case: str,
) -> None:
    hostile.reply = Reply([WHOLE[case]], content_type=JSON_CT)
    p = await proxy(target=hostile.base_url, **rails())
    async with openai.AsyncOpenAI(base_url=p.v1, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert (raised.value.status_code, raised.value.code) == (400, "content_blocked")


async def test_masks_reach_the_sdk_in_their_fields(
    hostile: HostileUpstream,  # noqa: F811
    proxy: ProxyFactory,
) -> None:
    """stream_first false: an e-mail in reasoning_content and in tool arguments, streamed
    and whole, arrives masked where it was."""
    chunks = [
        delta_chunk({"reasoning_content": f"mail {EMAIL} now"}),
        delta_chunk(tool(f'{{"to": "{EMAIL}"}}', name="send")),
        finish(),
    ]
    message = {"content": None, "reasoning_content": f"mail {EMAIL} now"}
    p = await proxy(target=hostile.base_url, **rails(pii=True))

    def use_client() -> tuple[str, str, dict[str, Any]]:
        with openai.OpenAI(base_url=p.v1, api_key="k", max_retries=0) as client:
            hostile.reply = Reply(sse(*chunks))
            raw = [
                c.model_dump(warnings=False)
                for c in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            ]
            hostile.reply = Reply(sse(*chunks))
            with client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
                final = stream.get_final_completion()
            hostile.reply = Reply(
                [whole({**message, **tool(f'{{"to": "{EMAIL}"}}', name="send")})],
                content_type=JSON_CT,
            )
            answer = client.chat.completions.create(model="m", messages=MESSAGES)
        return (
            json.dumps(raw),
            final.model_dump_json(warnings=False),
            answer.model_dump(warnings=False),
        )

    streamed, helped, answer = await asyncio.to_thread(use_client)
    for text in (streamed, helped, json.dumps(answer)):
        assert EMAIL not in text
    assert "mail [EMAIL] now" in streamed
    assert '\\"to\\": \\"[EMAIL]\\"' in streamed
    assert '\\"to\\": \\"[EMAIL]\\"' in helped  # the helper's accumulated arguments
    message_out = answer["choices"][0]["message"]
    assert message_out["reasoning_content"] == "mail [EMAIL] now"
    assert json.loads(message_out["tool_calls"][0]["function"]["arguments"]) == {"to": "[EMAIL]"}
