"""The compiled candidate scanner (``secstream_iocscan``) finds exactly RE2's spans for the same patterns."""

from __future__ import annotations

from typing import Any

import pytest
import re2
from hypothesis import example, given, settings
from hypothesis import strategies as st
from secstream_iocscan import Scanner

from processors.ioc import extract as iocextract


def _re2_compile(pattern: bytes, case_sensitive: bool = False) -> Any:
    """The RE2 twin of a scanner pattern: bytes, Latin-1, case-insensitive unless asked otherwise."""
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.case_sensitive = case_sensitive
    return re2.compile(pattern, options=options)


def _re2_spans(rx: Any, data: bytes) -> list[tuple[int, int]]:
    """Successive RE2 matches: the next search starts at the previous end (one byte later after an empty match)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos <= len(data):
        match = rx.search(data, pos)
        if match is None:
            break
        start, end = match.span()
        spans.append((start, end))
        pos = end + 1 if end == start else end
    return spans


def _re2_scan(twins: list[Any], data: bytes, mask: int) -> dict[int, list[tuple[int, int]]]:
    found = {}
    for index, rx in enumerate(twins):
        if mask >> index & 1:
            spans = _re2_spans(rx, data)
            if spans:
                found[index] = spans
    return found


PATTERNS = list(iocextract._SCAN_PATTERNS)
GATES = list(iocextract._PREFILTER_PATTERNS)
TWINS = [_re2_compile(pattern) for pattern in PATTERNS]
GATE_TWINS = [_re2_compile(gate) for gate in GATES]
ALL = (1 << len(PATTERNS)) - 1

TOKENS = [b".", b"..", b"../", b"./", b"/", b"//", b"\\", b"\\\\", b"~/", b":", b"::", b"://", b"@", b"%", b"%2F"]
TOKENS += [b"=", b"[", b"]", b"(", b")", b"{", b"}", b"[.]", b"(dot)", b"[at]", b"{.}", b"[:]//", b"[/]", b"hxxp"]
TOKENS += [b"HXXPS", b"sfxp", b"http://", b"HTTPS://", b"ftp://", b"file://", b"ldaps://", b"telnet://", b"-", b"_"]
TOKENS += [b"1.2.3.4", b"255.", b"999", b"10", b"0", b"fe80", b"ffff", b"a", b"Z", b"com", b"Example.COM", b"x.py"]
TOKENS += [b"C:", b"%TEMP%", b"d41d8cd98f00b204", b"e9800998ecf8427e", b"DEADBEEF", b" ", b"\t", b'"', b"'", b","]
TOKENS += [b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xa0", b"\xc9", b"\xe9", b"\xff", b"\xc3\xa9", b"\xe2\x80\x8b"]

hostile = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
    st.binary(max_size=200),
    st.lists(st.sampled_from(list(b"0123456789abcdefABCDEF.:/\\@%=[]()-x\xe9\xff ")), max_size=300).map(bytes),
    st.text(max_size=120).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


class TestBuiltinPatterns:
    """The extractor's patterns find the same spans as on RE2."""

    @settings(max_examples=800, deadline=None)
    @given(hostile)
    @example(b"1.2.3.4.5 10.0.0.1 256.1.1.1 a.b.c.d e.com. x@y.org http://[::1]:80/a\\b C:\\x\\y ../a/b ~/c")
    @example(b"\xe9xample.com caf\xe9.fr hXXps[:]//evil[.]com/%2Fbad.org " + b"ab" * 70)
    @example(b"fe80::1%eth0 ::ffff:192.0.2.128 1::2:3:4:5:6:7:8 :::: " + b"0" * 129)
    def test_same_spans_as_re2(self, data: bytes) -> None:
        """Every pattern, searched alone, gives RE2's successive match spans."""
        assert Scanner(PATTERNS).scan(data, ALL) == _re2_scan(TWINS, data, ALL)

    @settings(max_examples=500, deadline=None)
    @given(hostile, st.integers(min_value=0, max_value=ALL))
    def test_gates_lose_nothing(self, data: bytes, mask: int) -> None:
        """With the gates, the selected patterns give the same spans as without (each gate is necessary)."""
        gated = iocextract._SCANNER.scan(data, mask)
        assert gated == iocextract._SCANNER.scan(data, mask, gated=False)
        assert gated == _re2_scan(TWINS, data, mask)

    @settings(max_examples=400, deadline=None)
    @given(hostile)
    def test_gates_found_as_re2(self, data: bytes) -> None:
        """The gates reported present are those RE2 finds."""
        expected = [index for index, rx in enumerate(GATE_TWINS) if rx.search(data) is not None]
        assert iocextract._SCANNER.gates_found(data) == expected

    def test_mask_selects_patterns(self) -> None:
        """Only the patterns whose bit is set are searched."""
        data = b"see 10.0.0.1 and http://example.com/x"
        ipv4 = 1 << iocextract._PRE_IPV4
        assert iocextract._SCANNER.scan(data, ipv4) == {iocextract._PRE_IPV4: [(4, 12)]}
        assert iocextract._SCANNER.scan(data, 0) == {}


SEMANTICS_PATTERNS = [
    rb"x*",
    rb"\bab",
    rb"[a-z]+",
    rb"caf\xe9",
    rb"[a-z\xe0-\xff]+",
    rb"[^a-z ]+",
    rb"a|ab",
    rb"(?:ab)*c?",
    rb"\Aab\z",
]


class TestScannerSemantics:
    """RE2's rules for arbitrary patterns: empty matches, case folding, Latin-1 bytes, word boundaries."""

    @settings(max_examples=500, deadline=None)
    @given(hostile, st.booleans())
    @example(b"xxaxx", False)
    @example(b"abab aB AB ab_ab", False)
    @example(b"caf\xe9 CAF\xc9 caf\xc3\xa9", False)
    def test_same_spans_as_re2(self, data: bytes, case_sensitive: bool) -> None:
        """Patterns that match empty strings, alternations and classes give RE2's spans in both case modes."""
        twins = [_re2_compile(pattern, case_sensitive) for pattern in SEMANTICS_PATTERNS]
        mask = (1 << len(SEMANTICS_PATTERNS)) - 1
        found = Scanner(SEMANTICS_PATTERNS, case_sensitive=case_sensitive).scan(data, mask)
        assert found == _re2_scan(twins, data, mask)

    def test_leftmost_first(self) -> None:
        """The first alternative that matches wins, as in RE2 (not the longest)."""
        assert Scanner([rb"a|ab"]).scan(b"ab", 1) == {0: [(0, 1)]}

    def test_rejects_bad_patterns(self) -> None:
        """Non-ASCII, invalid and too many patterns are refused with ValueError."""
        with pytest.raises(ValueError, match="ASCII"):
            Scanner([b"caf\xe9"])
        with pytest.raises(ValueError, match="invalid pattern"):
            Scanner([rb"(unclosed"])
        with pytest.raises(ValueError, match="at most 64"):
            Scanner([b"a"] * 65)
        with pytest.raises(ValueError, match="more gates"):
            Scanner([b"a"], [b"a", b"b"])

    def test_length_and_ungated_patterns(self) -> None:
        """Patterns beyond the gates run ungated; len() counts the patterns."""
        scanner = Scanner([rb"b", rb"c"], [rb"zzz"])
        assert len(scanner) == 2
        assert scanner.scan(b"abc", 3) == {1: [(2, 3)]}
        assert scanner.gates_found(b"abc") == []
        assert Scanner([rb"c"]).gates_found(b"c") == []
