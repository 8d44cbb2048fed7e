"""The shared HTTP client against a real local server: retries, Retry-After, timeouts, circuit breaker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from processors.enrich.http import CircuitBreaker, HttpClient, HttpSettings, parse_retry_after, safe_url
from processors.errors import ProviderTimeoutError, ProviderUnavailableError, RateLimitedError


class Sleeps:
    """Records the backoff waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class TestHttpClient:
    async def test_retry_after__honoured(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A 429 with Retry-After: 7 is retried after exactly 7 seconds."""
        ti_server.script("/x", kit.Reply(429, {}, {"Retry-After": "7"}), kit.Reply(200, {"ok": True}))
        sleeps = Sleeps()
        client = HttpClient(HttpSettings(), sleep=sleeps)
        response = await client.request("GET", ti_server.url + "/x")
        await client.close()
        assert response.status == 200 and response.json() == {"ok": True}
        assert sleeps.waits == [7.0] and ti_server.count("/x") == 2

    async def test_429_persistent__rate_limited_error(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """429 on every attempt raises RateLimitedError after max_retries retries."""
        ti_server.script("/x", kit.Reply(429))
        client = HttpClient(HttpSettings(max_retries=2), sleep=Sleeps())
        with pytest.raises(RateLimitedError):
            await client.request("GET", ti_server.url + "/x")
        await client.close()
        assert ti_server.count("/x") == 3
        assert client.breaker.state == "closed", "rate limiting is not a provider failure"

    async def test_long_retry_after__not_waited(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A Retry-After beyond max_retry_after_s fails at once instead of stalling."""
        ti_server.script("/x", kit.Reply(429, {}, {"Retry-After": "3600"}))
        sleeps = Sleeps()
        client = HttpClient(HttpSettings(max_retry_after_s=60), sleep=sleeps)
        with pytest.raises(RateLimitedError, match="exceeds"):
            await client.request("GET", ti_server.url + "/x")
        await client.close()
        assert sleeps.waits == [] and ti_server.count("/x") == 1

    async def test_5xx__backoff_then_last_response(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """5xx is retried with growing backoff; the last 5xx response is returned."""
        ti_server.script("/x", kit.Reply(503))
        sleeps = Sleeps()
        client = HttpClient(HttpSettings(max_retries=3, backoff_base_s=1.0), sleep=sleeps)
        response = await client.request("GET", ti_server.url + "/x")
        await client.close()
        assert response.status == 503 and ti_server.count("/x") == 4
        assert len(sleeps.waits) == 3
        assert [0.5 <= sleeps.waits[0] <= 1.0, 1.0 <= sleeps.waits[1] <= 2.0, 2.0 <= sleeps.waits[2] <= 4.0] == [
            True
        ] * 3

    async def test_404__not_retried(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A 404 is an answer: returned at once."""
        ti_server.script("/x", kit.Reply(404))
        client = HttpClient(sleep=Sleeps())
        assert (await client.request("GET", ti_server.url + "/x")).status == 404
        await client.close()
        assert ti_server.count("/x") == 1

    async def test_timeout__provider_timeout_error(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """An answer slower than the timeout raises ProviderTimeoutError after the retries."""
        ti_server.script("/slow", kit.Reply(200, {}, {}, 30.0))
        client = HttpClient(HttpSettings(timeout_s=0.2, max_retries=1), sleep=Sleeps())
        with pytest.raises(ProviderTimeoutError):
            await client.request("GET", ti_server.url + "/slow")
        await client.close()
        assert ti_server.count("/slow") == 2

    async def test_circuit_breaker__opens_and_stops_requests(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """After breaker_failures failures no request reaches the server until the reset time."""
        ti_server.script("/x", kit.Reply(500))
        now = [0.0]
        client = HttpClient(
            HttpSettings(max_retries=0, breaker_failures=3, breaker_reset_s=30), clock=lambda: now[0], sleep=Sleeps()
        )
        for _ in range(3):
            await client.request("GET", ti_server.url + "/x")
        with pytest.raises(ProviderUnavailableError, match="circuit breaker open"):
            await client.request("GET", ti_server.url + "/x")
        assert ti_server.count("/x") == 3
        now[0] = 31.0
        ti_server.script("/x", kit.Reply(200, {}))
        assert (await client.request("GET", ti_server.url + "/x")).status == 200
        assert client.breaker.state == "closed"
        await client.close()

    async def test_logs__no_query_or_credentials(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """Log lines carry the path only: no query-string key and no auth header."""
        ti_server.script("/x", kit.Reply(500))
        client = HttpClient(HttpSettings(max_retries=1), sleep=Sleeps())
        with capture_logs() as logs:
            await client.request("GET", ti_server.url + "/x", params={"apikey": "qs-secret"}, auth=("id", "pw-secret"))
        await client.close()
        assert logs and "secret" not in repr(logs)
        assert ti_server.requests[0].query["apikey"] == "qs-secret"


class TestHelpers:
    def test_parse_retry_after(self) -> None:
        """Retry-After takes seconds or an HTTP date."""
        assert parse_retry_after("120") == 120.0
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
        assert parse_retry_after("soon") is None and parse_retry_after(None) is None

    def test_safe_url(self) -> None:
        """safe_url drops userinfo, query and fragment."""
        assert safe_url("https://u:p@host:8443/a/b?apikey=k#f") == "https://host:8443/a/b"

    def test_breaker_half_open__one_trial(self) -> None:
        """A half-open breaker lets one trial through; its failure re-opens the circuit."""
        now = [0.0]
        breaker = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
        breaker.record_failure()
        assert not breaker.allow()
        now[0] = 10
        assert breaker.allow() and not breaker.allow()
        breaker.record_failure()
        assert breaker.state == "open"
