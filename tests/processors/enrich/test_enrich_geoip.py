"""GeoIP: GeoLite2 lookups on a real MMDB written at test time, downloads, IPStack and distances."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pandas as pd
import polars as pl
import pytest

from processors.entities import GeoLocation, IpAddress
from processors.geoip import (
    GeoIPDatabaseException,
    GeoLiteLookup,
    IPStackLookup,
    entity_distance,
    geo_distance,
    ip_type,
)

FASTLY = ["151.101.128.223", "151.101.0.223", "151.101.64.223", "151.101.192.223"]


class TestGeoLiteLookup:
    def test_lookup_ip_list__four_entities_with_location(self, geolite_folder: Path) -> None:
        """msticpy's test: the four Fastly addresses give four entities, each with a Location."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        raw, entities = geo.lookup_ip(ip_addr_list=FASTLY)
        assert len(raw) == 4 and len(entities) == 4
        for ent in entities:
            assert isinstance(ent.Location, GeoLocation)
            assert ent.Location.CountryCode == "US"
            assert ent.Location.State == "California"
            assert ent.Location.City == "San Francisco"
            assert ent.Location.Latitude == pytest.approx(37.7749)
            assert ent.Location.Asn == "54113"
        geo.close()

    def test_private_address__reported_not_dropped(self, geolite_folder: Path) -> None:
        """A private address yields a placeholder location instead of being silently skipped (msticpy bug)."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        raw, entities = geo.lookup_ip(ip_addr_list=["10.1.2.3", "127.0.0.1", "151.101.0.223"])
        assert [e.Address for e in entities] == ["10.1.2.3", "127.0.0.1", "151.101.0.223"]
        assert entities[0].Location is not None
        assert entities[0].Location.CountryName == "Private address"
        assert entities[0].Location.City == "location unknown"
        assert entities[0].Location.AdditionalData == {"ip_type": "Private"}
        assert entities[1].Location is not None and entities[1].Location.CountryName == "Loopback address"
        assert raw[0]["country"]["iso_code"] is None

    def test_unknown_public_and_invalid__skipped(self, geolite_folder: Path) -> None:
        """A public address absent from the database and a non-address are skipped, as in msticpy."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        _, entities = geo.lookup_ip(ip_addr_list=["8.8.8.8", "not-an-ip", "81.2.69.160"])
        assert [e.Address for e in entities] == ["81.2.69.160"]

    def test_no_addresses__value_error(self, geolite_folder: Path) -> None:
        """No address raises msticpy's ValueError message."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        with pytest.raises(ValueError, match=r"No valid ip addresses were passed as arguments\."):
            geo.lookup_ip(ip_addr_list=[" ", ""])

    def test_ip_entity__location_overwritten(self, geolite_folder: Path) -> None:
        """An IpAddress entity passed in gets its Location set."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        entity = IpAddress(Address="81.2.69.160")
        _, entities = geo.lookup_ip(ip_entity=entity)
        assert entities[0] is entity
        assert entity.Location is not None and entity.Location.City == "London"

    def test_cache__second_lookup_is_a_hit(self, geolite_folder: Path) -> None:
        """Repeated addresses are served from the cache (msticpy's cache stored nothing)."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        geo.lookup_ip(ip_addr_list=FASTLY)
        geo.lookup_ip(ip_addr_list=FASTLY)
        assert geo.cache_misses == 4
        assert geo.cache_hits == 4

    def test_lookup_ips__polars_rows(self, geolite_folder: Path) -> None:
        """lookup_ips returns the location properties plus IpAddress, one row per located address."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        frame = pd.DataFrame({"ip": [*FASTLY, "81.2.69.160", "81.2.69.160"]})
        result = geo.lookup_ips(frame, "ip")
        assert isinstance(result, pl.DataFrame)
        assert result.height == 5
        assert {"CountryCode", "CountryName", "State", "City", "Longitude", "Latitude", "Type", "IpAddress"} <= set(
            result.columns
        )
        assert result["Type"].unique().to_list() == ["geolocation"]
        assert orjson.loads(result["AdditionalData"][0]) == {"as_org": "FASTLY"}

    def test_df_lookup_ip__left_join(self, geolite_folder: Path) -> None:
        """df_lookup_ip keeps every input row and appends the location columns."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        frame = pl.DataFrame({"ip": ["81.2.69.160", "8.8.8.8", "81.2.69.160"], "n": [1, 2, 3]})
        result = geo.df_lookup_ip(frame, "ip")
        assert result.height == 3
        assert result["City"].to_list() == ["London", None, "London"]
        assert result["n"].to_list() == [1, 2, 3]

    def test_ecs_geo__fields(self, geolite_folder: Path) -> None:
        """ecs_geo returns ECS geo and as objects, and nothing for private addresses."""
        geo = GeoLiteLookup(db_folder=str(geolite_folder))
        ecs, as_obj = geo.ecs_geo("151.101.64.223")
        assert ecs == {
            "country_iso_code": "US",
            "country_name": "United States",
            "region_name": "California",
            "region_iso_code": "US-CA",
            "city_name": "San Francisco",
            "location": {"lat": 37.7749, "lon": -122.4194},
        }
        assert as_obj == {"number": 54113, "organization": {"name": "FASTLY"}}
        assert geo.ecs_geo("192.168.1.1") == (None, None)

    def test_no_database_no_key__clear_exception(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a database and without a licence key the error says what to do."""
        monkeypatch.delenv("SECSTREAM_MAXMIND_LICENSE_KEY", raising=False)
        with pytest.raises(GeoIPDatabaseException, match=r"GeoLite2-City\.mmdb"):
            GeoLiteLookup(db_folder=str(tmp_path / "empty"))

    def test_download__from_local_server_with_licence_key(
        self, tmp_path: Path, kit: SimpleNamespace, file_server_factory: object
    ) -> None:
        """With a key and no database, the tar.gz is downloaded, its .mmdb extracted flat, and used."""
        mmdb = kit.write_mmdb(tmp_path / "src.mmdb", "GeoLite2-City", kit.CITY_RECORDS).read_bytes()
        archive = kit.tar_gz(
            {"GeoLite2-City_20240101/GeoLite2-City.mmdb": mmdb, "GeoLite2-City_20240101/LICENSE.txt": b"x"}
        )
        server = file_server_factory(archive)  # type: ignore[operator]
        folder = tmp_path / "db"
        geo = GeoLiteLookup(
            api_key="secret-licence",
            db_folder=str(folder),
            account_id="1234",
            download_url=server.url + "/geoip/databases/{edition}/download?suffix=tar.gz",
        )
        assert (folder / "GeoLite2-City.mmdb").is_file()
        assert not (folder / "LICENSE.txt").exists()
        assert server.requests[0].path == "/geoip/databases/GeoLite2-City/download"
        assert server.requests[0].headers["Authorization"].startswith("Basic ")
        _, entities = geo.lookup_ip(ip_address="151.101.0.223")
        assert len(entities) == 1

    def test_download_failure_with_existing_db__keeps_cached(
        self, geolite_folder: Path, file_server_factory: object
    ) -> None:
        """A failed forced update keeps the existing database (warning only)."""
        server = file_server_factory(b"nope", 500)  # type: ignore[operator]
        geo = GeoLiteLookup(
            api_key="k", db_folder=str(geolite_folder), force_update=True, download_url=server.url + "/{edition}"
        )
        assert len(server.requests) == 1
        assert len(geo.lookup_ip(ip_address="81.2.69.160")[1]) == 1


