"""Every change the worker makes to how Faust and aiokafka behave, each with its reason and its test.

Written against faust-streaming 0.11 and aiokafka 0.12 (the versions pinned in pyproject.toml); an upgrade
that breaks one of them fails its test (``tests/streams/test_worker_patches.py``, and
``tests/integration/test_rewind.py`` for :func:`rewind_uncommitted`).

* :func:`deliver_inline`: a cheaper hand-over of fetched messages to the agents. Faust's consumer passes
  every fetched message to the conductor through ``Service.wait_first``, racing the delivery coroutine
  against a flow suspension (a rebalance) so that a delivery blocked on a full agent queue cannot hold up
  the rebalance. That race costs four tasks and an ``asyncio.wait`` per message: about half of Faust's
  CPU per consumed record (``bench/bench_consumer.py``: an agent that only acks used 211 µs of CPU per
  record, 111 µs through :func:`deliver_inline`). A delivery almost never waits, because the agents'
  queues have room, so :func:`deliver_inline` runs its first step directly and starts the race only when
  it actually has to wait.
* :func:`read_committed_consumers`: Faust's worker consumer reads committed data only, because our own
  transactions write its inputs in exactly-once mode.
* :func:`no_commits`: in exactly-once mode the offsets are committed inside our transactions only, so
  Faust's own commit is turned off.
* :func:`rewind_uncommitted`: after a rebalance, partitions with no committed offset are read again from
  their first record (aiokafka would leave them where its fetches had got to).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitResults

from streams.logging import get_logger

log = get_logger(__name__)

__all__ = ["deliver_inline", "no_commits", "read_committed_consumers", "rewind_uncommitted"]


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


def no_commits(consumer: Any) -> None:
    """Turn off Faust's offset commits on ``consumer``: in exactly-once mode the offsets are committed
    inside our transactions only, so a late Faust commit can never move a partition back or ahead of its
    state.

    Args:
        consumer: a Faust consumer; only this instance changes.
    """

    async def _no_commit(offsets: Any) -> bool:
        del offsets
        return False

    setattr(consumer, "_commit", _no_commit)  # noqa: B010 - Faust's commit hook


def read_committed_consumers() -> None:
    """Make Faust's worker consumer read committed data only (our transactions write its inputs).

    Faust chooses ``read_committed`` only under its own exactly-once mode, which we cannot use (see
    :mod:`streams.worker.publish`). aiokafka reads the isolation level when the consumer starts, so
    setting it on the freshly built consumer is enough. Patches Faust's consumer thread class, once.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_secstream_read_committed", False):
        return
    original = thread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._isolation_level = "read_committed"
        return consumer

    setattr(thread, "_create_worker_consumer", create)  # noqa: B010 - a deliberate, documented patch
    setattr(thread, "_secstream_read_committed", True)  # noqa: B010


async def rewind_uncommitted(consumer: Any, tps: list[Any]) -> None:
    """Seek the given assigned partitions that have no committed offset to their first record.

    Runs when a rebalance completes. Faust then seeks to the committed offsets, but aiokafka skips a
    partition whose committed offset is missing or 0 and leaves it where its fetches had got to,
    while Faust drops the records it had fetched and not yet handed to the agent. A worker that keeps
    such a partition across the rebalance would then never see those records. This happened at
    start-up, when the second member joined before the first had committed anything: a capacity
    bench run lost 4,400 events and left the commit stuck below them.

    Args:
        consumer: the Faust consumer.
        tps: assigned partitions (Faust ``TP``).
    """
    if not tps:
        return
    committed = await consumer.seek_to_committed()
    fresh = [tp for tp in tps if not committed.get(tp)]
    if not fresh:
        return
    earliest = await consumer.earliest_offsets(*fresh)
    for tp in fresh:
        await consumer.seek(tp, earliest.get(tp, 0))
    log.info("worker.rewound", partitions=[f"{tp.topic}:{tp.partition}" for tp in fresh])
