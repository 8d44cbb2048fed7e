"""GeoIP lookups: MaxMind GeoLite2 databases (local MMDB through geoip2) and the IPStack web service.

msticpy-compatible names (``GeoLiteLookup``, ``IPStackLookup``, ``GeoIpLookup``,
``GeoIPDatabaseException``, ``geo_distance``, ``entity_distance``, ``lookup_ip``/``lookup_ips``/
``df_lookup_ip``) over the engine :class:`processors.enrich.geoip.GeoLiteReader`, with these deliberate
differences from msticpy 1.5:

* **Non-public addresses are reported, not dropped.** A private, loopback, link-local, multicast,
  reserved or unspecified address yields an ``IpAddress`` whose ``Location`` has
  ``CountryName == "<Kind> address"`` (e.g. ``"Private address"``), ``City == "location unknown"``,
  no coordinates, and ``AdditionalData == {"ip_type": "<Kind>"}`` (the raw record is
  ``{"country": {"iso_code": None, "names": {"en": "Private address"}}, "city": {"names": {"en":
  "location unknown"}}, "ip_type": "Private"}``). msticpy meant to do this but never appended the
  placeholder. Public addresses absent from the database are skipped, as in msticpy.
* **The lookup cache works** (bounded, per instance; msticpy's ``dict.get(ip, lookup(ip))`` stored
  nothing).
* The database is ``GeoLite2-City.mmdb`` in the folder (plus ``GeoLite2-ASN.mmdb`` when present, which
  fills ``Asn`` and ``AdditionalData["as_org"]``). It is downloaded only when a licence key is
  configured, when missing, older than 30 days with ``auto_update``, or with ``force_update`` (msticpy
  issue #66); a download is size-capped and checked before it replaces the installed file. No database
  and no key raises :class:`GeoIPDatabaseException` with instructions.
* DataFrames are polars (``AdditionalData`` is JSON text there).
"""

from __future__ import annotations

import abc
import asyncio
import math
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson
import polars as pl

from processors.enrich.geoip import GeoIPDatabaseException, GeoLiteReader, ip_type
from processors.enrich.http import HttpClient, HttpSettings
from processors.enrich.sync import run_sync
from processors.entities import GeoLocation, IpAddress
from processors.errors import EnrichmentError

__all__ = [
    "GeoIPDatabaseException",
    "GeoIpLookup",
    "GeoLiteLookup",
    "IPStackLookup",
    "entity_distance",
    "geo_distance",
    "ip_type",
]


def _location_from_raw(raw: dict[str, Any]) -> GeoLocation:
    country = raw.get("country") or {}
    subdivisions = raw.get("subdivisions") or []
    location = raw.get("location") or {}
    asn = raw.get("asn") or {}
    additional: dict[str, Any] = {}
    if raw.get("ip_type"):
        additional["ip_type"] = raw["ip_type"]
    if asn.get("autonomous_system_organization"):
        additional["as_org"] = asn["autonomous_system_organization"]
    number = asn.get("autonomous_system_number")
    return GeoLocation(
        CountryCode=country.get("iso_code"),
        CountryName=(country.get("names") or {}).get("en"),
        State=((subdivisions[0].get("names") or {}).get("en") if subdivisions else None),
        City=((raw.get("city") or {}).get("names") or {}).get("en"),
        Longitude=location.get("longitude"),
        Latitude=location.get("latitude"),
        Asn=str(number) if number is not None else None,
        AdditionalData=additional,
    )


def _as_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    return pl.from_pandas(data)


_LOCATION_SCHEMA: dict[str, Any] = {
    "CountryCode": pl.String,
    "CountryName": pl.String,
    "State": pl.String,
    "City": pl.String,
    "Longitude": pl.Float64,
    "Latitude": pl.Float64,
    "Asn": pl.String,
    "TimeGenerated": pl.Datetime("us", "UTC"),
    "Type": pl.String,
    "AdditionalData": pl.String,
    "IpAddress": pl.String,
}


