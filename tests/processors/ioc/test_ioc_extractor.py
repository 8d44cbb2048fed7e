"""IoCExtract: msticpy's test expectations, deliberate differences, defanging and the valid/invalid corpora."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from processors.errors import MsticpyException
from processors.iocextract import IoCExtract, IoCExtractSettings, IoCType, refang

DATA = Path(__file__).resolve().parents[2] / "data" / "ioc"

# msticpy's tests/transform/test_ioc_extractor.py test strings (MIT, Microsoft), reconstructed from the
# reference notes (section 5/12) and golden_outputs.txt.
TEST_CASES = {
    "ipv4_test": r"c:\one\path\or\another\myprocess -ip4:206.123.1.123",
    "ipv6_test": r"""c:\one\path\or\another\myprocess -ip6:(2001:0db8:85a3:0000:0000:8a2e:0370:7334,
    2001:db8:85a3:0:0:8a2e:370:7334,2001:db8:85a3::8a2e:370:7334,::ffff:192.0.2.128)""",
    "url_test": r"""c:\one\path\or\another\myprocess /url:https://some.domain.it/thepath?qry1=abc&qry2=xyz
        /url:https://myuser@some.domain.es:88/thepath?qry1=abc&qry2=xyz"<some other trailing stuff""",
    "windows_path_test": r'c:\one\path\or\another\myprocess -file:"..\another\file" -file:"\\uncpath\file"',
    "linux_path_test": r"/bin/bash --file:./bish --file:/bin/bash --file:../../bosh",
    "md5_hash_test": (
        "00236a2ae558018ed13b5222ef1bd987hash -something-hash=00236a2ae558018ed13b5222ef1bd988hash "
        "-something -hash=00236a2ae558018ed13b5222ef1bd989"
    ),
    "sha1_hash_test": (
        "00236a2ae558018ed13b5222ef1bd98700000001hash -something -hash=00236a2ae558018ed13b5222ef1bd98700000002hash"
        " -something -hash=00236a2ae558018ed13b5222ef1bd98700000003"
    ),
    "sha256_hash_test": (
        "00236a2ae558018ed13b5222ef1bd98700000001424246789042424678901234hash -something "
        "-hash=00236a2ae558018ed13b5222ef1bd98700000001424246789042424678901235hash -something\n"
        "-hash=00236a2ae558018ed13b5222ef1bd98700000001424246789042424678901236"
    ),
    "url2_test": "curl 'https://www.virustotal.com/en/ip-address/90.156.201.27/information/'",
    "domain1_test": "some text with a domain.like.uk in it",
    "domain_neg_test": "some text with a bad domain.like.iandom in it",
    "domain_short_test": "some text with a microsoft.com in it",
    "domain_ycombinator_test": "some text with a news.ycombinator.com in it",
    "email1_test": "some text with user@microsoft.com in it",
    "email2_test": "some text with User <user@microsoft.com> in it",
    "email3_test": "some text with user@microsoft.com (User XYZ)> in it",
    "email4_test": "some text with user@abc.def.net> in it",
}

DEFANGED_CASES = {
    "ipv4": [
        (r"c:\one\path\or\another\myprocess -ip4:206[.]123.1.123", True),
        (r"c:\one\path\or\another\myprocess -ip4:206[.]123[.]1[.]123", True),
        (r"c:\one\path\or\another\myprocess -ip4:206.123[.]1[.]123", True),
        (r"c:\one\path\or\another\myprocess -ip4:206.123[.]1[.]com", False),
    ],
    "url": [
        (f"curl '{proto}://www[.]virustotal.com/en/ip-address/90.156.201.27/information/'", True)
        for proto in ("hXXps", "ftp", "sftp", "ftps", "fXp", "sfXp", "fXps", "file", "telnet")
    ]
    + [("curl 'ftp://www[.]virustotal[.]com/en/ip-address/90.156.201.27/information/'", True)],
    "dns": [
        ("some text with a domain[.]like.uk in it", True),
        ("some text with a domain.like[.]uk in it", True),
        ("some text with a domain[.]like[.]uk in it", True),
    ],
    "email": [
        ("some text with a user@domain[.]like.uk in it", True),
        ("some text with a user[AT]domain[.]like.uk in it", True),
        ("some text with a user@domain.like.uk in it", True),
    ],
}


def _run(extractor: IoCExtract, case: str) -> dict[str, set[str]]:
    result = extractor.extract(TEST_CASES[case + "_test"], include_paths=True)
    assert isinstance(result, dict)
    return result


