"""A chat message's content parts as input rails read them, and which they cannot read.

The part vocabulary is vLLM's (``vllm/entrypoints/chat_utils.py``), a superset of OpenAI's,
llama.cpp's and TGI's:

==================================  =========  ===========================================
part                                kind       while an input rail enforces
==================================  =========  ===========================================
``text``, ``input_text``,           text       judged (its ``text``), masked in place
``output_text``
``refusal``, ``thinking``           text       judged (its ``refusal`` / ``thinking``: the
                                               string vLLM puts in the prompt)
``image_url``, ``input_image``      image      passes: input rails judge text, and images
                                               are the one non-text input railproxy lets by
                                               (as Messages' ``image`` blocks)
``image_embeds``, ``audio_embeds``  embeds     refused (``token_ids_not_judged``) unless
``video_embeds``, ``prompt_embeds``            ``rails.input.allow_token_ids``: embeddings
                                               go straight into the model and can stand for
                                               any text (as ``prompt_embeds`` on completions)
``file``, ``input_audio``,          unread     refused (``input_not_judged``): a document's
``audio_url``, ``video_url``, any              text, speech, a video's sound track, or a
other type, a part with no type                part railproxy does not know: the model
                                               reads it, input rails cannot
==================================  =========  ===========================================

vLLM reads a part by its *keys* rather than its ``type`` when the part has a ``uuid`` (or no
type), so a part carrying a media key (``input_audio``, ``file``, ...) is read as that
medium whatever its ``type`` says. A part with no type is read as vLLM reads one: an image
with ``image_url``, text with ``text`` (judged; vLLM itself refuses it).
"""

from __future__ import annotations

import enum
from typing import Any

from proxy.errors import BadRequest


class Kind(enum.Enum):
    TEXT = "text"
    IMAGE = "image"
    EMBEDS = "embeds"
    UNREAD = "unread"


TEXT_KEYS = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
    "thinking": "thinking",
}
_IMAGES = frozenset({"image_url", "input_image"})
_EMBEDS = frozenset({"image_embeds", "audio_embeds", "video_embeds", "prompt_embeds"})
_UNREAD_KEYS = ("file", "input_audio", "audio_url", "video_url", "image_pil")


def kind_of(part: Any, text_keys: dict[str, str] = TEXT_KEYS) -> tuple[Kind, str]:
    """A part's kind, and for a text part the key of its text (else its type, for
    messages); ``text_keys``: the text part types, each with the key of its text."""
    if not isinstance(part, dict):
        return Kind.UNREAD, type(part).__name__
    given: Any = part.get("type")
    for key in _EMBEDS:
        if key in part or given == key:
            return Kind.EMBEDS, key
    for key in _UNREAD_KEYS:
        if key in part or given == key:
            return Kind.UNREAD, repr(key)
    kind = _untyped(part) if given is None else given
    if kind in _IMAGES:
        return Kind.IMAGE, str(kind)
    text_key = text_keys.get(kind) if isinstance(kind, str) else None
    if text_key is None:
        return Kind.UNREAD, repr(kind)
    if not isinstance(part.get(text_key, ""), str):
        return Kind.UNREAD, f"{kind} whose {text_key!r} is not a string"
    return Kind.TEXT, text_key


def _untyped(part: dict[str, Any]) -> str | None:
    """What vLLM reads a part without ``type`` as (when it has no media key)."""
    if "image_url" in part:
        return "image_url"
    return "text" if "text" in part else None


def judged_view(content: list[Any]) -> list[Any]:
    """The parts as input rails read them: a ``refusal`` or ``thinking`` part as a text
    part of its string; every other part as it is (``rails.guard`` reads ``text``)."""
    out: list[Any] = []
    for part in content:
        kind, key = kind_of(part)
        if kind is Kind.TEXT and key != "text" and isinstance(part.get(key), str):
            out.append({"type": "text", "text": part[key]})
        else:
            out.append(part)
    return out


def written_back(original: list[Any], masked: list[Any]) -> list[Any]:
    """``masked`` (a mask of ``judged_view(original)``) as the original parts: a
    ``refusal`` or ``thinking`` part keeps its type and takes its masked string back."""
    out: list[Any] = []
    for old, new in zip(original, masked, strict=True):
        kind, key = kind_of(old)
        if kind is Kind.TEXT and key != "text" and isinstance(old.get(key), str):
            out.append({**old, key: new["text"]})
        else:
            out.append(new)
    return out


def embeddings_refused(where: str, what: str, param: str) -> BadRequest:
    """The 400 for input given as embeddings while input rails enforce (chat parts and
    Responses input parts alike)."""
    return BadRequest(
        f"Input rails cannot judge input given as embeddings ('{where}', {what}); send it "
        "as text (an operator may allow such input with rails.input.allow_token_ids: true).",
        param=param,
        code="token_ids_not_judged",
    )
