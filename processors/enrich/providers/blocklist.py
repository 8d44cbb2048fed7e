"""A local threat-intel provider over blocklist files (no network, no rate limit).

Files are CSV (an ``ioc``/``indicator``/``value``/``observable`` column; optional ``ioc_type``/``type``,
``severity`` (``information``/``warning``/``high``, default ``high``), ``description``, ``source``,
``tags``), plain lists (one indicator per line) or STIX 2.1 bundles of indicators with simple equality
patterns: see :mod:`processors.enrich.providers.blocklist_files`. Untyped indicators are typed with
``IoCExtract.get_ioc_type``. A file that cannot be used is one :class:`ConfigError` line naming it.
Supported: IPv4/IPv6 addresses and CIDR networks, domains
(a listed domain also matches its subdomains), URLs (exact, or by a listed host) and MD5/SHA1/SHA256
hashes (case-insensitive).

Observables are matched as given: nothing leaves the host, so non-global addresses (RFC 1918, the
documentation ranges) are looked up too, unlike the HTTP providers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import structlog

from processors.enrich.providers.base import (
    HASH_TYPES,
    LookupResult,
    SanitizedObservable,
    TILookupStatus,
    TIProvider,
    TISeverity,
    resolve_ioc_type,
)
from processors.enrich.providers.blocklist_files import ListedIndicator, read_blocklist_file
from processors.errors import ConfigError

__all__ = ["BlocklistEntry", "LocalBlocklist"]

_log = structlog.get_logger(module=__name__)

_IP_TYPES = frozenset({"ipv4", "ipv6"})
_DNS_TYPES = frozenset({"dns", "hostname"})


@dataclass(frozen=True, slots=True)
class BlocklistEntry:
    """One listed indicator."""

    ioc: str
    ioc_type: str
    severity: TISeverity = TISeverity.high
    description: str = ""
    source: str = ""
    tags: tuple[str, ...] = field(default=())

    def details(self) -> dict[str, Any]:
        """The entry as result details."""
        return {
            "listed": self.ioc,
            "listed_type": self.ioc_type,
            "description": self.description,
            "source": self.source,
            "tags": list(self.tags),
        }


def _norm_domain(value: str) -> str:
    return value.strip().rstrip(".").lower()


class LocalBlocklist(TIProvider):
    """Threat-intel lookups against local blocklist files.

    Args:
        path: one blocklist file (CSV or plain text).
        paths: more blocklist files.
        entries: indicators given directly.
        kwargs: passed to :class:`TIProvider`.

    Raises:
        ConfigError: if a file cannot be read or a CSV file has no ``ioc`` column.
    """

    is_local: ClassVar[bool] = True
    _REQUIRE_GLOBAL_IPS: ClassVar[bool] = False
    _IOC_QUERIES: ClassVar[dict[str, str]] = {
        t: "local"
        for t in ("ipv4", "ipv6", "dns", "hostname", "url", "md5_hash", "sha1_hash", "sha256_hash", "file_hash")
    }

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        paths: Iterable[str | Path] = (),
        entries: Iterable[BlocklistEntry] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "LocalBlocklist")
        super().__init__(**kwargs)
        self.paths = [Path(p) for p in ([path] if path else []) + list(paths)]
        self._extra = list(entries)
        self._ips: dict[str, BlocklistEntry] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, BlocklistEntry]] = []
        self._domains: dict[str, BlocklistEntry] = {}
        self._urls: dict[str, BlocklistEntry] = {}
        self._hashes: dict[str, BlocklistEntry] = {}
        self.reload()

    def __len__(self) -> int:
        return len(self._ips) + len(self._networks) + len(self._domains) + len(self._urls) + len(self._hashes)

    # -- loading ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the blocklist files.

        Raises:
            ConfigError: a file cannot be read or holds an indicator that cannot be listed (one line naming
                the file and the line or object).
        """
        self._ips.clear()
        self._networks.clear()
        self._domains.clear()
        self._urls.clear()
        self._hashes.clear()
        for path in self.paths:
            found = read_blocklist_file(path)
            if found.skipped_patterns:
                _log.warning("blocklist_patterns_skipped", path=str(path), skipped=found.skipped_patterns)
            for listed in found.indicators:
                try:
                    self._add(self._entry(listed))
                except ValueError as err:
                    raise ConfigError(f"{listed.where}: {err}", key=str(path)) from None
        for entry in self._extra:
            self.add(entry)

    @staticmethod
    def _entry(listed: ListedIndicator) -> BlocklistEntry:
        ioc, ioc_type = listed.ioc, listed.ioc_type
        if not ioc_type:
            try:
                ipaddress.ip_network(ioc, strict=False)
                ioc_type = "ipv6" if ":" in ioc else "ipv4"
            except ValueError:
                ioc_type = resolve_ioc_type(ioc)
        severity = TISeverity.parse(listed.severity) if listed.severity else TISeverity.high
        return BlocklistEntry(ioc, ioc_type, severity, listed.description, listed.source, listed.tags)

    def add(self, entry: BlocklistEntry) -> None:
        """Add one indicator to the list.

        Raises:
            ConfigError: if an IP entry is not an address or network.
        """
        try:
            self._add(entry)
        except ValueError as err:
            raise ConfigError(str(err), key=entry.source) from None

    def _add(self, entry: BlocklistEntry) -> None:
        value, kind = entry.ioc.strip(), entry.ioc_type
        if kind in _IP_TYPES:
            try:
                if "/" in value:
                    self._networks.append((ipaddress.ip_network(value, strict=False), entry))
                else:
                    self._ips[str(ipaddress.ip_address(value))] = entry
            except ValueError:
                raise ValueError(f"not an IP address or network: {value[:100]!r}") from None
        elif kind in _DNS_TYPES:
            self._domains[_norm_domain(value)] = entry
        elif kind == "url":
            self._urls[value] = entry
        elif kind in HASH_TYPES:
            self._hashes[value.lower()] = entry

    # -- lookups ---------------------------------------------------------------------------------
    def _preprocess(self, ioc: str, ioc_type: str) -> SanitizedObservable:
        value = ioc.strip()
        return SanitizedObservable(value, "ok") if value else SanitizedObservable(None, "empty observable")

    def match(self, value: str, ioc_type: str) -> BlocklistEntry | None:
        """Return the entry matching an observable, if any.

        Args:
            value: the observable.
            ioc_type: its IoC type.
        """
        if ioc_type in _IP_TYPES:
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                return None
            hit = self._ips.get(str(addr))
            if hit is None:
                hit = next((e for net, e in self._networks if addr.version == net.version and addr in net), None)
            return hit
        if ioc_type in _DNS_TYPES:
            return self._match_domain(_norm_domain(value))
        if ioc_type == "url":
            hit = self._urls.get(value)
            if hit is None:
                host = urlsplit(value).hostname
                if host:
                    hit = self.match(host, "ipv6" if ":" in host else "ipv4") or self._match_domain(_norm_domain(host))
            return hit
        if ioc_type in HASH_TYPES:
            return self._hashes.get(value.lower())
        return None

    def _match_domain(self, domain: str) -> BlocklistEntry | None:
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            hit = self._domains.get(".".join(labels[i:]))
            if hit is not None:
                return hit
        return None

    def lookup_now(self, ioc: str, ioc_type: str | None = None, query_type: str | None = None) -> LookupResult:
        """Look an observable up synchronously (no cache needed: the list is in memory).

        Args:
            ioc: the observable.
            ioc_type: its IoC type (resolved when omitted).
            query_type: must be None (the list has no subtypes).

        Returns:
            The result: ``result`` True with the entry's severity and details when listed.
        """
        checked = self._check_ioc_type(ioc, ioc_type, query_type)
        if checked.status:
            return checked
        if query_type:
            checked.details = f"Provider does not support IoC type {checked.ioc_type}-{query_type}."
            checked.status = TILookupStatus.not_supported.value
            return checked
        entry = self.match(checked.safe_ioc, checked.ioc_type)
        checked.reference = f"blocklist:{entry.source}" if entry else None
        if entry is None:
            checked.details = {"message": "Not listed."}
            return checked
        checked.result = True
        checked.set_severity(entry.severity)
        checked.details = entry.details()
        checked.raw_result = checked.details
        return checked

    def cached_result(self, ioc: str, ioc_type: str | None = None, query_type: str | None = None) -> LookupResult:
        """Return the answer at once (the list is in memory)."""
        return self.lookup_now(ioc, ioc_type, query_type)

    async def lookup_ioc_async(
        self,
        ioc: str,
        ioc_type: str | None = None,
        query_type: str | None = None,
        *,
        rate_limit_wait_s: float | None = None,
        **kwargs: Any,
    ) -> LookupResult:
        """Look an observable up (see :meth:`lookup_now`)."""
        return self.lookup_now(ioc, ioc_type, query_type)

    async def _lookup(self, checked: LookupResult, rate_limit_wait_s: float | None) -> LookupResult:
        return self.lookup_now(checked.ioc, checked.ioc_type, checked.query_subtype)

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return the result's own ``(result, severity, details)`` (nothing to parse)."""
        return response.result, TISeverity.parse(response.severity), response.details
