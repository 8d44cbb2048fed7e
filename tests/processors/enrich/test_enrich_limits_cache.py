"""Token bucket, daily quota, rate limiter, TTL cache with negative caching, and single-flight lookups."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.enrich.cache import Cacheability, CacheSettings, LookupCache, TTLCache
from processors.enrich.ratelimit import DailyQuota, RateLimiter, RateLimits, TokenBucket
from processors.errors import RateLimitedError


class FakeClock:
    """A clock moved by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    def test_burst_then_refill(self) -> None:
        """A full bucket allows a burst, then one token per 1/rate seconds."""
        clock = FakeClock()
        bucket = TokenBucket(rate=4 / 60, capacity=4, clock=clock)
        assert [bucket.try_acquire() for _ in range(5)] == [True, True, True, True, False]
        assert bucket.delay() == pytest.approx(15.0)
        clock.now = 15.0
        assert bucket.try_acquire() and not bucket.try_acquire()

    @given(st.lists(st.floats(min_value=0, max_value=100), max_size=50))
    def test_never_exceeds_budget(self, steps: list[float]) -> None:
        """Over any schedule, granted tokens never exceed capacity + rate × elapsed."""
        clock = FakeClock()
        bucket = TokenBucket(rate=0.5, capacity=3, clock=clock)
        granted = 0
        for step in steps:
            clock.now += step
            granted += sum(bucket.try_acquire() for _ in range(5))
        assert granted <= 3 + 0.5 * clock.now + 1e-9


class TestDailyQuota:
    def test_resets_each_utc_day(self) -> None:
        """The quota is counted per UTC day."""
        clock = FakeClock(86400 * 10 + 5)
        quota = DailyQuota(2, wall_clock=clock)
        assert [quota.try_consume() for _ in range(3)] == [True, True, False]
        clock.now = 86400 * 11
        assert quota.remaining == 2 and quota.try_consume()


class TestRateLimiter:
    async def test_waits_within_allowance(self) -> None:
        """acquire sleeps for the next token when the caller allows the wait."""
        clock = FakeClock()
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock.now += seconds

        limiter = RateLimiter(RateLimits(per_minute=6, burst=1), clock=clock, sleep=sleep)
        await limiter.acquire()
        await limiter.acquire(max_wait_s=10)
        assert sleeps == [pytest.approx(10.0)]
        with pytest.raises(RateLimitedError):
            await limiter.acquire(max_wait_s=5)
        assert (limiter.granted, limiter.refused) == (2, 1)

    async def test_daily_quota__refused(self) -> None:
        """A spent daily quota is refused without waiting."""
        limiter = RateLimiter(RateLimits(daily_quota=1), provider="VT", wall_clock=lambda: 0.0)
        await limiter.acquire()
        with pytest.raises(RateLimitedError, match="daily quota"):
            await limiter.acquire(max_wait_s=100)


class TestTTLCache:
    def test_expiry_and_lru(self) -> None:
        """Entries expire after their TTL; the least recently used is evicted at the bound."""
        clock = FakeClock()
        cache: TTLCache[str] = TTLCache(max_entries=2, clock=clock)
        cache.set("a", "A", 10)
        cache.set("b", "B", 10)
        assert cache.get("a") == (True, False, "A")
        cache.set("c", "C", 10)
        assert cache.get("b")[0] is False and cache.evictions == 1
        clock.now = 10
        assert cache.get("a")[0] is False


def classify(value: str) -> Cacheability:
    return {"hit": Cacheability.positive, "miss": Cacheability.negative}.get(value, Cacheability.never)


class TestLookupCache:
    async def test_negative_ttl_and_failures_not_cached(self) -> None:
        """Misses live for negative_ttl_s, hits for ttl_s, and failures are not cached at all."""
        clock = FakeClock()
        cache: LookupCache[str] = LookupCache(CacheSettings(ttl_s=100, negative_ttl_s=10), classify, clock=clock)
        calls: list[str] = []

        def fetcher(value: str):  # type: ignore[no-untyped-def]
            async def fetch() -> str:
                calls.append(value)
                return value

            return fetch

        for key in ("hit", "miss", "failed"):
            await cache.get_or_fetch(key, fetcher(key))
            await cache.get_or_fetch(key, fetcher(key))
        assert calls == ["hit", "miss", "failed", "failed"]
        clock.now = 50
        for key in ("hit", "miss"):
            await cache.get_or_fetch(key, fetcher(key))
        assert calls[-1] == "miss" and calls.count("hit") == 1
        assert cache.stats.negative_hits == 1 and cache.stats.not_cached == 2

    async def test_single_flight(self) -> None:
        """Concurrent lookups of one key share one fetch."""
        cache: LookupCache[str] = LookupCache(CacheSettings(), classify)
        started = 0
        gate = asyncio.Event()

        async def fetch() -> str:
            nonlocal started
            started += 1
            await gate.wait()
            return "hit"

        waiters = [asyncio.ensure_future(cache.get_or_fetch("k", fetch)) for _ in range(10)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiters) == ["hit"] * 10
        assert started == 1 and cache.stats.coalesced == 9

    async def test_waiter_gives_up__fetch_continues(self) -> None:
        """A caller that stops waiting does not cancel the fetch, which still fills the cache."""
        cache: LookupCache[str] = LookupCache(CacheSettings(), classify)
        gate = asyncio.Event()

        async def fetch() -> str:
            await gate.wait()
            return "hit"

        waiter = asyncio.ensure_future(cache.get_or_fetch("k", fetch))
        await asyncio.sleep(0)
        waiter.cancel()
        gate.set()
        await asyncio.sleep(0.01)
        assert cache.peek("k") == (True, "hit")
