"""A cheaper hand-over of fetched messages from Faust's consumer to its agents.

Faust's consumer passes every fetched message to the conductor through ``Service.wait_first``, racing
the delivery coroutine against a flow suspension (a rebalance) so that a delivery blocked on a full
agent queue cannot hold up the rebalance. That race costs four tasks and an ``asyncio.wait`` per
message: about half of Faust's CPU per consumed record (``bench/bench_consumer.py``: an agent that only
acks used 211 µs of CPU per record, 111 µs through :func:`deliver_inline`). A delivery almost
never waits, because the agents' queues have room, so :func:`deliver_inline` runs its first step
directly and starts the race only when it actually has to wait.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitResults

__all__ = ["deliver_inline"]


class _Resumed(Awaitable[Any]):
    """The rest of a coroutine that has run up to its first suspension, as an awaitable.

    Awaiting it yields the future the coroutine is waiting on, so the awaiting task parks on that future
    exactly as if it had run the coroutine from the start; cancellation is thrown into the coroutine.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, Any]:
        waiting_on = self._waiting_on
        while True:
            try:
                yield waiting_on
            except BaseException as exc:  # cancellation (or another error) for the suspended coroutine
                try:
                    waiting_on = self._coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting_on = self._coro.send(None)
            except StopIteration as stop:
                return stop.value


async def _wait_first(self: Any, *coros: Any, timeout: float | None = None) -> WaitResults:  # noqa: ASYNC109 - mode's signature
    race: Callable[..., Awaitable[WaitResults]] = type(self).wait_first
    if len(coros) != 2 or not all(asyncio.iscoroutine(coro) for coro in coros):
        return await race(self, *coros, timeout=timeout)
    delivery, suspended = coros
    try:
        waiting_on = delivery.send(None)
    except StopIteration as stop:  # delivered without waiting: nothing to race
        suspended.close()
        return WaitResults([delivery], [stop.value], False)
    except BaseException:
        suspended.close()
        raise
    return await race(self, _Resumed(delivery, waiting_on), suspended, timeout=timeout)


def deliver_inline(consumer: Any) -> None:
    """Make ``consumer`` run each message delivery inline unless it has to wait (see the module doc).

    Args:
        consumer: a Faust consumer (a ``mode.Service``); only this instance changes.
    """
    consumer.wait_first = types.MethodType(_wait_first, consumer)