def _input_frame() -> pd.DataFrame:
    return pd.DataFrame.from_dict(data=TEST_CASES, orient="index", columns=["input"])


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per IoCType of a pandas result (pandas in, pandas out)."""
    assert isinstance(frame, pd.DataFrame)
    return {str(key): int(value) for key, value in frame["IoCType"].value_counts().items()}


@pytest.fixture(scope="module")
def extractor() -> IoCExtract:
    return IoCExtract()


class TestMsticpyStringExpectations:
    """String-mode expectations of msticpy's test_ioc_extractor (include_paths=True)."""

    @pytest.mark.parametrize(
        ("case", "expected"),
        [
            ("ipv4", {"ipv4": 1}),
            ("ipv6", {"ipv6": 3}),
            ("url", {"url": 2, "dns": 2, "ipv4": 0}),
            ("url2", {"url": 1, "dns": 1, "ipv4": 1}),
            ("windows_path", {"windows_path": 3}),
            ("linux_path", {"linux_path": 3}),
            ("md5_hash", {"md5_hash": 3}),
            ("sha1_hash", {"sha1_hash": 3}),
            ("sha256_hash", {"sha256_hash": 3}),
            ("domain1", {"dns": 1}),
            ("domain_neg", {"dns": 0}),
            ("domain_short", {"dns": 1}),
            ("domain_ycombinator", {"dns": 1}),
            ("email1", {"email": 1}),
            ("email2", {"email": 1}),
            ("email3", {"email": 1}),
            ("email4", {"email": 1}),
        ],
    )
    def test_counts(self, extractor: IoCExtract, case: str, expected: dict[str, int]) -> None:
        """Each msticpy test string yields the expected number of observables per type."""
        result = _run(extractor, case)
        for ioc_type, count in expected.items():
            assert len(result.get(ioc_type, set())) == count, ioc_type

    def test_golden_values(self, extractor: IoCExtract) -> None:
        """The observables equal msticpy's golden sets where msticpy is right."""
        assert _run(extractor, "ipv6")["ipv6"] == {
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8:85a3:0:0:8a2e:370:7334",
            "2001:db8:85a3::8a2e:370:7334",
        }
        assert _run(extractor, "windows_path")["windows_path"] == {
            r"..\another\file",
            r"\\uncpath\file",
            r"c:\one\path\or\another\myprocess",
        }
        assert _run(extractor, "linux_path")["linux_path"] == {"../../bosh", "./bish", "/bin/bash"}
        assert _run(extractor, "url")["url"] == {
            "https://myuser@some.domain.es:88/thepath?qry1=abc&qry2=xyz",
            "https://some.domain.it/thepath?qry1=abc&qry2=xyz",
        }
        assert _run(extractor, "email2")["email"] == {"user@microsoft.com"}

    def test_ipv4_mapped_ipv6_is_reported_as_ipv4(self, extractor: IoCExtract) -> None:
        """``::ffff:192.0.2.128`` is the IPv4 address 192.0.2.128, not a fourth IPv6 observable."""
        assert _run(extractor, "ipv6")["ipv4"] == {"192.0.2.128"}


