"""``Guard``: one rails configuration, built once, shared by every request that uses it.

This is both what the proxy runs and railproxy's public Python API::

    guard = Guard.from_config("configs/examples/blocklist.yaml")
    async for piece in guard.stream(my_llm_text_chunks()):
        if isinstance(piece, Blocked): ...
        else: print(piece, end="")

``open_stream`` gives the per-stream engine (``rails.stream.GuardedStream``) that the
proxy's relay feeds with SSE events; ``stream`` wraps the same engine around any async
iterator of text. ``check_input`` and ``check_output`` judge complete texts (input rails,
non-streaming responses) through the same buffer and pipelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rails.base import Action, Blocked, ChannelKey, CheckContext, OpenSpan, TextField
from rails.buffer import RollingBuffer, Window
from rails.config import RailsConfig
from rails.pipeline import Outcome, Pipeline, PipelineObserver
from rails.registry import build_rails
from rails.resources import Resources
from rails.stream import GuardedStream, KnownStrings, Rewrite
from rails.tokens import TokenCounter, counter_for

T = TypeVar("T")
_WORDS = re.compile(r"\S+\s*|\s+")
_ALLOW_ALL = Outcome(Action.ALLOW, "")


class BlockedError(Exception):
    """Raised by ``Guard.stream(..., raise_on_block=True)``."""

    def __init__(self, blocked: Blocked) -> None:
        super().__init__(f"Blocked by {blocked.rail} rails: {blocked.reason}")
        self.blocked = blocked


class Guard:
    """Input and output pipelines plus the streaming settings of one config."""

    def __init__(
        self,
        config: RailsConfig,
        resources: Resources | None = None,
        observer: PipelineObserver | None = None,
    ) -> None:
        self.config = config
        self.resources = resources or Resources()
        built = build_rails(config, self.resources)
        r = config.rails
        self.input = Pipeline(built.input, "input", r.input.parallel, observer, r.mode)
        self.output = Pipeline(built.output, "output", r.output.parallel, observer, r.mode)
        self.streaming = r.output.streaming
        self._counter: TokenCounter | None = None
        self._known = KnownStrings()  # "other" strings its rails allowed (model names...)

    @classmethod
    def from_config(
        cls, source: str | Path | Mapping[str, Any], resources: Resources | None = None
    ) -> Guard:
        """Build from a YAML file path or a dict in the config file's shape. Keys other
        than ``streaming`` and ``rails`` (server, upstream, ...) are ignored here."""
        if isinstance(source, Mapping):
            data = dict(source)
        else:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
        picked = {k: data[k] for k in ("streaming", "rails") if k in data}
        return cls(RailsConfig.model_validate(picked), resources)

    @property
    def counter(self) -> TokenCounter:
        """Loaded on first use: a config without output rails never loads tiktoken."""
        if self._counter is None:
            self._counter = counter_for(self.streaming.token_unit)
        return self._counter

    @property
    def digest(self) -> str:
        """A short hash of this config's content (shown in ``railproxy_config_info``)."""
        data = self.config.model_dump_json().encode()
        return hashlib.sha256(data).hexdigest()[:12]

    def observe(self, observer: PipelineObserver | None) -> None:
        """Report every rail call of both stages to ``observer`` (start-up only)."""
        self.input.observe(observer)
        self.output.observe(observer)

    @property
    def guards_output(self) -> bool:
        return bool(self.output.rails)

    @property
    def guards_input(self) -> bool:
        return bool(self.input.rails)

    @property
    def holds_output(self) -> bool:
        """Whether streamed events are held for verdicts: ``stream_first: false`` with an
        output rail in enforce mode (monitor-mode rails never hold anything)."""
        return self.output.enforcing and not self.streaming.stream_first

    async def settle(self) -> None:
        """Wait until every monitor-mode check started so far has been counted."""
        await self.input.settle()
        await self.output.settle()

    def open_stream(
        self, user_message: str = "", rewrite: Rewrite[T] | None = None
    ) -> GuardedStream[T]:
        return GuardedStream(
            self.output, self.streaming, self.counter, user_message, rewrite, self._known
        )

    async def aclose(self) -> None:
        await self.input.aclose()
        await self.output.aclose()
        await self.resources.aclose()

    # -- complete texts -------------------------------------------------------------

    @property
    def enforces_input(self) -> bool:
        """Whether an input rail can block or mask (not only monitor-mode rails)."""
        return self.input.enforcing

    async def check_input(
        self,
        messages: Sequence[Mapping[str, Any]],
        definitions: Sequence[str] = (),
        every: bool = False,
    ) -> tuple[Outcome, list[tuple[int, InputContent]]]:
        """Judge the request's messages (``input_targets``; all of them with ``every``,
        for a batch of prompts, each its own last user message) and, with
        ``rails.input.messages: all``, the ``definitions`` (tool descriptions: texts the
        model reads that railproxy does not rewrite, so a mask there blocks).

        Returns the outcome and, for MODIFY, the ``(message index, new content)``
        replacements: a string, or the message's content list with only its text parts
        rewritten (images and other parts stay as they were)."""
        if not self.input.rails:
            return _ALLOW_ALL, []
        changes: list[tuple[int, InputContent]] = []
        outcome = _ALLOW_ALL
        scope = "all" if every else self.config.rails.input.messages
        for index in input_targets(messages, scope):
            result, content = await self._check_message(messages[index])
            if result.blocked:
                return result, []
            if content is not None:
                changes.append((index, content))
                outcome = result
        if self.config.rails.input.messages == "all":
            for text in definitions:
                result = await self._judge_input(text)
                if result.blocked:
                    return result, []
                if result.action is Action.MODIFY:
                    return _unwritable(result), []
        return outcome, changes

    async def _judge_input(self, text: str) -> Outcome:
        return await self.input.check(text, CheckContext("input", "content", text))

    async def _check_message(
        self, message: Mapping[str, Any]
    ) -> tuple[Outcome, InputContent | None]:
        """One message's outcome, and its new content when a rail masked it."""
        result = await self._judge_input(message_text(message))
        if result.action is not Action.MODIFY:
            return result, None
        content = message.get("content")
        if isinstance(content, str):
            return result, result.text
        if isinstance(content, list):
            return await self._mask_parts(content, result)
        return _unwritable(result), None

    async def _mask_parts(
        self, parts: list[Any], joined: Outcome
    ) -> tuple[Outcome, InputContent | None]:
        """A content list masked in place: with one text part it takes the masked text;
        with several, each is judged on its own, and the masked parts joined must then
        pass (a mask that spans two parts cannot be written back, so it blocks)."""
        where = [i for i, p in enumerate(parts) if _part_text(p) is not None]
        new = list(parts)
        if len(where) == 1:
            new[where[0]] = {**parts[where[0]], "text": joined.text}
            return joined, new
        for i in where:
            result = await self._judge_input(parts[i]["text"])
            if result.blocked:
                return result, None
            new[i] = {**parts[i], "text": result.text}
        final = "\n".join(new[i]["text"] for i in where)
        if (await self._judge_input(final)).action is not Action.ALLOW:
            return _unwritable(joined), None
        return Outcome(Action.MODIFY, final, joined.rail, joined.reason), new

    async def check_output(
        self, text: str, user_message: str = "", field: TextField = "content"
    ) -> Outcome:
        """Judge a complete text in the same windows a stream would get (split on word
        boundaries); modifications are applied window by window, and a mask a window leaves
        open (``OpenSpan``) is handed to the next one, as a stream does; a text that ends
        with one open is blocked.

        A long text never holds the event loop: every ``YIELD_EVERY_WORDS`` words the
        check lets other tasks run (a shorter text is judged without a pause), and a
        window over ``rails.offload.INLINE_CHARS`` goes to the local rails' worker."""
        if not text or not (self.output.wants(field) or self.output.watches(field)):
            return Outcome(Action.ALLOW, text)
        s = self.streaming
        buf = RollingBuffer(s.chunk_size, s.context_size, self.counter, s.token_unit)
        out: list[str] = []  # the judged text so far, in pieces
        modified: Outcome | None = None
        spans: Mapping[str, OpenSpan] = {}  # masks the previous window left open
        async for window in _windows(buf, text):
            context = window.context
            if modified is not None and context:
                context = self.counter.tail(_suffix(out, _keep(s.context_size)), s.context_size)
            ctx = CheckContext("output", field, user_message, {}, len(context), spans)
            result = await self.output.check(context + window.new, ctx)
            if result.blocked:
                return result
            spans = result.spans
            if result.action is Action.MODIFY:
                # Nothing is released yet: the change may reach into the context too.
                _drop_last(out, len(context))
                out.append(result.text)
                modified = result
            else:
                out.append(window.new)
        final = "".join(out)
        if spans:  # the text ended inside a masked span (a key with no END line)
            rail, span = next(iter(spans.items()))
            return Outcome(Action.BLOCK, final, rail, span.reason)
        if modified is None:
            return Outcome(Action.ALLOW, final)
        return Outcome(Action.MODIFY, final, modified.rail, modified.reason)

    # -- the Python streaming API -----------------------------------------------------

    async def stream(
        self,
        chunks: AsyncIterable[str],
        user_message: str = "",
        raise_on_block: bool = False,
    ) -> AsyncIterator[str | Blocked]:
        """Guard any async iterator of text with this config's windows, release mode,
        parallelism and fail policies. Yields released text; on a block, yields a
        ``Blocked`` (or raises ``BlockedError``) and stops reading ``chunks``."""
        key: ChannelKey = (0, "content", 0)
        engine: GuardedStream[str] = self.open_stream(user_message, _replace_text)
        feeder = _Feeder(engine, chunks, key)
        try:
            feeder.start()
            async with contextlib.aclosing(engine.releases()) as releases:
                async for released in releases:
                    if isinstance(released, Blocked):
                        if raise_on_block:
                            raise BlockedError(released)
                        yield released
                        return
                    for piece in released:
                        if piece:
                            yield piece
            feeder.raise_error()
        finally:
            await feeder.aclose()
            await engine.aclose()


