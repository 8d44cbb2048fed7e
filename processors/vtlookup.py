"""VirusTotal API v2 batch lookups: msticpy's ``VTLookup`` on secstream's async HTTP layer.

``VTLookup(vtkey, verbosity=1)`` keeps msticpy's public names (``lookup_iocs``, ``lookup_ioc``,
``supported_ioc_types``, ``supported_vt_types``, ``ioc_vt_type_mapping``, ``results``, ``VTParams``,
``DuplicateStatus``), parameters and result columns. Requests go through
:class:`processors.enrich.http.HttpClient` (timeouts, retries with backoff, circuit breaker), a
:class:`processors.enrich.ratelimit.RateLimiter` (default: the public-key budget of 4 requests a minute
and 500 a day) and a :class:`processors.enrich.cache.LookupCache` (TTL, negative caching, failures
never cached). File hashes are sent 25 to a request, as in msticpy.

Deliberate differences from msticpy 1.5 (each has a test stating the better answer):

* ``sha256_hash`` is supported. msticpy listed ``"sh256_hash"`` (a typo), so real SHA-256 observables
  raised ``LookupError``; the misspelt name is still accepted as an alias.
* One ``Resource`` column. msticpy's result frame had two columns named ``Resource`` (always equal);
  a polars frame cannot, and nothing is lost.
* Results come back in input order, and ``lookup_iocs`` / ``lookup_ioc`` return only the rows of the
  call; ``results`` still accumulates every row (it is what duplicate detection looks at).
  msticpy returned the cumulative frame, grouped by IoC type.
* Identical observables in one call are sent once (later rows are ``"Duplicate"`` copies); msticpy sent
  duplicates that fell in the same batch. Hash duplicates match any of MD5/SHA1/SHA256 of earlier
  results for every hash type (msticpy only for the misspelt type, i.e. never for SHA-256).
* An invalid observable given to ``lookup_ioc`` yields a row whose ``Status`` says why, as in
  ``lookup_iocs`` (msticpy raised ``SyntaxError``); an unknown IoC type raises ``KeyError``.
* Transport failures (timeout, provider down, rate limit or daily quota reached) give
  ``"Failed submission: <reason>"`` rows instead of exceptions; HTTP errors give msticpy's
  ``"Failed submission: http error <code>"``.
* Status messages go to the structured log, never to stdout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import orjson
import polars as pl
import structlog

from processors.enrich.cache import Cacheability, CacheSettings, LookupCache
from processors.enrich.http import HttpClient, HttpSettings
from processors.enrich.providers.base import preprocess_observable
from processors.enrich.ratelimit import RateLimiter, RateLimits
from processors.enrich.sync import run_sync
from processors.errors import EnrichmentError

__all__ = [
    "VT_PUBLIC_LIMITS",
    "DuplicateStatus",
    "VTLookup",
    "VTParams",
]

_log = structlog.get_logger(module=__name__)

T = TypeVar("T")

#: The VirusTotal public API budget: 4 requests a minute, 500 a day.
VT_PUBLIC_LIMITS = RateLimits(per_minute=4, burst=4, daily_quota=500, max_concurrency=4)


class VTParams(NamedTuple):
    """VirusTotal v2 request parameters of one API type."""

    api_type: str
    batch_size: int
    batch_delimiter: str
    http_verb: str
    api_var_name: str
    headers: dict[str, str] | None


class DuplicateStatus(NamedTuple):
    """Whether an observable duplicates an earlier result, and a status message."""

    is_dup: bool
    status: str


@dataclass(frozen=True, slots=True)
class _Pending:
    """One input row waiting for its VirusTotal answer."""

    observable: str
    ioc_type: str
    source_index: Any


_HDR_GZIP = {"Accept-Encoding": "gzip, deflate"}

_STRING_COLUMNS = (
    "Observable",
    "IoCType",
    "Status",
    "RawResponse",
    "Resource",
    "VerboseMsg",
    "ScanId",
    "Permalink",
    "MD5",
    "SHA1",
    "SHA256",
    "ResolvedDomains",
    "ResolvedIPs",
    "DetectedUrls",
)


class VTLookup:
    """VTLookup: VirusTotal (API v2) lookup of IoC reports.

    Main methods are ``lookup_iocs()`` (many observables in a polars or pandas DataFrame) and
    ``lookup_ioc()`` (one observable). ``supported_ioc_types`` lists the accepted IoC types and
    ``ioc_vt_type_mapping`` maps them to VirusTotal types. URLs may be full requests; MD5, SHA1 and
    SHA256 file hashes are supported; IP addresses must be dotted IPv4.

    Args:
        vtkey: VirusTotal API key.
        verbosity: 0 = no status messages, 1 = minimal (default), 2 = verbose (sent to the log).
        base_url: API root (tests point it at a local server).
        http_client: shared HTTP client (one is created if omitted).
        http_settings: settings of the client created when ``http_client`` is omitted.
        rate_limits: request budget (default: the public-key budget); None for unlimited.
        max_wait_s: longest wait for a rate-limit token before a request fails as rate limited.
        cache: shared lookup cache (one is created if omitted).
        cache_settings: settings of the cache created when ``cache`` is omitted.
    """

    _SUPPORTED_INPUT_TYPES: ClassVar[list[str]] = ["ipv4", "dns", "url", "md5_hash", "sha1_hash", "sha256_hash"]
    #: msticpy's misspelt type name, accepted as an alias of ``sha256_hash``.
    _TYPE_ALIASES: ClassVar[dict[str, str]] = {"sh256_hash": "sha256_hash"}
    _VT_TYPE_MAP: ClassVar[dict[str, str]] = {
        "ipv4": "ip-address",
        "dns": "domain",
        "url": "url",
        "md5_hash": "file",
        "sha1_hash": "file",
        "sha256_hash": "file",
        "sh256_hash": "file",
    }
    _VT_API_PATH: ClassVar[str] = "/vtapi/v2/{type}/report"
    _VT_API_TYPES: ClassVar[dict[str, VTParams]] = {
        "url": VTParams("url", 1, "\n", "get", "resource", _HDR_GZIP),
        "file": VTParams("file", 25, ",", "get", "resource", _HDR_GZIP),
        "ip-address": VTParams("ip-address", 1, "", "get", "ip", None),
        "domain": VTParams("domain", 1, "", "get", "domain", None),
    }
    #: msticpy's result columns, with its duplicated ``Resource`` column kept once.
    _RESULT_COLUMNS: ClassVar[list[str]] = [
        "Observable",
        "IoCType",
        "Status",
        "ResponseCode",
        "RawResponse",
        "Resource",
        "SourceIndex",
        "VerboseMsg",
        "ScanId",
        "Permalink",
        "Positives",
        "MD5",
        "SHA1",
        "SHA256",
        "ResolvedDomains",
        "ResolvedIPs",
        "DetectedUrls",
    ]
    _HASH_TYPES: ClassVar[frozenset[str]] = frozenset({"md5_hash", "sha1_hash", "sha256_hash"})

    def __init__(
        self,
        vtkey: str,
        verbosity: int = 1,
        *,
        base_url: str = "https://www.virustotal.com",
        http_client: HttpClient | None = None,
        http_settings: HttpSettings | None = None,
        rate_limits: RateLimits | None = VT_PUBLIC_LIMITS,
        max_wait_s: float = 60.0,
        cache: LookupCache[dict[str, Any]] | None = None,
        cache_settings: CacheSettings | None = None,
    ) -> None:
        self._vtkey = vtkey
        self._verbosity = verbosity
        self.base_url = base_url.rstrip("/")
        self._owns_client = http_client is None
        self._client = http_client or HttpClient(http_settings, provider="VirusTotal")
        self._limits = rate_limits
        self._limiter = RateLimiter(rate_limits, provider="VirusTotal") if rate_limits is not None else None
        self._max_wait_s = max_wait_s
        self._cache: LookupCache[dict[str, Any]] = cache or LookupCache(
            cache_settings or CacheSettings(), _cacheability
        )
        self._result_rows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------
    # msticpy properties

    @property
    def supported_ioc_types(self) -> list[str]:
        """Return the list of supported IoC type names (``sh256_hash`` is also accepted)."""
        return list(self._SUPPORTED_INPUT_TYPES)

    @property
    def supported_vt_types(self) -> list[str]:
        """Return the list of VirusTotal IoC type names."""
        return list(self._VT_API_TYPES)

    @property
    def ioc_vt_type_mapping(self) -> dict[str, str]:
        """Return the mapping of IoC type names to VirusTotal type names."""
        return dict(self._VT_TYPE_MAP)

    @property
    def results(self) -> pl.DataFrame:
        """Every result row of this instance so far (the frame duplicates are looked up in)."""
        return self._frame(self._result_rows)

    @property
    def cache(self) -> LookupCache[dict[str, Any]]:
        """The lookup cache (its ``stats`` count hits, misses and fetches)."""
        return self._cache

    # ------------------------------------------------------------------------------------------
    # Public lookups

    def lookup_iocs(
        self,
        data: Any,
        src_col: str = "Observable",
        type_col: str = "IoCType",
        src_index_col: str = "SourceIndex",
        **kwargs: str,
    ) -> pl.DataFrame:
        """Retrieve results for the IoC observables in a DataFrame.

        Rows whose type (after ``kwargs`` mapping) is not a supported IoC type are ignored, as in
        msticpy. Each observable is checked first (invalid ones get a row whose ``Status`` says why);
        duplicates get ``"Duplicate"`` copies of the earlier result; the rest are sent to VirusTotal,
        file hashes 25 to a request.

        Args:
            data: polars or pandas DataFrame with one observable per row.
            src_col: column holding the observables.
            type_col: column holding the IoC types.
            src_index_col: column used as ``SourceIndex`` in the output; if absent, the row position
                (pandas: the index) is used.
            **kwargs: extra type-name mappings, e.g. ``ipv4="ipaddress"`` when the data tags IPv4
                addresses as ``ipaddress``.

        Returns:
            The result rows of this call, in input order (polars).

        Raises:
            KeyError: if ``src_col`` or ``type_col`` is not in the data.
        """
        return run_sync(self._closing(self.lookup_iocs_async(data, src_col, type_col, src_index_col, **kwargs)))

    async def lookup_iocs_async(
        self,
        data: Any,
        src_col: str = "Observable",
        type_col: str = "IoCType",
        src_index_col: str = "SourceIndex",
        **kwargs: str,
    ) -> pl.DataFrame:
        """Async variant of :meth:`lookup_iocs` (same arguments and result)."""
        frame, index = _to_polars(data)
        for column in (src_col, type_col):
            if column not in frame.columns:
                raise KeyError(f"column {column!r} not found in data")
        type_map = {t: t for t in self._VT_TYPE_MAP}
        for ioc_type, data_name in kwargs.items():
            canonical = self._TYPE_ALIASES.get(ioc_type, ioc_type)
            if canonical in self._VT_TYPE_MAP:
                type_map[data_name] = canonical
        sources = frame[src_index_col].to_list() if src_index_col in frame.columns else index
        items: list[tuple[Any, str, Any]] = []
        for obs, data_type, source in zip(frame[src_col].to_list(), frame[type_col].to_list(), sources, strict=True):
            mapped = type_map.get(data_type) if isinstance(data_type, str) else None
            if mapped is not None:
                items.append((obs, self._TYPE_ALIASES.get(mapped, mapped), source))
        rows = await self._lookup_items(items)
        self._status(f"Submission complete. {len(rows)} responses from {frame.height} input rows", 2)
        return self._frame(rows)

    def lookup_ioc(self, observable: str, ioc_type: str, output: str = "dict") -> Any:
        """Look up a single IoC observable.

        Args:
            observable: the observable value.
            ioc_type: its IoC type (see ``supported_ioc_types``).
            output: ``"dict"`` returns the result row as a dict (a list of dicts if there are several);
                any other value returns a polars DataFrame.

        Returns:
            The result as dict(s) or DataFrame.

        Raises:
            KeyError: if ``ioc_type`` is not supported.
        """
        return run_sync(self._closing(self.lookup_ioc_async(observable, ioc_type, output)))

    async def lookup_ioc_async(self, observable: str, ioc_type: str, output: str = "dict") -> Any:
        """Async variant of :meth:`lookup_ioc` (same arguments and result)."""
        canonical = self._TYPE_ALIASES.get(ioc_type, ioc_type)
        if canonical not in self._VT_TYPE_MAP:
            raise KeyError(
                f"IoC Type {ioc_type} not recognized. Valid types are [{', '.join(self.supported_ioc_types)}]"
            )
        rows = await self._lookup_items([(observable, canonical, 0)])
        if output == "dict":
            return rows[0] if len(rows) == 1 else rows
        return self._frame(rows)

    async def close(self) -> None:
        """Close the HTTP session of an owned client (after using the ``*_async`` methods)."""
        if self._owns_client:
            await self._client.close()

    # ------------------------------------------------------------------------------------------
    # Core

    async def _closing(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` and close an owned HTTP session (the next call opens a fresh one)."""
        try:
            return await coro
        finally:
            if self._owns_client:
                await self._client.close()

    async def _lookup_items(self, items: list[tuple[Any, str, Any]]) -> list[dict[str, Any]]:
        """Check, deduplicate, batch and submit ``(observable, ioc_type, source_index)`` items."""
        slots: list[dict[str, Any] | list[dict[str, Any]] | _Pending] = []
        first_seen: dict[tuple[str, str], _Pending] = {}
        pending_by_api: dict[str, list[_Pending]] = {}
        for obs, ioc_type, source in items:
            if obs is None or not str(obs).strip():
                status = "Failed: Empty or missing observable value"
                self._status(f"{status} (Source index {source})", 1)
                slots.append(self._invalid_row(obs, ioc_type, status, source))
                continue
            sanitized = preprocess_observable(str(obs), ioc_type)
            if sanitized.observable is None:
                self._status(f'Invalid observable "{obs}", type "{ioc_type}": {sanitized.status}', 2)
                slots.append(self._invalid_row(str(obs), ioc_type, sanitized.status, source))
                continue
            value = sanitized.observable
            dup_rows = self._previous_results(value, ioc_type, source)
            if dup_rows:
                slots.append(dup_rows)
                continue
            key = (ioc_type if ioc_type not in self._HASH_TYPES else "hash", _norm(value, ioc_type))
            earlier = first_seen.get(key)
            if earlier is not None:
                slots.append(_Pending(value, ioc_type, source))
                continue
            item = _Pending(value, ioc_type, source)
            first_seen[key] = item
            pending_by_api.setdefault(self._VT_TYPE_MAP[ioc_type], []).append(item)
            slots.append(item)
        answers: dict[int, dict[str, Any]] = {}
        await self._submit_all(pending_by_api, answers)
        rows: list[dict[str, Any]] = []
        first_rows: dict[tuple[str, str], dict[str, Any]] = {}
        for slot in slots:
            if isinstance(slot, dict):
                rows.append(slot)
            elif isinstance(slot, list):
                rows.extend(slot)
            else:
                key = (
                    slot.ioc_type if slot.ioc_type not in self._HASH_TYPES else "hash",
                    _norm(slot.observable, slot.ioc_type),
                )
                if first_seen[key] is slot:
                    row = answers[id(slot)]
                    first_rows[key] = row
                    rows.append(row)
                else:
                    original = first_rows[key]
                    rows.append(
                        {
                            **original,
                            "Observable": slot.observable,
                            "SourceIndex": slot.source_index,
                            "Status": "Duplicate",
                        }
                    )
        self._result_rows.extend(rows)
        return rows

    def _previous_results(self, observable: str, ioc_type: str, source: Any) -> list[dict[str, Any]]:
        """Return ``Duplicate`` copies of earlier results (same observable, or same hash in any hash column)."""
        status = self._check_duplicate_submission(observable, ioc_type)
        if not status.is_dup:
            return []
        return [
            {**row, "Observable": observable, "SourceIndex": source, "Status": "Duplicate"}
            for row in self._matching_rows(observable, ioc_type)
        ]

    def _matching_rows(self, observable: str, ioc_type: str) -> list[dict[str, Any]]:
        matches = [r for r in self._result_rows if r["Observable"] == observable and r["Status"] != "Duplicate"]
        if not matches and ioc_type in self._HASH_TYPES:
            low = observable.lower()
            matches = [
                r
                for r in self._result_rows
                if r["Status"] == "Success" and low in {str(r.get(c) or "").lower() for c in ("MD5", "SHA1", "SHA256")}
            ]
        return matches

    def _check_duplicate_submission(self, observable: str, ioc_type: str) -> DuplicateStatus:
        """Tell whether ``observable`` already has a result on this instance."""
        matches = self._matching_rows(observable, ioc_type)
        if not matches:
            return DuplicateStatus(is_dup=False, status="ok")
        return DuplicateStatus(is_dup=True, status=f"Duplicates of {[r['SourceIndex'] for r in matches]}")

    async def _submit_all(self, pending_by_api: dict[str, list[_Pending]], answers: dict[int, dict[str, Any]]) -> None:
        """Send every pending item (cache first, then batches) and fill ``answers`` by item id."""
        concurrency = self._limits.max_concurrency if self._limits is not None else 8
        gate = asyncio.Semaphore(max(1, concurrency))
        batches: list[tuple[VTParams, list[_Pending]]] = []
        for api_type, pending in pending_by_api.items():
            params = self._VT_API_TYPES[api_type]
            uncached: list[_Pending] = []
            for item in pending:
                found, cached = self._cache.peek(self._cache_key(api_type, item))
                if found and cached is not None:
                    answers[id(item)] = self._success_row(item, cached)
                else:
                    uncached.append(item)
            for start in range(0, len(uncached), params.batch_size):
                batches.append((params, uncached[start : start + params.batch_size]))

        async def run(params: VTParams, batch: list[_Pending]) -> None:
            async with gate:
                await self._submit_batch(params, batch, answers)

        await asyncio.gather(*(run(p, b) for p, b in batches))

    def _cache_key(self, api_type: str, item: _Pending) -> Hashable:
        return ("vt2", api_type, _norm(item.observable, item.ioc_type))

    async def _submit_batch(self, params: VTParams, batch: list[_Pending], answers: dict[int, dict[str, Any]]) -> None:
        submission = params.batch_delimiter.join(item.observable for item in batch)
        self._status(f'Submitting observables: "{submission}", type "{params.api_type}" to VT.', 2)
        try:
            if self._limiter is not None:
                await self._limiter.acquire(self._max_wait_s)
            response = await self._client.request(
                params.http_verb.upper(),
                self.base_url + self._VT_API_PATH.format(type=params.api_type),
                params={"apikey": self._vtkey, params.api_var_name: submission},
                headers={"Content-Type": "application/json", **(params.headers or {})},
            )
        except EnrichmentError as err:
            self._fail(batch, f"Failed submission: {err.reason}", answers)
            return
        if response.status != 200:
            self._fail(batch, f"Failed submission: http error {response.status}", answers)
            return
        try:
            body = response.redacted([self._vtkey]).json()
        except orjson.JSONDecodeError:
            self._fail(batch, "Failed submission: response is not JSON", answers)
            return
        for item, result in self._pair_results(batch, body):
            if result is None:
                answers[id(item)] = self._invalid_row(
                    item.observable, item.ioc_type, "Failed submission: no result in response", item.source_index
                )
                continue
            self._cache.store(self._cache_key(params.api_type, item), result)
            answers[id(item)] = self._success_row(item, result)

    @staticmethod
    def _pair_results(batch: list[_Pending], body: Any) -> list[tuple[_Pending, dict[str, Any] | None]]:
        """Match each submitted item with its result (by ``resource`` when given, else by position)."""
        results: list[dict[str, Any]] = []
        if isinstance(body, dict):
            results = [body]
        elif isinstance(body, list):
            results = [r for r in body if isinstance(r, dict)]
        if len(batch) == 1:
            return [(batch[0], results[0] if results else None)]
        by_resource = {str(r.get("resource", "")).lower(): r for r in results if r.get("resource")}
        paired = []
        for position, item in enumerate(batch):
            result = by_resource.get(item.observable.lower())
            if result is None and position < len(results) and not results[position].get("resource"):
                result = results[position]
            paired.append((item, result))
        return paired

    def _fail(self, batch: list[_Pending], status: str, answers: dict[int, dict[str, Any]]) -> None:
        self._status(f"{status} ({len(batch)} observables)", 1)
        for item in batch:
            answers[id(item)] = self._invalid_row(item.observable, item.ioc_type, status, item.source_index)

    # ------------------------------------------------------------------------------------------
    # Rows

    def _empty_row(self) -> dict[str, Any]:
        return dict.fromkeys(self._RESULT_COLUMNS)

    def _invalid_row(self, observable: Any, ioc_type: str, status: str, source: Any) -> dict[str, Any]:
        row = self._empty_row()
        row.update(Observable=observable, IoCType=ioc_type, Status=status, SourceIndex=source)
        return row

    def _success_row(self, item: _Pending, result: Mapping[str, Any]) -> dict[str, Any]:
        row = self._empty_row()
        row.update(_parse_single_result(result, item.ioc_type))
        row.update(
            Observable=item.observable,
            IoCType=item.ioc_type,
            Status="Success",
            RawResponse=orjson.dumps(result).decode(),
            SourceIndex=item.source_index,
        )
        return row

    def _frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        schema: dict[str, Any] = dict.fromkeys(_STRING_COLUMNS, pl.String)
        schema.update(ResponseCode=pl.Int64, Positives=pl.Int64)
        sources = [row.get("SourceIndex") for row in rows]
        source_type = _source_dtype(sources)
        columns = {
            name: pl.Series(name, [row.get(name) for row in rows], dtype=schema.get(name, source_type), strict=False)
            for name in self._RESULT_COLUMNS
            if name != "SourceIndex"
        }
        columns["SourceIndex"] = pl.Series(
            "SourceIndex",
            [s if source_type != pl.String or s is None else str(s) for s in sources],
            dtype=source_type,
            strict=False,
        )
        return pl.DataFrame([columns[name] for name in self._RESULT_COLUMNS])

    def _status(self, message: str, level: int) -> None:
        if self._verbosity >= level:
            _log.info("vtlookup", message=message)


