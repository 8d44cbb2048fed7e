"""HTTP threat-intel providers driven by declarative per-IoC-type request definitions.

A provider declares ``_BASE_URL`` and ``_IOC_QUERIES`` (query key → :class:`IoCLookupParams`); the base
class substitutes the observable and credentials, enforces the provider's rate limits and daily quota,
sends the request through the shared :class:`~processors.enrich.http.HttpClient` (timeouts, retries with
backoff honouring ``Retry-After``, circuit breaker) and maps the outcome to a :class:`LookupResult`.

Observables are percent-encoded (every character but letters, digits and ``-._~``) before they go into
a request path, so log content cannot steer a request to another endpoint. Anything taken from an answer
(raw result, details, error text) has the provider's configured secrets replaced by ``[REDACTED]``
before it is cached or copied anywhere.

Credentials come from the constructor (msticpy's ``AuthKey``/``ApiID`` or ``api_key``/``api_id``) or
from the environment (``SECSTREAM_TI_<NAME>_AUTHKEY`` / ``..._APIID``). They are kept in a
:class:`ProviderCredentials` whose fields are ``repr=False`` and are never logged; ``reference`` holds
the queried URL without its query string.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
import structlog

from processors.enrich.http import HttpClient, HttpResponse, HttpSettings, ResponseTooLargeError, safe_url
from processors.enrich.providers.base import LookupResult, TILookupStatus, TIProvider, TISeverity
from processors.enrich.ratelimit import RateLimiter, RateLimits
from processors.errors import ConfigError, EnrichmentError, ProviderTimeoutError, RateLimitedError

__all__ = ["REDACTED", "HttpProvider", "IoCLookupParams", "ProviderCredentials", "redact"]

_log = structlog.get_logger(module=__name__)


@dataclass(frozen=True, slots=True)
class IoCLookupParams:
    """How to query one IoC type (msticpy's ``IoCLookupParams``).

    Values may contain ``{observable}``, ``{API_KEY}`` and ``{API_ID}`` placeholders.

    Args:
        path: URL path appended to the base URL (or the full URL if ``full_url``).
        verb: ``"GET"`` or ``"POST"``.
        full_url: ``path`` is a complete URL.
        headers: request headers.
        params: query parameters.
        data: JSON body for POST.
        auth_type: ``"HTTPBasic"`` for HTTP Basic authentication.
        auth_str: the Basic auth (user, password) templates.
        sub_type: the query subtype this definition answers.
    """

    path: str = ""
    verb: str = "GET"
    full_url: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    auth_type: str = ""
    auth_str: tuple[str, ...] = ()
    sub_type: str = ""


@dataclass(frozen=True, slots=True)
class ProviderCredentials:
    """A provider's credentials; never shown by ``repr`` and never logged."""

    api_key: str | None = field(default=None, repr=False)
    api_id: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request ready to send (holds secrets: not for logs)."""

    verb: str
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    params: dict[str, str] = field(repr=False)
    data: dict[str, str] | None = field(repr=False)
    auth: tuple[str, str] | None = field(repr=False)


REDACTED = "[REDACTED]"
#: Shorter "secrets" are not redacted: replacing every "a" or "12" would garble answers and hide nothing.
_MIN_SECRET_LEN = 4


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Copy a JSON-like value with every occurrence of a secret (in strings and keys) replaced.

    Args:
        value: the value (str, dict, list, or a scalar returned as is).
        secrets: the strings to remove.
    """
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


_HTTP_MESSAGES = {
    401: "Authorization failed. Check account and key details.",
    403: "Request forbidden. Allowed query rate may have been exceeded.",
    404: "Not found.",
}


class HttpProvider(TIProvider):
    """Base class of HTTP TI providers (msticpy's ``HttpProvider``), asynchronous.

    Args:
        AuthKey: API key (alias ``api_key``; default: ``SECSTREAM_TI_<NAME>_AUTHKEY``).
        ApiID: API id (alias ``api_id``; default: ``SECSTREAM_TI_<NAME>_APIID``).
        base_url: override of ``_BASE_URL`` (tests point it at a local server).
        limits: the provider's request budget (default ``_DEFAULT_LIMITS``).
        http_settings: timeouts/retries/breaker settings.
        http: a shared :class:`HttpClient` (one is created otherwise).
        rate_limit_wait_s: default longest wait for a rate-limit token (the batch API waits; the stream
            stage passes its own, usually 0).
        clock: monotonic clock (rate limiter, breaker, cache).
        wall_clock: epoch clock (daily quota).
        kwargs: passed to :class:`TIProvider`.

    Raises:
        ConfigError: if a required credential is missing.
    """

    _BASE_URL: ClassVar[str] = ""
    _IOC_QUERIES: ClassVar[Mapping[str, IoCLookupParams]] = {}
    _REQUIRED_PARAMS: ClassVar[tuple[str, ...]] = ()
    _DEFAULT_LIMITS: ClassVar[RateLimits] = RateLimits()
    _ENV_NAME: ClassVar[str] = ""

    def __init__(
        self,
        *,
        AuthKey: str | None = None,
        ApiID: str | None = None,
        api_key: str | None = None,
        api_id: str | None = None,
        base_url: str | None = None,
        limits: RateLimits | None = None,
        http_settings: HttpSettings | None = None,
        http: HttpClient | None = None,
        rate_limit_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, **kwargs)
        env = self._ENV_NAME or type(self).__name__.upper()
        self.credentials = ProviderCredentials(
            api_key=AuthKey or api_key or os.environ.get(f"SECSTREAM_TI_{env}_AUTHKEY"),
            api_id=ApiID or api_id or os.environ.get(f"SECSTREAM_TI_{env}_APIID"),
        )
        missing = [
            p
            for p in self._REQUIRED_PARAMS
            if (p == "API_KEY" and not self.credentials.api_key) or (p == "API_ID" and not self.credentials.api_id)
        ]
        if missing:
            raise ConfigError(
                f"{self.name}: missing required parameters {missing} (pass AuthKey/ApiID or set "
                f"SECSTREAM_TI_{env}_AUTHKEY / SECSTREAM_TI_{env}_APIID)",
                key=f"ti.{self.name}",
            )
        self.base_url = (base_url or self._BASE_URL).rstrip("/")
        self.limits = limits or self._DEFAULT_LIMITS
        self.limiter = RateLimiter(self.limits, provider=self.name, clock=clock, wall_clock=wall_clock)
        self.http = http or HttpClient(http_settings, provider=self.name, clock=clock)
        self.rate_limit_wait_s = rate_limit_wait_s
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self.counters = {"requests": 0, "failures": 0, "rate_limited": 0}
        self._secrets = _secret_forms(self.credentials)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The forms of this provider's credentials that are redacted from answers (never log them)."""
        return self._secrets

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            self._semaphores = {loop: asyncio.Semaphore(max(1, self.limits.max_concurrency))}
            sem = self._semaphores[loop]
        return sem

    def _query_def(self, ioc_type: str, query_type: str | None) -> IoCLookupParams:
        key = f"{ioc_type}-{query_type}" if query_type else ioc_type
        try:
            return self._IOC_QUERIES[key]
        except KeyError:
            raise LookupError(f"Provider does not support IoC type {key}.") from None

    def _substitute_parms(self, value: str, ioc_type: str, query_type: str | None) -> PreparedRequest:
        """Build the request for an observable from its query definition."""
        src = self._query_def(ioc_type, query_type)
        observable = self._observable_for_url(value, ioc_type)
        if not (self._REQUIRE_URL_ENCODING and ioc_type == "url" and _is_encoded(observable)):
            observable = quote(observable, safe="")
        if observable in (".", ".."):  # a dot segment would be resolved away, steering the request path
            observable = observable.replace(".", "%2E")
        values = {
            "observable": observable,
            "API_KEY": self.credentials.api_key or "",
            "API_ID": self.credentials.api_id or "",
        }
        url = src.path.format(**values) if src.full_url else self.base_url + src.path.format(**values)
        headers = {k: v.format(**values) for k, v in src.headers.items()}
        params = {k: v.format(**values) for k, v in src.params.items()}
        data = {k: v.format(**values) for k, v in src.data.items()} if src.data else None
        auth = None
        if src.auth_type == "HTTPBasic":
            user, password = (s.format(**values) for s in src.auth_str)
            auth = (user, password)
        elif src.auth_type:
            raise NotImplementedError(f"Authentication type {src.auth_type} is not supported.")
        if src.verb not in ("GET", "POST"):
            raise NotImplementedError(f"HTTP method {src.verb} is not supported.")
        return PreparedRequest(src.verb, url, headers, params, data, auth)

    def _observable_for_url(self, value: str, ioc_type: str) -> str:
        """Return the observable as it goes into the URL, before percent-encoding (providers may transform it)."""
        return value

    async def _lookup(self, checked: LookupResult, rate_limit_wait_s: float | None) -> LookupResult:
        result = checked
        try:
            request = self._substitute_parms(result.safe_ioc, result.ioc_type, result.query_subtype)
        except (LookupError, NotImplementedError) as err:
            result.details = str(err)
            result.status = TILookupStatus.not_supported.value
            return result
        result.reference = safe_url(request.url)
        wait = self.rate_limit_wait_s if rate_limit_wait_s is None else rate_limit_wait_s
        try:
            async with self._semaphore():
                await self.limiter.acquire(wait)
                self.counters["requests"] += 1
                response = await self.http.request(
                    request.verb,
                    request.url,
                    headers=request.headers,
                    params=request.params,
                    data=request.data,
                    auth=request.auth,
                    wait_s=wait,
                )
        except RateLimitedError as err:
            self.counters["rate_limited"] += 1
            return self._failed(result, "rate_limited", err.reason, http_status=429 if "429" in err.reason else None)
        except EnrichmentError as err:
            self.counters["failures"] += 1
            if isinstance(err, ProviderTimeoutError):
                kind = "timeout"
            elif isinstance(err, ResponseTooLargeError):
                kind = "too_large"
            else:
                kind = "unavailable"
            return self._failed(result, kind, err.reason)
        return self._redacted(self._from_response(result, response))

    def _redacted(self, result: LookupResult) -> LookupResult:
        """The result with the provider's secrets removed from everything taken from the answer."""
        if self._secrets:
            result.raw_result = redact(result.raw_result, self._secrets)
            result.details = redact(result.details, self._secrets)
        return result

    def _failed(self, result: LookupResult, kind: str, message: str, *, http_status: int | None = None) -> LookupResult:
        result.result = False
        result.set_severity(TISeverity.information)
        result.status = TILookupStatus.query_failed.value
        details: dict[str, Any] = {"error": kind, "message": message}
        if http_status is not None:
            details["http_status"] = http_status
        result.details = details
        _log.debug("ti_lookup_failed", provider=self.name, ioc_type=result.ioc_type, error=kind, message=message)
        return result

    def _from_response(self, result: LookupResult, response: HttpResponse) -> LookupResult:
        status = response.status
        if status == 200:
            try:
                result.raw_result = response.json()
            except orjson.JSONDecodeError:
                result.raw_result = response.text
                result.details = {"message": "Response is not JSON", "http_status": status}
                result.status = TILookupStatus.query_failed.value
                return result
            try:
                found, severity, details = self.parse_results(result)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                self.counters["failures"] += 1
                return self._failed(result, "bad_response", f"could not parse the response: {type(err).__name__}")
            result.result = found
            result.set_severity(severity)
            result.details = details
            result.status = TILookupStatus.ok.value
            return result
        message = _HTTP_MESSAGES.get(status) or http.client.responses.get(status, "Unknown status")
        result.raw_result = response.text[:2000]
        if status == 404:
            # The documented "no record" answer of TI APIs: a miss, cached negatively.
            result.result = False
            result.set_severity(TISeverity.information)
            result.details = {"message": message, "http_status": status}
            result.status = TILookupStatus.ok.value
            return result
        if status == 429:
            self.counters["rate_limited"] += 1
            return self._failed(result, "rate_limited", message, http_status=status)
        self.counters["failures"] += 1
        return self._failed(result, "http_error", message, http_status=status)

    @staticmethod
    def _answer(response: LookupResult) -> dict[str, Any] | None:
        """The provider's answer as a non-empty dict, or None when the result holds no usable answer."""
        raw = response.raw_result
        return raw if isinstance(raw, dict) and raw else None

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()

    def stats(self) -> dict[str, Any]:
        """Return cache, request, rate-limit and breaker counters."""
        return {
            "cache": self.cache.stats.as_dict(),
            **self.counters,
            "limiter_granted": self.limiter.granted,
            "limiter_refused": self.limiter.refused,
            "http_requests": self.http.requests,
            "http_retries": self.http.retries,
            "breaker": self.http.breaker.state,
            "deferred": self.http.deferred,
            "too_large": self.http.too_large,
            "redirects_refused": self.http.redirects_refused,
        }


def _is_encoded(value: str) -> bool:
    """True for a URL the sanitiser has already ``quote_plus``-encoded (nothing left to escape)."""
    return quote(value, safe="%+") == value


def _secret_forms(credentials: ProviderCredentials) -> tuple[str, ...]:
    """The credentials as an answer could echo them: as given, and as the Basic auth token."""
    forms = [c for c in (credentials.api_key, credentials.api_id) if c and len(c) >= _MIN_SECRET_LEN]
    if credentials.api_key and credentials.api_id:
        forms.append(base64.b64encode(f"{credentials.api_id}:{credentials.api_key}".encode()).decode())
    return tuple(sorted(set(forms), key=len, reverse=True))
