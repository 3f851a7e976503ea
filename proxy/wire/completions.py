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
from rails.guard import InputContent
from rails.stream import CannotRewrite


class Completions(Chat):
    name = "completions"
    object_name = "text_completion"
    batch_input = True  # a list of prompts: each is a generation of its own

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        Dialect.validate(self, body)  # not chat's: no messages here
        if not isinstance(body.get("prompt"), str | list):
            raise BadRequest("'prompt' must be a string or a list.", param="prompt")

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Each text prompt as a user message of its own (a list of prompts is a batch:
        each prompt is its own generation), in order; token ids are not text. Then the
        ``suffix`` (the text after the insertion point, which the model reads too)."""
        texts = _text_prompts(body["prompt"])
        suffix = body.get("suffix")
        if isinstance(suffix, str) and suffix:
            texts.append(suffix)
        return [{"role": "user", "content": p} for p in texts]

    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        """Each masked prompt in its place: a list of prompts stays a list."""
        prompt = body["prompt"]
        where = (
            [i for i, p in enumerate(prompt) if isinstance(p, str)]
            if isinstance(prompt, list)
            else [0]
        )
        for index, text in changes:
            if index == len(where):
                body["suffix"] = text
            elif isinstance(prompt, str):
                body["prompt"] = text
            else:
                prompt[where[index]] = text

    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        """Token ids (a list of ints, a list of such lists, llama.cpp's strings mixed
        with ids) and vLLM's ``prompt_embeds`` cannot be judged: refused unless the
        operator allows them; a prompt of any other shape is refused always."""
        if body.get("suffix") is not None and not isinstance(body["suffix"], str):
            raise BadRequest(
                "Input rails judge text: 'suffix' must be a string.",
                param="suffix",
                code="input_not_judged",
            )
        prompt = body["prompt"]
        kinds = {"text"} if isinstance(prompt, str) else {_prompt_kind(p) for p in prompt}
        if "other" in kinds:
            raise BadRequest(
                "Input rails judge text: 'prompt' must be a string, a list of strings, or "
                "token ids.",
                param="prompt",
                code="input_not_judged",
            )
        if body.get("prompt_embeds") is not None:
            kinds.add("ids")
        if "ids" in kinds and not allow_token_ids:
            raise BadRequest(
                "Input rails cannot judge a prompt given as token ids or embeddings; send "
                "it as text (an operator may allow such prompts with "
                "rails.input.allow_token_ids: true).",
                param="prompt",
                code="token_ids_not_judged",
            )

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


def _text_prompts(prompt: str | list[Any]) -> list[str]:
    return [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt_kind(p: Any) -> str:
    """One entry of a prompt list: ``text``, ``ids`` (an id, or a list of ids), or
    ``other`` (a shape railproxy cannot read as text)."""
    if isinstance(p, str):
        return "text"
    if _is_id(p) or (isinstance(p, list) and all(_is_id(t) for t in p)):
        return "ids"
    return "other"


COMPLETIONS = Completions()
