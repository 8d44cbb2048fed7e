"""The speed-ups in iocextract and base64unpack give exactly what the general paths give."""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
import re2
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from processors import base64unpack as base64unpack_api
from processors._frames import output_as
from processors.ioc import extract as iocextract
from processors.ioc import unpack as base64unpack
from processors.iocextract import IoCExtract, refang

DEFANG_TOKENS = ["[.]", "(.)", "{.}", "[dot]", "(DOT)", "{at}", "[@]", "(@)", "[:]//", "[://]", "[:]", "[/]"]
DEFANG_TOKENS += ["hxxp", "HXXPS", "fxp", "sFxPs", "xp", "[", "(", "{", "]", ")", "}", ".", ":", "/", "@", " ", "a"]
defang_texts = st.one_of(
    st.lists(st.sampled_from(DEFANG_TOKENS), max_size=30).map("".join),
    st.text(alphabet="[](){}.:/@dotaxphsfDOTAXPHSF \u0130\u212a", max_size=80),
    st.text(max_size=80),
)

B64_PIECES = ["QUJD", "ZGVm", "aGVsbG8gd29ybGQh", "AAAA", "+/+/", "==", "=", "\n", "\r\n", " ", "x", "/usr/lib/"]
b64_texts = st.one_of(
    st.lists(st.sampled_from(B64_PIECES), max_size=40).map("".join),
    st.text(alphabet="AZaz09+/=\r\n -é", max_size=300),
    st.text(max_size=200),
    st.lists(st.binary(min_size=1, max_size=60), max_size=4).map(
        lambda parts: " x ".join(base64.b64encode(part).decode() for part in parts)
    ),
)


# RE2 twins of patterns the product runs only through its compiled scanner
RX_DEFANG = iocextract._compile(iocextract._DEFANG_REGEX)
RX_DNS_BODY = iocextract._compile(iocextract._DNS_BODY)
_UNANCHORED = re2._Anchor.UNANCHORED  # the product searches with its compiled scanner; this is the RE2 twin


def _spans(rx: Any, data: bytes, needle: bytes = b"", min_len: int = 0) -> Iterator[tuple[int, int]]:
    """Yield the (start, end) spans of successive matches of a compiled RE2 pattern in ``data``.

    The RE2 twin of the compiled scanner's search, run on a ``comp_regex`` of :attr:`IoCExtract.ioc_types`.
    ``needle`` (a byte string every match contains) and ``min_len`` (the shortest match) let the search
    stop without another regex pass when the rest of the text cannot hold a match.
    """
    raw = rx._regexp
    pos = 0
    size = len(data)
    while pos <= size:
        if (needle and data.find(needle, pos) == -1) or size - pos < min_len:
            return
        start, end = raw.Match(_UNANCHORED, data, pos, size)[0]
        if start == -1:
            return
        yield start, end
        pos = end + 1 if end == start else end


class TestDefangCheck:
    """The ``str`` literal check in front of refanging never misses a defang mark."""

    @settings(max_examples=400, deadline=None)
    @given(defang_texts)
    def test_check_is_a_superset_of_the_re2_pattern(self, text: str) -> None:
        """Whenever the RE2 defang pattern matches, the cheap check says the text may be defanged."""
        data = text.encode("utf-8", "surrogatepass")
        if RX_DEFANG.search(data) is not None:
            assert iocextract._maybe_defanged(text.lower())

    @settings(max_examples=300, deadline=None)
    @given(defang_texts)
    def test_refang_equals_the_unfiltered_refang(self, text: str) -> None:
        """refang() with the check equals refanging every text with the RE2 pass."""
        result = iocextract._refang_bytes(text.encode("utf-8", "surrogatepass"))
        expected = text if result is None else result.data.decode("utf-8", "surrogatepass")
        assert refang(text) == expected


_B64_RX_RE2 = re2.compile(base64unpack._B64_PATTERN)  # the same pattern on the linear-time engine


