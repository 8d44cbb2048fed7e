"""Shared asynchronous HTTP client layer for enrichment providers (aiohttp).

Every request gets a timeout, bounded retries with exponential backoff and jitter on 429 and 5xx
and on connection errors, and goes through a per-provider circuit breaker: after ``breaker_failures``
consecutive failures the provider is not called for ``breaker_reset_s`` seconds, then one trial request
decides whether it is back.

A provider is not trusted: an answer is read up to ``max_body_bytes`` (a larger one, announced or
streamed without end, fails with :class:`ResponseTooLargeError` and counts against the breaker); a
redirect is followed only within the configured origin (credentials must never reach another host, so
a cross-origin redirect fails the request); the URL is sent as given, so an encoded observable cannot
become ``..`` path segments; and a 429 with ``Retry-After`` (seconds or an HTTP date) pauses the whole
provider for that long, at most ``max_retry_after_s``: requests made meanwhile wait for it only if their
caller allows that long a wait, and are otherwise refused at once and counted as ``deferred``.

Nothing here logs a URL query string, a header value or a credential: only the provider name, the
method, the URL path, the HTTP status and the attempt number reach a log line.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
import yarl

from processors.errors import ProviderTimeoutError, ProviderUnavailableError, RateLimitedError

__all__ = [
    "CircuitBreaker",
    "HttpClient",
    "HttpResponse",
    "HttpSettings",
    "ResponseTooLargeError",
    "parse_retry_after",
    "safe_url",
]

_log = structlog.get_logger(module=__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts, retries and circuit breaker settings.

    Args:
        timeout_s: total timeout of one attempt.
        connect_timeout_s: connection timeout of one attempt.
        max_retries: retries after the first attempt (on 429, 5xx, timeouts and connection errors).
        backoff_base_s: first backoff; doubled each retry, with full jitter.
        backoff_max_s: cap of one backoff.
        max_retry_after_s: the longest a 429's ``Retry-After`` pauses the provider; a longer one is not
            waited for by the request that received it (it fails as rate limited at once).
        retry_statuses: HTTP statuses that are retried.
        breaker_failures: consecutive failures that open the circuit.
        breaker_reset_s: how long an open circuit stays open before a trial request.
        user_agent: the ``User-Agent`` header sent unless a provider sets its own.
        max_body_bytes: the largest answer body read.
        max_redirects: same-origin redirects followed by one attempt.
    """

    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    user_agent: str = "secstream/0.1"
    max_body_bytes: int = 1_048_576
    max_redirects: int = 5


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A completed HTTP exchange.

    Args:
        status: HTTP status code.
        headers: response headers (lower-cased names).
        body: raw body.
        url: the requested URL (may contain a key in its query string: never log it; use :func:`safe_url`).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str = field(repr=False)

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            orjson.JSONDecodeError: if the body is not JSON.
        """
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text (UTF-8, invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def redacted(self, secrets: Iterable[str | None]) -> HttpResponse:
        """This response with every occurrence of the secrets (4 characters or more) in its body replaced
        by ``[REDACTED]``: for answers that echo the request's key."""
        body = self.body
        for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
            body = body.replace(secret.encode(), b"[REDACTED]")
        return self if body is self.body else HttpResponse(self.status, self.headers, body, self.url)


class ResponseTooLargeError(ProviderUnavailableError):
    """The provider's answer is larger than the configured ``max_body_bytes``."""


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


