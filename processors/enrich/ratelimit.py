"""Per-provider request budgets: a token bucket for the request rate and a daily quota.

A VirusTotal public key allows about 4 requests a minute and 500 a day; other providers have their own
limits. :class:`RateLimiter` combines both budgets. It never sleeps longer than the caller allows: when
no token can be had within ``max_wait_s`` (or the daily quota is spent) it raises
:class:`~processors.errors.RateLimitedError`, so a stream stage records ``rate_limited`` and moves on.

Time comes from injected clocks (``clock`` is monotonic seconds, ``wall_clock`` epoch seconds for the
quota's UTC day), so tests drive them by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from processors.errors import RateLimitedError

__all__ = ["DailyQuota", "RateLimiter", "RateLimits", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A provider's request budget.

    Args:
        per_minute: sustained request rate (requests per minute); ``None`` for unlimited.
        burst: how many requests may go out back to back (bucket size).
        daily_quota: requests allowed per UTC day; ``None`` for unlimited.
        max_concurrency: requests in flight at once.
    """

    per_minute: float | None = None
    burst: int = 1
    daily_quota: int | None = None
    max_concurrency: int = 4


class TokenBucket:
    """A token bucket refilled continuously at ``rate`` tokens per second, holding at most ``capacity``.

    Args:
        rate: tokens added per second (> 0).
        capacity: bucket size (>= 1); the bucket starts full.
        clock: monotonic clock in seconds.

    Raises:
        ValueError: if ``rate`` or ``capacity`` is not positive.
    """

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = float(capacity)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def try_acquire(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are available now.

        Args:
            n: tokens wanted.

        Returns:
            True if the tokens were taken.
        """
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def delay(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens will be available (0 if they are available now)."""
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate


class DailyQuota:
    """Counts requests per UTC day and refuses them once ``limit`` is reached.

    Args:
        limit: requests allowed per UTC day.
        wall_clock: epoch seconds (the day is ``floor(t / 86400)``).
    """

    def __init__(self, limit: int, *, wall_clock: Clock = time.time) -> None:
        self.limit = limit
        self._wall_clock = wall_clock
        self._day = self._today()
        self.used = 0

    def _today(self) -> int:
        return int(self._wall_clock() // 86400)

    @property
    def remaining(self) -> int:
        """Requests left today."""
        today = self._today()
        if today != self._day:
            self._day, self.used = today, 0
        return max(0, self.limit - self.used)

    def try_consume(self) -> bool:
        """Use one request of today's quota if any is left.

        Returns:
            True if a request was counted, False if the quota is spent.
        """
        if self.remaining <= 0:
            return False
        self.used += 1
        return True


class RateLimiter:
    """Token bucket plus daily quota for one provider.

    Args:
        limits: the provider's budget.
        provider: provider name (for errors).
        clock: monotonic clock for the bucket.
        wall_clock: epoch clock for the daily quota.
        sleep: coroutine used to wait for a token (``asyncio.sleep`` by default).
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        provider: str = "",
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self.provider = provider
        self._sleep = sleep
        self.bucket = (
            TokenBucket(limits.per_minute / 60.0, max(1, limits.burst), clock=clock)
            if limits.per_minute is not None
            else None
        )
        self.quota = DailyQuota(limits.daily_quota, wall_clock=wall_clock) if limits.daily_quota is not None else None
        self.granted = 0
        self.refused = 0

    async def acquire(self, max_wait_s: float = 0.0) -> None:
        """Wait (at most ``max_wait_s``) for permission to send one request.

        Args:
            max_wait_s: the longest the caller accepts to wait for a token.

        Raises:
            RateLimitedError: if the daily quota is spent or no token is available in time.
        """
        if self.quota is not None and self.quota.remaining <= 0:
            self.refused += 1
            raise RateLimitedError("daily quota exhausted", provider=self.provider)
        if self.bucket is not None:
            waited = 0.0
            while not self.bucket.try_acquire():
                delay = self.bucket.delay()
                if waited + delay > max_wait_s:
                    self.refused += 1
                    raise RateLimitedError(
                        f"request rate limit reached (next token in {delay:.1f}s)", provider=self.provider
                    )
                await self._sleep(delay)
                waited += delay
        if self.quota is not None and not self.quota.try_consume():
            self.refused += 1
            raise RateLimitedError("daily quota exhausted", provider=self.provider)
        self.granted += 1