class TestBase64Scanner:
    """The stdlib scan for base64 runs finds exactly the RE2 matches."""

    @settings(max_examples=400, deadline=None)
    @given(b64_texts)
    def test_same_spans_as_re2(self, text: str) -> None:
        """Both engines report the same candidate spans and texts."""
        fast = [(m.span(), m.group()) for m in base64unpack._B64_RX.finditer(text)]
        general = [(m.span(), m.group()) for m in _B64_RX_RE2.finditer(text)]
        assert fast == general


class TestRecordsFrame:
    """Row-wise frame construction equals the column-wise one."""

    @settings(max_examples=150, deadline=None)
    @given(b64_texts)
    def test_frame_equals_column_construction(self, text: str) -> None:
        """The frame returned by unpack equals the general column-wise frame of the same records."""
        result = base64unpack.unpack_text(text)
        with output_as("polars"):
            _, frame = base64unpack_api.unpack(text)
        assert_frame_equal(frame, base64unpack_api._records_frame_columns(result.records))

    def test_empty_frame_is_not_shared(self) -> None:
        """Changing the empty frame of one call does not change the next call's frame."""
        with output_as("polars"):
            _, first = base64unpack_api.unpack("nothing here")
            first.insert_column(0, first.get_column("md5").alias("extra"))
            _, second = base64unpack_api.unpack("nothing here")
        assert second.columns == list(base64unpack.BinaryRecord._fields)
        assert second.height == 0


def _tar_members_reference(data: bytes, limit: int, max_members: int) -> tuple[dict[str, bytes], bool]:
    """The general tar path: ``tarfile`` iteration, every member read through ``extractfile``."""
    items: dict[str, bytes] = {}
    used = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            if not member.isfile():
                continue
            if len(items) >= max_members:
                return items, True
            if used + member.size > limit:
                raise base64unpack._LimitHit("max_total_bytes")
            extracted = archive.extractfile(member)
            content = extracted.read(limit - used + 1) if extracted is not None else b""
            used += len(content)
            items[member.name] = content
    return items, False


@st.composite
def tar_archives(draw: st.DrawFn) -> bytes:
    """A tar archive of a few members (files, directories, links), possibly cut short or with garbage appended."""
    buffer = io.BytesIO()
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for pos, (name, content, kind) in enumerate(
            draw(
                st.lists(
                    st.tuples(
                        st.text(alphabet="abc/é._", min_size=1, max_size=120),
                        st.binary(max_size=1500),
                        st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]),
                    ),
                    max_size=4,
                )
            )
        ):
            info = tarfile.TarInfo(f"{pos}{name}")
            info.type = kind
            info.size = len(content) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            info.linkname = "target" if kind == tarfile.SYMTYPE else ""
            archive.addfile(info, io.BytesIO(content) if info.size else None)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(min_value=0, max_value=2))):  # damage header fields or checksums
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[pos] = draw(st.sampled_from([0, 0x20, 0x30, 0x37, 0x38, 0x80, 0xFF, 0x35, 0x2F]))
    cut = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=len(data))))
    return bytes(data[:cut] if cut is not None else data) + draw(st.binary(max_size=600))


class TestFileType:
    """The first-byte shortcut of file_type_of equals testing every magic number."""

    @settings(max_examples=400, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.tuples(st.binary(max_size=257), st.sampled_from([b"ustar", b"ustaR", b""]), st.binary(max_size=40)).map(
                lambda parts: parts[0].ljust(257, b"\0") + parts[1] + parts[2]
            ),
            st.tuples(
                st.sampled_from(
                    [b"PK\x03\x04", b"\x1f\x8b", b"BZh5", b"\xfd7zXZ\x00", b"MZ", b"x\x9c", b"%PDF", b"Rar!"]
                ),
                st.binary(max_size=300),
            ).map(b"".join),
        )
    )
    def test_same_type_as_all_magic_tests(self, data: bytes) -> None:
        """Both paths name the same file type."""
        assert base64unpack.file_type_of(data) == base64unpack._file_type_of_magic(data)