YIELD_EVERY_WORDS = 4096  # about 1 to 3 ms of buffering and local rails between pauses


async def _windows(buf: RollingBuffer, text: str) -> AsyncIterator[Window]:
    """The windows of ``text`` pushed word by word, then the final partial one; a pause
    for the event loop every ``YIELD_EVERY_WORDS`` words."""
    for i, match in enumerate(_WORDS.finditer(text), 1):
        window = buf.push(match.group())
        if window is not None:
            yield window
        if i % YIELD_EVERY_WORDS == 0:
            await asyncio.sleep(0)
    last = buf.flush()
    if last is not None:
        yield last


def _keep(context_size: int) -> int:
    """Characters of judged text enough to hold the last ``context_size`` tokens (the
    streaming engine keeps as many)."""
    return max(4096, 16 * context_size)


def _suffix(parts: list[str], chars: int) -> str:
    """At least the last ``chars`` characters of ``"".join(parts)`` (all of it if
    shorter), joining only the pieces needed."""
    taken, size = [], 0
    for part in reversed(parts):
        taken.append(part)
        size += len(part)
        if size >= chars:
            break
    return "".join(reversed(taken))


def _drop_last(parts: list[str], chars: int) -> None:
    """Remove the last ``chars`` characters of ``"".join(parts)`` from ``parts``."""
    while chars > 0 and parts:
        last = parts.pop()
        if len(last) > chars:
            parts.append(last[: len(last) - chars])
            return
        chars -= len(last)