class TestDeliberateDifferences:
    """Where msticpy is wrong, secstream states the better answer."""

    def test_url_path_quote_is_not_part_of_the_url(self, extractor: IoCExtract) -> None:
        """The closing quote after a URL is not included (msticpy keeps ``information/'``)."""
        assert _run(extractor, "url2")["url"] == {"https://www.virustotal.com/en/ip-address/90.156.201.27/information/"}

    def test_url_parts_are_not_linux_paths(self, extractor: IoCExtract) -> None:
        """Paths inside URLs are not reported as linux paths (msticpy reports ``//some.domain.it/...``)."""
        assert "linux_path" not in _run(extractor, "url")

    def test_url_userinfo_is_not_an_email(self, extractor: IoCExtract) -> None:
        """``https://myuser@host`` does not produce an e-mail (msticpy 3 reports ``//myuser@some.domain.es``)."""
        assert "email" not in _run(extractor, "url")

    def test_percent_decoded_variant_for_every_url(self, extractor: IoCExtract) -> None:
        """Every URL's percent-decoded form and nested URLs are found (msticpy misses the second URL's)."""
        text = "x https://a.example.com/x and https://b.example.com/y%20z%3Dhttps%3A%2F%2Fc.example.org%2Fw"
        result = extractor.extract(text)
        assert isinstance(result, dict)
        assert "https://b.example.com/y z=https://c.example.org/w" in result["url"]
        assert "https://c.example.org/w" in result["url"]
        assert result["dns"] == {"a.example.com", "b.example.com", "c.example.org"}

    def test_percent_escape_is_not_part_of_a_domain(self, extractor: IoCExtract) -> None:
        """``%2Fbad.org`` gives the domain ``bad.org``, not msticpy's ``2Fbad.org``."""
        result = extractor.extract("see http://evil.com/a%2Fhttp%3A%2F%2Fbad.org%2Fpayload and 10.0.0.1")
        assert isinstance(result, dict)
        assert result["dns"] == {"evil.com", "bad.org"}
        assert result["ipv4"] == {"10.0.0.1"}
        assert "http://bad.org/payload" in result["url"]

    def test_url_host_not_leaked_into_unrequested_dns(self, extractor: IoCExtract) -> None:
        """A URL's host is reported as dns only when dns was requested."""
        result = extractor.extract(TEST_CASES["url_test"], ioc_types=["url"])
        assert isinstance(result, dict)
        assert set(result) == {"url"}

    def test_string_mode_honours_include_paths(self, extractor: IoCExtract) -> None:
        """Without include_paths string mode reports no paths (msticpy always includes them)."""
        result = extractor.extract(TEST_CASES["ipv4_test"])
        assert isinstance(result, dict)
        assert result == {"ipv4": {"206.123.1.123"}}

    def test_invalid_octets_are_not_ipv4(self, extractor: IoCExtract) -> None:
        """``999.999.999.999`` is not an IPv4 address (msticpy says ipv4)."""
        assert extractor.get_ioc_type("999.999.999.999") == "unknown"
        assert extractor.validate("999.999.999.999", "ipv4") is False

    def test_ignore_tlds_is_not_sticky(self, extractor: IoCExtract) -> None:
        """ignore_tlds applies to one call only."""
        text = TEST_CASES["domain_neg_test"]
        assert extractor.extract(text, ignore_tlds=True) == {"dns": {"domain.like.iandom"}}
        assert extractor.extract(text) == {}

    def test_add_ioc_type_does_not_leak_to_other_instances(self) -> None:
        """Custom types belong to one instance (msticpy's pattern table is class-level)."""
        first, second = IoCExtract(), IoCExtract()
        first.add_ioc_type("ticket", r"TCK-[0-9]{4}")
        assert first.extract("see TCK-1234") == {"ticket": {"TCK-1234"}}
        assert "ticket" not in second.ioc_types
        assert second.extract("see TCK-1234") == {}

    def test_dataframe_include_paths_includes_linux_paths(self, extractor: IoCExtract) -> None:
        """DataFrame mode with include_paths reports linux paths too (as documented; msticpy drops them)."""
        counts = _counts(extractor.extract_df(_input_frame(), ["input"], include_paths=True))
        assert counts["linux_path"] == 3


class TestMsticpyDataFrameExpectations:
    """DataFrame-mode expectations of msticpy's tests, with secstream's corrections stated."""

    def test_include_paths(self, extractor: IoCExtract) -> None:
        """ipv4/ipv6/url/hashes 3 each and windows_path 6 (linux_path 3, see TestDeliberateDifferences)."""
        frame = extractor.extract(data=_input_frame(), columns=["input"], include_paths=True)
        assert isinstance(frame, pd.DataFrame)
        assert frame.columns.tolist() == ["IoCType", "Observable", "SourceIndex", "Input"]
        counts = _counts(frame)
        for ioc_type in ("ipv4", "ipv6", "url", "md5_hash", "sha1_hash", "sha256_hash"):
            assert counts[ioc_type] == 3, ioc_type
        assert counts["windows_path"] == 6

    def test_explicit_types(self, extractor: IoCExtract) -> None:
        """Explicit types: no windows paths, no leaked dns, and linux paths only outside URLs (3, not 8)."""
        types = ["ipv4", "ipv6", "url", "linux_path", "md5_hash", "sha1_hash", "sha256_hash"]
        for frame in (
            extractor.extract(data=_input_frame(), columns=["input"], include_paths=True, ioc_types=types),
            extractor.extract_df(_input_frame(), ["input"], include_paths=True, ioc_types=types),
        ):
            counts = _counts(frame)
            assert counts == {
                "ipv4": 3,
                "ipv6": 3,
                "url": 3,
                "linux_path": 3,
                "md5_hash": 3,
                "sha1_hash": 3,
                "sha256_hash": 3,
            }

    def test_three_types(self, extractor: IoCExtract) -> None:
        """ioc_types [ipv4, url, md5_hash] gives 3 of each and nothing else."""
        frame = extractor.extract_df(_input_frame(), "input", ioc_types=["ipv4", "url", "md5_hash"])
        assert _counts(frame) == {"ipv4": 3, "url": 3, "md5_hash": 3}

    def test_source_index_is_the_pandas_index(self, extractor: IoCExtract) -> None:
        """SourceIndex carries the pandas index value of the source row."""
        frame = extractor.extract_df(_input_frame(), ["input"], ioc_types=["ipv4"])
        assert sorted(frame["SourceIndex"].tolist()) == ["ipv4_test", "ipv6_test", "url2_test"]
        assert frame.index.tolist() == [0, 1, 2]  # a fresh RangeIndex, as msticpy's

    def test_polars_input_uses_row_numbers(self, extractor: IoCExtract) -> None:
        """A polars frame's SourceIndex is the row number."""
        frame = extractor.extract_df(pl.DataFrame({"cmd": ["nothing", "ping 10.1.2.3"]}), "cmd")
        assert frame.to_dicts() == [
            {"IoCType": "ipv4", "Observable": "10.1.2.3", "SourceIndex": 1, "Input": "ping 10.1.2.3"}
        ]

    def test_missing_column_raises(self, extractor: IoCExtract) -> None:
        """A partially missing column list is detected (msticpy's strict-superset check misses it)."""
        with pytest.raises(MsticpyException):
            extractor.extract_df(_input_frame(), ["input", "nope"])

    def test_unknown_kwarg_raises(self, extractor: IoCExtract) -> None:
        """Unknown keyword arguments are rejected."""
        with pytest.raises(MsticpyException):
            extractor.extract("1.2.3.4", bogus=True)

    def test_no_input_raises(self, extractor: IoCExtract) -> None:
        """Neither src nor data raises MsticpyException."""
        with pytest.raises(MsticpyException):
            extractor.extract()


