"""The rails part of a config file, in NeMo Guardrails' shape where the two overlap.

```yaml
streaming: true
rails:
  config: {banned: {type: blocklist, words: [falcon]}}
  input:  {flows: [secrets]}
  output:
    flows: [pii, banned]
    parallel: true
    streaming: {enabled: true, chunk_size: 200, context_size: 50, stream_first: true}
  abort: {style: error}
  mode: enforce            # or monitor: judge and count, block nothing (per rail too)
```

Rail entries under ``rails.config`` are kept as plain dicts here and validated against
each rail type's own ``Config`` by ``rails.registry``, so an unknown key is reported
with the rail's name and the type's known keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rails.base import Mode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputStreaming(_Strict):
    """``rails.output.streaming``: NeMo's defaults (200, 50, stream_first true)."""

    enabled: bool = False
    chunk_size: int = Field(default=200, ge=1)
    context_size: int = Field(default=50, ge=0)
    stream_first: bool = True
    token_unit: Literal["token", "delta"] = "token"
    keepalive_s: float = Field(default=10.0, gt=0)
    # Backpressure: past this many held events, railproxy stops reading from the upstream
    # until the client or the rails catch up (memory per stream stays bounded).
    max_held_events: int = Field(default=2048, ge=16)


class InputRails(_Strict):
    flows: tuple[str, ...] = ()
    parallel: bool = False
    messages: Literal["last_user", "all"] = "last_user"
    # A prompt given as token ids (or vLLM's prompt_embeds) cannot be judged: refused with
    # 400 while an input rail enforces, unless the operator lets such prompts through.
    allow_token_ids: bool = Field(default=False, strict=True)


class OutputRails(_Strict):
    flows: tuple[str, ...] = ()
    parallel: bool = False
    streaming: OutputStreaming = OutputStreaming()


class Abort(_Strict):
    style: Literal["error", "content_filter"] = "error"
    refusal_message: str = ""
    # content_filter, mid-stream: written between the text already sent and the refusal
    # (without it a client shows "our[removed by policy]").
    separator: str = "\n"


class RailsSection(_Strict):
    # Every rail's mode unless the rail sets its own (``rails.config.<name>.mode``).
    mode: Mode = "enforce"
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    input: InputRails = InputRails()
    output: OutputRails = OutputRails()
    abort: Abort = Abort()


class RailsConfig(_Strict):
    """The guard's whole configuration: top-level ``streaming`` plus ``rails``."""

    streaming: bool | None = None
    rails: RailsSection = RailsSection()

    @model_validator(mode="after")
    def _no_duplicate_flows(self) -> RailsConfig:
        for stage in ("input", "output"):
            flows = getattr(self.rails, stage).flows
            dup = sorted({f for f in flows if flows.count(f) > 1})
            if dup:
                raise ValueError(f"rails.{stage}.flows lists {dup} more than once")
        return self

    @property
    def output_streaming_enabled(self) -> bool:
        """Streaming output rails are on when both switches say so, as in NeMo Guardrails:
        top-level ``streaming: true`` and ``rails.output.streaming.enabled: true``."""
        return not self.streaming_switches_off

    @property
    def streaming_switches_off(self) -> list[str]:
        """The switches a streaming request with output rails still needs turned on."""
        off = [] if self.streaming else ["streaming"]
        if not self.rails.output.streaming.enabled:
            off.append("rails.output.streaming.enabled")
        return off
