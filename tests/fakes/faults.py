"""Faults the fake upstream can inject, and the few socket-level moves they need.

`Fault(kind, after=k)` counts `after` in content deltas (content, reasoning and tool-call delta
events, over all choices) written before the fault fires. `after=None` means "after the last
delta": just before the finish chunk, or, where the finish rides on the last delta (vLLM's
`length` and stop strings), just after it. Kinds:

- HTTP_STATUS: answer `status` with `body` (default: the dialect's JSON error for `message`).
- DROP_BEFORE_HEADERS: read the request, then close the TCP connection with no response.
- NEVER_ANSWER: read the request, never send a byte (until the client goes away).
- IN_BAND_ERROR: after k deltas, the dialect's in-band error event, then `[DONE]` where the
  dialect sends one (not on TGI's native `/generate_stream`); HTTP status stays 200.
- EOF_NO_DONE: `after=None`: the whole stream except `[DONE]`; `after=k`: stop cleanly after k
  deltas (chunked terminator sent, no finish chunk, no `[DONE]`).
- DROP_MID_EVENT: after k deltas, write the first half of the next event, then close TCP.
- MALFORMED: after k deltas, write `body` (default `data: {not json\\n\\n`), then carry on.
- HANG_AFTER: after k deltas, stall with the connection open until the client goes away.

The first three apply to every generation request; the rest to streaming requests only
(a non-streaming request with HANG_AFTER never answers; the others are ignored there).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from aiohttp import web

MALFORMED_DEFAULT = b"data: {not json\n\n"


class FaultKind(enum.Enum):
    """What goes wrong; see the module docstring for exact behaviour."""

    HTTP_STATUS = "http_status"
    DROP_BEFORE_HEADERS = "drop_before_headers"
    NEVER_ANSWER = "never_answer"
    IN_BAND_ERROR = "in_band_error"
    EOF_NO_DONE = "eof_no_done"
    DROP_MID_EVENT = "drop_mid_event"
    MALFORMED = "malformed"
    HANG_AFTER = "hang_after"


PRE_RESPONSE = frozenset(
    {FaultKind.HTTP_STATUS, FaultKind.DROP_BEFORE_HEADERS, FaultKind.NEVER_ANSWER}
)


@dataclass(frozen=True)
class Fault:
    """One injected failure. `status`, `body` and `message` matter only to some kinds."""

    kind: FaultKind
    after: int | None = None
    status: int = 500
    body: bytes | None = None
    message: str = "fake upstream failure"

    def position(self, total_deltas: int) -> int:
        """The number of deltas written before the fault fires in a stream of this length."""
        return total_deltas if self.after is None else min(self.after, total_deltas)


async def hang() -> None:
    """Wait until cancelled (the server cancels handlers when their client disconnects).

    Typed `-> None` rather than `NoReturn` so code after `async with` blocks stays reachable.
    """
    await asyncio.Event().wait()


def drop(request: web.BaseRequest) -> None:
    """Close the TCP connection after flushing what was written, as a crashing server would."""
    if request.transport is not None:
        request.transport.close()
