"""The peer of railproxy's keyword rail for LiteLLM's proxy (bench/peers.py): a custom
guardrail (LiteLLM's ``CustomGuardrail`` class, ``mode: post_call``) that checks the
streamed text in windows of 200 tokens with 50 tokens of context. stream_first true: each
chunk is passed on at once; stream_first false (a model name ending in ``-hold``): chunks
are held until their window passed. When 200 new tokens are pending (or the stream ends)
the window, with the 50 tokens before it, is searched for the pattern, and a match raises
LiteLLM's ``GuardrailRaisedException`` (what LiteLLM then sends the client is what the
bench records; an ``HTTPException`` here makes LiteLLM drop the connection mid-stream).
One token per content delta: the bench's texts are one token a delta. Runs inside
LiteLLM's own environment, not railproxy's.
"""

import re
from collections.abc import AsyncGenerator
from typing import Any

from litellm.exceptions import GuardrailRaisedException
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.proxy._types import UserAPIKeyAuth
from litellm.types.utils import ModelResponseStream

CHUNK_SIZE = 200
CONTEXT_SIZE = 50
PATTERN = re.compile(r"alice\.smith@example\.com")


class KeywordGuardrail(CustomGuardrail):
    def _check(self, pieces: list, start: int) -> None:
        window = "".join(pieces[max(0, start - CONTEXT_SIZE) :])
        if PATTERN.search(window):
            raise GuardrailRaisedException("keyword", "content_blocked")

    async def async_post_call_streaming_iterator_hook(
        self,
        user_api_key_dict: UserAPIKeyAuth,
        response: Any,
        request_data: dict,
    ) -> AsyncGenerator[ModelResponseStream, None]:
        hold = str(request_data.get("model", "")).endswith("-hold")  # stream_first false
        pieces: list = []
        held: list = []  # chunks not yet released (stream_first false)
        judged = 0  # pieces[:judged] passed a window check
        async for chunk in response:
            for choice in getattr(chunk, "choices", None) or []:
                delta = getattr(choice, "delta", None)
                content = getattr(delta, "content", None) if delta is not None else None
                if content:
                    pieces.append(content)
            if hold:
                held.append(chunk)
            else:
                yield chunk  # stream_first true: out at once, judged when its window closes
            if len(pieces) - judged >= CHUNK_SIZE:
                self._check(pieces, judged)
                judged = len(pieces)
                for released in held:
                    yield released
                held = []
        if len(pieces) > judged:
            self._check(pieces, judged)
        for released in held:
            yield released
