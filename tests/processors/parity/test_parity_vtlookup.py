"""VTLookup (VirusTotal v2) against a real local server answering with msticpy's VT fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from processors.enrich.http import HttpSettings
from processors.enrich.ratelimit import RateLimits
from processors.vtlookup import DuplicateStatus, VTLookup, VTParams

FakeVT = Any  # the fake_vt fixture's type (tests/processors/parity/conftest.py)

FILE_MULTI = [
    "aebbdfb2008fc7aefd070bc25bdc3ec5ab222d2619b28ce6a0311d10a57fc00f",
    "9774f5793be51f5ecbec77701dafea3e8faca4fe9dcbae99e6bd6fad12ee00d1",
    "d5cf318c542bdb0070a3289381c1bb86462c3309e0cd138272fdaadf255e207d",
]
FILE_ONE = "7657fcb7d772448a6d8504e4b20168b8"
URL_POS = "http://club-fox.ru/img/www.loginalibaba.com/alibaba/alibaba/login.alibaba.com.php?email=biuro"
URL_NEG = "http://www.microsoft.com"


def _load(testdata: Path, name: str) -> Any:
    return json.loads((testdata / name).read_text(encoding="utf-8"))


@pytest.fixture
def vt(fake_vt: FakeVT, msticpy_testdata: Path) -> VTLookup:
    """A VTLookup pointed at the local server, which serves every v2 fixture."""
    fake_vt.v2[("file", FILE_ONE)] = (200, _load(msticpy_testdata, "fileresponse.json"))
    for report in _load(msticpy_testdata, "file-multi_pos.json"):
        fake_vt.v2[("file", report["resource"])] = (200, report)
    fake_vt.v2[("url", URL_POS.lower())] = (200, _load(msticpy_testdata, "url_pos.json"))
    fake_vt.v2[("url", URL_NEG)] = (200, _load(msticpy_testdata, "url_neg.json"))
    fake_vt.v2[("domain", "club-fox.ru")] = (200, _load(msticpy_testdata, "domain_pos.json"))
    fake_vt.v2[("domain", "python.org")] = (200, _load(msticpy_testdata, "domain_neg.json"))
    fake_vt.v2[("ip-address", "90.156.201.27")] = (200, _load(msticpy_testdata, "ip-address_pos.json"))
    fake_vt.v2[("ip-address", "151.101.0.223")] = (200, _load(msticpy_testdata, "ip-address_neg.json"))
    return VTLookup("test-key", base_url=fake_vt.base_url, rate_limits=None, http_settings=HttpSettings(max_retries=0))


def _frame(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"Observable": [r[0] for r in rows], "IoCType": [r[1] for r in rows]})


def _count(text: str | None) -> int:
    return len(text.split(", ")) if text else 0


class TestVTLookupFixtures:
    """Each VT v2 fixture parses to msticpy's values."""

    def test_single_file_report(self, vt: VTLookup) -> None:
        """fileresponse.json gives one row with 65 positives and the three hashes."""
        row = vt.lookup_ioc(FILE_ONE, "md5_hash")
        assert row["Positives"] == 65
        assert row["Status"] == "Success"
        assert row["MD5"] == FILE_ONE
        assert row["ResponseCode"] == 1

    def test_file_batch_maps_each_result_to_its_hash(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """Three SHA-256 hashes go in one request and come back as rows with 7, 8 and 5 positives."""
        out = vt.lookup_iocs(_frame([(h, "sha256_hash") for h in FILE_MULTI]))
        assert out["Positives"].to_list() == [7, 8, 5]
        assert out["Observable"].to_list() == FILE_MULTI
        assert out["SHA256"].to_list() == FILE_MULTI
        file_requests = [r for r in fake_vt.requests if r[1] == "/vtapi/v2/file/report"]
        assert len(file_requests) == 1
        assert file_requests[0][2]["resource"] == ",".join(FILE_MULTI)
        assert file_requests[0][2]["apikey"] == "test-key"

    def test_file_hashes_are_batched_25_per_request(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """60 distinct hashes need three requests (25 + 25 + 10)."""
        hashes = [f"{i:02d}0123456789abcdef0123456789abcd" for i in range(60)]
        out = vt.lookup_iocs(_frame([(h, "md5_hash") for h in hashes]))
        sizes = [len(r[2]["resource"].split(",")) for r in fake_vt.requests if r[1] == "/vtapi/v2/file/report"]
        assert sorted(sizes) == [10, 25, 25]
        assert out.height == 60
        assert set(out["ResponseCode"].to_list()) == {0}

    def test_url_reports(self, vt: VTLookup) -> None:
        """url_pos has 12 positives and url_neg 0."""
        out = vt.lookup_iocs(_frame([(URL_POS, "url"), (URL_NEG, "url")]))
        assert out["Positives"].to_list() == [12, 0]
        assert out["Resource"].to_list() == [URL_POS, URL_NEG]
        assert out["Permalink"].str.starts_with("https://www.virustotal.com/url/").all()

    def test_domain_reports(self, vt: VTLookup) -> None:
        """domain_pos sums to 655 positives with 6 IPs and 57 URLs; domain_neg to 2 with 4 IPs and 2 URLs."""
        out = vt.lookup_iocs(_frame([("club-fox.ru", "dns"), ("python.org", "dns")]))
        assert out["Positives"].to_list() == [655, 2]
        assert [_count(v) for v in out["ResolvedIPs"].to_list()] == [6, 4]
        assert [_count(v) for v in out["DetectedUrls"].to_list()] == [57, 2]
        assert out["ResolvedDomains"].to_list() == [None, None]

    def test_ip_reports(self, vt: VTLookup) -> None:
        """ip-address_pos sums to 479 with 1000 domains and 100 URLs; ip-address_neg to 0 with 13 domains."""
        out = vt.lookup_iocs(_frame([("90.156.201.27", "ipv4"), ("151.101.0.223", "ipv4")]))
        assert out["Positives"].to_list() == [479, 0]
        assert [_count(v) for v in out["ResolvedDomains"].to_list()] == [1000, 13]
        assert [_count(v) for v in out["DetectedUrls"].to_list()] == [100, 0]

    def test_result_columns(self, vt: VTLookup) -> None:
        """The columns are msticpy's, in order, with its duplicated Resource column kept once."""
        out = vt.lookup_iocs(_frame([(URL_NEG, "url")]))
        assert out.columns == [
            "Observable", "IoCType", "Status", "ResponseCode", "RawResponse", "Resource", "SourceIndex",
            "VerboseMsg", "ScanId", "Permalink", "Positives", "MD5", "SHA1", "SHA256", "ResolvedDomains",
            "ResolvedIPs", "DetectedUrls",
        ]  # fmt: skip
        assert json.loads(out["RawResponse"][0])["positives"] == 0


class TestVTLookupPreprocessing:
    """Observables are checked locally before anything is sent (msticpy test_vtlookup cases)."""

    @pytest.mark.parametrize(
        ("observable", "ioc_type"),
        [
            ("10.0.0.1", "ipv4"),
            ("255.255.20.27", "ipv4"),
            ("127.0.0.1", "ipv4"),
            ("122.1.3", "ipv4"),
            ("http://10.0.0.1/foo", "url"),
            ("https://myhost/path", "url"),
            ("http//club-fox.ru/foo.html", "url"),
            ("//club-fox.ru/foo.html", "url"),
            ("https://123:microsoft.com@user/foo.txt", "url"),
            ("http//10.0.0.1/foo.txt", "url"),
        ],
    )
    def test_invalid_observables_are_not_sent(
        self, vt: VTLookup, fake_vt: FakeVT, observable: str, ioc_type: str
    ) -> None:
        """An invalid observable yields a row whose Status gives the reason, and no request."""
        out = vt.lookup_iocs(_frame([(observable, ioc_type)]))
        assert out.height == 1
        assert out["Status"][0] not in ("Success", "Duplicate")
        assert out["Positives"][0] is None
        assert fake_vt.requests == []

    @pytest.mark.parametrize(
        ("observable", "ioc_type"),
        [
            ("90.156.201.27", "ipv4"),
            (URL_POS, "url"),
            ("https://microsoft.com", "url"),
            ("https://python.org", "url"),
            ("https://www.virustotal.com/#/home/upload", "url"),
        ],
    )
    def test_valid_observables_are_sent_unchanged(
        self, vt: VTLookup, fake_vt: FakeVT, observable: str, ioc_type: str
    ) -> None:
        """A valid observable is submitted as given."""
        out = vt.lookup_iocs(_frame([(observable, ioc_type)]))
        assert out["Status"][0] == "Success"
        sent = fake_vt.requests[0][2]
        assert observable in (sent.get("ip"), sent.get("resource"))

    def test_private_ip_reason(self, vt: VTLookup) -> None:
        """The reason is msticpy's message."""
        row = vt.lookup_ioc("10.0.0.1", "ipv4")
        assert row["Status"] == "IP address is not global"

    def test_empty_observable(self, vt: VTLookup) -> None:
        """A missing observable gets msticpy's empty-value status."""
        out = vt.lookup_iocs(pl.DataFrame({"Observable": [None, " "], "IoCType": ["ipv4", "dns"]}))
        assert out["Status"].to_list() == ["Failed: Empty or missing observable value"] * 2


class TestVTLookupTypes:
    """Supported types and mappings."""

    def test_sha256_is_supported(self, vt: VTLookup) -> None:
        """sha256_hash is a supported type (msticpy's "sh256_hash" typo made it unsupported)."""
        assert "sha256_hash" in vt.supported_ioc_types
        assert vt.ioc_vt_type_mapping["sha256_hash"] == "file"
        row = vt.lookup_ioc(FILE_MULTI[0], "sha256_hash")
        assert row["Positives"] == 7

    def test_misspelt_sha256_still_accepted(self, vt: VTLookup) -> None:
        """msticpy's "sh256_hash" name is accepted as an alias and reported as sha256_hash."""
        row = vt.lookup_ioc(FILE_MULTI[1], "sh256_hash")
        assert row["Positives"] == 8
        assert row["IoCType"] == "sha256_hash"

    def test_unknown_type_raises_key_error(self, vt: VTLookup) -> None:
        """An unsupported IoC type raises KeyError, as documented."""
        with pytest.raises(KeyError):
            vt.lookup_ioc("foo", "windows_path")

    def test_unsupported_rows_are_ignored(self, vt: VTLookup) -> None:
        """Rows of types VT does not take (e.g. ipv6) are skipped, as in msticpy."""
        out = vt.lookup_iocs(_frame([("2001:4860::8888", "ipv6"), ("club-fox.ru", "dns")]))
        assert out["Observable"].to_list() == ["club-fox.ru"]

    def test_custom_type_names(self, vt: VTLookup) -> None:
        """kwargs map custom type names (ipv4="ipaddress")."""
        out = vt.lookup_iocs(_frame([("90.156.201.27", "ipaddress")]), ipv4="ipaddress")
        assert out["IoCType"].to_list() == ["ipv4"]
        assert out["Positives"].to_list() == [479]

    def test_vt_types_and_params(self, vt: VTLookup) -> None:
        """VT types and their request parameters match msticpy's."""
        assert vt.supported_vt_types == ["url", "file", "ip-address", "domain"]
        file_params = VTLookup._VT_API_TYPES["file"]
        assert isinstance(file_params, VTParams)
        assert (file_params.batch_size, file_params.batch_delimiter, file_params.api_var_name) == (25, ",", "resource")


class TestVTLookupDuplicatesAndFailures:
    """Duplicates are answered locally; failures give status rows."""

    def test_duplicates_in_one_call_are_sent_once(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """The second occurrence is a Duplicate copy of the first, and only one request is made."""
        out = vt.lookup_iocs(_frame([("club-fox.ru", "dns"), ("club-fox.ru", "dns")]))
        assert out["Status"].to_list() == ["Success", "Duplicate"]
        assert out["Positives"].to_list() == [655, 655]
        assert out["SourceIndex"].to_list() == [0, 1]
        assert len(fake_vt.requests) == 1

    def test_hash_duplicate_of_earlier_result(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """A SHA-256 whose report was fetched earlier via its MD5 is a duplicate, not a new request."""
        vt.lookup_iocs(_frame([(FILE_ONE, "md5_hash")]))
        sha256 = vt.results["SHA256"][0]
        out = vt.lookup_iocs(_frame([(sha256, "sha256_hash")]))
        assert out["Status"].to_list() == ["Duplicate"]
        assert out["Positives"].to_list() == [65]
        assert out["Observable"].to_list() == [sha256]
        assert len(fake_vt.requests) == 1

    def test_results_accumulate_but_calls_return_their_rows(self, vt: VTLookup) -> None:
        """Each call returns its own rows; results keeps all of them (msticpy returned everything)."""
        first = vt.lookup_iocs(_frame([("club-fox.ru", "dns")]))
        second = vt.lookup_iocs(_frame([("python.org", "dns")]))
        assert (first.height, second.height, vt.results.height) == (1, 1, 2)
        assert DuplicateStatus(False, "ok") == vt._check_duplicate_submission("example.com", "dns")

    def test_http_error_gives_failed_submission_rows(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """A non-200 answer marks every observable of the batch with msticpy's status."""
        fake_vt.v2[("file", FILE_MULTI[0])] = (403, {"error": "forbidden"})
        out = vt.lookup_iocs(_frame([(FILE_MULTI[0], "sha256_hash")]))
        assert out["Status"].to_list() == ["Failed submission: http error 403"]

    def test_rate_limit_gives_failed_submission_rows(self, fake_vt: FakeVT, msticpy_testdata: Path) -> None:
        """Past the request budget, observables fail as rate limited instead of being sent."""
        fake_vt.v2[("domain", "python.org")] = (200, _load(msticpy_testdata, "domain_neg.json"))
        vt = VTLookup(
            "k",
            base_url=fake_vt.base_url,
            rate_limits=RateLimits(per_minute=1, burst=1, max_concurrency=1),
            max_wait_s=0,
        )
        out = vt.lookup_iocs(_frame([("python.org", "dns"), ("club-fox.ru", "dns")]))
        assert out["Status"][0] == "Success"
        assert out["Status"][1].startswith("Failed submission: request rate limit reached")
        assert len(fake_vt.requests) == 1

    def test_failures_are_not_cached(self, vt: VTLookup, fake_vt: FakeVT, msticpy_testdata: Path) -> None:
        """After a failed request, a new lookup of the same observable asks VT again."""
        fake_vt.v2[("domain", "python.org")] = (500, {"error": "boom"})
        assert vt.lookup_ioc("python.org", "dns")["Status"] == "Failed submission: http error 500"
        fake_vt.v2[("domain", "python.org")] = (200, _load(msticpy_testdata, "domain_neg.json"))
        fresh = VTLookup("k", base_url=fake_vt.base_url, rate_limits=None, cache=vt.cache)
        assert fresh.lookup_ioc("python.org", "dns")["Positives"] == 2
        assert len(fake_vt.requests) == 2

    def test_cache_is_shared_between_instances(self, vt: VTLookup, fake_vt: FakeVT) -> None:
        """A second instance sharing the cache answers without a request."""
        vt.lookup_ioc("club-fox.ru", "dns")
        other = VTLookup("k", base_url=fake_vt.base_url, rate_limits=None, cache=vt.cache)
        assert other.lookup_ioc("club-fox.ru", "dns")["Positives"] == 655
        assert len(fake_vt.requests) == 1


class TestVTLookupInputs:
    """pandas input and output formats."""

    def test_pandas_input_uses_index_and_source_column(self, vt: VTLookup) -> None:
        """A pandas frame works; SourceIndex comes from the SourceIndex column when present, else the index."""
        data = pd.DataFrame({"Observable": ["python.org"], "IoCType": ["dns"]}, index=[42])
        out = vt.lookup_iocs(data)
        assert isinstance(out, pl.DataFrame)
        assert out["SourceIndex"].to_list() == [42]
        data["SourceIndex"] = ["row-a"]
        assert vt.lookup_iocs(data)["SourceIndex"].to_list() == ["row-a"]

    def test_lookup_ioc_dataframe_output(self, vt: VTLookup) -> None:
        """Any output other than "dict" returns a polars frame."""
        out = vt.lookup_ioc("python.org", "dns", output="df")
        assert isinstance(out, pl.DataFrame)
        assert out.height == 1

    async def test_async_api_inside_a_running_loop(self, vt: VTLookup) -> None:
        """The async variant works in a loop, and the sync API works from inside one too (notebooks)."""
        row = await vt.lookup_ioc_async("python.org", "dns")
        await vt.close()
        assert row["Positives"] == 2
        again = vt.lookup_ioc("club-fox.ru", "dns")
        assert again["Positives"] == 655
