"""Threat-intel providers and TILookup against a real local aiohttp server (msticpy's §12 expectations)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson
import polars as pl
import pytest
from structlog.testing import capture_logs

from processors.enrich.http import HttpSettings
from processors.enrich.providers.base import _clean_url
from processors.enrich.ratelimit import RateLimits
from processors.errors import ConfigError, MsticpyException
from processors.tilookup import TILookup
from processors.tiproviders import (
    OTX,
    GreyNoise,
    LocalBlocklist,
    LookupResult,
    TILookupStatus,
    TISeverity,
    VirusTotal,
    XForce,
    entropy,
    preprocess_observable,
)
from processors.tiproviders.ti_provider_base import generate_items
from processors.tiproviders.virustotal import parse_vt_report, vt_url_id

SAMPLE_BLOCKLIST = Path(__file__).resolve().parents[3] / "config" / "ti" / "sample_blocklist.csv"


def make_providers(url: str, **kw: Any) -> dict[str, Any]:
    """The four HTTP providers pointed at the local server, with generous limits."""
    limits = RateLimits(per_minute=60_000, burst=1000, max_concurrency=16)
    return {
        "XForce": XForce(ApiID="id", AuthKey="key", base_url=url, limits=limits, **kw),
        "OTX": OTX(AuthKey="key", base_url=url, limits=limits, **kw),
        "VirusTotal": VirusTotal(AuthKey="key", base_url=url, limits=limits, **kw),
        "GreyNoise": GreyNoise(AuthKey="key", base_url=url, limits=limits, **kw),
    }


class TestTISeverity:
    def test_parse_and_compare(self) -> None:
        """msticpy's comparisons: parse names/ints, compare with strings and ints."""
        assert TISeverity.parse("information") == TISeverity.information
        assert TISeverity.parse(1) == TISeverity.warning
        assert TISeverity.parse(TISeverity.warning) == TISeverity.warning
        assert TISeverity.parse("nonsense") == TISeverity.unknown
        assert TISeverity.information <= "information"
        assert TISeverity.information < 1
        assert TISeverity.warning > TISeverity.information
        assert not (TISeverity.unknown > "high")


class TestLookupResult:
    def test_severity_name__is_right(self) -> None:
        """severity_name gives the name (msticpy stored the name and then always said 'unknown')."""
        result = LookupResult(ioc="x", ioc_type="ipv4", severity="high")
        assert result.severity == 2
        assert result.severity_name == "high"

    def test_column_map__msticpy_columns(self) -> None:
        """The DataFrame column names are msticpy's."""
        assert list(LookupResult.column_map().values()) == [
            "Ioc",
            "IocType",
            "SafeIoc",
            "QuerySubtype",
            "Provider",
            "Result",
            "Severity",
            "Details",
            "RawResult",
            "Reference",
            "Status",
        ]


