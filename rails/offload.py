"""CPU-heavy work on huge texts, done in a worker process so the event loop never stalls.

Two kinds of per-request work grow with the size of a text and never wait on I/O:
counting a prompt's tokens (tiktoken) and the local rails (``local = True``: regex,
blocklist, pii, secrets). On an 8 MB prompt either takes 0.1 to 3 s; inline, every other
stream and ``/healthz`` would wait that long. Texts up to ``INLINE_CHARS`` are still
handled inline, exactly as before (a hop to the worker costs about 0.5 ms); longer ones
go to one worker process, and the loop awaits the answer. The server enables this at
start-up (``enable()``); for the Python API it is opt-in.

Why a process and not a thread: CPython's ``re`` and ``unicodedata`` hold the GIL for a
whole scan, so a local rail in a thread stalls the loop as long as it would inline
(blocklist on 8 MB: 0.13 s in a thread, with a 0.12 s stall of the loop). tiktoken's Rust
core does release the GIL while it encodes, but turning the tokens into a Python list
holds it again: counting 8 MB of base64 in a thread stalled the loop for 0.6 s; in the
worker process, the loop's longest stall was 11 ms (sending the text). Measured on
CPython 3.11, tiktoken 0.14; ``bench/stall.py`` measures the effect end to end.

The pool holds ``WORKERS`` process, started (``spawn``) on first use; a request that
needs it while it is busy waits its turn, other requests never do. A rail class is sent
by reference and rebuilt in the worker from its name and config (once per config), so
only rails whose class, name and config pickle are sent; any other runs inline. Nothing
here sets a deadline: as inline, a local rail's check is not bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import pickle
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from rails.base import CheckContext, Rail, RailConfig
from rails.resources import Resources

T = TypeVar("T")

INLINE_CHARS = 16_384  # longer texts go to the worker; the worst case inline is ~5 ms
WORKERS = 1  # one core stays free for the event loop on a 2-core machine

_enabled = False  # the server turns it on (proxy.app); a library user opts in


def enable(on: bool = True) -> None:
    """Send texts over ``INLINE_CHARS`` to the worker (off by default: the worker is
    started with ``spawn``, which imports the caller's main module, so a script must keep
    its entry point under ``if __name__ == "__main__":`` to use it)."""
    global _enabled
    _enabled = on


def inline(text: str) -> bool:
    """Whether ``text`` is judged or counted in this process."""
    return not _enabled or len(text) <= INLINE_CHARS


_pool: ProcessPoolExecutor | None = None
_pending = 0
_shippable: dict[tuple[type[Any], str, str], bool] = {}


_starts = 0


def starts() -> int:
    """How many times a worker pool was started in this process (its pipes are the
    executor's, closed when it is collected: a leak check that saw one start allows them)."""
    return _starts


def pending() -> int:
    """Jobs sent to the worker whose answer has not come back yet."""
    return _pending


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the worker process; ``fn`` and ``args`` must pickle (``fn`` a
    module-level function). Cancelling the await leaves a running job to finish."""
    global _pool, _pending, _starts
    if _pool is None:
        context = multiprocessing.get_context("spawn")  # never fork a threaded process
        _pool = ProcessPoolExecutor(WORKERS, mp_context=context, initializer=_worker_init)
        _starts += 1
    pool = _pool
    _pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    except BrokenProcessPool:  # the worker died (killed, out of memory): start afresh
        if _pool is pool:
            _pool = None
        raise
    finally:
        _pending -= 1


def shutdown() -> None:
    """Stop the worker, once its queued jobs are done, and wait until it has exited and
    its pipes are closed; a later ``run`` starts a new one. This blocks: on a running
    loop, ``await aclose()``."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


async def aclose() -> None:
    """``shutdown`` without blocking the loop (the app's cleanup)."""
    await asyncio.to_thread(shutdown)


# -- token counting ----------------------------------------------------------------------


async def count_tokens(text: str) -> int:
    """The exact cl100k token count of ``text`` (special-token text counted as ordinary
    text): inline up to ``INLINE_CHARS``, else in the worker."""
    if inline(text):
        return _count(text)
    return await run(_count, text)


def _count(text: str) -> int:
    from rails.tokens import exact_count  # the worker imports tiktoken only when counting

    return exact_count(text)


# -- local rails -------------------------------------------------------------------------


async def check_local(rail: Rail, text: str, ctx: CheckContext) -> object:
    """A local rail's answer for ``text``: its own ``check`` inline up to
    ``INLINE_CHARS`` (or when the rail cannot be sent), else the same check in the worker.
    The rail's exceptions reach the caller either way."""
    if inline(text) or not _can_ship(rail):
        return await rail.check(text, ctx)
    config = rail.config
    return await run(_check_in_worker, type(rail), rail.name, config, _key(config), text, ctx)


def _key(config: RailConfig) -> str:
    return config.model_dump_json()


def _can_ship(rail: Rail) -> bool:
    key = (type(rail), rail.name, _key(rail.config))
    known = _shippable.get(key)
    if known is None:
        try:
            pickle.dumps((type(rail), rail.name, rail.config))
            known = True
        except Exception:  # a class that does not pickle by reference, say a local one
            known = False
        _shippable[key] = known
    return known


def _check_in_worker(
    cls: type[Any], name: str, config: RailConfig, key: str, text: str, ctx: CheckContext
) -> object:
    rail = _built.get((cls, name, key))
    if rail is None:
        rail = _built[cls, name, key] = cls(name, config, Resources())
    return _worker_loop().run_until_complete(rail.check(text, ctx))


# The worker's rails, built once per (class, name, config): bounded by the configs in use.
_built: dict[tuple[type[Any], str, str], Rail] = {}


@functools.cache
def _worker_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _worker_init() -> None:
    # Ctrl-C in a terminal reaches the whole process group: only the server acts on it
    # (and stops this worker through ``shutdown``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
