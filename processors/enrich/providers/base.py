"""The threat-intel provider engine: result types, observable sanitising and the async provider ABC.

The stream's enrichment stage uses these classes directly; :mod:`processors.tiproviders` wraps them
with msticpy's batch API (polars frames, pivot functions). Deliberate differences from msticpy 1.5:

* ``LookupResult.severity`` stores the severity **value** (an int), so ``severity_name`` is right
  (msticpy stored the name, and ``severity_name`` then always said ``"unknown"``).
* A failed query has ``status == TILookupStatus.query_failed`` (3) with the HTTP status, if any, in
  ``details["http_status"]``; msticpy leaked HTTP codes (404, 429, ...) into ``status``.
* A 404 from a TI API is the provider's documented "no record" answer: it is a *miss*
  (``status`` ok, ``result`` False, ``details == {"message": "Not found.", "http_status": 404}``) and
  is cached negatively, not a failure.
* Lookups are ``async`` (:meth:`TIProvider.lookup_ioc_async`) with a sync wrapper; results are cached
  with a TTL, negatively cached for misses, and failures are never cached (msticpy's ``lru_cache`` kept
  failures forever).
"""

from __future__ import annotations

import abc
import functools
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import total_ordering
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import quote_plus, urlsplit

import orjson

from processors.enrich.cache import Cacheability, CacheSettings, LookupCache
from processors.enrich.sync import run_sync
from processors.ioc.extract import IocExtractor

__all__ = [
    "LookupResult",
    "SanitizedObservable",
    "TILookupStatus",
    "TIProvider",
    "TISeverity",
    "entropy",
    "get_schema_and_host",
    "preprocess_observable",
    "resolve_ioc_type",
]

T = TypeVar("T")

#: IoC type names known to the providers (msticpy's ``IoCType``).
KNOWN_IOC_TYPES = frozenset(
    {
        "ipv4",
        "ipv6",
        "dns",
        "url",
        "md5_hash",
        "sha1_hash",
        "sha256_hash",
        "file_hash",
        "hostname",
        "windows_path",
        "linux_path",
        "email",
        "unknown",
    }
)
HASH_TYPES = frozenset({"md5_hash", "sha1_hash", "sha256_hash", "file_hash"})


@total_ordering
class TISeverity(Enum):
    """Threat intelligence report severity (ordered; compares with names and ints via :meth:`parse`)."""

    unknown = -1
    information = 0
    warning = 1
    high = 2

    @classmethod
    def parse(cls, value: Any) -> TISeverity:
        """Parse a TISeverity, a member name (any case) or a member value.

        Args:
            value: the value to parse.

        Returns:
            The severity, ``unknown`` if the value is not recognised.
        """
        if isinstance(value, TISeverity):
            return value
        if isinstance(value, str):
            return cls.__members__.get(value.strip().lower(), cls.unknown)
        if isinstance(value, int) and not isinstance(value, bool):
            return _SEVERITY_BY_VALUE.get(value, cls.unknown)
        return cls.unknown

    def __eq__(self, other: object) -> bool:
        return self.value == TISeverity.parse(other).value

    def __gt__(self, other: object) -> bool:
        return self.value > TISeverity.parse(other).value

    def __hash__(self) -> int:
        return hash(self.value)


_SEVERITY_BY_VALUE = {member.value: member for member in TISeverity}


class TILookupStatus(Enum):
    """Threat intelligence lookup status."""

    ok = 0
    not_supported = 1
    bad_format = 2
    query_failed = 3
    other = 10


class SanitizedObservable(NamedTuple):
    """An observable after sanitising (``observable`` is None when it was rejected) and the status text."""

    observable: str | None
    status: str


