"""Masking rewrites text, and never lets the masked text out another way: logprobs (tokens,
UTF-8 bytes, alternatives) and TGI's token details repeat the original text, so they go."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.wire.chat import CHAT
from proxy.wire.completions import COMPLETIONS
from proxy.wire.sse import Event
from proxy.wire.tgi import TGI_NATIVE
from rails.base import ChannelKey

SECRET = "jane.doe@example.com"
CHAT_LOGPROBS = {
    "content": [
        {"token": SECRET, "logprob": -0.1, "bytes": list(SECRET.encode()), "top_logprobs": []}
    ]
}


def event(obj: dict[str, Any]) -> Event:
    data = orjson.dumps(obj)
    return Event(b"data: " + data + b"\n\n", data)


def rewritten(ev: Event) -> dict[str, Any]:
    assert ev.raw.rstrip(b"\n").endswith(ev.data or b"-")  # raw and data agree
    out: dict[str, Any] = orjson.loads(ev.data or b"")
    return out


@pytest.mark.parametrize(
    ("key", "delta"),
    [
        ((0, "content", 0), {"content": SECRET}),
        ((0, "reasoning", 1), {"reasoning_content": SECRET}),
        ((0, "reasoning", 0), {"reasoning": SECRET}),
        ((0, "refusal", 0), {"refusal": SECRET}),
        ((0, "content", 0), {"content": [{"type": "text", "text": SECRET}]}),
        ((0, "tool_names", 0), {"tool_calls": [{"index": 0, "function": {"name": SECRET}}]}),
        ((0, "tool_arguments", -1), {"function_call": {"arguments": SECRET}}),
        (
            (0, "tool_arguments", 0),
            {"tool_calls": [{"index": 0, "function": {"arguments": SECRET}}]},
        ),
    ],
)
def test_chat_rewrite_replaces_the_text_and_drops_logprobs(
    key: ChannelKey, delta: dict[str, Any]
) -> None:
    choice = {"index": 0, "delta": delta, "logprobs": CHAT_LOGPROBS, "finish_reason": None}
    out = rewritten(CHAT.rewrite(event({"choices": [choice]}), key, "[EMAIL]"))
    assert SECRET.encode() not in orjson.dumps(out)
    assert str(list(SECRET.encode()))[1:-1].encode() not in orjson.dumps(out)
    assert out["choices"][0]["logprobs"] is None
    assert "[EMAIL]" in orjson.dumps(out).decode()


def test_chat_rewrite_of_one_choice_keeps_the_other_choices_logprobs() -> None:
    other = {"index": 1, "delta": {"content": " hi"}, "logprobs": {"content": []}}
    masked = {"index": 0, "delta": {"content": SECRET}, "logprobs": CHAT_LOGPROBS}
    out = rewritten(CHAT.rewrite(event({"choices": [masked, other]}), (0, "content", 0), "x"))
    assert out["choices"][0]["logprobs"] is None
    assert out["choices"][1]["logprobs"] == {"content": []}


def test_completions_rewrite_drops_logprobs() -> None:
    logprobs = {"tokens": [SECRET], "token_logprobs": [-0.1], "top_logprobs": [{SECRET: -0.1}]}
    choice = {"index": 0, "text": SECRET, "logprobs": logprobs, "finish_reason": None}
    out = rewritten(COMPLETIONS.rewrite(event({"choices": [choice]}), (0, "content", 0), "[E]"))
    assert out["choices"][0] == {"index": 0, "text": "[E]", "logprobs": None, "finish_reason": None}


def test_non_streaming_masks_drop_logprobs() -> None:
    chat = {"choices": [{"index": 0, "message": {"content": SECRET}, "logprobs": CHAT_LOGPROBS}]}
    CHAT.set_final_text(chat, (0, "content", 0), "[EMAIL]")
    assert chat["choices"][0] == {"index": 0, "message": {"content": "[EMAIL]"}, "logprobs": None}
    completions = {"choices": [{"index": 0, "text": SECRET, "logprobs": {"tokens": [SECRET]}}]}
    COMPLETIONS.set_final_text(completions, (0, "content", 0), "[EMAIL]")
    assert completions["choices"][0] == {"index": 0, "text": "[EMAIL]", "logprobs": None}


def test_tgi_masks_drop_the_tokens_that_spell_the_text() -> None:
    token = {"id": 12, "text": SECRET, "logprob": -0.1, "special": False}
    ev = event({"index": 1, "token": token, "top_tokens": [token], "generated_text": None})
    out = rewritten(TGI_NATIVE.rewrite(ev, (0, "content", 0), "[EMAIL]"))
    assert out["token"]["text"] == "[EMAIL]"
    assert out["top_tokens"] == []
    body = {
        "generated_text": SECRET,
        "details": {"finish_reason": "length", "tokens": [token], "top_tokens": [[token]]},
    }
    TGI_NATIVE.set_final_text(body, (0, "content", 0), "[EMAIL]")
    assert SECRET.encode() not in orjson.dumps(body)
    assert body["details"] == {"finish_reason": "length", "tokens": [], "top_tokens": []}


def test_masks_drop_vllm_token_ids() -> None:
    choice = {"index": 0, "delta": {"content": SECRET}, "token_ids": [1, 2, 3], "logprobs": None}
    out = rewritten(CHAT.rewrite(event({"choices": [choice]}), (0, "content", 0), "[E]"))
    assert out["choices"][0]["token_ids"] is None
    whole = {"choices": [{"index": 0, "message": {"content": SECRET}, "token_ids": [1, 2]}]}
    CHAT.set_final_text(whole, (0, "content", 0), "[E]")
    assert whole["choices"][0]["token_ids"] is None


def test_tgi_final_event_generated_text_is_rewritten() -> None:
    token = {"id": 2, "text": "!", "logprob": -0.1, "special": False}
    ev = event({"index": 3, "token": token, "generated_text": f"Mail {SECRET}!"})
    out = rewritten(TGI_NATIVE.rewrite(ev, (0, "content", 1), "Mail [EMAIL]!"))
    assert out["generated_text"] == "Mail [EMAIL]!"
    assert out["token"]["text"] == "!"


def test_escaped_tool_arguments_cannot_be_rewritten() -> None:
    from rails.stream import CannotRewrite

    call = {"index": 0, "function": {"arguments": '{"to": "jane\\u0040example.com"}'}}
    ev = event({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    ev.escaped = True
    with pytest.raises(CannotRewrite):
        CHAT.rewrite(ev, (0, "tool_arguments", 0), "[EMAIL]")