class GeoIpLookup(abc.ABC):
    """Abstract base class for GeoIP lookup classes."""

    @abc.abstractmethod
    def lookup_ip(
        self,
        ip_address: str | None = None,
        ip_addr_list: Iterable[str] | None = None,
        ip_entity: IpAddress | None = None,
    ) -> tuple[list[Any], list[IpAddress]]:
        """Look IP locations up.

        Args:
            ip_address: a single address.
            ip_addr_list: a collection of addresses.
            ip_entity: an IpAddress entity (its ``Location`` is overwritten).

        Returns:
            Raw geolocation results and the same results as IpAddress entities with ``Location`` set.
        """

    @staticmethod
    def _collect(ip_address: str | None, ip_addr_list: Iterable[str] | None, ip_entity: IpAddress | None) -> list[str]:
        if ip_address is not None:
            addresses = [ip_address.strip()]
        elif ip_addr_list is not None:
            addresses = [str(ip).strip() for ip in ip_addr_list if ip is not None]
        elif ip_entity is not None:
            addresses = [ip_entity.Address.strip()]
        else:
            addresses = []
        addresses = [a for a in addresses if a]
        if not addresses:
            raise ValueError("No valid ip addresses were passed as arguments.")
        return addresses

    def lookup_ips(self, data: Any, column: str) -> pl.DataFrame:
        """Look up the addresses in a DataFrame column.

        Args:
            data: polars or pandas DataFrame.
            column: the column holding the addresses.

        Returns:
            One row per located address: the location properties plus ``IpAddress``.
        """
        frame = _as_polars(data)
        addresses = [a for a in frame[column].drop_nulls().unique(maintain_order=True).to_list() if str(a).strip()]
        if not addresses:
            return pl.DataFrame(schema=_LOCATION_SCHEMA)
        _, entities = self.lookup_ip(ip_addr_list=[str(a) for a in addresses])
        rows = []
        for ent in entities:
            if ent.Location is None:
                continue
            props = ent.Location.properties
            props["AdditionalData"] = orjson.dumps(props["AdditionalData"]).decode()
            props["IpAddress"] = ent.Address
            rows.append(props)
        return pl.DataFrame(rows, schema=_LOCATION_SCHEMA)

    def df_lookup_ip(self, data: Any, column: str) -> pl.DataFrame:
        """Return the DataFrame with location columns appended (left join on ``column == IpAddress``).

        Args:
            data: polars or pandas DataFrame.
            column: the column holding the addresses.
        """
        frame = _as_polars(data)
        locations = self.lookup_ips(frame, column)
        return frame.join(locations, left_on=column, right_on="IpAddress", how="left", maintain_order="left")


class GeoLiteLookup(GeoLiteReader, GeoIpLookup):
    """GeoIP lookup in MaxMind GeoLite2 databases (the engine's reader with msticpy's API).

    Args: see :class:`processors.enrich.geoip.GeoLiteReader`.

    Raises:
        GeoIPDatabaseException: no database present and none could be downloaded.
    """

    def lookup_ip(
        self,
        ip_address: str | None = None,
        ip_addr_list: Iterable[str] | None = None,
        ip_entity: IpAddress | None = None,
    ) -> tuple[list[Any], list[IpAddress]]:
        """Look IP locations up in the GeoLite2 database.

        Args:
            ip_address: a single address.
            ip_addr_list: a collection of addresses.
            ip_entity: an IpAddress entity (its ``Location`` is overwritten).

        Returns:
            Raw records and IpAddress entities with ``Location`` set (non-public addresses included as
            placeholders; invalid addresses and public ones missing from the database skipped).

        Raises:
            ValueError: no address given.
        """
        raw_list: list[Any] = []
        entities: list[IpAddress] = []
        for address in self._collect(ip_address, ip_addr_list, ip_entity):
            raw = self.lookup_raw(address)
            if raw is None:
                continue
            raw_list.append(raw)
            entity = ip_entity if ip_entity is not None else IpAddress(Address=address)
            entity.Location = _location_from_raw(raw)
            entities.append(entity)
        return raw_list, entities


