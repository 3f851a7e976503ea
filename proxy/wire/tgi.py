"""TGI's native ``/generate`` and ``/generate_stream`` (and ``POST /``), both sides.

Request: ``inputs`` (a string), judged as one user message. Response: ``data:{...}``
events (no space, axum's framing) with ``token.text`` (special tokens too: clients show
their text) and ``top_tokens``; the last event has a non-null ``generated_text``, which
repeats the text and is judged as a client reads it; nothing follows it (no ``[DONE]``).
Errors are ``{"error": str, "error_type": str}``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from proxy.errors import BadRequest
from proxy.wire.client_json import as_list, client_json, dump_json
from proxy.wire.dialect import Dialect, Envelope, Kind, Parsed
from proxy.wire.fields import (
    ALT_SEPARATOR,
    OTHER_INDEX,
    Texts,
    add_rest,
    collect_except,
    content_text,
)
from proxy.wire.sse import Event
from rails.base import Blocked, ChannelKey
from rails.guard import InputContent
from rails.stream import CannotRewrite

GENERATED = 1  # the sub-channel of the final event's generated_text


class TGI(Dialect):
    name = "tgi"
    native = True

    # -- request side -------------------------------------------------------------------

    def validate(self, body: dict[str, Any]) -> None:
        super().validate(body)
        if not isinstance(body.get("inputs"), str):
            raise BadRequest("'inputs' must be a string.", param="inputs")

    def input_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": body["inputs"]}]

    def apply_input_changes(
        self, body: dict[str, Any], changes: list[tuple[int, InputContent]]
    ) -> None:
        for _, text in changes:
            body["inputs"] = text

    def refuse_unjudged_input(self, body: dict[str, Any], allow_token_ids: bool) -> None:
        """Nothing to refuse: ``validate`` already requires ``inputs`` to be a string."""
        return None

    def blocked_body(self, blocked: Blocked) -> dict[str, Any]:
        return {"error": f"Blocked by {blocked.rail} rails.", "error_type": "guardrails_violation"}

    # -- response side: parsing ------------------------------------------------------------

    def parse_obj(self, obj: dict[str, Any]) -> Parsed:
        parsed = Parsed(Kind.DATA, obj)
        collect_except(obj, _EVENT_KEYS, parsed.rest)
        token = obj.get("token")
        if isinstance(token, dict):
            collect_except(token, _TOKEN_KEYS, parsed.rest)
        text = content_text(token.get("text")) if isinstance(token, dict) else None
        if text:  # special tokens too: the client shows their text
            parsed.texts.append(((0, "content", 0), text))
        _read_top_tokens(0, obj.get("top_tokens"), parsed.texts)
        final = obj.get("generated_text")
        if final is not None:
            if not isinstance(final, str):
                raise ValueError("'generated_text' is not a string")
            if final:  # repeats the text, but a client shows it: judged as it reads
                parsed.texts.append(((0, "content", GENERATED), final))
            parsed.ends.append(0)
            parsed.end = parsed.complete = True  # TGI sends nothing after it
        return parsed

    def fast_kind(self, ev: Event) -> Kind:
        if ev.data is not None and b'"generated_text":null' in ev.data:
            return Kind.DATA
        parsed = self.parse(ev)
        return Kind.DONE if parsed.end and parsed.kind is Kind.DATA else parsed.kind

    def final_texts(self, body: Any) -> Texts:
        """``generated_text``, and in ``details`` the tokens (when they do not spell it),
        ``top_tokens``, and each of ``best_of_sequences`` as choice 1, 2, ..."""
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        texts: Texts = []
        rest: list[str] = []
        collect_except(body, _WHOLE_KEYS, rest)
        _read_generation(0, body, body.get("details"), texts, rest)
        details = body.get("details")
        if isinstance(details, dict):
            for k, seq in enumerate(as_list(details.get("best_of_sequences")), 1):
                if isinstance(seq, dict):
                    _read_generation(k, seq, seq, texts, rest)
        add_rest(rest, texts)
        return texts

    # -- response side: rewriting (masks) ------------------------------------------------

    def set_final_text(self, body: dict[str, Any], key: ChannelKey, text: str) -> None:
        if key[0] == OTHER_INDEX:
            raise CannotRewrite("a string railproxy reads only to judge")
        index, name, _ = key
        target = body if index == 0 else body["details"]["best_of_sequences"][index - 1]
        if name == "content":
            target["generated_text"] = text
        details = body.get("details") if index == 0 else target
        if isinstance(details, dict):  # the tokens repeat the original text
            for field_name in ("tokens", "top_tokens", "best_of_sequences"):
                if field_name in details:
                    details[field_name] = []

    def rewrite_text(self, ev: Event, key: ChannelKey, new: str) -> Event:
        obj = client_json(ev.data or b"{}")
        if key[1] == "content" and key[2] == GENERATED:
            obj["generated_text"] = new
        elif key[1] == "content":
            obj["token"]["text"] = new
        if obj.get("top_tokens"):  # they repeat the original text
            obj["top_tokens"] = []
        data = dump_json(obj)
        return Event(b"data:" + data + b"\n\n", data)

    # -- events we author ------------------------------------------------------------------

    def abort(
        self, blocked: Blocked, style: str, refusal: str, env: Envelope, separator: str = ""
    ) -> bytes:
        return b"data:" + json.dumps(self.blocked_body(blocked)).encode() + b"\n\n"

    def stream_error(self, message: str, code: str) -> bytes:
        body = {"error": message, "error_type": "incomplete_generation_stream"}
        return b"data:" + orjson.dumps(body) + b"\n\n"

    def error_event(self, message: str, code: str) -> bytes:
        return b"data:" + orjson.dumps({"error": message, "error_type": code}) + b"\n\n"

    def done(self) -> bytes:
        return b""


def _read_generation(
    index: int, gen: dict[str, Any], details: Any, texts: Texts, rest: list[str]
) -> None:
    """One TGI generation: its text, and its details' tokens and top tokens; every other
    string of its details (``prefill`` texts, the finish reason) into ``rest``."""
    text = gen.get("generated_text")
    if text is not None and not isinstance(text, str):
        raise ValueError("'generated_text' is not a string")
    if text:
        texts.append(((index, "content", 0), text))
    if not isinstance(details, dict):
        return
    collect_except(details, _DETAILS_KEYS, rest)
    tokens = [t for t in as_list(details.get("tokens")) if isinstance(t, dict)]
    chosen = "".join(t["text"] for t in tokens if isinstance(t.get("text"), str))
    if chosen and chosen != text:
        texts.append(((index, "logprobs", 0), chosen))
    for top in as_list(details.get("top_tokens")):
        _read_top_tokens(index, top, texts)


def _read_top_tokens(index: int, top: Any, texts: Texts) -> None:
    alts = [
        t["text"] for t in as_list(top) if isinstance(t, dict) and isinstance(t.get("text"), str)
    ]
    if alts := [a for a in alts if a]:
        texts.append(((index, "logprobs", 1), ALT_SEPARATOR.join(alts) + ALT_SEPARATOR))


_EVENT_KEYS = frozenset({"token", "generated_text", "top_tokens", "index"})
_TOKEN_KEYS = frozenset({"text"})
_WHOLE_KEYS = frozenset({"generated_text", "details"})
# generated_text: a best_of sequence's own text, read as its choice
_DETAILS_KEYS = frozenset({"tokens", "top_tokens", "best_of_sequences", "generated_text"})

TGI_NATIVE = TGI()
