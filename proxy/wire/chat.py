"""OpenAI ``/v1/chat/completions``, as vLLM, TGI and llama.cpp speak it, both sides.

Request: ``messages`` (a non-empty list of objects with a string ``role``); input rails
judge them, each content part as vLLM reads it (``proxy.wire.chat_parts``: what they cannot
read is refused while they enforce), then the texts the chat template shows besides them
(``proxy.wire.chat_extras``); masks are written back into each message's ``content``.
Response: ``chat.completion.chunk`` events ending with ``[DONE]``; every text a client is
shown or acts on is read per channel by ``proxy.wire.fields`` (a delta and a whole
``message`` share their field names, so streamed and whole answers are judged alike).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from proxy.errors import BadRequest
from proxy.wire import chat_extras, chat_parts
from proxy.wire.client_json import client_json, dump_json
from proxy.wire.dialect import (
    DONE_EVENT,
    Dialect,
    Envelope,
    Kind,
    Parsed,
    abort_body,
    common_envelope,
    validate_messages,
)
from proxy.wire.fields import (
    OTHER_INDEX,
    Texts,
    add_rest,
    collect,
    collect_except,
    drop_repeats,
    index_of,
    read_chat_logprobs,
    read_message,
    replace_in,
    spelled,
)
from proxy.wire.sse import Event, encode
from rails.base import Blocked, ChannelKey
from rails.guard import InputContent
from rails.stream import CannotRewrite


class Chat(Dialect):
    name = "chat"
    object_name = "chat.completion.chunk"
    plain_events = True

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        super().validate(body)
        validate_messages(body)

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages, each list content as input rails read it (``chat_parts``), then
        the texts the template shows besides them (``chat_extras``)."""
        messages = [_judged_message(m) for m in body["messages"]]
        return messages + [e.message for e in chat_extras.extras(body)]

    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        count, extras = len(body["messages"]), chat_extras.extras(body)
        for index, content in changes:
            if index >= count:
                extras[index - count].write(content)
                continue
            message = body["messages"][index]
            if isinstance(content, list):
                content = chat_parts.written_back(message["content"], content)
            message["content"] = content

    def input_definitions(self, body: dict[str, Any]) -> list[str]:
        """Each tool of ``tools`` (and legacy ``functions``) as one text: every string in
        it, keys included (name, description, the parameters' names and descriptions);
        the ``response_format`` (a JSON schema's names and descriptions: gpt-oss's template
        shows it); and every message field but ``role`` and ``content``, of every message,
        as one text (``tool_calls``, ``reasoning``, ``name``, a developer's ``tools``:
        templates render them)."""
        tools = [*_as_list(body.get("tools")), *_as_list(body.get("functions"))]
        out = ["\n".join(all_strings(tool)) for tool in tools]
        out.append("\n".join(all_strings(json_schema(body.get("response_format")))))
        fields = [{k: v for k, v in m.items() if k not in _READ} for m in _messages(body)]
        out.append("\n".join(all_strings(fields)))
        return [text for text in out if text]

    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        """A message's content must be text, or a list of parts input rails read
        (``chat_parts``): anything else would reach the model unjudged."""
        if body.get("chat_template") is not None:
            raise _unjudged(
                "'chat_template' from the request writes the prompt the model reads (it can "
                "add text of its own and rewrite the judged messages); the server's template "
                "is used when it is left out",
                "chat_template",
            )
        odd = chat_extras.odd_key(body)
        if odd is not None:
            raise _unjudged(f"every key in '{odd}' must be a name (a template may show it)", odd)
        for i, m in enumerate(body["messages"]):
            content = m.get("content")
            if content is None or isinstance(content, str):
                continue
            where = f"messages[{i}].content"
            if not isinstance(content, list):
                raise _unjudged(f"'{where}' must be a string or a list of content parts", where)
            for j, part in enumerate(content):
                _refuse_part(part, f"{where}[{j}]", where, allow_token_ids)

    def refusal_body(self, body: dict[str, Any], refusal: str) -> dict[str, Any] | None:
        message = {"role": "assistant", "content": refusal}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "content_filter",
        }
        return {**common_envelope(body), "object": "chat.completion", "choices": [choice]}

    # -- response side: parsing ------------------------------------------------------------

    def parse_obj(self, obj: dict[str, Any]) -> Parsed:
        parsed = Parsed(Kind.DATA, obj)
        collect_except(obj, _TOP_KEYS, parsed.rest)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            collect("", choices, parsed.rest)
            return parsed
        if not choices and obj.get("usage"):
            parsed.end = True  # the usage chunk follows every choice's finish
        seen: set[int] = set()
        for choice in choices:
            if not isinstance(choice, dict):
                collect("", choice, parsed.rest)
                continue
            index = self._read_choice(choice, parsed)
            if index in seen:  # two entries for one choice: a mask could not tell them apart
                raise ValueError(f"choice {index} twice in one event")
            seen.add(index)
        return parsed

    def _read_choice(self, choice: dict[str, Any], parsed: Parsed) -> int:
        index = index_of(choice)
        collect_except(choice, _CHOICE_KEYS, parsed.rest)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            read_message(index, delta, parsed.texts, parsed.rest)
        else:
            collect("", delta, parsed.rest)
        if choice.get("logprobs") is not None:
            read_chat_logprobs(index, choice, spelled(parsed.texts, index), parsed.texts)
        if choice.get("finish_reason"):
            parsed.ends.append(index)
        return index

    def final_texts(self, body: Any) -> Texts:
        texts: Texts = []
        rest: list[str] = []
        for choice in choices_of(body, rest):
            index = index_of(choice)
            collect_except(choice, _WHOLE_CHOICE_KEYS, rest)
            message = choice.get("message")
            if isinstance(message, dict):
                read_message(index, message, texts, rest)
            elif message is not None:
                raise ValueError("'message' is not an object")
            if choice.get("logprobs") is not None:
                read_chat_logprobs(index, choice, spelled(texts, index), texts)
        add_rest(rest, texts)
        return texts

    # -- response side: rewriting (masks) ------------------------------------------------

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        if key[0] == OTHER_INDEX:
            raise CannotRewrite("a string railproxy reads only to judge")
        for choice in body.get("choices") or []:
            if index_of(choice) == key[0]:
                self._set(choice, "message", key, text)

    def rewrite_text(self, ev: Event, key: ChannelKey, new: str) -> Event:
        obj = client_json(ev.data or b"{}")
        for choice in obj.get("choices") or []:
            if index_of(choice) == key[0]:
                self._set(choice, "delta", key, new)
        data = dump_json(obj)
        return Event(encode(data), data)

    def _set(self, choice: dict[str, Any], where: str, key: ChannelKey, new: str) -> None:
        if key[1] == "logprobs":
            drop_repeats(choice)
        else:
            replace_in(choice, choice.setdefault(where, {}), key, new)

    # -- events we author ------------------------------------------------------------------

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        if style == "content_filter":
            return self._content_filter(refusal, env, separator) + DONE_EVENT
        return encode(json.dumps(abort_body(blocked)).encode()) + DONE_EVENT

    def _content_filter(self, refusal: str, env: Envelope, separator: str) -> bytes:
        """``separator`` goes before the refusal of each choice whose text was sent."""
        out = b""
        for index in sorted(env.choices or {0}):
            if refusal:
                text = (separator if index in env.choices else "") + refusal
                out += encode(orjson.dumps(self._chunk(env, index, text, None)))
            out += encode(orjson.dumps(self._chunk(env, index, None, "content_filter")))
        return out

    def _chunk(
        self, env: Envelope, index: int, text: str | None, finish: str | None
    ) -> dict[str, Any]:
        delta: dict[str, Any] = {} if text is None else {"content": text}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope(env, choice)

    def _envelope(self, env: Envelope, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": env.id,
            "object": self.object_name,
            "created": env.created,
            "model": env.model,
            "choices": [choice],
        }