class TestDefanged:
    """Defanged indicators (msticpy 3 test cases) are found and refanged."""

    @pytest.mark.parametrize(
        ("ioc_type", "text", "expected"),
        [(ioc_type, text, expected) for ioc_type, cases in DEFANGED_CASES.items() for text, expected in cases],
    )
    def test_found(self, extractor: IoCExtract, ioc_type: str, text: str, expected: bool) -> None:
        """Each defanged case yields (or does not yield) its type."""
        result = extractor.extract(text)
        assert isinstance(result, dict)
        assert bool(result.get(ioc_type)) is expected

    @pytest.mark.parametrize("text", [text for text, _ in DEFANGED_CASES["ipv4"]])
    def test_not_found_without_defang(self, text: str) -> None:
        """With defanged=False none of the defanged IPv4 cases is an IPv4 address."""
        result = IoCExtract(defanged=False).extract(text)
        assert isinstance(result, dict)
        assert not result.get("ipv4")

    def test_refanged_by_default(self, extractor: IoCExtract) -> None:
        """Defanged indicators come back refanged (msticpy 3 returns them as written)."""
        result = extractor.extract("hxxps://www[.]evil[.]com/x user[AT]domain[.]like.uk 206[.]123.1.123")
        assert result == {
            "url": {"https://www.evil.com/x"},
            "dns": {"www.evil.com", "domain.like.uk"},
            "email": {"user@domain.like.uk"},
            "ipv4": {"206.123.1.123"},
        }

    def test_kept_as_written_on_request(self) -> None:
        """refang=False returns each indicator exactly as written."""
        result = IoCExtract(refang=False).extract("hxxps://a[.]b.com/x user[AT]domain[.]like.uk 206[.]123.1.123")
        assert result == {
            "url": {"hxxps://a[.]b.com/x"},
            "dns": {"a[.]b.com", "domain[.]like.uk"},
            "email": {"user[AT]domain[.]like.uk"},
            "ipv4": {"206[.]123.1.123"},
        }

    def test_refang_helper(self) -> None:
        """refang() undoes the common defanging marks."""
        assert refang("hXXp[:]//evil(.)com[/]x a[at]b[dot]org") == "http://evil.com/x a@b.org"

    def test_fqdn_is_never_an_email(self, extractor: IoCExtract) -> None:
        """A plain FQDN never comes out as an e-mail (msticpy issue #681)."""
        assert extractor.extract(TEST_CASES["domain_ycombinator_test"]) == {"dns": {"news.ycombinator.com"}}


