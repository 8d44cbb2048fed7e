"""The GeoIP engine of the enrichment stage: MaxMind GeoLite2 databases read through geoip2.

:class:`GeoLiteReader` keeps ``GeoLite2-City.mmdb`` (plus ``GeoLite2-ASN.mmdb`` when present, which fills
the ``as`` object) in a folder, refreshes it from MaxMind when a licence key is configured (``api_key``
or ``SECSTREAM_MAXMIND_LICENSE_KEY``; with ``account_id`` / ``SECSTREAM_MAXMIND_ACCOUNT_ID`` the
basic-auth URL is used) and the database is missing, older than 30 days with ``auto_update``, or with
``force_update`` (msticpy issue #66), and answers cached lookups and ECS ``geo``/``as`` objects.

A download is streamed to disk with a size cap, only the edition's ``.mmdb`` member is taken out (also
capped), and the new file must open, carry the edition's metadata and answer a lookup before it
atomically replaces the installed one; otherwise the installed database stays. Credentials never follow
a redirect to another origin. :mod:`processors.geoip` wraps the reader with msticpy's API.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tarfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import aiohttp
import geoip2.database
import geoip2.errors
import maxminddb
import structlog
import yarl

from processors.enrich.sync import run_sync
from processors.errors import SecstreamError

__all__ = ["ASN_DB", "CITY_DB", "GeoIPDatabaseException", "GeoLiteReader", "ip_type", "placeholder_record"]

_log = structlog.get_logger(module=__name__)

CITY_DB = "GeoLite2-City.mmdb"
ASN_DB = "GeoLite2-ASN.mmdb"
_MAX_AGE_S = 30 * 86400
_DOWNLOAD_URL = "https://download.maxmind.com/geoip/databases/{edition}/download?suffix=tar.gz"
_LEGACY_DOWNLOAD_URL = (
    "https://download.maxmind.com/app/geoip_download?edition_id={edition}&license_key={key}&suffix=tar.gz"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_MAX_ARCHIVE_MEMBERS = 64
_CHUNK = 64 * 1024
#: A public address every GeoLite2 database covers; a fresh file must answer it without an error.
_PROBE_ADDRESS = "8.8.8.8"


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


def placeholder_record(kind: str) -> dict[str, Any]:
    """The raw record reported for a non-public address of the given kind."""
    return {
        "country": {"iso_code": None, "names": {"en": f"{kind} address"}},
        "city": {"names": {"en": "location unknown"}},
        "ip_type": kind,
    }


def _describe(err: Exception) -> str:
    """An error for a log line: our own messages in full, others by type (their text may hold the URL)."""
    return str(err) if isinstance(err, GeoIPDatabaseException) else type(err).__name__


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = yarl.URL(url)
    return parsed.scheme, parsed.host or "", parsed.port


async def _stream_to_file(resp: aiohttp.ClientResponse, target: Path, cap: int, *, what: str) -> None:
    if resp.content_length is not None and resp.content_length > cap:
        raise GeoIPDatabaseException(f"{what} is {resp.content_length} bytes, more than the allowed {cap}")
    written = 0
    with target.open("wb") as out:
        async for chunk in resp.content.iter_chunked(_CHUNK):
            written += len(chunk)
            if written > cap:
                raise GeoIPDatabaseException(f"{what} is larger than the allowed {cap} bytes")
            out.write(chunk)


def _find_member(tar: tarfile.TarFile, name: str, cap: int) -> tarfile.TarInfo:
    """The archive's ``name`` member; any member declared larger than ``cap`` stops the search (reaching
    the next header would mean decompressing it: a few kilobytes can declare terabytes)."""
    for count, member in enumerate(tar, start=1):
        if count > _MAX_ARCHIVE_MEMBERS:
            break
        if member.size > cap:
            raise GeoIPDatabaseException(
                f"{Path(member.name).name[:100]} in the download is {member.size} bytes, more than the allowed {cap}"
            )
        if member.isreg() and Path(member.name).name == name:
            return member
    raise GeoIPDatabaseException(f"the downloaded archive holds no {name}")


def _copy_capped(source: IO[bytes], out: IO[bytes], cap: int, *, what: str) -> None:
    copied = 0
    while chunk := source.read(_CHUNK):
        copied += len(chunk)
        if copied > cap:
            raise GeoIPDatabaseException(f"{what} in the download is larger than the allowed {cap} bytes")
        out.write(chunk)


def _check_database(path: Path, edition: str) -> None:
    """Open a downloaded database, read its metadata and look an address up (the checks before install)."""
    try:
        with maxminddb.open_database(str(path)) as reader:
            metadata = reader.metadata()
            if metadata.database_type != edition or metadata.node_count <= 0:
                raise GeoIPDatabaseException(f"the downloaded {edition} database says it is {metadata.database_type!r}")
            reader.get(_PROBE_ADDRESS)
    except (OSError, maxminddb.InvalidDatabaseError, ValueError, TypeError) as err:
        raise GeoIPDatabaseException(f"the downloaded {edition} database is corrupt: {type(err).__name__}") from err


class GeoLiteReader:
    """The MaxMind GeoLite2 databases (geoip2 readers): refresh, cached lookups and ECS ``geo``/``as``.

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
        max_download_bytes: the largest archive downloaded (a bigger one fails the update).
        max_database_bytes: the largest ``.mmdb`` taken out of an archive.

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
        max_download_bytes: int = 256 * 1024 * 1024,
        max_database_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.max_download_bytes = max_download_bytes
        self.max_database_bytes = max_database_bytes
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
        return f"{type(self).__name__}(db_folder={str(self.db_folder)!r})"

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
        except (aiohttp.ClientError, TimeoutError, OSError, GeoIPDatabaseException) as err:
            if not self.db_path.is_file():
                raise GeoIPDatabaseException(
                    f"GeoLite2 download failed ({type(err).__name__}) and no database"
                ) from err
            _log.warning("geoip_download_failed", error=_describe(err), detail="continuing with the installed database")

    def _db_age_s(self) -> float:
        try:
            with maxminddb.open_database(str(self.db_path)) as reader:
                return self._wall_clock() - float(reader.metadata().build_epoch)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError):
            return math.inf

    async def update_db_async(self, editions: Iterable[str] = ("GeoLite2-City", "GeoLite2-ASN")) -> list[Path]:
        """Download, check and install the GeoLite2 databases (the ASN database is optional).

        Each archive is streamed to a file in the database folder (at most ``max_download_bytes``), its
        ``<edition>.mmdb`` member is copied out (at most ``max_database_bytes``) and opened, its metadata
        read and a known address looked up before it atomically replaces the installed file; a file that
        fails any of this is deleted and the installed one kept.

        Args:
            editions: MaxMind edition ids to fetch.

        Returns:
            The installed database files.

        Raises:
            GeoIPDatabaseException: the City database could not be downloaded, was too large or failed
                the checks.
        """
        if not self._api_key:
            raise GeoIPDatabaseException("a MaxMind licence key is needed to download GeoLite2")
        self.db_folder.mkdir(parents=True, exist_ok=True)
        installed: list[Path] = []
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for edition in editions:
                archive = self.db_folder / f".{edition}.{os.getpid()}.download"
                try:
                    if not await self._download(session, edition, archive):
                        continue
                    installed.append(self._install(edition, archive))
                except GeoIPDatabaseException:
                    if edition.endswith("City"):
                        raise
                    _log.warning("geoip_optional_database_rejected", edition=edition)
                finally:
                    archive.unlink(missing_ok=True)
        return installed

    async def _download(self, session: aiohttp.ClientSession, edition: str, target: Path) -> bool:
        """Stream one archive to ``target``; False when an optional edition is not available."""
        template = self._download_url or (_DOWNLOAD_URL if self._account_id else _LEGACY_DOWNLOAD_URL)
        key = self._api_key or ""
        url = template.format(edition=edition, key=key)
        origin = _origin(url)
        headers = {"Authorization": aiohttp.encode_basic_auth(self._account_id, key)} if self._account_id else {}
        for _ in range(_MAX_REDIRECTS + 1):
            # Redirects are followed here, not by aiohttp: MaxMind sends the download to another host
            # (its object store), which must never see the licence key.
            async with session.get(yarl.URL(url, encoded=True), headers=headers, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS and resp.headers.get("Location"):
                    url = str(resp.url.join(yarl.URL(resp.headers["Location"])))
                    if _origin(url) != origin:
                        headers = {}
                    continue
                if resp.status != 200:
                    if edition.endswith("City"):
                        raise GeoIPDatabaseException(f"GeoLite2 download of {edition} failed: HTTP {resp.status}")
                    return False
                await _stream_to_file(resp, target, self.max_download_bytes, what=f"the {edition} archive")
                return True
        raise GeoIPDatabaseException(f"GeoLite2 download of {edition}: more than {_MAX_REDIRECTS} redirects")

    def _install(self, edition: str, archive: Path) -> Path:
        """Extract ``<edition>.mmdb`` from the archive, check it and atomically replace the installed file."""
        name = f"{edition}.mmdb"
        candidate = self.db_folder / f".{name}.{os.getpid()}.new"
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                member = _find_member(tar, name, self.max_database_bytes)
                source = tar.extractfile(member)
                if source is None:
                    raise GeoIPDatabaseException(f"the downloaded archive holds no readable {name}")
                with source, candidate.open("wb") as out:
                    _copy_capped(source, out, self.max_database_bytes, what=name)
            _check_database(candidate, edition)
            target = self.db_folder / name
            os.replace(candidate, target)
            return target
        except (tarfile.TarError, EOFError, OSError) as err:
            raise GeoIPDatabaseException(
                f"the downloaded {edition} archive is unreadable: {type(err).__name__}"
            ) from err
        finally:
            candidate.unlink(missing_ok=True)

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
            return placeholder_record(kind)
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
