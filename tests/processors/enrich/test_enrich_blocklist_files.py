"""Blocklist files: the CSV headers people use, STIX 2.1 bundles, and one readable line for a bad file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.enrich.providers import LocalBlocklist
from processors.enrich.providers.blocklist_files import read_blocklist_file
from processors.errors import ConfigError

SAMPLE_BUNDLE = Path(__file__).resolve().parents[3] / "config" / "ti" / "sample_stix_bundle.json"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
MD5 = "44d88612fea8a8f36de82e1278abb02f"


def stix_indicator(pattern: str, **extra: object) -> dict[str, object]:
    """A STIX 2.1 indicator object."""
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
        **extra,
    }


class TestCsvHeaders:
    @pytest.mark.parametrize("column", ["ioc", "indicator", "value", "observable", "Indicator", " VALUE "])
    def test_indicator_column_names(self, tmp_path: Path, column: str) -> None:
        """The indicator column may be named ioc, indicator, value or observable (any case)."""
        path = tmp_path / "list.csv"
        path.write_text(f"{column},comment\n203.0.113.5,c2\nevil-domain.com,dropper\n")
        prov = LocalBlocklist(path)
        assert prov.lookup_now("203.0.113.5", "ipv4").result
        assert prov.lookup_now("www.evil-domain.com", "dns").result

    @pytest.mark.parametrize(
        ("type_header", "type_value", "observable", "ioc_type"),
        [
            ("type", "ipv4-addr", "203.0.113.9", "ipv4"),
            ("type", "ip", "2001:db8::9", "ipv6"),
            ("indicator_type", "domain-name", "bad.example", "dns"),
            ("ioc_type", "sha256", SHA256, "sha256_hash"),
            ("type", "MD5", MD5, "md5_hash"),
            ("type", "url", "http://bad.example/x", "url"),
        ],
    )
    def test_type_column_names_and_values(
        self, tmp_path: Path, type_header: str, type_value: str, observable: str, ioc_type: str
    ) -> None:
        """The type column accepts our names, STIX/ECS names and plain words."""
        path = tmp_path / "typed.csv"
        path.write_text(f"value,{type_header},severity\n{observable},{type_value},warning\n")
        result = LocalBlocklist(path).lookup_now(observable, ioc_type)
        assert result.result and result.severity_name == "warning"

    def test_missing_indicator_column__one_line_naming_the_file(self, tmp_path: Path) -> None:
        """A CSV without an indicator column is one ConfigError line naming the file and the accepted names."""
        path = tmp_path / "bad.csv"
        path.write_text("address,kind\n203.0.113.5,ipv4\n")
        with pytest.raises(ConfigError) as caught:
            LocalBlocklist(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert "ioc, indicator, value, observable" in message and "found: address, kind" in message

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            ("ioc,type\n999.1.2.3,ipv4\n", "line 2: not an IP address or network: '999.1.2.3'"),
            ("# comment\nioc,type\n\n203.0.113.5,galaxy\n", "line 4: unknown indicator type 'galaxy'"),
        ],
    )
    def test_bad_rows__line_named(self, tmp_path: Path, content: str, expected: str) -> None:
        """A bad row is reported with its file and line, never a traceback from deep inside."""
        path = tmp_path / "rows.csv"
        path.write_text(content)
        with pytest.raises(ConfigError) as caught:
            LocalBlocklist(path)
        assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value)
        assert "\n" not in str(caught.value)

    def test_not_utf8__config_error(self, tmp_path: Path) -> None:
        """Binary junk is a ConfigError, not a UnicodeDecodeError."""
        path = tmp_path / "junk.txt"
        path.write_bytes(b"\xff\xfe\x00bad\x80\n")
        with pytest.raises(ConfigError, match="not UTF-8"):
            LocalBlocklist(path)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=st.binary(max_size=300))
    def test_any_bytes__config_error_or_a_list(self, tmp_path: Path, content: bytes) -> None:
        """Whatever a file holds, reading it gives a blocklist or a ConfigError, nothing else."""
        for suffix in (".csv", ".txt", ".json"):
            path = tmp_path / f"fuzz{suffix}"
            path.write_bytes(content)
            try:
                LocalBlocklist(path)
            except ConfigError as err:
                assert "\n" not in str(err)


class TestStix:
    def test_shipped_sample_bundle(self) -> None:
        """config/ti/sample_stix_bundle.json loads: its address, domain (with subdomains) and hash match."""
        prov = LocalBlocklist(SAMPLE_BUNDLE)
        assert prov.lookup_now("203.0.113.66", "ipv4").severity_name == "high"
        assert prov.lookup_now("cdn.evil.example", "dns").severity_name == "warning"
        assert prov.lookup_now(SHA256, "sha256_hash").result
        assert read_blocklist_file(SAMPLE_BUNDLE).skipped_patterns == 0

    def test_bundle_of_simple_patterns(self, tmp_path: Path) -> None:
        """Equality patterns of every supported object become entries with their confidence and labels."""
        bundle = {
            "type": "bundle",
            "id": "bundle--1",
            "objects": [
                {"type": "identity", "id": "identity--1", "name": "feed"},
                stix_indicator("[ipv4-addr:value = '203.0.113.77']", confidence=85, name="C2", labels=["c2"]),
                stix_indicator("[ipv4-addr:value = '198.51.100.0/28']", confidence=40),
                stix_indicator("[ipv6-addr:value = '2001:db8::77']"),
                stix_indicator("[domain-name:value = 'stix.example']", confidence=10),
                stix_indicator("[url:value = 'http://stix.example/it\\'s']"),
                stix_indicator(f"[file:hashes.'SHA-256' = '{SHA256}']"),
                stix_indicator(f"[file:hashes.MD5 = '{MD5}'] OR [domain-name:value = 'or.example']"),
                stix_indicator("[ipv4-addr:value = '192.0.2.1' OR ipv4-addr:value = '192.0.2.2']"),
                stix_indicator("[ipv4-addr:value = '192.0.2.3' AND network-traffic:dst_port = 443]"),
                stix_indicator("[process:name = 'evil']"),
                stix_indicator("[ipv4-addr:value LIKE '192.0.2.%']"),
                stix_indicator("alert tcp any any", pattern_type="snort"),
            ],
        }
        path = tmp_path / "feed.json"
        path.write_bytes(orjson.dumps(bundle))
        found = read_blocklist_file(path)
        assert found.skipped_patterns == 4
        prov = LocalBlocklist(path)
        c2 = prov.lookup_now("203.0.113.77", "ipv4")
        assert c2.severity_name == "high" and c2.details["description"] == "C2" and c2.details["tags"] == ["c2"]
        assert prov.lookup_now("198.51.100.3", "ipv4").severity_name == "warning"
        assert prov.lookup_now("2001:db8::77", "ipv6").result
        assert prov.lookup_now("a.stix.example", "dns").severity_name == "information"
        assert prov.lookup_now("http://stix.example/it's", "url").result
        assert prov.lookup_now(SHA256.upper(), "sha256_hash").result
        assert prov.lookup_now(MD5, "md5_hash").result and prov.lookup_now("or.example", "dns").result
        assert prov.lookup_now("192.0.2.2", "ipv4").result
        assert not prov.lookup_now("192.0.2.3", "ipv4").result, "an AND pattern is not a plain match"

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (b"{not json", "not valid JSON"),
            (b'{"type": "identity"}', "STIX 2.1 bundle"),
            (b'"just a string"', "STIX 2.1 bundle"),
        ],
    )
    def test_bad_json__one_line(self, tmp_path: Path, content: bytes, expected: str) -> None:
        """JSON that is not a STIX bundle is one line naming the file."""
        path = tmp_path / "feed.json"
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=expected) as caught:
            LocalBlocklist(path)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)

    def test_bad_address_in_bundle__object_named(self, tmp_path: Path) -> None:
        """An indicator whose value is not an address names its object."""
        path = tmp_path / "feed.json"
        path.write_bytes(orjson.dumps([stix_indicator("[ipv4-addr:value = 'nope']")]))
        with pytest.raises(ConfigError, match=r"object 0 \(indicator--8e2e.*not an IP address"):
            LocalBlocklist(path)
