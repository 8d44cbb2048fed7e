"""GeoIP lookups: MaxMind GeoLite2 databases (local MMDB through geoip2) and the IPStack web service.

msticpy-compatible names (``GeoLiteLookup``, ``IPStackLookup``, ``GeoIpLookup``,
``GeoIPDatabaseException``, ``geo_distance``, ``entity_distance``, ``lookup_ip``/``lookup_ips``/
``df_lookup_ip``) with these deliberate differences from msticpy 1.5:

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
  configured (``api_key`` or ``SECSTREAM_MAXMIND_LICENSE_KEY``; with ``account_id`` /
  ``SECSTREAM_MAXMIND_ACCOUNT_ID`` the current basic-auth URL is used), when missing, older than 30 days
  with ``auto_update``, or with ``force_update`` (msticpy issue #66). Archives are extracted safely
  (only ``.mmdb`` regular files, flattened, atomically replaced). No database and no key raises
  :class:`GeoIPDatabaseException` with instructions.
* DataFrames are polars (``AdditionalData`` is JSON text there).
"""

from __future__ import annotations

import abc
import asyncio
import io
import ipaddress
import math
import os
import random
import tarfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import geoip2.database
import geoip2.errors
import maxminddb
import orjson
import polars as pl
import structlog

from processors.enrich.sync import run_sync
from processors.entities import GeoLocation, IpAddress
from processors.errors import SecstreamError

__all__ = [
    "GeoIPDatabaseException",
    "GeoIpLookup",
    "GeoLiteLookup",
    "IPStackLookup",
    "entity_distance",
    "geo_distance",
    "ip_type",
]

_log = structlog.get_logger(module=__name__)
T = TypeVar("T")

CITY_DB = "GeoLite2-City.mmdb"
ASN_DB = "GeoLite2-ASN.mmdb"
_MAX_AGE_S = 30 * 86400
_DOWNLOAD_URL = "https://download.maxmind.com/geoip/databases/{edition}/download?suffix=tar.gz"
_LEGACY_DOWNLOAD_URL = (
    "https://download.maxmind.com/app/geoip_download?edition_id={edition}&license_key={key}&suffix=tar.gz"
)


class GeoIPDatabaseException(SecstreamError):
    """The GeoIP database cannot be found or loaded."""


def ip_type(address: str) -> str:
    """Classify an address: ``Public``, ``Private``, ``Loopback``, ``Link Local``, ``Multicast``, ``Reserved``,
    ``Unspecified`` or ``Invalid``.

    Args:
        address: the IP address text.
    """
    try:
        addr = ipaddress.ip_address(address.strip())
    except ValueError:
        return "Invalid"
    if addr.is_unspecified:
        return "Unspecified"
    if addr.is_loopback:
        return "Loopback"
    if addr.is_link_local:
        return "Link Local"
    if addr.is_multicast:
        return "Multicast"
    if addr.is_global:
        return "Public"
    if addr.is_reserved:
        return "Reserved"
    return "Private"


def _placeholder(kind: str) -> dict[str, Any]:
    return {
        "country": {"iso_code": None, "names": {"en": f"{kind} address"}},
        "city": {"names": {"en": "location unknown"}},
        "ip_type": kind,
    }


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