@dataclass
class LookupResult:
    """Lookup result for IoCs (msticpy's fields; ``severity`` holds the severity value).

    Args:
        ioc: the observable as given.
        ioc_type: its IoC type.
        safe_ioc: the sanitised observable actually queried.
        query_subtype: the query subtype, if any.
        provider: the provider name.
        result: True if the provider has a record for the observable.
        severity: the severity value (``TISeverity.<x>.value``).
        details: parsed details (or an error description).
        raw_result: the provider's raw answer.
        reference: the URL that was queried (without credentials).
        status: a ``TILookupStatus`` value.
    """

    ioc: str
    ioc_type: str
    safe_ioc: str = ""
    query_subtype: str | None = None
    provider: str | None = None
    result: bool = False
    severity: int = 0
    details: Any = None
    raw_result: str | dict[str, Any] | list[Any] | None = None
    reference: str | None = None
    status: int = 0

    def __post_init__(self) -> None:
        self.set_severity(self.severity)

    def set_severity(self, value: Any) -> None:
        """Set the severity from a TISeverity, an int or a name."""
        self.severity = TISeverity.parse(value).value

    @property
    def severity_name(self) -> str:
        """The severity's name (``"information"``, ``"warning"``, ``"high"`` or ``"unknown"``)."""
        return TISeverity.parse(self.severity).name

    @classmethod
    def column_map(cls) -> dict[str, str]:
        """Map field names to DataFrame column names (``ioc`` → ``Ioc``, ``ioc_type`` → ``IocType``, ...)."""
        return {name: "".join(part.capitalize() for part in name.split("_")) for name in cls.__dataclass_fields__}

    @property
    def summary(self) -> str:
        """A short text summary of the result."""
        return (
            f"ioc: {self.ioc} ({self.ioc_type}{'-' + self.query_subtype if self.query_subtype else ''})\n"
            f"result: {self.result}\nseverity: {self.severity_name}\ndetails: {self.details}\n"
            f"reference: {self.reference}"
        )

    @property
    def raw_result_fmtd(self) -> str:
        """The raw result as indented JSON (or text)."""
        if isinstance(self.raw_result, dict | list):
            return orjson.dumps(self.raw_result, option=orjson.OPT_INDENT_2, default=str).decode()
        return str(self.raw_result)

    def to_row(self) -> dict[str, Any]:
        """Return the result as a DataFrame row (column names, severity name, JSON details)."""
        row = {}
        for name, column in self.column_map().items():
            value = getattr(self, name)
            if name == "severity":
                value = self.severity_name
            elif name in ("details", "raw_result"):
                value = _json_text(value)
            row[column] = value
        return row


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


# ---------------------------------------------------------------------------------------------------
# IoC type resolution and validation (one truth: the IoC stage's extractor)


@functools.cache
def _ioc_extract() -> IocExtractor:
    # Built on first use: compiling the extractor's patterns is not free, and a blocklist-only run may
    # never need it.
    return IocExtractor()


def resolve_ioc_type(observable: str) -> str:
    """Return the IoC type of ``observable`` as determined by the IoC extractor's ``get_ioc_type``."""
    return str(_ioc_extract().get_ioc_type(observable))