class TestPreprocess:
    @pytest.mark.parametrize(
        ("observable", "ioc_type", "status"),
        [
            ("https://127.0.0.1/test1?testparam=x", "url", "Host part of URL is a private IP address"),
            ("127.0.0.1", "ipv4", "IP address is not global"),
            ("10.0.0.1", "ipv4", "IP address is not global"),
            ("2001:db8::1", "ipv6", "IP address is not global"),
            ("not an ip address", "ipv4", "Observable does not match expected pattern for ipv4"),
            ("185.92.220.35", "ipv6", "Observable does not match expected pattern for ipv6"),
            ("2345:0425:2CA1:0000:0000:0567:5673:23b5", "ipv4", "Observable does not match expected pattern for ipv4"),
            ("localhost", "dns", "Observable does not match expected pattern for dns"),
            ("185.92.220.35", "dns", "Observable does not match expected pattern for dns"),
            ("AAAAAAAAAAAAAAAA", "md5_hash", "Observable does not match expected pattern for md5_hash"),
            ("abcd" * 8, "md5_hash", "String has too low an entropy to be a hash"),
            ("https://myhost/path", "url", "Host is unqualified domain name"),
            ("file://server.com/x", "url", "file URL scheme is not supported"),
        ],
    )
    def test_rejections__msticpy_messages(self, observable: str, ioc_type: str, status: str) -> None:
        """Rejected observables carry msticpy's exact status messages."""
        assert preprocess_observable(observable, ioc_type) == (None, status)

    @pytest.mark.parametrize(
        ("observable", "ioc_type"),
        [
            ("185.92.220.35", "ipv4"),
            ("2345:0425:2CA1:0000:0000:0567:5673:23b5", "ipv6"),
            ("www.python.com", "dns"),
            ("A123008438B9C391A123008438B9C391", "md5_hash"),
            ("https://me@www.microsoft.com:443/test1?testparam=x", "url"),
        ],
    )
    def test_accepted(self, observable: str, ioc_type: str) -> None:
        """Valid observables pass unchanged with status ok."""
        assert preprocess_observable(observable, ioc_type) == (observable, "ok")

    def test_clean_url__drops_query(self) -> None:
        """_clean_url keeps userinfo, host, port and path."""
        assert (
            _clean_url("https://me@www.microsoft.com:443/test1?testparam=x") == "https://me@www.microsoft.com:443/test1"
        )

    def test_entropy__reference_values(self) -> None:
        """Entropies match the reference run."""
        assert round(entropy("A123008438B9C391A123008438B9C391"), 4) == 3.2028
        assert entropy("0123456789abcdef0123456789abcdef") == 4.0
        assert entropy("A" * 32) == 0.0

    def test_check_ioc_type__bad_format_status(self) -> None:
        """msticpy's _check_ioc_type cases give status 2 (bad format)."""
        prov = XForce(ApiID="id", AuthKey="key")
        for ioc, ioc_type in [
            ("a.b.c.d", "ipv4"),
            ("a.b.c.d", "ipv6"),
            ("url", "ipv4"),
            ("123", "dns"),
            ("424246", "file_hash"),
        ]:
            assert prov._check_ioc_type(ioc, ioc_type).status == TILookupStatus.bad_format.value

    def test_generate_items__types(self) -> None:
        """generate_items yields the type column, or resolves the types."""
        frame = pl.DataFrame({"obs": ["185.92.220.35", "8.8.8.8"], "t": ["ipv4", "ipv4"]})
        assert list(generate_items(frame, "obs", "t")) == [("185.92.220.35", "ipv4"), ("8.8.8.8", "ipv4")]
        assert list(generate_items(frame, "obs")) == [("185.92.220.35", "ipv4"), ("8.8.8.8", "ipv4")]
        with pytest.raises(ConfigError):
            list(generate_items(frame))


