"""OpenAI ``/v1/completions``, both sides: ``prompt`` in, ``choices[].text`` out.

TGI sends ``finish_reason: ""`` on intermediate chunks, so only a non-empty string ends a
choice. Events share chat's envelope and end, so this is chat with another field.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import BadRequest
from proxy.wire.chat import Chat, choices_of
from proxy.wire.dialect import Dialect, Envelope, Parsed, common_envelope
from proxy.wire.fields import (
    OTHER_INDEX,
    Texts,
    add_rest,
    collect_except,
    content_text,
    drop_repeats,
    index_of,
    read_completion_logprobs,
)
from rails.base import ChannelKey
from rails.stream import CannotRewrite


class Completions(Chat):
    name = "completions"
    object_name = "text_completion"

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        Dialect.validate(self, body)  # not chat's: no messages here
        if not isinstance(body.get("prompt"), str | list):
            raise BadRequest("'prompt' must be a string or a list.", param="prompt")

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The prompt as one user message (a list of prompts joined by newlines)."""
        prompt = body["prompt"]
        text = (
            prompt
            if isinstance(prompt, str)
            else "\n".join(p for p in prompt if isinstance(p, str))
        )
        return [{"role": "user", "content": text}]

    def apply_input_changes(self, body: dict[str, Any], changes: list[tuple[int, str]]) -> None:
        for _, text in changes:
            body["prompt"] = text

    def refusal_body(self, body: dict[str, Any], refusal: str) -> dict[str, Any] | None:
        choice = {"index": 0, "text": refusal, "logprobs": None, "finish_reason": "content_filter"}
        return {**common_envelope(body), "object": "text_completion", "choices": [choice]}

    # -- response side ---------------------------------------------------------------------

    def _read_choice(self, choice: dict[str, Any], parsed: Parsed) -> int:
        index = index_of(choice)
        self._read_text(index, choice, parsed.texts, parsed.rest)
        if choice.get("finish_reason"):
            parsed.ends.append(index)
        return index

    @staticmethod
    def _read_text(index: int, choice: dict[str, Any], texts: Texts, rest: list[str]) -> None:
        """``text`` and its logprobs; every other string of the choice (a chat-shaped
        ``delta`` or ``message`` included) into ``rest``."""
        collect_except(choice, _CHOICE_KEYS, rest)
        text = content_text(choice.get("text"), rest)
        if text:
            texts.append(((index, "content", 0), text))
        if choice.get("logprobs") is not None:
            read_completion_logprobs(index, choice, text or "", texts)

    def final_texts(self, body: Any) -> Texts:
        texts: Texts = []
        rest: list[str] = []
        for choice in choices_of(body, rest):
            self._read_text(index_of(choice), choice, texts, rest)
        add_rest(rest, texts)
        return texts

    def _set(self, choice: dict[str, Any], where: str, key: ChannelKey, new: str) -> None:
        if key[0] == OTHER_INDEX:
            raise CannotRewrite("a string railproxy reads only to judge")
        drop_repeats(choice)
        if key[1] != "logprobs":
            choice["text"] = new

    def _chunk(
        self, env: Envelope, index: int, text: str | None, finish: str | None
    ) -> dict[str, Any]:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return self._envelope(env, choice)


_CHOICE_KEYS = frozenset({"index", "text", "logprobs"})

COMPLETIONS = Completions()
