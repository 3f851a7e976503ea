"""The Rail contract: what a rail is, what it receives, and what it answers.

A rail is one small class with a pydantic ``Config`` and one async method::

    class Shouty:
        Config = ShoutyConfig                    # subclass of RailConfig
        def __init__(self, name: str, config: ShoutyConfig, resources: Resources): ...
        async def check(self, text: str, ctx: CheckContext) -> Verdict: ...

The constructor compiles (patterns, word sets); ``check`` only judges. Timeouts,
exceptions, timing and the ``on_error`` fail policy live once, in ``rails.pipeline``,
never in a rail.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the one HTTP-aware module of rails/; the contract only names its type
    from rails.resources import Resources

Stage = Literal["input", "output"]
TextField = Literal[
    "content", "refusal", "reasoning", "tool_arguments", "tool_names", "logprobs", "other"
]
"""Every text a client can be shown or act on: message content, refusals, reasoning (each
spelling), tool-call arguments (as the client's JSON parser decodes them) and function
names, the token strings of logprobs where they do not spell the content, and every other
string of an event or answer (ids, model names, finish reasons, fields nobody reads)."""
ALL_FIELDS: tuple[TextField, ...] = get_args(TextField)
AT_ONCE: frozenset[TextField] = frozenset({"other"})
"""Fields whose pieces are judged each as it comes, not in windows: short strings that no
later text continues (an item carrying one is held only for its own check)."""
Mode = Literal["enforce", "monitor"]
"""``enforce``: a rail's block, mask or hold acts on the traffic. ``monitor``: it judges and
its verdicts are counted and logged the same way, but nothing is blocked, masked or held."""
ChannelKey = tuple[int, TextField, int]
"""A stream's text channel: (choice index, field, sub-channel: the tool call's index for
tool fields, -1 for the legacy ``function_call``; which spelling for reasoning; which
part for logprobs; else 0). Choice index -1 is an in-band error's text."""


class Action(enum.Enum):
    ALLOW = "allow"
    BLOCK = "block"
    MODIFY = "modify"


@dataclass(frozen=True, slots=True)
class OpenSpan:
    """A masked stretch that goes on past the end of the judged text: a private key block
    whose END line has not come yet. A rail's ``Verdict.span`` hands it to the engine,
    which gives it back to that rail with the next window of the same text channel
    (``CheckContext.spans``); the rail then masks that window's new text as part of the
    span until it closes. A text that ends with a span open is blocked with ``reason``.

    ``state`` is the rail's own note for its next window (it must pickle: a long window
    is judged in a worker process)."""

    reason: str
    state: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rail's answer. ``text`` is set only for MODIFY: the replacement of the judged text.
    ``span``: a mask this verdict leaves open at the end of the text (``OpenSpan``)."""

    action: Action
    reason: str = ""
    text: str | None = None
    span: OpenSpan | None = None

    @classmethod
    def allow(cls) -> Verdict:
        return _ALLOW

    @classmethod
    def block(cls, reason: str = "") -> Verdict:
        return cls(Action.BLOCK, reason)

    @classmethod
    def modify(cls, text: str, reason: str = "", span: OpenSpan | None = None) -> Verdict:
        return cls(Action.MODIFY, reason, text, span)


_ALLOW = Verdict(Action.ALLOW)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a rail knows besides the text it judges.

    ``stage`` is input or output; ``field`` names what the text is (message content,
    tool-call arguments, reasoning); ``user_message`` is the last user message of the
    request (empty when unknown), which judge rails put in their prompt.

    For a window of a stream or of a long answer: ``new_at`` is where the window's new
    text starts in the judged text (the chars before it are context, already judged and
    possibly released or masked); ``spans`` holds, by rail name, the ``OpenSpan`` each
    rail's verdict left open at the end of the channel's previous window.
    """

    stage: Stage
    field: TextField = "content"
    user_message: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    new_at: int = 0
    spans: Mapping[str, OpenSpan] = dataclasses.field(default_factory=dict)


class RailConfig(BaseModel):
    """Settings every rail has. Built-in rails subclass this with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = ""
    timeout_s: float = Field(default=5.0, gt=0)
    on_error: Literal["allow", "block"] = "block"
    fields: tuple[TextField, ...] = ALL_FIELDS
    # None: the config's ``rails.mode`` (a rail's own setting wins).
    mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """A stream ended by a rail. ``offset`` is the token offset (in its channel) where the
    blocked window's new text starts; ``released`` says whether some of the blocked text
    had already reached the client (stream_first true). ``text`` is the text the blocking
    rail judged (the window with its context), for a log that opts in to it."""

    rail: str
    reason: str
    offset: int = 0
    channel: ChannelKey = (0, "content", 0)
    released: bool = False
    text: str = dataclasses.field(default="", repr=False, compare=False)


@runtime_checkable
class Rail(Protocol):
    """One judge of text. ``name`` is the flow name it was configured under."""

    name: str
    config: RailConfig

    async def check(self, text: str, ctx: CheckContext) -> Verdict: ...


class RailType(Protocol):
    """The class of a rail: its Config model and a constructor."""

    Config: ClassVar[type[RailConfig]]

    def __call__(self, name: str, config: Any, resources: Resources) -> Rail: ...
