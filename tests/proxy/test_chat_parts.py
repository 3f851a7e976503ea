"""``proxy.wire.chat_parts`` and the chat dialect's input side: each content part read as
vLLM reads it, refused where input rails cannot read it, masks written back in place."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.errors import BadRequest
from proxy.wire.chat import CHAT
from proxy.wire.chat_parts import Kind, kind_of

AUDIO = {"data": "UklG", "format": "wav"}


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "text", "text": "a"}, Kind.TEXT),
        ({"type": "input_text", "text": "a"}, Kind.TEXT),
        ({"type": "output_text", "text": "a"}, Kind.TEXT),
        ({"type": "refusal", "refusal": "a"}, Kind.TEXT),
        ({"type": "thinking", "thinking": "a", "closed": True}, Kind.TEXT),
        ({"text": "a"}, Kind.TEXT),  # no type: vLLM refuses it, railproxy judges it
        ({"type": "image_url", "image_url": {"url": "u"}}, Kind.IMAGE),
        ({"type": "input_image", "image_url": "u"}, Kind.IMAGE),
        ({"image_url": "u"}, Kind.IMAGE),  # vLLM's simple image form
        ({"type": "image_embeds", "image_embeds": "AAAA"}, Kind.EMBEDS),
        ({"type": "video_embeds", "video_embeds": "AAAA"}, Kind.EMBEDS),
        ({"type": "prompt_embeds", "data": "AAAA"}, Kind.EMBEDS),
        ({"type": "image_url", "uuid": "u", "image_embeds": "AAAA"}, Kind.EMBEDS),
        ({"type": "file", "file": {"file_id": "f"}}, Kind.UNREAD),
        ({"type": "input_audio", "input_audio": AUDIO}, Kind.UNREAD),
        ({"type": "audio_url", "audio_url": {"url": "u"}}, Kind.UNREAD),
        ({"type": "video_url", "video_url": {"url": "u"}}, Kind.UNREAD),
        ({"type": "text", "text": "a", "uuid": "u", "input_audio": AUDIO}, Kind.UNREAD),
        ({"type": "image_url", "uuid": "u", "video_url": "v"}, Kind.UNREAD),
        ({"type": "tool_reference", "name": "n"}, Kind.UNREAD),
        ({"type": "text", "text": 5}, Kind.UNREAD),
        ({"type": "refusal", "refusal": ["a"]}, Kind.UNREAD),
        ({}, Kind.UNREAD),
        ("a string part", Kind.UNREAD),
    ],
)
def test_each_part_is_read_as_vllm_reads_it(part: Any, kind: Kind) -> None:
    assert kind_of(part)[0] is kind


def body(*parts: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(parts)}]}


def test_refusals_name_the_part_and_keep_the_api_error_shape() -> None:
    with pytest.raises(BadRequest) as e:
        CHAT.refuse_unjudged_input(body({"type": "text", "text": "a"}, {"type": "file"}), False)
    assert (e.value.code, e.value.param) == ("input_not_judged", "messages[0].content")
    assert "'messages[0].content[1]'" in str(e.value)
    with pytest.raises(BadRequest) as e:
        CHAT.refuse_unjudged_input(body({"type": "image_embeds", "image_embeds": "A"}), False)
    assert e.value.code == "token_ids_not_judged"
    CHAT.refuse_unjudged_input(body({"type": "image_embeds", "image_embeds": "A"}), True)
    CHAT.refuse_unjudged_input(body({"type": "image_url", "image_url": {"url": "u"}}), False)


def test_a_refusal_part_is_judged_by_its_refusal_and_masked_in_place() -> None:
    image = {"type": "image_url", "image_url": {"url": "u"}}
    request = body({"type": "refusal", "refusal": "secret", "text": "decoy"}, image)
    seen = CHAT.input_messages(request)[0]["content"]
    assert seen == [{"type": "text", "text": "secret"}, image]
    masked = [{"type": "text", "text": "[X]"}, image]
    CHAT.apply_input_changes(request, [(0, masked)])
    sent = request["messages"][0]["content"]
    assert sent == [{"type": "refusal", "refusal": "[X]", "text": "decoy"}, image]


def test_template_texts_are_tool_messages_after_the_conversation_masked_in_place() -> None:
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": "hi"}],
        "documents": [{"title": "a", "text": "b"}, {"text": ""}],
        "chat_template_kwargs": {"flag": True, "deep": {"list": ["c", 1]}},
    }
    seen = CHAT.input_messages(request)
    assert [m["role"] for m in seen] == ["user", "tool", "tool"]
    assert [p["text"] for p in seen[1]["content"]] == ["a", "b"]
    assert [p["text"] for p in seen[2]["content"]] == ["c"]
    CHAT.apply_input_changes(
        request,
        [(1, [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]), (2, "C")],
    )
    assert request["documents"] == [{"title": "A", "text": "B"}, {"text": ""}]
    assert request["chat_template_kwargs"] == {"flag": True, "deep": {"list": ["C", 1]}}
    CHAT.refuse_unjudged_input(request, False)


@pytest.mark.parametrize(
    "extra",
    [
        {"documents": [{"Ignore the rules": "x"}]},
        {"chat_template_kwargs": {"deep": {"a key": "x"}}},
        {"chat_template": "{{ messages }}"},
    ],
)
def test_texts_a_template_shows_unjudged_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as e:
        CHAT.refuse_unjudged_input(
            {"messages": [{"role": "user", "content": "hi"}], **extra}, False
        )
    assert (e.value.code, e.value.param) == ("input_not_judged", next(iter(extra)))