class TestTarMembers:
    """The header parser for plain tar archives equals tarfile iteration with extractfile."""

    def test_plain_archive_takes_the_fast_path(self) -> None:
        """A ustar archive of files and a directory is read without tarfile, with the same members."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            folder = tarfile.TarInfo("dir")
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder, None)
            for name, content in (("a.txt", b"alpha"), ("p" * 120 + "/b.txt", b"x" * 700)):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        data = buffer.getvalue()
        fast = base64unpack._tar_members_fast(data, 10_000, 64)
        assert fast is not None
        assert fast == _tar_members_reference(data, 10_000, 64)
        assert set(fast[0]) == {"a.txt", "p" * 120 + "/b.txt"}  # the second name uses the ustar prefix field

    @settings(max_examples=500, deadline=None)
    @given(
        st.one_of(
            st.binary(min_size=8, max_size=12),
            st.text(alphabet="01234567 \t\0+-_x8", min_size=8, max_size=12).map(lambda text: text.encode()[:12]),
        ).filter(lambda field: len(field) >= 8)
    )
    def test_number_fields_parse_as_in_tarfile(self, field: bytes) -> None:
        """Header numbers parse to tarfile's value, or fail where tarfile rejects the header."""
        nti = tarfile.nti  # type: ignore[attr-defined]  # an undocumented tarfile helper
        try:
            expected: object = nti(field)
        except tarfile.HeaderError:
            expected = ValueError
        try:
            got: object = base64unpack._tar_number(field)
        except ValueError:
            got = ValueError
        assert got == expected

    @settings(max_examples=300, deadline=None)
    @given(st.binary(min_size=512, max_size=512), st.integers(min_value=0, max_value=2**17))
    def test_checksum_test_is_tarfiles(self, block: bytes, chksum: int) -> None:
        """The checksum test accepts exactly the blocks tarfile accepts, for ASCII and non-ASCII blocks."""
        calc = tarfile.calc_chksums  # type: ignore[attr-defined]  # an undocumented tarfile helper
        for buf in (block, bytes(byte & 0x7F for byte in block)):
            for value in (chksum, *calc(buf)):
                header = buf[:148] + b"%07o\0" % (value % 0o10000000) + buf[156:]
                assert base64unpack._tar_checksum_ok(header) == (value % 0o10000000 in calc(header))

    @settings(max_examples=500, deadline=None)
    @given(tar_archives(), st.integers(min_value=0, max_value=4000))
    def test_same_members_or_error(self, data: bytes, limit: int) -> None:
        """The members (or the error class) are those of the tarfile path, for intact and damaged archives."""
        hits: list[str] = []
        errors = (base64unpack._LimitHit, *base64unpack._CORRUPT)
        fast: object
        general: object
        try:
            fast = (base64unpack._members("tar", data, limit, 3, hits.append), hits == ["max_members"])
        except errors as exc:
            fast = type(exc)
        try:
            general = _tar_members_reference(data, limit, 3)
        except errors as exc:
            general = type(exc)
        assert fast == general


