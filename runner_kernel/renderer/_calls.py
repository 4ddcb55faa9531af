"""Calling the app's callbacks, which may be plain functions or return an awaitable (a coroutine, a Future)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

Done = Callable[[Any, "BaseException | None"], None]


def call_then(callback: Callable[..., Any], args: tuple, done: Done) -> None:
    """``callback(*args)``, then ``done(result, error)`` once it has finished: at once for a plain function,
    when the awaitable completes otherwise. An exception raised at once is passed to ``done`` and re-raised,
    so it still reaches the kernel's log."""
    try:
        result = callback(*args)
    except BaseException as error:
        done(None, error)
        raise
    if not inspect.isawaitable(result):
        done(result, None)
        return
    asyncio.ensure_future(result).add_done_callback(_finish(done))


def _finish(done: Done) -> Callable[[asyncio.Future], None]:
    def callback(future: asyncio.Future) -> None:
        if future.cancelled():
            done(None, asyncio.CancelledError())
        elif future.exception() is not None:
            done(None, future.exception())
        else:
            done(future.result(), None)

    return callback