# ---------------------------------------------------------------------------------------------------
# Helpers


def _cacheability(result: dict[str, Any]) -> Cacheability:
    """A VT v2 answer with ``response_code == 1`` is a positive entry; anything else is negative."""
    return Cacheability.positive if result.get("response_code") == 1 else Cacheability.negative


def _norm(observable: str, ioc_type: str) -> str:
    return observable.lower() if ioc_type in VTLookup._HASH_TYPES else observable


def _source_dtype(values: Iterable[Any]) -> Any:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int}:
        return pl.Int64
    if kinds and kinds <= {int, float}:
        return pl.Float64
    return pl.String


def _to_polars(data: Any) -> tuple[pl.DataFrame, list[Any]]:
    """Return the data as polars plus the source index (pandas index labels, else row positions)."""
    if isinstance(data, pl.DataFrame):
        return data, list(range(data.height))
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        index = list(data.index)
        return pl.from_pandas(data.reset_index(drop=True)), index
    raise TypeError(f"expected a polars or pandas DataFrame, got {type(data).__name__}")


def _joined(items: Any, key: str) -> str | None:
    if not isinstance(items, list):
        return None
    return ", ".join(str(item[key]) for item in items if isinstance(item, dict) and key in item)


def _parse_single_result(result: Mapping[str, Any], ioc_type: str) -> dict[str, Any]:
    """Extract msticpy's result columns from one VT v2 report.

    url/hash reports: ``ResponseCode, VerboseMsg, ScanId, Resource, Permalink, Positives`` (+ ``MD5,
    SHA1, SHA256`` for hashes). ip/domain reports: ``ResponseCode, VerboseMsg``, ``ResolvedDomains``
    (ipv4) or ``ResolvedIPs`` (dns) joined with ``", "``, ``DetectedUrls`` and ``Positives`` = the sum
    of the ``positives`` of every detected URL (no 30-day window, as in msticpy's VTLookup).
    """
    row: dict[str, Any] = {
        "ResponseCode": _as_int(result.get("response_code")),
        "VerboseMsg": _as_str(result.get("verbose_msg")),
    }
    if ioc_type in ("url", "md5_hash", "sha1_hash", "sha256_hash"):
        row.update(
            ScanId=_as_str(result.get("scan_id")),
            Resource=_as_str(result.get("resource")),
            Permalink=_as_str(result.get("permalink")),
            Positives=_as_int(result.get("positives")),
        )
        if ioc_type != "url":
            row.update(
                MD5=_as_str(result.get("md5")), SHA1=_as_str(result.get("sha1")), SHA256=_as_str(result.get("sha256"))
            )
    elif ioc_type in ("ipv4", "dns"):
        resolutions = result.get("resolutions")
        if ioc_type == "ipv4":
            row["ResolvedDomains"] = _joined(resolutions, "hostname")
        else:
            row["ResolvedIPs"] = _joined(resolutions, "ip_address")
        detected = result.get("detected_urls")
        if isinstance(detected, list):
            row["DetectedUrls"] = _joined(detected, "url")
            row["Positives"] = sum(
                int(item["positives"])
                for item in detected
                if isinstance(item, dict) and isinstance(item.get("positives"), int)
            )
    return row


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)