def _validate(observable: str, ioc_type: str) -> bool:
    extractor = _ioc_extract()
    if ioc_type == "file_hash":
        return any(_validate(observable, t) for t in ("md5_hash", "sha1_hash", "sha256_hash"))
    check_type = "dns" if ioc_type == "hostname" else ioc_type
    try:
        return bool(extractor.validate(observable, check_type))
    except (KeyError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------
# Observable sanitising (msticpy's rules and messages)

_CLEAN_URL = re.compile(
    r"(?P<protocol>(https?|ftp|telnet|ldap|file)://)"
    r"(?P<userinfo>([a-z0-9-._~!$&*+,;=:]|%[0-9A-F]{2})*@)?"
    r"(?P<host>([a-z0-9-._~!$&\*+,;=]|%[0-9A-F]{2})*)"
    r"(:(?P<port>\d*))?"
    r"(/(?P<path>([^?\#| ]|%[0-9A-F]{2})*))?"
    r"(\?(?P<query>([a-z0-9-._~!$&'()*+,;=:/?@]|%[0-9A-F]{2})*))?"
    r"(\#(?P<fragment>([a-z0-9-._~!$&'()*+,;=:/?@]|%[0-9A-F]{2})*))?\b",
    re.IGNORECASE,
)


def _clean_url(url: str) -> str | None:
    """Return the URL's protocol, userinfo, host, port and path (query and fragment dropped)."""
    match = _CLEAN_URL.search(url)
    if match is None or not match.group("host"):
        return None
    clean = f"{match.group('protocol')}{match.group('userinfo') or ''}{match.group('host')}"
    if match.group("port"):
        clean += f":{match.group('port')}"
    if match.group("path"):
        clean += f"/{match.group('path')}"
    return clean


def _split_url(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    _ = parts.port  # raises ValueError on a bad port
    return parts.scheme or None, parts.hostname or None


def get_schema_and_host(url: str, require_url_encoding: bool = False) -> tuple[str | None, str | None, str | None]:
    """Return the (possibly cleaned or encoded) URL, its scheme and its host.

    Args:
        url: input URL.
        require_url_encoding: return the URL ``quote_plus``-encoded.

    Returns:
        ``(url, scheme, host)``; ``(None, None, None)`` if the URL cannot be parsed even after cleaning.
    """
    clean_url: str | None = url
    try:
        scheme, host = _split_url(url)
        if scheme is None or host is None:
            raise ValueError(url)
    except ValueError:
        clean_url = _clean_url(url)
        if clean_url is None:
            return None, None, None
        try:
            scheme, host = _split_url(clean_url)
        except ValueError:
            return None, None, None
    if clean_url is not None and require_url_encoding:
        clean_url = quote_plus(clean_url)
    return clean_url, scheme, host


def entropy(input_str: str) -> float:
    """Compute the Shannon entropy (bits per character) of a string."""
    if not input_str:
        return 0.0
    total = len(input_str)
    return -sum((n / total) * math.log2(n / total) for n in Counter(input_str).values())


def _parse_ip(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(value)
    except ValueError:
        return None


def _preprocess_url(url: str, require_url_encoding: bool) -> SanitizedObservable:
    clean_url, scheme, host = get_schema_and_host(url, require_url_encoding)
    if scheme is None or host is None or clean_url is None:
        return SanitizedObservable(None, f"Could not obtain scheme or host from {url}")
    addr = _parse_ip(host)
    if addr is not None:
        if addr.is_private:
            return SanitizedObservable(None, "Host part of URL is a private IP address")
        if addr.is_loopback:
            return SanitizedObservable(None, "Host part of URL is a loopback IP address")
    if "." not in host:
        return SanitizedObservable(None, "Host is unqualified domain name")
    if scheme.lower() == "file":
        return SanitizedObservable(None, "file URL scheme is not supported")
    return SanitizedObservable(clean_url, "ok")


def _preprocess_ip(value: str, version: int, require_global: bool) -> SanitizedObservable:
    try:
        addr = ip_address(value)
    except ValueError:
        return SanitizedObservable(None, "IP address is invalid format")
    if addr.version != version:
        return SanitizedObservable(None, f"Not an IPv{version} address")
    if require_global and not addr.is_global:
        return SanitizedObservable(None, "IP address is not global")
    return SanitizedObservable(value, "ok")


def _preprocess_dns(domain: str) -> SanitizedObservable:
    if "." not in domain:
        return SanitizedObservable(None, "Domain is unqualified domain name")
    if _parse_ip(domain) is not None:
        return SanitizedObservable(None, "Domain is an IP address")
    return SanitizedObservable(domain, "ok")


def _preprocess_hash(value: str) -> SanitizedObservable:
    if entropy(value) < 3.0:
        return SanitizedObservable(None, "String has too low an entropy to be a hash")
    return SanitizedObservable(value, "ok")


def preprocess_observable(
    observable: str, ioc_type: str, require_url_encoding: bool = False, *, require_global: bool = True
) -> SanitizedObservable:
    """Check an observable against its declared IoC type and sanitise it (msticpy's rules and messages).

    The value is stripped and validated with ``IoCExtract.validate`` (failure: ``"Observable does not match
    expected pattern for <type>"``; unknown type names fail the same way). Then: URLs must have a scheme
    and a qualified host that is not a private or loopback IP and not ``file://``; IP addresses must be
    global (unless ``require_global`` is False, which a local blocklist uses: nothing leaves the host);
    domains must be qualified and not IP addresses; hashes need a character entropy of at least 3.0.

    Args:
        observable: the IoC value.
        ioc_type: its IoC type name.
        require_url_encoding: return URLs ``quote_plus``-encoded.
        require_global: reject non-global IP addresses (secstream addition; default True as in msticpy).

    Returns:
        The sanitised observable (None when rejected) and ``"ok"`` or the reason.
    """
    value = observable.strip()
    if not _validate(value, ioc_type):
        return SanitizedObservable(None, "Observable does not match expected pattern for " + ioc_type)
    if ioc_type == "url":
        return _preprocess_url(value, require_url_encoding)
    if ioc_type == "ipv4":
        return _preprocess_ip(value, 4, require_global)
    if ioc_type == "ipv6":
        return _preprocess_ip(value, 6, require_global)
    if ioc_type in ("dns", "hostname"):
        return _preprocess_dns(value)
    if ioc_type in HASH_TYPES:
        return _preprocess_hash(value)
    return SanitizedObservable(value, "ok")


def _cacheability(result: LookupResult) -> Cacheability:
    if result.status == TILookupStatus.query_failed.value or result.status == TILookupStatus.other.value:
        return Cacheability.never
    if result.result:
        return Cacheability.positive
    return Cacheability.negative


@dataclass(frozen=True, slots=True)
class QueryKey:
    """Cache key of one lookup."""

    ioc: str
    ioc_type: str
    query_type: str | None


class TIProvider(abc.ABC):
    """Abstract base class for threat-intel providers (asynchronous, cached, with sync wrappers).

    Subclasses implement :meth:`_lookup` (one uncached lookup of a checked observable) and
    :meth:`parse_results`, and declare their query keys in ``_IOC_QUERIES`` (``ioc_type`` or
    ``ioc_type-query_type``).

    Args:
        cache_settings: result cache lifetimes and size.
        clock: monotonic clock for the cache.
        name: provider name used in results (default: the class name).
        kwargs: provider-specific settings (ignored by the base class).
    """

    _IOC_QUERIES: ClassVar[Mapping[str, Any]] = {}
    #: IP address checks require global addresses (False for local providers: nothing leaves the host).
    _REQUIRE_GLOBAL_IPS: ClassVar[bool] = True
    _REQUIRE_URL_ENCODING: ClassVar[bool] = False

    def __init__(
        self,
        *,
        cache_settings: CacheSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = name or type(self).__name__
        self.cache: LookupCache[LookupResult] = LookupCache(
            cache_settings or CacheSettings(), _cacheability, clock=clock
        )
        self._preprocess_cache: dict[tuple[str, str], SanitizedObservable] = {}

    # -- metadata --------------------------------------------------------------------------------
    @property
    def ioc_query_defs(self) -> dict[str, Any]:
        """The IoC query/request definitions keyed by query key."""
        return dict(self._IOC_QUERIES)

    @property
    def supported_types(self) -> list[str]:
        """The IoC types this provider supports."""
        return sorted(self._supported)

    @property
    def _supported(self) -> frozenset[str]:
        cached: frozenset[str] | None = self.__dict__.get("_supported_cache")
        if cached is None:
            types = {key.split("-")[0] for key in self._IOC_QUERIES}
            cached = frozenset(t for t in types if t in KNOWN_IOC_TYPES and t != "unknown")
            self.__dict__["_supported_cache"] = cached
        return cached

    @classmethod
    def is_known_type(cls, ioc_type: str) -> bool:
        """Return True if ``ioc_type`` is a known IoC type name."""
        return ioc_type in KNOWN_IOC_TYPES and ioc_type != "unknown"

    def is_supported_type(self, ioc_type: str | Enum) -> bool:
        """Return True if this provider supports the IoC type."""
        name = ioc_type.name if isinstance(ioc_type, Enum) else ioc_type
        return name in self._supported

    @staticmethod
    def resolve_ioc_type(observable: str) -> str:
        """Return the IoC type determined by ``IoCExtract.get_ioc_type`` (``"unknown"`` if none)."""
        return resolve_ioc_type(observable)

    @classmethod
    def usage(cls) -> str:
        """Return a description of the supported query keys."""
        return f"{cls.__name__} queries: " + ", ".join(sorted(cls._IOC_QUERIES))

    # -- checks ----------------------------------------------------------------------------------
    def _preprocess(self, ioc: str, ioc_type: str) -> SanitizedObservable:
        key = (ioc, ioc_type)
        cached = self._preprocess_cache.get(key)
        if cached is None:
            cached = preprocess_observable(
                ioc, ioc_type, self._REQUIRE_URL_ENCODING, require_global=self._REQUIRE_GLOBAL_IPS
            )
            if len(self._preprocess_cache) >= 65536:
                self._preprocess_cache.clear()
            self._preprocess_cache[key] = cached
        return cached

    def _check_ioc_type(self, ioc: str, ioc_type: str | None = None, query_subtype: str | None = None) -> LookupResult:
        """Check the type and format of an observable.

        Returns:
            A result with ``status`` 0 and ``safe_ioc`` set, 1 (type not supported: ``"IoC type <t> not
            supported."``) or 2 (bad format: the sanitiser's message in ``details``).
        """
        if ioc_type is None:
            ioc_type = self.resolve_ioc_type(ioc)
        result = LookupResult(ioc=ioc, ioc_type=ioc_type, query_subtype=query_subtype, provider=self.name)
        if not self.is_supported_type(ioc_type):
            result.details = f"IoC type {ioc_type} not supported."
            result.status = TILookupStatus.not_supported.value
            return result
        clean = self._preprocess(ioc, ioc_type)
        if clean.status != "ok" or clean.observable is None:
            result.details = clean.status
            result.status = TILookupStatus.bad_format.value
            return result
        result.safe_ioc = clean.observable
        return result

    # -- lookups ---------------------------------------------------------------------------------
    def _cache_key(self, ioc: str, ioc_type: str | None, query_type: str | None) -> Hashable:
        return QueryKey(ioc.strip(), ioc_type or "", query_type)

    def cached_result(
        self, ioc: str, ioc_type: str | None = None, query_type: str | None = None
    ) -> LookupResult | None:
        """Return the cached result of a lookup without querying (counts a cache hit or miss).

        Args:
            ioc: the observable.
            ioc_type: its IoC type.
            query_type: the query subtype.

        Returns:
            The cached result or None.
        """
        found, value = self.cache.peek(self._cache_key(ioc, ioc_type, query_type))
        return value if found else None

    async def lookup_ioc_async(
        self,
        ioc: str,
        ioc_type: str | None = None,
        query_type: str | None = None,
        *,
        rate_limit_wait_s: float | None = None,
        cache_checked: bool = False,
        **kwargs: Any,
    ) -> LookupResult:
        """Look up one observable (cached; one request in flight per observable).

        Args:
            ioc: the observable.
            ioc_type: its IoC type (resolved with IoCExtract when omitted).
            query_type: the query subtype (e.g. ``"rep"``, ``"malware"``, ``"whois"``).
            rate_limit_wait_s: the longest to wait for the provider's rate limiter (provider default if
                None).
            cache_checked: the caller has just missed in :meth:`cached_result` (do not count twice).
            kwargs: ignored (msticpy compatibility).

        Returns:
            The lookup result; failures are results with ``status == query_failed``, never exceptions.
        """
        if ioc_type is None:
            ioc_type = self.resolve_ioc_type(ioc)
        key = self._cache_key(ioc, ioc_type, query_type)
        resolved_type = ioc_type

        async def fetch() -> LookupResult:
            checked = self._check_ioc_type(ioc, resolved_type, query_type)
            if checked.status:
                return checked
            return await self._lookup(checked, rate_limit_wait_s)

        return await self.cache.get_or_fetch(key, fetch, peek=not cache_checked)

    @abc.abstractmethod
    async def _lookup(self, checked: LookupResult, rate_limit_wait_s: float | None) -> LookupResult:
        """Perform one uncached lookup of an observable that passed :meth:`_check_ioc_type`."""

    @abc.abstractmethod
    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return ``(result, severity, details)`` for a successful response.

        Args:
            response: the result holding ``raw_result``.
        """

    def lookup_ioc(
        self, ioc: str, ioc_type: str | None = None, query_type: str | None = None, **kwargs: Any
    ) -> LookupResult:
        """Look up one observable synchronously (wrapper of :meth:`lookup_ioc_async`).

        Args:
            ioc: the observable.
            ioc_type: its IoC type (resolved when omitted).
            query_type: the query subtype.
            kwargs: passed to :meth:`lookup_ioc_async`.

        Returns:
            The lookup result.
        """
        return run_sync(self._run_and_release(self.lookup_ioc_async(ioc, ioc_type, query_type, **kwargs)))

    async def _run_and_release(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        finally:
            await self.close()

    async def close(self) -> None:  # noqa: B027 - a default: local providers hold no resources
        """Release network resources (the provider stays usable)."""

    def stats(self) -> dict[str, Any]:
        """Return the provider's counters (cache and, for HTTP providers, requests and limits)."""
        return {"cache": self.cache.stats.as_dict()}