class IPStackLookup(GeoIpLookup):
    """GeoIP lookup with the IPStack web service (aiohttp).

    Args:
        api_key: IPStack access key (default ``SECSTREAM_IPSTACK_AUTHKEY``).
        bulk_lookup: send the addresses in one request (paid tiers).
        base_url: service URL (tests point it at a local server).
        timeout_s: request timeout.

    Raises:
        GeoIPDatabaseException: no access key configured.
    """

    def __init__(
        self,
        api_key: str | None = None,
        bulk_lookup: bool = False,
        *,
        base_url: str = "http://api.ipstack.com",
        timeout_s: float = 10.0,
    ) -> None:
        self._api_key = api_key or os.environ.get("SECSTREAM_IPSTACK_AUTHKEY")
        if not self._api_key:
            raise GeoIPDatabaseException("IPStack needs an access key (api_key or SECSTREAM_IPSTACK_AUTHKEY)")
        self.bulk_lookup = bulk_lookup
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        # The shared client: size-capped answers, no redirect to another origin (the key is in the query).
        self._http = HttpClient(HttpSettings(timeout_s=timeout_s, max_retries=1), provider="IPStack")

    def __repr__(self) -> str:
        return f"IPStackLookup(base_url={self.base_url!r}, bulk_lookup={self.bulk_lookup})"

    async def _fetch(self, addresses: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/{quote(addresses, safe=',')}"
        params = {"access_key": self._api_key or "", "output": "json"}
        try:
            resp = await self._http.request("GET", url, params=params)
        except EnrichmentError as err:
            raise ConnectionError(f"IPStack request failed: {err.reason}") from None
        if resp.status != 200:
            raise ConnectionError(f"IPStack request failed: HTTP {resp.status}")
        try:
            data = resp.json()
        except orjson.JSONDecodeError:
            raise ConnectionError("IPStack answer is not JSON") from None
        records = data if isinstance(data, list) else [data]
        for record in records:
            if isinstance(record, dict) and record.get("success") is False:
                error = record.get("error") or {}
                raise PermissionError(f"IPStack refused the request: {error.get('type', 'unknown error')}")
        return [r for r in records if isinstance(r, dict)]

    async def lookup_ip_async(
        self,
        ip_address: str | None = None,
        ip_addr_list: Iterable[str] | None = None,
        ip_entity: IpAddress | None = None,
    ) -> tuple[list[Any], list[IpAddress]]:
        """Look IP locations up in IPStack (see :meth:`lookup_ip`)."""
        addresses = self._collect(ip_address, ip_addr_list, ip_entity)
        try:
            if self.bulk_lookup:
                raw_list = await self._fetch(",".join(addresses))
            else:
                batches = await asyncio.gather(*(self._fetch(a) for a in addresses))
                raw_list = [r for batch in batches for r in batch]
        finally:
            await self._http.close()
        entities = []
        for raw in raw_list:
            location = GeoLocation(
                CountryCode=raw.get("country_code"),
                CountryName=raw.get("country_name"),
                State=raw.get("region_name"),
                City=raw.get("city"),
                Longitude=raw.get("longitude"),
                Latitude=raw.get("latitude"),
                Asn=str((raw.get("connection") or {}).get("asn")) if (raw.get("connection") or {}).get("asn") else None,
            )
            entity = ip_entity if ip_entity is not None else IpAddress(Address=str(raw.get("ip", "")))
            entity.Location = location
            entities.append(entity)
        return raw_list, entities

    def lookup_ip(
        self,
        ip_address: str | None = None,
        ip_addr_list: Iterable[str] | None = None,
        ip_entity: IpAddress | None = None,
    ) -> tuple[list[Any], list[IpAddress]]:
        """Look IP locations up in IPStack.

        Args:
            ip_address: a single address.
            ip_addr_list: a collection of addresses.
            ip_entity: an IpAddress entity (its ``Location`` is overwritten).

        Returns:
            Raw records and IpAddress entities with ``Location`` set.

        Raises:
            ValueError: no address given.
            ConnectionError: the service answered with an HTTP error.
            PermissionError: the service refused the request (e.g. bulk lookup on a free key).
        """
        return run_sync(self.lookup_ip_async(ip_address, ip_addr_list, ip_entity))


def geo_distance(origin: tuple[float, float], destination: tuple[float, float]) -> float:
    """Return the haversine distance in kilometres (Earth radius 6371 km).

    Args:
        origin: (latitude, longitude) of the origin.
        destination: (latitude, longitude) of the destination.

    Returns:
        Distance in kilometres.

    Examples:
        >>> round(geo_distance((48.1372, 11.5756), (52.5186, 13.4083)), 1)  # Munich → Berlin
        504.2
    """
    lat1, lon1 = map(math.radians, origin)
    lat2, lon2 = map(math.radians, destination)
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


def entity_distance(ip_src: IpAddress, ip_dest: IpAddress) -> float:
    """Return the distance in kilometres between two located IpAddress entities.

    Args:
        ip_src: origin entity.
        ip_dest: destination entity.

    Raises:
        AttributeError: if either entity has no location or no coordinates.
    """
    points = []
    for entity in (ip_src, ip_dest):
        loc = entity.Location
        if loc is None or loc.Latitude is None or loc.Longitude is None:
            raise AttributeError(f"IpAddress {entity.Address} has no location coordinates")
        points.append((loc.Latitude, loc.Longitude))
    return geo_distance(points[0], points[1])
