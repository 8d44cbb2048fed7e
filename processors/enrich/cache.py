"""A TTL cache for lookup results with negative caching, and single-flight lookups.

* Answers are cached for ``ttl_s``; "nothing known about this observable" answers (negative results)
  for ``negative_ttl_s``. Failures (timeouts, 5xx, rate limiting) are **never** cached, unlike
  msticpy's ``lru_cache`` which kept a failed lookup for the life of the process.
* :meth:`LookupCache.get_or_fetch` runs at most one fetch per key at a time: concurrent callers for
  the same observable share the one in-flight request.
* The cache is bounded (least recently used entries are evicted first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

__all__ = ["CacheSettings", "CacheStats", "Cacheability", "LookupCache", "TTLCache"]

V = TypeVar("V")
Clock = Callable[[], float]


class Cacheability(Enum):
    """How a fetched value may be cached."""

    positive = "positive"
    negative = "negative"
    never = "never"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Cache sizing and lifetimes.

    Args:
        ttl_s: lifetime of a positive answer.
        negative_ttl_s: lifetime of a negative ("not found"/"no record") answer.
        max_entries: bound on the number of cached entries.
    """

    ttl_s: float = 3600.0
    negative_ttl_s: float = 600.0
    max_entries: int = 100_000


@dataclass(slots=True)
class CacheStats:
    """Counters of a :class:`LookupCache`."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    coalesced: int = 0
    evictions: int = 0
    fetches: int = 0
    not_cached: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "negative_hits": self.negative_hits,
            "coalesced": self.coalesced,
            "evictions": self.evictions,
            "fetches": self.fetches,
            "not_cached": self.not_cached,
        }


class TTLCache(Generic[V]):
    """A bounded LRU cache whose entries expire after a per-entry TTL.

    Args:
        max_entries: maximum number of entries.
        clock: monotonic clock in seconds.
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, bool, V]] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> tuple[bool, bool, V | None]:
        """Look a key up.

        Args:
            key: the cache key.

        Returns:
            ``(found, negative, value)``; expired entries are removed and reported as not found.
        """
        entry = self._data.get(key)
        if entry is None:
            return False, False, None
        expires, negative, value = entry
        if self._clock() >= expires:
            del self._data[key]
            return False, False, None
        self._data.move_to_end(key)
        return True, negative, value

    def set(self, key: Hashable, value: V, ttl_s: float, *, negative: bool = False) -> None:
        """Store a value for ``ttl_s`` seconds (nothing is stored when ``ttl_s <= 0``).

        Args:
            key: the cache key.
            value: the value.
            ttl_s: lifetime in seconds.
            negative: True for a negative answer.
        """
        if ttl_s <= 0:
            return
        self._data[key] = (self._clock() + ttl_s, negative, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        """Drop every entry."""
        self._data.clear()


class LookupCache(Generic[V]):
    """TTL cache with negative caching and one in-flight fetch per key.

    Args:
        settings: lifetimes and size.
        classify: tells whether a fetched value is positive, negative or must not be cached (a failure).
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        settings: CacheSettings,
        classify: Callable[[V], Cacheability],
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self._classify = classify
        self._cache: TTLCache[V] = TTLCache(settings.max_entries, clock=clock)
        self._in_flight: dict[Hashable, asyncio.Task[V]] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._cache)

    def peek(self, key: Hashable) -> tuple[bool, V | None]:
        """Return a cached value without fetching, counting a hit or a miss.

        Args:
            key: the cache key.

        Returns:
            ``(found, value)``.
        """
        found, negative, value = self._cache.get(key)
        if found:
            self.stats.hits += 1
            self.stats.negative_hits += int(negative)
        else:
            self.stats.misses += 1
        return found, value

    def store(self, key: Hashable, value: V) -> None:
        """Store a fetched value according to its cacheability."""
        kind = self._classify(value)
        if kind is Cacheability.positive:
            self._cache.set(key, value, self.settings.ttl_s)
        elif kind is Cacheability.negative:
            self._cache.set(key, value, self.settings.negative_ttl_s, negative=True)
        else:
            self.stats.not_cached += 1
        self.stats.evictions = self._cache.evictions

    def in_flight(self, key: Hashable) -> asyncio.Task[V] | None:
        """Return the running fetch for ``key``, if any."""
        return self._in_flight.get(key)

    async def get_or_fetch(self, key: Hashable, fetch: Callable[[], Awaitable[V]], *, peek: bool = True) -> V:
        """Return the cached value for ``key`` or fetch it, sharing a fetch already in flight.

        The fetch runs in its own task, shielded from the caller: a caller that stops waiting does not
        cancel the request, whose answer still warms the cache.

        Args:
            key: the cache key.
            fetch: coroutine factory that performs the lookup.
            peek: look in the cache first (False when the caller just did, to count the miss once).

        Returns:
            The value.
        """
        if peek:
            found, value = self.peek(key)
            if found:
                return value  # type: ignore[return-value]
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, fetch))
            self._in_flight[key] = task
        else:
            self.stats.coalesced += 1
        return await asyncio.shield(task)

    async def _run(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        self.stats.fetches += 1
        try:
            value = await fetch()
            self.store(key, value)
            return value
        finally:
            self._in_flight.pop(key, None)

    async def cancel_in_flight(self) -> None:
        """Cancel every running fetch and wait for them to finish."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    def clear(self) -> None:
        """Drop every cached value (fetches in flight continue)."""
        self._cache.clear()