class TestIPStackLookup:
    def test_lookup__parses_ipstack_format(self, ti_server: object) -> None:
        """IPStack answers are mapped to GeoLocation (country, region, city, coordinates, ASN)."""
        server = ti_server
        server.bodies["/"] = {  # type: ignore[attr-defined]
            "ip": "81.2.69.160",
            "country_code": "GB",
            "country_name": "United Kingdom",
            "region_name": "England",
            "city": "London",
            "latitude": 51.5,
            "longitude": -0.09,
            "connection": {"asn": 20712},
        }
        lookup = IPStackLookup(api_key="ipstack-key", base_url=server.url)  # type: ignore[attr-defined]
        _, entities = lookup.lookup_ip(ip_address="81.2.69.160")
        assert entities[0].Location is not None
        assert entities[0].Location.City == "London" and entities[0].Location.Asn == "20712"
        assert server.requests[0].query["access_key"] == "ipstack-key"  # type: ignore[attr-defined]

    def test_refused__permission_error(self, ti_server: object) -> None:
        """{"success": false} from IPStack raises PermissionError."""
        server = ti_server
        server.bodies["/"] = {"success": False, "error": {"type": "batch_not_supported_on_plan"}}  # type: ignore[attr-defined]
        lookup = IPStackLookup(api_key="k", bulk_lookup=True, base_url=server.url)  # type: ignore[attr-defined]
        with pytest.raises(PermissionError, match="batch_not_supported_on_plan"):
            lookup.lookup_ip(ip_addr_list=["81.2.69.160", "151.101.0.223"])


class TestDistances:
    def test_geo_distance__munich_berlin(self) -> None:
        """The docstring example: Munich to Berlin is 504.2 km."""
        assert round(geo_distance((48.1372, 11.5756), (52.5186, 13.4083)), 1) == 504.2

    def test_entity_distance__needs_locations(self) -> None:
        """entity_distance uses the entities' coordinates and raises AttributeError without them."""
        munich = IpAddress(Address="1.1.1.1", Location=GeoLocation(Latitude=48.1372, Longitude=11.5756))
        berlin = IpAddress(Address="2.2.2.2", Location=GeoLocation(Latitude=52.5186, Longitude=13.4083))
        assert round(entity_distance(munich, berlin), 1) == 504.2
        with pytest.raises(AttributeError):
            entity_distance(munich, IpAddress(Address="3.3.3.3"))

    def test_ip_type__classes(self) -> None:
        """Addresses are classified as msticpy's get_ip_type does."""
        assert [ip_type(a) for a in ("8.8.8.8", "10.0.0.1", "127.0.0.1", "169.254.1.1", "224.0.0.1", "x")] == [
            "Public",
            "Private",
            "Loopback",
            "Link Local",
            "Multicast",
            "Invalid",
        ]
