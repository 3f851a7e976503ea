"""The streamed texts, shared by the fake upstream (which sends them) and the load
generator (which checks every stream against them).

A text is a list of deltas. Every word delta is one cl100k token (" the", " quick", ...),
so a stream of N deltas carries N tokens and windows of ``chunk_size`` tokens close every
``chunk_size`` deltas. The ``words`` profile passes every benchmarked rail (no digits, no
e-mail addresses, no secrets, no forbidden phrase); ``canary`` holds an e-mail address so
that the ``pii`` rail blocks it, which proves the rails are really on.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

Profile = Literal["words", "canary"]
PROFILES: tuple[Profile, ...] = ("words", "canary")

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "the",
    "small",
    "river",
    "runs",
    "past",
    "green",
    "hills",
    "and",
    "old",
    "stone",
    "walls",
    "under",
    "a",
    "clear",
    "blue",
    "sky",
    "where",
    "birds",
    "sing",
    "softly",
    "in",
    "the",
    "warm",
    "morning",
    "light",
    "as",
    "people",
    "walk",
    "slowly",
    "along",
    "the",
    "quiet",
    "road",
    "to",
    "town",
]
CANARY_SECRET = " alice.smith@example.com"


@functools.cache
def deltas(profile: Profile, n: int) -> tuple[str, ...]:
    """The ``n`` content deltas of a stream (``canary``: an e-mail address in the middle)."""
    if n < 1:
        raise ValueError(f"a stream needs at least one delta, not {n}")
    out = [" " + _WORDS[i % len(_WORDS)] for i in range(n)]
    if profile == "canary":
        out[n // 2] = CANARY_SECRET
    elif profile != "words":
        raise ValueError(f"unknown text profile {profile!r}; known: {PROFILES}")
    return tuple(out)


def expected_text(profile: Profile, n: int) -> str:
    return "".join(deltas(profile, n))


def request_body(
    deltas_n: int, rate: float, profile: Profile = "words", api: str = "chat"
) -> dict[str, Any]:
    """A chat completions request (``api="responses"``: a Responses API request;
    ``api="messages"``: the same ``messages`` make an Anthropic Messages API request).
    ``max_tokens`` is the number of deltas; the fake upstream reads the pacing (tokens/s,
    0 = full speed) and profile from ``bench``."""
    prompt = "Tell me about the countryside."
    asked: dict[str, Any] = (
        {"input": prompt}
        if api == "responses"
        else {"messages": [{"role": "user", "content": prompt}]}
    )
    return {
        "model": "bench",
        **asked,
        "stream": True,
        "max_tokens": deltas_n,
        "bench": {"rate": rate, "profile": profile},
    }