class TestProviders:
    CASES: ClassVar[list[tuple[str, str, str | None]]] = [
        ("124.5.6.7", "ipv4", None),
        ("124.5.6.8", "ipv4", "rep"),
        ("124.5.6.9", "ipv4", "malware"),
        ("124.5.6.10", "ipv4", "whois"),
        ("office.microsoft.com", "dns", "info"),
        ("https://badplace.net/path1/path2?x=1", "url", None),
        ("7657fcb7d772448a6d8504e4b20168b7", "file_hash", None),
        ("7657fcb7d772448a6d8504e4b20168b8", "md5_hash", None),
        ("www.microsoft.com", "hostname", "whois"),
    ]

    def test_xforce__reference_results(self, ti_server: Any) -> None:
        """X-Force results match the reference run (details, severities), with HTTP Basic auth."""
        prov = make_providers(ti_server.url)["XForce"]
        got = {(i, s): prov.lookup_ioc(i, t, s) for i, t, s in self.CASES}
        first = got[("124.5.6.7", None)]
        assert first.result and first.severity_name == "information" and first.details["score"] == 1
        assert got[("124.5.6.8", "rep")].result and got[("124.5.6.8", "rep")].details == {}
        malware = got[("124.5.6.9", "malware")]
        assert malware.severity_name == "high" and malware.details["family"]["name"] == "mybadfile"
        assert got[("124.5.6.10", "whois")].details == {"records": 4}
        assert got[("www.microsoft.com", "whois")].details == {"records": 4}
        assert got[("office.microsoft.com", "info")].status == TILookupStatus.not_supported.value
        assert got[("7657fcb7d772448a6d8504e4b20168b8", None)].severity_name == "high"
        request = next(r for r in ti_server.requests if r.path == "/ipr/124.5.6.7")
        assert request.headers["Authorization"] == "Basic aWQ6a2V5"

    def test_otx__reference_results(self, ti_server: Any) -> None:
        """OTX: one pulse is a warning; unsupported subtypes are not sent; the key goes in X-OTX-API-KEY."""
        prov = make_providers(ti_server.url)["OTX"]
        result = prov.lookup_ioc("124.5.6.7", "ipv4")
        assert result.result and result.severity_name == "warning"
        assert result.details["pulse_count"] == 1 and result.details["names"] == [["somename"]]
        assert prov.lookup_ioc("124.5.6.8", "ipv4", "rep").status == TILookupStatus.not_supported.value
        assert prov.lookup_ioc("https://badplace.net/path1/path2?x=1", "url").severity_name == "warning"
        assert ti_server.requests[0].path == "/api/v1/indicators/IPv4/124.5.6.7/general"
        assert ti_server.requests[0].headers["X-OTX-API-KEY"] == "key"
        assert ti_server.count("124.5.6.8") == 0

    def test_virustotal__v3_requests(self, ti_server: Any) -> None:
        """VirusTotal uses the v3 endpoints, the x-apikey header and URL ids."""
        prov = make_providers(ti_server.url)["VirusTotal"]
        assert prov.lookup_ioc("124.5.6.7", "ipv4").severity_name == "warning"
        url = "https://badplace.net/path1/path2?x=1"
        assert prov.lookup_ioc(url, "url").details["positives"] == 1
        prov.lookup_ioc("7657fcb7d772448a6d8504e4b20168b7", "md5_hash")
        prov.lookup_ioc("office.microsoft.com", "dns")
        paths = [r.path for r in ti_server.requests]
        assert paths == [
            "/api/v3/ip_addresses/124.5.6.7",
            f"/api/v3/urls/{vt_url_id(url)}",
            "/api/v3/files/7657fcb7d772448a6d8504e4b20168b7",
            "/api/v3/domains/office.microsoft.com",
        ]
        assert all(r.headers["x-apikey"] == "key" for r in ti_server.requests)
        assert prov.lookup_ioc("www.microsoft.com", "hostname", "whois").status == TILookupStatus.not_supported.value

    def test_virustotal__v3_fixture(self, ti_server: Any, msticpy_testdata: Path) -> None:
        """A v3 file object (40 malicious engines) is a high-severity hit with its name."""
        ti_server.bodies["/api/v3/files/"] = {"data": json.loads((msticpy_testdata / "vt3_file_1.json").read_text())}
        prov = make_providers(ti_server.url)["VirusTotal"]
        result = prov.lookup_ioc("03bd9a94482f180bb047626cb2f27ccf8daa0e201345480b43585580e09c311b", "sha256_hash")
        assert result.result and result.severity_name == "high"
        assert result.details["positives"] == 40 and result.details["meaningful_name"] == "itami.exe"

    def test_greynoise__malicious_is_high(self, ti_server: Any) -> None:
        """GreyNoise: classification malicious is high; other types are not supported."""
        prov = make_providers(ti_server.url)["GreyNoise"]
        result = prov.lookup_ioc("124.5.6.7", "ipv4")
        assert result.severity_name == "high" and result.details["Classification"] == "malicious"
        assert result.details["Last Seen"] == "2021-03-18"
        assert ti_server.requests[0].headers["key"] == "key"
        assert prov.lookup_ioc("office.microsoft.com", "dns").status == TILookupStatus.not_supported.value

    def test_greynoise_quick__no_key_error(self, ti_server: Any) -> None:
        """A quick-endpoint answer without classification is information, not an error (msticpy KeyError)."""
        ti_server.script("/v2/noise/quick/", kit_reply(200, {"ip": "124.5.6.7", "noise": True, "code": "0x01"}))
        prov = make_providers(ti_server.url)["GreyNoise"]
        result = prov.lookup_ioc("124.5.6.7", "ipv4", "quick")
        assert result.status == 0 and result.result and result.severity_name == "information"

    @pytest.mark.parametrize("name", ["XForce", "OTX", "VirusTotal", "GreyNoise"])
    def test_lookup_iocs__17_bad_3_benign(self, ti_server: Any, kit: SimpleNamespace, name: str) -> None:
        """msticpy's test: 20 IPs give 20 rows, 17 with Result True; 404s are misses, not HTTP-code statuses."""
        prov = make_providers(ti_server.url)[name]
        result = prov.lookup_iocs([*kit.BAD_IPS, *kit.BENIGN_IPS])
        assert isinstance(result, pl.DataFrame)
        assert result.height == 20
        assert result["Result"].sum() == 17
        assert set(result["Status"].to_list()) == {0}
        benign = result.filter(pl.col("Ioc").is_in(list(kit.BENIGN_IPS)))
        assert all(orjson.loads(d)["http_status"] == 404 for d in benign["Details"].to_list())
        assert list(result.columns) == list(LookupResult.column_map().values())

    def test_tilookup__all_providers(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """TILookup over the four providers: 80 rows, 68 found; severities as in the reference run."""
        ti = TILookup(primary_providers=list(make_providers(ti_server.url).values()))
        result = ti.lookup_iocs([*kit.BAD_IPS, *kit.BENIGN_IPS])
        assert result.height == 80 and result["Result"].sum() == 68
        sev = result.filter(pl.col("Result")).group_by("Provider").agg(pl.col("Severity").unique())
        by_provider = {row["Provider"]: sorted(row["Severity"]) for row in sev.to_dicts()}
        assert by_provider == {
            "XForce": ["information"],
            "OTX": ["warning"],
            "VirusTotal": ["warning"],
            "GreyNoise": ["high"],
        }

    def test_tilookup_lookup_ioc__result_to_df(self, ti_server: Any) -> None:
        """lookup_ioc returns (found, [(name, result)]) and result_to_df drops SafeIoc."""
        ti = TILookup(primary_providers=list(make_providers(ti_server.url).values()))
        found, results = ti.lookup_ioc("124.5.6.7")
        assert found and [name for name, _ in results] == ["XForce", "OTX", "VirusTotal", "GreyNoise"]
        frame = TILookup.result_to_df((found, results))
        assert frame.height == 4 and "SafeIoc" not in frame.columns

    def test_not_found__negatively_cached(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A 404 is a miss that is cached: the second lookup does not reach the server."""
        prov = make_providers(ti_server.url)["OTX"]
        first = prov.lookup_ioc(kit.BENIGN_IPS[0], "ipv4")
        second = prov.lookup_ioc(kit.BENIGN_IPS[0], "ipv4")
        assert not first.result and first.status == 0 and second.details == first.details
        assert ti_server.count(kit.BENIGN_IPS[0]) == 1
        assert prov.cache.stats.negative_hits == 1

    def test_server_error__query_failed_not_cached(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A 500 gives status query_failed with the HTTP code in Details, and is not cached (msticpy lru_cache)."""
        ti_server.script("185.92.220.35", kit.Reply(500))
        prov = make_providers(ti_server.url, http_settings=fast_http(max_retries=1))["XForce"]
        result = prov.lookup_ioc("185.92.220.35", "ipv4")
        assert result.status == TILookupStatus.query_failed.value
        assert result.details["http_status"] == 500
        assert ti_server.count("185.92.220.35") == 2
        prov.lookup_ioc("185.92.220.35", "ipv4")
        assert ti_server.count("185.92.220.35") == 4

    def test_rate_limit__requests_counted_by_server(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A burst of 3 and no refill: only 3 requests reach the server, the rest are rate limited."""
        prov = VirusTotal(
            AuthKey="key",
            base_url=ti_server.url,
            limits=RateLimits(per_minute=4, burst=3),
            rate_limit_wait_s=0.0,
            clock=lambda: 0.0,
        )
        result = prov.lookup_iocs(list(kit.BAD_IPS[:10]))
        assert ti_server.count("/api/v3/") == 3
        failed = result.filter(pl.col("Status") == TILookupStatus.query_failed.value)
        assert failed.height == 7
        assert {orjson.loads(d)["error"] for d in failed["Details"].to_list()} == {"rate_limited"}

    def test_daily_quota__honoured(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """A daily quota of 2 lets two requests through per UTC day."""
        prov = OTX(AuthKey="key", base_url=ti_server.url, limits=RateLimits(daily_quota=2), wall_clock=lambda: 86400.0)
        prov.lookup_iocs(list(kit.BAD_IPS[:5]))
        assert ti_server.count() == 2

    def test_missing_key__config_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A provider that needs a key and has none raises ConfigError naming the environment variable."""
        monkeypatch.delenv("SECSTREAM_TI_VIRUSTOTAL_AUTHKEY", raising=False)
        with pytest.raises(ConfigError, match="SECSTREAM_TI_VIRUSTOTAL_AUTHKEY"):
            VirusTotal()

    def test_key_from_env__never_logged_or_repr(self, ti_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """The key comes from the environment, is sent, and appears in no log line and no repr."""
        monkeypatch.setenv("SECSTREAM_TI_VIRUSTOTAL_AUTHKEY", "sekrit-vt-key-123")
        ti_server.script("185.92.220.35", kit_reply(500))
        prov = VirusTotal(base_url=ti_server.url, http_settings=fast_http(max_retries=1))
        with capture_logs() as logs:
            result = prov.lookup_ioc("185.92.220.35", "ipv4")
        assert ti_server.requests[0].headers["x-apikey"] == "sekrit-vt-key-123"
        assert logs, "the failure is logged"
        assert "sekrit" not in repr(logs) + repr(prov) + repr(prov.credentials) + str(result)

    def test_tilookup__provider_management(self, ti_server: Any) -> None:
        """enable/disable move providers between primary and secondary; unknown names raise ValueError."""
        provs = make_providers(ti_server.url)
        ti = TILookup(primary_providers=[provs["OTX"], provs["XForce"]], secondary_providers=[provs["GreyNoise"]])
        assert set(ti.loaded_providers) == {"OTX", "XForce", "GreyNoise"}
        ti.enable_provider("GreyNoise")
        ti.disable_provider(["OTX"])
        assert set(ti.primary_providers) == {"XForce", "GreyNoise"}
        assert any("OTX" in line and "Secondary" in line for line in ti.provider_status)
        with pytest.raises(ValueError):
            ti.enable_provider("Nope")
        assert "VirusTotal" in ti.available_providers
        ti.disable_provider(["XForce", "GreyNoise"])
        with pytest.raises(MsticpyException):
            ti.lookup_ioc("124.5.6.7", "ipv4")

    def test_tilookup__empty_result_is_a_frame(self, ti_server: Any) -> None:
        """Nothing to report gives an empty DataFrame with the columns (msticpy raised ValueError)."""
        ti = TILookup(primary_providers=[make_providers(ti_server.url)["GreyNoise"]])
        result = ti.lookup_iocs({"office.microsoft.com": "dns"})
        assert result.height == 0 and "Ioc" in result.columns


class TestVirusTotalFixtures:
    @pytest.mark.parametrize(
        ("name", "ioc_type", "positives"),
        [
            ("fileresponse.json", "file_hash", 65),
            ("url_pos.json", "url", 12),
            ("url_neg.json", "url", 0),
            ("ip-address_neg.json", "ipv4", 0),
        ],
    )
    def test_v2_reports__positives(self, msticpy_testdata: Path, name: str, ioc_type: str, positives: int) -> None:
        """v2 reports parse to the reference's positives."""
        found, _, details = parse_vt_report(json.loads((msticpy_testdata / name).read_text()), ioc_type)
        assert found and details["positives"] == positives

    def test_v2_multi_file__three_reports(self, msticpy_testdata: Path) -> None:
        """file-multi_pos.json holds three reports with positives 7, 8 and 5."""
        reports = json.loads((msticpy_testdata / "file-multi_pos.json").read_text())
        assert [parse_vt_report(r, "md5_hash")[2]["positives"] for r in reports] == [7, 8, 5]

    def test_v2_domain_and_ip__old_detections_count(self, msticpy_testdata: Path) -> None:
        """Detections older than 30 days still count (msticpy's wall-clock filter made them 0)."""
        _, sev, details = parse_vt_report(json.loads((msticpy_testdata / "domain_pos.json").read_text()), "dns")
        assert details["positives"] > 0 and len(details["detected_urls"]) == 57 and sev == TISeverity.high
        _, _, ip_details = parse_vt_report(json.loads((msticpy_testdata / "ip-address_pos.json").read_text()), "ipv4")
        assert ip_details["positives"] > 0 and len(ip_details["detected_urls"]) == 100
        _, _, neg = parse_vt_report(json.loads((msticpy_testdata / "domain_neg.json").read_text()), "dns")
        assert neg["positives"] == 2

    def test_v3_url_object(self, msticpy_testdata: Path) -> None:
        """A bare v3 URL object with no malicious engines is information."""
        found, sev, details = parse_vt_report(json.loads((msticpy_testdata / "vt3_url_0.json").read_text()), "url")
        assert found and sev == TISeverity.information and details["url"] == "http://218.54.47.77/"


class TestLocalBlocklist:
    def test_sample_list__hits(self) -> None:
        """The sample list matches its IPs, networks, subdomains, URLs and hashes (any case)."""
        prov = LocalBlocklist(SAMPLE_BLOCKLIST)
        assert prov.lookup_ioc("203.0.113.66", "ipv4").severity_name == "high"
        assert prov.lookup_ioc("198.51.100.7", "ipv4").severity_name == "warning"
        assert prov.lookup_ioc("cdn.evil.example", "dns").result
        assert prov.lookup_ioc("http://203.0.113.66/payload.sh", "url").details["tags"] == ["dropper", "demo"]
        assert prov.lookup_ioc("http://203.0.113.66/other", "url").details["listed"] == "203.0.113.66"
        assert prov.lookup_ioc("44D88612FEA8A8F36DE82E1278ABB02F", "md5_hash").result
        assert prov.lookup_ioc("2001:db8:dead:beef:0::66", "ipv6").result
        miss = prov.lookup_ioc("8.8.8.8", "ipv4")
        assert not miss.result and miss.status == 0

    def test_plain_text_list(self, tmp_path: Path) -> None:
        """A plain list of IPs and networks works without a header."""
        path = tmp_path / "list.txt"
        path.write_text("# bad\n192.0.2.10\n192.0.2.128/25\n")
        prov = LocalBlocklist(path)
        assert prov.lookup_ioc("192.0.2.10", "ipv4").result
        assert prov.lookup_ioc("192.0.2.200", "ipv4").result
        assert not prov.lookup_ioc("192.0.2.20", "ipv4").result

    def test_bad_file__config_error(self, tmp_path: Path) -> None:
        """A missing file raises ConfigError."""
        with pytest.raises(ConfigError):
            LocalBlocklist(tmp_path / "missing.csv")


def kit_reply(status: int, body: Any = None) -> Any:
    """A scripted reply (the conftest's Reply class, set by the autouse fixture below)."""
    return _REPLY(status=status, body=body)


def fast_http(**kw: Any) -> HttpSettings:
    """HTTP settings with tiny backoffs."""
    return HttpSettings(backoff_base_s=0.001, backoff_max_s=0.01, **kw)


_REPLY: Any = None


@pytest.fixture(autouse=True)
def _reply_class(kit: SimpleNamespace) -> None:
    global _REPLY
    _REPLY = kit.Reply
