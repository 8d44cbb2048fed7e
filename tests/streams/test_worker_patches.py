"""deliver_inline: a delivery that need not wait runs inline; one that waits is raced as Faust does."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from mode import Service

from streams.worker.patches import deliver_inline


class _Consumer(Service):
    """A real mode service standing in for Faust's consumer (only ``wait_first`` is used)."""


async def _inline_service() -> _Consumer:
    service = _Consumer()
    deliver_inline(service)
    return service


class TestDeliverInline:
    async def test_delivery_without_wait__returns_its_result_and_closes_the_race(self) -> None:
        """A delivery that completes in its first step is the winner, and the unused suspension wait is closed."""
        service = await _inline_service()
        suspended = asyncio.Event()

        async def deliver() -> str:
            return "delivered"

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unawaited, unclosed coroutine would warn
            done = await service.wait_first(deliver(), suspended.wait())
        assert done.results == ["delivered"]
        assert not done.stopped

    async def test_delivery_that_waits__completes_after_its_wait(self) -> None:
        """A delivery suspended on a future resumes when the future is done and returns its result."""
        service = await _inline_service()
        suspended = asyncio.Event()
        room = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def deliver() -> int:
            steps.append("before")
            value = await room
            steps.append("after")
            return value + 1

        asyncio.get_running_loop().call_later(0.01, room.set_result, 41)
        done = await service.wait_first(deliver(), suspended.wait())
        assert done.results == [42]
        assert steps == ["before", "after"]

    async def test_suspension_while_waiting__cancels_the_delivery(self) -> None:
        """When the flow is suspended first, the waiting delivery is cancelled inside its own coroutine."""
        service = await _inline_service()
        suspended = asyncio.Event()
        never = asyncio.get_running_loop().create_future()
        cancelled = asyncio.Event()

        async def deliver() -> None:
            try:
                await never
            except asyncio.CancelledError:
                cancelled.set()
                raise

        asyncio.get_running_loop().call_later(0.01, suspended.set)
        done = await service.wait_first(deliver(), suspended.wait())
        assert done.results == [True]  # Event.wait() returns True
        await asyncio.sleep(0)
        assert cancelled.is_set()

    async def test_error_in_first_step__propagates(self) -> None:
        """An exception raised before the delivery ever waits reaches the caller, as with Faust's race."""
        service = await _inline_service()
        suspended = asyncio.Event()

        async def deliver() -> None:
            raise ValueError("bad message")

        with pytest.raises(ValueError, match="bad message"):
            await service.wait_first(deliver(), suspended.wait())

    async def test_other_calls__use_the_original_race(self) -> None:
        """Calls that are not (delivery, suspension) pairs keep mode's behaviour."""
        service = await _inline_service()
        first, second = asyncio.Event(), asyncio.Event()
        first.set()
        done = await service.wait_first(first, second)
        assert done.done == [first]