class GeoLiteLookup(GeoIpLookup):
    """GeoIP lookup in MaxMind GeoLite2 databases (geoip2 reader).

    Args:
        api_key: MaxMind licence key (default ``SECSTREAM_MAXMIND_LICENSE_KEY``); only needed to download.
        db_folder: folder of ``GeoLite2-City.mmdb`` (default ``SECSTREAM_GEOIP_DBFOLDER`` or
            ``~/.secstream/GeoLite2``).
        force_update: download a fresh database now (needs a key).
        auto_update: download when the database is older than 30 days (needs a key).
        debug: log the update decisions at INFO.
        account_id: MaxMind account id (default ``SECSTREAM_MAXMIND_ACCOUNT_ID``): selects the basic-auth
            download URL.
        download_url: download URL template with ``{edition}`` (and ``{key}`` for the legacy form);
            tests point it at a local server.
        cache_size: entries of the lookup cache.
        wall_clock: epoch clock used for the database age.

    Raises:
        GeoIPDatabaseException: no database present and none could be downloaded.
    """

    def __init__(
        self,
        api_key: str | None = None,
        db_folder: str | None = None,
        force_update: bool = False,
        auto_update: bool = True,
        debug: bool = False,
        *,
        account_id: str | None = None,
        download_url: str | None = None,
        cache_size: int = 100_000,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = api_key or os.environ.get("SECSTREAM_MAXMIND_LICENSE_KEY")
        self._account_id = account_id or os.environ.get("SECSTREAM_MAXMIND_ACCOUNT_ID")
        folder = db_folder or os.environ.get("SECSTREAM_GEOIP_DBFOLDER") or "~/.secstream/GeoLite2"
        self.db_folder = Path(folder).expanduser()
        self._download_url = download_url
        self._debug = debug
        self._wall_clock = wall_clock
        self._cache: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0
        self._reader: geoip2.database.Reader | None = None
        self._asn_reader: geoip2.database.Reader | None = None
        self._check_and_update_db(force_update, auto_update)
        self._open()

    def __repr__(self) -> str:
        return f"GeoLiteLookup(db_folder={str(self.db_folder)!r})"

    # -- database management ---------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        """Path of the City database."""
        return self.db_folder / CITY_DB

    def _note(self, event: str, **kw: Any) -> None:
        (_log.info if self._debug else _log.debug)(event, **kw)

    def _check_and_update_db(self, force_update: bool, auto_update: bool) -> None:
        exists = self.db_path.is_file()
        reason = None
        if not exists:
            reason = "missing"
        elif force_update:
            reason = "forced"
        elif auto_update and self._db_age_s() > _MAX_AGE_S:
            reason = "older than 30 days"
        if reason is None:
            return
        if not self._api_key:
            if not exists:
                raise GeoIPDatabaseException(
                    f"No GeoLite2 database at {self.db_path}. Put GeoLite2-City.mmdb there, or configure a "
                    "MaxMind licence key (api_key or SECSTREAM_MAXMIND_LICENSE_KEY) to download it: "
                    "https://www.maxmind.com/en/geolite2/signup"
                )
            self._note("geoip_update_skipped", reason=reason, detail="no licence key configured")
            return
        self._note("geoip_download", reason=reason)
        try:
            run_sync(self.update_db_async())
        except (aiohttp.ClientError, TimeoutError, OSError, tarfile.TarError, GeoIPDatabaseException) as err:
            if not self.db_path.is_file():
                raise GeoIPDatabaseException(
                    f"GeoLite2 download failed ({type(err).__name__}) and no database"
                ) from err
            _log.warning("geoip_download_failed", error=type(err).__name__, detail="continuing with cached database")

    def _db_age_s(self) -> float:
        try:
            with maxminddb.open_database(str(self.db_path)) as reader:
                return self._wall_clock() - float(reader.metadata().build_epoch)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError):
            return math.inf

    async def update_db_async(self, editions: Iterable[str] = ("GeoLite2-City", "GeoLite2-ASN")) -> list[Path]:
        """Download and install the GeoLite2 databases (the ASN database is optional).

        Args:
            editions: MaxMind edition ids to fetch.

        Returns:
            The installed database files.

        Raises:
            GeoIPDatabaseException: the City database could not be downloaded or contained no MMDB file.
        """
        if not self._api_key:
            raise GeoIPDatabaseException("a MaxMind licence key is needed to download GeoLite2")
        self.db_folder.mkdir(parents=True, exist_ok=True)
        installed: list[Path] = []
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for edition in editions:
                template = self._download_url or (_DOWNLOAD_URL if self._account_id else _LEGACY_DOWNLOAD_URL)
                url = template.format(edition=edition, key=self._api_key)
                headers = (
                    {"Authorization": aiohttp.encode_basic_auth(self._account_id, self._api_key)}
                    if self._account_id
                    else {}
                )
                async with session.get(url, headers=headers) as resp:
                    if resp.status != 200:
                        if edition.endswith("City"):
                            raise GeoIPDatabaseException(f"GeoLite2 download of {edition} failed: HTTP {resp.status}")
                        continue
                    body = await resp.read()
                installed += self._extract(body)
        return installed

    def _extract(self, archive: bytes) -> list[Path]:
        written = []
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if not member.isreg() or not name.endswith(".mmdb") or name.startswith("."):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                target = self.db_folder / name
                tmp = self.db_folder / f".{name}.{random.randint(10000, 99999)}.tmp"
                tmp.write_bytes(source.read())
                os.replace(tmp, target)
                written.append(target)
        if not written:
            raise GeoIPDatabaseException("the downloaded archive holds no .mmdb file")
        return written

    def _open(self) -> None:
        self.close()
        try:
            self._reader = geoip2.database.Reader(str(self.db_path))
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as err:
            raise GeoIPDatabaseException(f"cannot open GeoLite2 database {self.db_path}: {err}") from err
        asn_path = self.db_folder / ASN_DB
        if asn_path.is_file():
            try:
                self._asn_reader = geoip2.database.Reader(str(asn_path))
            except (OSError, maxminddb.InvalidDatabaseError, ValueError):
                _log.warning("geoip_asn_db_unreadable", path=str(asn_path))
        self._cache.clear()

    def close(self) -> None:
        """Close the open GeoIP databases."""
        for reader in (self._reader, self._asn_reader):
            if reader is not None:
                reader.close()
        self._reader = self._asn_reader = None

    # -- lookups ---------------------------------------------------------------------------------
    def lookup_raw(self, address: str) -> dict[str, Any] | None:
        """Return the raw record of one address (cached): a placeholder for non-public addresses, None
        for an invalid address or a public one absent from the database.

        Args:
            address: the IP address text.
        """
        address = address.strip()
        if address in self._cache:
            self.cache_hits += 1
            self._cache.move_to_end(address)
            return self._cache[address]
        self.cache_misses += 1
        raw = self._lookup_uncached(address)
        self._cache[address] = raw
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return raw

    def _lookup_uncached(self, address: str) -> dict[str, Any] | None:
        kind = ip_type(address)
        if kind == "Invalid":
            return None
        if kind != "Public":
            return _placeholder(kind)
        if self._reader is None:
            raise GeoIPDatabaseException("the GeoLite2 database is closed")
        try:
            raw: dict[str, Any] = self._reader.city(address).to_dict()
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None
        if self._asn_reader is not None:
            try:
                asn = self._asn_reader.asn(address)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
            else:
                raw["asn"] = {
                    "autonomous_system_number": asn.autonomous_system_number,
                    "autonomous_system_organization": asn.autonomous_system_organization,
                }
        return raw

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

    def ecs_geo(self, address: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Return ECS ``geo`` and ``as`` objects for a public address (None when unknown or non-public).

        Args:
            address: the IP address text.
        """
        raw = self.lookup_raw(address)
        if raw is None or raw.get("ip_type"):
            return None, None
        geo: dict[str, Any] = {}
        country = raw.get("country") or {}
        if country.get("iso_code"):
            geo["country_iso_code"] = country["iso_code"]
        if (country.get("names") or {}).get("en"):
            geo["country_name"] = country["names"]["en"]
        subdivisions = raw.get("subdivisions") or []
        if subdivisions and (subdivisions[0].get("names") or {}).get("en"):
            geo["region_name"] = subdivisions[0]["names"]["en"]
            if subdivisions[0].get("iso_code"):
                geo["region_iso_code"] = f"{country.get('iso_code')}-{subdivisions[0]['iso_code']}"
        city = ((raw.get("city") or {}).get("names") or {}).get("en")
        if city:
            geo["city_name"] = city
        location = raw.get("location") or {}
        if location.get("latitude") is not None and location.get("longitude") is not None:
            geo["location"] = {"lat": location["latitude"], "lon": location["longitude"]}
        asn = raw.get("asn")
        as_obj = None
        if asn and asn.get("autonomous_system_number") is not None:
            as_obj = {"number": asn["autonomous_system_number"]}
            if asn.get("autonomous_system_organization"):
                as_obj["organization"] = {"name": asn["autonomous_system_organization"]}
        return geo or None, as_obj


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

    def __repr__(self) -> str:
        return f"IPStackLookup(base_url={self.base_url!r}, bulk_lookup={self.bulk_lookup})"

    async def _fetch(self, session: aiohttp.ClientSession, addresses: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/{addresses}"
        params = {"access_key": self._api_key or "", "output": "json"}
        async with session.get(url, params=params) as resp:
            if resp.status != 200:
                raise ConnectionError(f"IPStack request failed: HTTP {resp.status}")
            data = orjson.loads(await resp.read())
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
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if self.bulk_lookup:
                raw_list = await self._fetch(session, ",".join(addresses))
            else:
                batches = await asyncio.gather(*(self._fetch(session, a) for a in addresses))
                raw_list = [r for batch in batches for r in batch]
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