class TestSingleObservableApi:
    """validate, get_ioc_type, file_hash_type and IoCType.parse."""

    @pytest.mark.parametrize(
        ("observable", "expected"),
        [
            ("1.2.3.4", "ipv4"),
            ("www.microsoft.com", "dns"),
            ("https://a.b.com/x", "url"),
            ("00236a2ae558018ed13b5222ef1bd987", "md5_hash"),
            ("/bin/bash", "linux_path"),
            ("c:\\windows\\a.exe", "windows_path"),
            ("a.b.c.d", "unknown"),
            ("localhost", "unknown"),
            ("fe80::1", "ipv6"),
            ("user@example.com", "email"),
        ],
    )
    def test_get_ioc_type(self, extractor: IoCExtract, observable: str, expected: str) -> None:
        """get_ioc_type matches msticpy's golden answers (except 999.999.999.999, see differences)."""
        assert extractor.get_ioc_type(observable) == expected

    @pytest.mark.parametrize(
        ("value", "ioc_type", "expected"),
        [
            ("microsoft.com", "dns", True),
            ("microsoft.zzzz", "dns", False),
            ("00236a2ae558018ed13b5222ef1bd987", "file_hash", True),
            ("www.microsoft.com", "hostname", True),
            ("www[.]python[.]com", "dns", True),
            ("1.2.3.4 extra", "ipv4", False),
        ],
    )
    def test_validate(self, extractor: IoCExtract, value: str, ioc_type: str, expected: bool) -> None:
        """validate checks the whole string against one type."""
        assert extractor.validate(value, ioc_type) is expected

    def test_validate_unknown_type_raises(self, extractor: IoCExtract) -> None:
        """An unknown type raises KeyError as in msticpy."""
        with pytest.raises(KeyError):
            extractor.validate("x", "nope")

    def test_file_hash_type(self) -> None:
        """Hash types are picked by length."""
        assert IoCExtract.file_hash_type("a" * 32) is IoCType.md5_hash
        assert IoCExtract.file_hash_type("a" * 40) is IoCType.sha1_hash
        assert IoCExtract.file_hash_type("a" * 64) is IoCType.sha256_hash
        assert IoCExtract.file_hash_type("a" * 128) is IoCType.sha512_hash
        assert IoCExtract.file_hash_type("a" * 33) is IoCType.unknown

    def test_parse(self) -> None:
        """IoCType.parse is case-insensitive and falls back to unknown."""
        assert IoCType.parse("IPv4") is IoCType.ipv4
        assert IoCType.parse("bogus") is IoCType.unknown


class TestLimitsAndCustomTypes:
    """Input size cap and custom patterns."""

    def test_truncation_is_reported(self) -> None:
        """Only the head is scanned and the result says so."""
        extractor = IoCExtract(settings=IoCExtractSettings(max_input_chars=20))
        result = extractor.extract_text("ping 10.0.0.1 ......... then 10.0.0.2")
        assert result.truncated is True
        assert result.scanned_chars == 20
        assert result.iocs == {"ipv4": {"10.0.0.1"}}

    def test_custom_pattern_with_group_and_priority(self) -> None:
        """A custom pattern with a group is used; re-based patterns (look-ahead) fall back to ``re``."""
        extractor = IoCExtract()
        extractor.add_ioc_type("cve", r"(?P<id>CVE-\d{4}-\d{4,})(?=\D|$)", priority=1, group="id")
        assert extractor.extract("patch CVE-2021-44228 now", ioc_types=["cve"]) == {"cve": {"CVE-2021-44228"}}

    def test_custom_pattern_must_compile(self) -> None:
        """A bad pattern raises MsticpyException."""
        with pytest.raises(MsticpyException):
            IoCExtract().add_ioc_type("bad", "(unclosed")


def _corpus(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            ioc_type, value = line.split("\t", 1)
            rows.append((ioc_type, value))
    return rows


WRAPPERS = ["{}", "prefix {} suffix", "({})", '"{}"', "'{}'", "{},", "x={};", "<{}>", "[{}] and more", "{}\n"]


class TestCorpora:
    """python-iocextract style valid and invalid corpora, bare and wrapped in other text."""

    @pytest.mark.parametrize(("ioc_type", "value"), _corpus("valid.tsv"))
    @pytest.mark.parametrize("wrapper", WRAPPERS)
    def test_valid(self, extractor: IoCExtract, ioc_type: str, value: str, wrapper: str) -> None:
        """Each valid indicator is found as itself, whatever text surrounds it."""
        result = extractor.extract_text(wrapper.format(value), ioc_types=[ioc_type]).iocs
        assert value in result.get(ioc_type, set())

    @pytest.mark.parametrize(("ioc_type", "value"), _corpus("invalid.tsv"))
    @pytest.mark.parametrize("wrapper", WRAPPERS)
    def test_invalid(self, extractor: IoCExtract, ioc_type: str, value: str, wrapper: str) -> None:
        """Each invalid string yields nothing of its type, whatever text surrounds it."""
        result = extractor.extract_text(wrapper.format(value), ioc_types=[ioc_type]).iocs
        assert not result.get(ioc_type), result