def _replace_text(item: str, key: ChannelKey, new: str) -> str:
    return new


InputContent = str | list[Any]
"""A chat message's content: a string, or a list of parts."""

TOOL_RESULT_ROLES = frozenset({"tool", "function", "ipython"})
"""Roles that carry a tool's result back to the model (``function``: OpenAI's legacy
function calling; ``ipython``: Llama 3's tool role)."""


def message_role(message: Mapping[str, Any]) -> str:
    """A message's role as a chat template reads it, compared case-insensitively."""
    role = message.get("role")
    return role.strip().lower() if isinstance(role, str) else ""


def input_targets(messages: Sequence[Mapping[str, Any]], scope: str) -> list[int]:
    """The indexes of the messages input rails judge: every message with ``all``; with
    ``last_user``, the last user message and every tool result after it (every tool
    result when no message is the user's)."""
    if scope == "all":
        return list(range(len(messages)))
    roles = [message_role(m) for m in messages]
    users = [i for i, r in enumerate(roles) if r == "user"]
    start = users[-1] if users else 0
    results = [i for i in range(start, len(roles)) if roles[i] in TOOL_RESULT_ROLES]
    return users[-1:] + results


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message: a string, or its content list's text parts (every
    part with a string ``text``) joined by newlines, as vLLM joins them."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [_part_text(p) for p in content]
        return "\n".join(t for t in texts if t is not None)
    return ""


def _part_text(part: Any) -> str | None:
    if isinstance(part, Mapping):
        text = part.get("text")
        if isinstance(text, str):
            return text
    return None


def _unwritable(result: Outcome) -> Outcome:
    """A mask railproxy cannot write back into the request: a block, failing closed."""
    reason = "a mask that cannot be written back into the request"
    return Outcome(Action.BLOCK, result.text, result.rail, reason)


class _Feeder:
    """Reads the caller's iterator into the engine in a task of its own."""

    def __init__(self, engine: GuardedStream[str], chunks: AsyncIterable[str], key: ChannelKey):
        self._engine = engine
        self._chunks = chunks
        self._key = key
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for chunk in self._chunks:
                self._engine.push(chunk, [(self._key, chunk)])
                if self._engine.blocked is not None:
                    break
                await asyncio.sleep(0)  # let checks run even if the source never waits
        except Exception as e:
            self._error = e
        finally:
            self._engine.finish()
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])
