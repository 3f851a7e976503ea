"""railproxy's rails: judging text, streamed or whole, with no HTTP in sight.

The public Python API::

    from rails import Guard, Blocked
    guard = Guard.from_config("configs/examples/blocklist.yaml")
    async for piece in guard.stream(chunks):   # any AsyncIterator[str]
        ...
"""

from rails.base import Action, Blocked, CheckContext, RailConfig, Verdict
from rails.guard import BlockedError, Guard
from rails.resources import Resources

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