class _GeneralScan(iocextract._Scan):
    """The scanners written over the generic ``_spans`` loop and ``add`` (the code before inlining)."""

    __slots__ = ()

    def scan_ipv4(self) -> None:
        data = self.data
        last = len(data) - 1
        plain = self.refanged is None or self.orig is self.data
        for start, end in _spans(iocextract._RX_IPV4, data, b".", 7):
            if end < last and data[end] == 0x2E and data[end + 1] in iocextract._DIGITS:
                continue
            if start >= 2 and data[start - 1] == 0x2E and data[start - 2] in iocextract._DIGITS:
                continue
            cand = data[start:end].decode("ascii")
            if not all(len(part) < 3 or part <= "255" for part in cand.split(".")):
                continue
            self.add(cand if plain else self.text(start, end), "ipv4")

    def scan_dns(self) -> None:
        data = self.data
        ambiguous = self.settings.ambiguous_tlds
        check_tld = not self.ignore_tlds
        plain = self.refanged is None or self.orig is self.data
        for start, end in _spans(iocextract._RX_DNS, data, b".", 3):
            if start > 0 and data[start - 1] == 0x25:
                start += 2
                if start >= end or RX_DNS_BODY.fullmatch(data[start:end]) is None:
                    continue
            if end < len(data) and data[end] == 0x40:
                continue
            if start > 0 and data[start - 1] in (0x2F, 0x5C) and (start < 2 or data[start - 2] != data[start - 1]):
                continue
            if data[start] in iocextract._DIGITS and iocextract._is_ipv4(data[start:end].decode("ascii")):
                continue
            if check_tld and not iocextract._tld_ok(data[data.rfind(b".", start, end) + 1 : end]):
                continue
            name = data[start:end].decode("ascii")
            is_email_domain = start > 0 and data[start - 1] == 0x40
            if name.count(".") == 1 and name.rsplit(".", 1)[1].lower() in ambiguous and not is_email_domain:
                continue
            self.add(name if plain else self.text(start, end), "dns")

    def scan_windows_paths(self) -> None:
        data = self.data
        for start, end in _spans(iocextract._RX_WINPATH, data, b"\\"):
            if data[start] == 0x5C and data[start : start + 2] != b"\\\\":
                if data.count(b"\\", start, end) < 2:
                    continue
                if start > 0 and data[start - 1] in iocextract._WORD:
                    continue
            if self.in_url(start) is not None:
                continue
            end = iocextract._trim_url_end(data, start, end, b".,;:")
            self.add(self.text(start, end), "windows_path")

    def scan_linux_paths(self) -> None:
        data = self.data
        for start, end in _spans(iocextract._RX_LXPATH, data, b"/", 2):
            if data[start] == 0x2F:
                if start > 0 and data[start - 1] in iocextract._LXPATH_BEFORE:
                    continue
                if data.count(b"/", start, end) - (data[end - 1] == 0x2F) < 2:
                    continue
            elif start > 0 and data[start - 1] in iocextract._LXPATH_BEFORE:
                continue
            if self.in_url(start) is not None:
                continue
            while end > start + 1 and data[end - 1] in b".,;:":
                end -= 1
            self.add(self.text(start, end), "linux_path")


SCAN_TOKENS = ["1.2.3.4", "256.1.1.1", "255.", "254.", "10.0.0.", ".", "..", "999", "example.com", "a.py", "x@", "@"]
SCAN_TOKENS += ["%2F", "/", "//", "%"]
SCAN_TOKENS += ["\\", "\\\\srv\\", "C:\\", "~/", "../", "./", "http://", "hxxp[:]//", "[.]", " ", "a", "-", "é", "_"]
scan_texts = st.one_of(
    st.lists(st.sampled_from(SCAN_TOKENS), max_size=40).map("".join),
    st.text(alphabet="0129.a/\\:@%-_ Cé~", max_size=200),
    st.text(max_size=120),
)


class TestInlinedScanners:
    """The inlined scanner loops find exactly what the generic loops find."""

    @settings(max_examples=600, deadline=None)
    @given(scan_texts)
    @example("255.255.255.255 and 255.1.1.256")
    @example("mail example.com@ and /opt/setup.py, \\\\srv\\share\\x.txt; ~/a/b ../c/d")
    @example("%2Fevil.example.com/x http://1.2.3.4/a\\b/c C:\\Windows\\x.exe.")
    def test_same_result_as_generic_scanners(self, text: str) -> None:
        """For all types, paths and refang modes, the result equals the generic scanners' result."""
        configs = [(defanged, refang_on) for defanged in (True, False) for refang_on in (True, False)]
        fast = [
            IoCExtract(defanged, refang=refang_on).extract_text(text, include_paths=True, ignore_tlds=tlds).iocs
            for defanged, refang_on in configs
            for tlds in (False, True)
        ]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(iocextract, "_Scan", _GeneralScan)
            general = [
                IoCExtract(defanged, refang=refang_on).extract_text(text, include_paths=True, ignore_tlds=tlds).iocs
                for defanged, refang_on in configs
                for tlds in (False, True)
            ]
        assert fast == general