def choices_of(body: Any, rest: list[str]) -> list[dict[str, Any]]:
    """A whole answer's choices, checked to be of the shape the client reads; every string
    outside them into ``rest``."""
    if not isinstance(body, dict):
        raise ValueError("the body is not an object")
    collect_except(body, _TOP_KEYS, rest)
    choices = body.get("choices")
    if choices is None:
        return []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ValueError("'choices' is not a list of objects")
    return choices


_TOP_KEYS = frozenset({"choices"})
_CHOICE_KEYS = frozenset({"index", "delta", "logprobs"})
_WHOLE_CHOICE_KEYS = frozenset({"index", "message", "logprobs"})


CHAT = Chat()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_READ = frozenset({"role", "content"})  # a message's fields judged as messages


def _messages(body: dict[str, Any]) -> list[Any]:
    return [m for m in _as_list(body.get("messages")) if isinstance(m, dict)]


def _judged_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    return {**message, "content": chat_parts.judged_view(content)}


def _refuse_part(part: Any, at: str, param: str, allow_token_ids: bool) -> None:
    kind, what = chat_parts.kind_of(part)
    if kind is chat_parts.Kind.UNREAD:
        raise _unjudged(
            f"'{at}' is a part of type {what} (a file, audio, video, or a part of another "
            "kind), which the model reads and input rails cannot; send its text as a text "
            "part",
            param,
        )
    if kind is chat_parts.Kind.EMBEDS and not allow_token_ids:
        raise chat_parts.embeddings_refused(at, what, param)


def _unjudged(what: str, param: str) -> BadRequest:
    return BadRequest(f"Input rails judge text: {what}.", param=param, code="input_not_judged")


def json_schema(response_format: Any) -> Any:
    """A response format of type ``json_schema`` (its names, descriptions and schema are
    text a template may show the model), else None (``text``, ``json_object``)."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return response_format
    return None


def all_strings(value: Any) -> list[str]:
    """Every non-empty string in a JSON value, keys included, in document order
    (iterative: a deeply nested request cannot exhaust the stack)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                out.append(item)
        elif isinstance(item, dict):
            for k, v in reversed(item.items()):
                stack.extend((v, k))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out
