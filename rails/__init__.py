"""railproxy's rails: judging text, streamed or whole, with no HTTP in sight.

The public Python API::

    from rails import Guard, Blocked
    guard = Guard.from_config("configs/examples/blocklist.yaml")
    async for piece in guard.stream(chunks):   # any AsyncIterator[str]
        ...
"""

from rails.base import Action, CheckContext, RailConfig, Resources, Verdict
from rails.guard import BlockedError, Guard
from rails.stream import Blocked

__all__ = [
    "Action",
    "Blocked",
    "BlockedError",
    "CheckContext",
    "Guard",
    "RailConfig",
    "Resources",
    "Verdict",
]