def _origin(url: yarl.URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower(), url.port


def safe_url(url: str) -> str:
    """Return ``url`` without userinfo, query string and fragment: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delay seconds or an HTTP date).

    Args:
        value: the header value.
        now: epoch seconds used for HTTP dates (defaults to the current time).

    Returns:
        The delay in seconds (>= 0), or None if absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


class CircuitBreaker:
    """Consecutive-failure circuit breaker (closed → open → half-open → closed).

    Args:
        failures: consecutive failures that open the circuit.
        reset_s: seconds the circuit stays open before one trial request is let through.
        clock: monotonic clock.
    """

    def __init__(self, failures: int = 5, reset_s: float = 30.0, *, clock: Clock = time.monotonic) -> None:
        self.failure_threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self.consecutive_failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.opened = 0

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Return True if a request may be sent now (one trial at a time when half-open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """Close the circuit."""
        self.consecutive_failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """Count a failure; open (or re-open) the circuit at the threshold or after a failed trial."""
        self.consecutive_failures += 1
        if self._trial_in_flight or self.consecutive_failures >= self.failure_threshold:
            if self._opened_at is None or self._trial_in_flight:
                self.opened += 1
            self._opened_at = self._clock()
        self._trial_in_flight = False


class HttpClient:
    """aiohttp client with timeouts, retries with backoff and a circuit breaker.

    The underlying ``aiohttp.ClientSession`` is created lazily in the running event loop; call
    :meth:`close` when done (a closed client re-opens on the next request).

    Args:
        settings: timeouts, retries and breaker settings.
        provider: provider name used in errors and logs.
        clock: monotonic clock (breaker).
        sleep: coroutine used for backoff waits.
        rng: random source for jitter.
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        provider: str = "",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.provider = provider
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.breaker = CircuitBreaker(self.settings.breaker_failures, self.settings.breaker_reset_s, clock=clock)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.retries = 0
        self.deferred = 0
        self.too_large = 0
        self.redirects_refused = 0
        self._paused_until = 0.0

    @property
    def paused_for_s(self) -> float:
        """Seconds the provider stays paused by a 429's ``Retry-After`` (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def _pause(self, retry_after: float) -> None:
        until = self._clock() + min(retry_after, self.settings.max_retry_after_s)
        self._paused_until = max(self._paused_until, until)

    async def _wait_out_pause(self, wait_s: float) -> None:
        remaining = self.paused_for_s
        if remaining <= 0:
            return
        if remaining > wait_s:
            self.deferred += 1
            raise RateLimitedError(
                f"provider paused for {remaining:.0f}s more by a 429 Retry-After", provider=self.provider
            )
        await self._sleep(remaining)

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s, connect=self.settings.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (if one is open)."""
        session, self._session, self._session_loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2**attempt))
        return self._rng.uniform(cap / 2, cap)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        auth: tuple[str, str] | None = None,
        wait_s: float | None = None,
    ) -> HttpResponse:
        """Send a request, retrying 429/5xx/timeouts/connection errors with backoff.

        Args:
            method: HTTP method.
            url: full URL, already percent-encoded (sent as given: no path normalisation).
            headers: request headers.
            params: query parameters.
            data: JSON body (for POST).
            auth: HTTP Basic credentials.
            wait_s: the longest this request may wait for a provider paused by ``Retry-After`` (None:
                ``max_retry_after_s``).

        Returns:
            The final response: a success, a non-retried status (e.g. 404), or the last retried status
            once the retries are spent (5xx).

        Raises:
            ProviderUnavailableError: the circuit is open, the provider could not be reached, or it
                redirected to another origin.
            ResponseTooLargeError: the answer is larger than ``max_body_bytes``.
            ProviderTimeoutError: every attempt timed out.
            RateLimitedError: 429 after the last retry, a ``Retry-After`` longer than allowed, or the
                provider is paused for longer than ``wait_s``.
        """
        wait = self.settings.max_retry_after_s if wait_s is None else wait_s
        await self._wait_out_pause(wait)
        if not self.breaker.allow():
            raise ProviderUnavailableError("circuit breaker open", provider=self.provider)
        all_headers = self._headers(headers, auth)
        attempt = 0
        log_url = safe_url(url)
        while True:
            self.requests += 1
            failure: ProviderTimeoutError | ProviderUnavailableError | RateLimitedError | None = None
            response: HttpResponse | None = None
            delay: float | None = None
            try:
                response = await self._exchange(method, yarl.URL(url, encoded=True), all_headers, params, data)
            except TimeoutError as err:
                self.breaker.record_failure()
                failure = ProviderTimeoutError(f"no answer within {self.settings.timeout_s}s", provider=self.provider)
                failure.__cause__ = err
                _log.debug("http_timeout", provider=self.provider, method=method, url=log_url, attempt=attempt)
            except ProviderUnavailableError:
                # Oversized answers and cross-origin redirects: retrying would only repeat them.
                self.breaker.record_failure()
                raise
            except aiohttp.ClientError as err:
                self.breaker.record_failure()
                failure = ProviderUnavailableError(f"connection failed: {type(err).__name__}", provider=self.provider)
                failure.__cause__ = err
                _log.debug("http_error", provider=self.provider, method=method, url=log_url, attempt=attempt)
            else:
                if response.status not in self.settings.retry_statuses:
                    self.breaker.record_success()
                    return response
                _log.debug(
                    "http_retryable", provider=self.provider, url=log_url, status=response.status, attempt=attempt
                )
                failure, delay = self._retryable(response, wait)
            if attempt >= self.settings.max_retries or not self.breaker.allow():
                if failure is not None:
                    raise failure
                if response is not None:
                    return response
            attempt += 1
            self.retries += 1
            await self._sleep(self._backoff(attempt - 1) if delay is None else delay)

    def _headers(self, headers: Mapping[str, str] | None, auth: tuple[str, str] | None) -> dict[str, str]:
        all_headers = {"User-Agent": self.settings.user_agent, **(headers or {})}
        if auth:
            all_headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        return all_headers

    def _retryable(self, response: HttpResponse, wait: float) -> tuple[RateLimitedError | None, float | None]:
        """Account for a retryable status: the failure to raise if no retry is left, and the delay to wait.

        Raises:
            RateLimitedError: a 429 whose ``Retry-After`` is longer than the caller may wait (the provider
                is paused all the same).
        """
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status != 429:
            self.breaker.record_failure()
            return None, retry_after
        # The provider is alive: rate limiting does not count against the breaker.
        self.breaker.record_success()
        if retry_after is not None:
            self._pause(retry_after)
            if retry_after > min(wait, self.settings.max_retry_after_s):
                raise RateLimitedError(
                    f"HTTP 429, Retry-After {retry_after:.0f}s exceeds the allowed wait", provider=self.provider
                )
        return RateLimitedError("HTTP 429 Too Many Requests", provider=self.provider), retry_after

    async def _exchange(
        self,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        data: Any,
    ) -> HttpResponse:
        """One attempt: the request and its same-origin redirects, with the body read up to the cap."""
        session = self._get_session()
        origin = _origin(url)
        for _ in range(self.settings.max_redirects + 1):
            async with session.request(
                method, url, headers=headers, params=params, json=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    target = resp.url.join(yarl.URL(location, encoded=True))
                    if _origin(target) != origin:
                        self.redirects_refused += 1
                        raise ProviderUnavailableError(
                            f"HTTP {resp.status} redirect to another origin refused (credentials stay with "
                            f"{safe_url(str(url))})",
                            provider=self.provider,
                        )
                    url, params = target, None
                    if resp.status == 303:
                        method, data = "GET", None
                    continue
                body = await self._read_capped(resp)
                return HttpResponse(
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.headers.items()},
                    body=body,
                    url=str(resp.url),
                )
        raise ProviderUnavailableError(f"more than {self.settings.max_redirects} redirects", provider=self.provider)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.settings.max_body_bytes
        if resp.content_length is not None and resp.content_length > cap:
            self.too_large += 1
            raise ResponseTooLargeError(
                f"answer of {resp.content_length} bytes is larger than the allowed {cap}", provider=self.provider
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                self.too_large += 1
                raise ResponseTooLargeError(f"answer larger than the allowed {cap} bytes", provider=self.provider)
            chunks.append(chunk)
        return b"".join(chunks)
