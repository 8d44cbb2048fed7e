"""Decode base64 and compressed/archived payloads hidden in text (msticpy ``base64unpack`` compatible).

Every base64 run of at least ``min_length`` characters (lines of a PEM-style block count as one run)
is decoded; the decoded bytes are classified by their **magic bytes** (not by the base64 text prefix
as in msticpy, so more types are known and nested items are typed too) and:

* text (UTF-8, or UTF-16 with a BOM or the ``X\\0Y\\0`` pattern of PowerShell ``-enc`` payloads,
  whatever the ``utf16`` flag says) replaces the base64 in the output and is scanned again for base64;
* ``zip`` and ``tar`` archives are expanded member by member, ``gz``, ``zlib``, ``bz2`` and ``xz``
  streams are decompressed, recursively (an archive in an archive, a gzip in a tar...), up to
  ``max_depth`` levels;
* anything else is a binary item, shown as hex bytes.

The output string uses msticpy's markup, e.g.
``<decoded type='string' name='[None]' index='1' depth='1'>hello</decoded>``,
``<decoded value='binary'  name='[None]' type='pdf' index='2' depth='1'>25 50 44 46 ...</decoded>`` and
``<decoded value='multiple binary' type='multiple' index='1' depth='1'>...</decoded>`` for archives with
several members. A container found *inside* another container gets a binary record of its own and its
members one level deeper.

Differences from msticpy on purpose (msticpy's are bugs listed in its reference notes):

* ``reference`` is the string shown in the markup's ``index`` attribute (``"1.2"``), not a tuple;
  ``index`` numbering is hierarchical and ``depth`` is the number of its components.
* No global state: no undecodable-string cache, no sticky ``trace``/``utf16``; the input is never padded
  with ``"A"`` (``... | base64 -d`` stays as written); every candidate is decoded (not only the last
  one's success triggers recursion) and identical candidates in one text are decoded once.
* Hex strings (hashes), path-like runs (``/usr/local/bin/something...``) and identifier-like runs that
  do not decode to text are not taken for base64.
* Hard limits (total decoded bytes, members per archive, depth, candidates per text, input size) give
  a partial result – marked with ``partial='<limit>'`` on the affected element and listed in
  :attr:`UnpackResult.limits_hit` – never an exception or unbounded memory. Corrupt archives are
  shown as binary items.
* ``printable_bytes`` (and the hex shown in the markup) stop after ``max_printable_bytes`` bytes with
  a trailing ``...``.
"""

from __future__ import annotations

import binascii
import bz2
import hashlib
import io
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from processors.errors import DecodeError

__all__ = [
    "Base64Settings",
    "BinaryRecord",
    "UnpackResult",
    "get_hashes",
    "get_items_from_gzip",
    "get_items_from_tar",
    "get_items_from_zip",
    "unpack_text",
]


@dataclass(frozen=True, slots=True)
class Base64Settings:
    """Limits and thresholds of the unpacker.

    Attributes:
        min_length: minimum base64 run length (newlines not counted), 30 as in msticpy.
        max_depth: deepest nesting level decoded (base64 in text, archive members, compressed layers).
        max_total_bytes: total bytes produced by decoding and decompression for one input.
        max_members: members expanded per archive.
        max_candidates: distinct base64 candidates decoded per text.
        max_input_chars: leading characters of one input that are scanned.
        max_printable_bytes: bytes shown as hex in ``printable_bytes`` and the markup.
        max_layers: decoded items (records) per input: empty or tiny archive members cost almost nothing
            against ``max_total_bytes``, so nested archives could otherwise yield a hundred thousand.
    """

    min_length: int = 30
    max_depth: int = 8
    max_total_bytes: int = 16 * 1024 * 1024
    max_members: int = 64
    max_candidates: int = 100
    max_input_chars: int = 1_048_576
    max_printable_bytes: int = 65_536
    max_layers: int = 256


_DEFAULT_SETTINGS = Base64Settings()  # frozen, so one shared instance serves every call


class BinaryRecord(NamedTuple):
    """One decoded item (msticpy's 12 fields, in order)."""

    reference: str
    original_string: str
    file_name: str
    file_type: str | None
    input_bytes: bytes
    decoded_string: str | None
    encoding_type: str
    file_hashes: dict[str, str]
    md5: str
    sha1: str
    sha256: str
    printable_bytes: str


@dataclass(slots=True)
class UnpackResult:
    """Result of :func:`unpack_text`.

    Attributes:
        decoded_string: the input with every decoded run replaced by its ``<decoded ...>`` markup.
        records: one :class:`BinaryRecord` per decoded item, in document order.
        limits_hit: names of the limits that cut decoding short (empty when complete).
    """

    decoded_string: str
    records: list[BinaryRecord] = field(default_factory=list)
    limits_hit: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when a limit stopped decoding somewhere."""
        return bool(self.limits_hit)


# A run of at least 16 base64 characters, continued over line breaks (PEM-style blocks are one candidate).
# Run with the stdlib engine: the pattern cannot backtrack catastrophically (a failed start costs at most
# the 15 characters of a too-short run; after 16 characters the match always succeeds, and the classes of
# the run, the line break and the padding are disjoint), and for the handful of candidates in a text the
# ``re2`` wrapper's per-match cost (re-encoding, offset conversion, a Match object) is what dominated.
_B64_PATTERN = r"[A-Za-z0-9+/]{16,}(?:\r?\n[A-Za-z0-9+/]+)*={0,2}"
_B64_RX = re.compile(_B64_PATTERN)
_HEXDIGITS = "0123456789abcdefABCDEF"
_CONTAINERS = frozenset({"zip", "tar", "gz", "zlib", "bz2", "xz"})
_COMPRESSED_NAMES = {"gz": "gzip_file", "zlib": "zlib_data", "bz2": "bzip2_file", "xz": "xz_file"}
_PRINTABLE_EXTRA = frozenset("\t\r\n\x0b\x0c")
_RECORD_FIELDS = BinaryRecord._fields


def get_hashes(binary: bytes) -> dict[str, str]:
    """Return md5, sha1 and sha256 hex digests of ``binary``.

    Args:
        binary: bytes to hash.

    Returns:
        ``{"md5": ..., "sha1": ..., "sha256": ...}``.
    """
    return {
        "md5": hashlib.md5(binary, usedforsecurity=False).hexdigest(),
        "sha1": hashlib.sha1(binary, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(binary).hexdigest(),
    }


# --------------------------------------------------------------------------------------------------
# File types and containers


def _pe_type(data: bytes) -> str:
    """exe, dll or sys for an MZ image (by the PE header), exe if the header is unreadable."""
    try:
        (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
        if data[pe_offset : pe_offset + 4] != b"PE\0\0":
            return "exe"
        (characteristics,) = struct.unpack_from("<H", data, pe_offset + 22)
        (subsystem,) = struct.unpack_from("<H", data, pe_offset + 24 + 68)
    except struct.error:
        return "exe"
    if subsystem == 1:
        return "sys"
    return "dll" if characteristics & 0x2000 else "exe"


# The first bytes of all magic numbers but tar's (which sits at offset 257).
_MAGIC_FIRST_BYTES = frozenset(b"P\x1fB\xfd7R%\xd0M\x7f\x89G\xffx")


def file_type_of(data: bytes) -> str | None:
    """Return a short file type name from magic bytes, or None when unknown.

    Args:
        data: the decoded bytes.

    Returns:
        One of zip, "zip (pwd protected)", tar, gz, zlib, bz2, xz, 7z, rar, pdf, msi, wim, exe, dll, sys,
        elf, png, gif, jpeg, or None.
    """
    # Most decoded items are text: when the first byte starts no magic number only the tar test can hit.
    if data and data[0] not in _MAGIC_FIRST_BYTES:
        return "tar" if len(data) > 262 and data[257:262] == b"ustar" else None
    return _file_type_of_magic(data)


def _file_type_of_magic(data: bytes) -> str | None:
    """All magic-number tests in priority order (the general path of :func:`file_type_of`)."""
    head = data[:8]
    if head.startswith(b"PK\x03\x04"):
        return "zip (pwd protected)" if len(data) > 6 and data[6] & 1 else "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh") and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!"):
        return "rar"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "msi"
    if head.startswith(b"MSWIM"):
        return "wim"
    if head.startswith(b"MZ") and len(data) > 0x40:
        return _pe_type(data)
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"GIF8"):
        return "gif"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


class _LimitHit(Exception):
    """Internal: a decoding limit was reached."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    KeyError,
)


def _decompress(decomp: Any, data: bytes, limit: int) -> bytes:
    """Run a streaming decompressor with an output cap; raise _LimitHit when output exceeds ``limit``."""
    out = decomp.decompress(data, limit + 1)
    if len(out) > limit:
        raise _LimitHit("max_total_bytes")
    return bytes(out)


def _zlib_stream(data: bytes, limit: int, wbits: int) -> bytes:
    decomp = zlib.decompressobj(wbits)
    out = decomp.decompress(data, limit + 1)
    if len(out) > limit:
        raise _LimitHit("max_total_bytes")
    if not decomp.eof:
        raise zlib.error("truncated stream")
    return out


def _members(ctype: str, data: bytes, limit: int, max_members: int, hit: Callable[[str], None]) -> dict[str, bytes]:
    """Return ``{member name: bytes}`` of a container, within ``limit`` total bytes."""
    if ctype == "gz":
        return {_COMPRESSED_NAMES[ctype]: _zlib_stream(data, limit, 16 + zlib.MAX_WBITS)}
    if ctype == "zlib":
        return {_COMPRESSED_NAMES[ctype]: _zlib_stream(data, limit, zlib.MAX_WBITS)}
    if ctype == "bz2":
        decomp_bz = bz2.BZ2Decompressor()
        out = _decompress(decomp_bz, data, limit)
        if not decomp_bz.eof:
            raise EOFError("truncated bzip2 stream")
        return {_COMPRESSED_NAMES[ctype]: out}
    if ctype == "xz":
        decomp_xz = lzma.LZMADecompressor()
        out = _decompress(decomp_xz, data, limit)
        if not decomp_xz.eof:
            raise EOFError("truncated xz stream")
        return {_COMPRESSED_NAMES[ctype]: out}
    items: dict[str, bytes] = {}
    used = 0
    if ctype == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if len(items) >= max_members:
                    hit("max_members")
                    break
                with archive.open(info) as handle:
                    content = handle.read(limit - used + 1)
                used += len(content)
                if used > limit:
                    raise _LimitHit("max_total_bytes")
                items[info.filename] = content
        return items
    # tar
    fast = _tar_members_fast(data, limit, max_members)
    if fast is not None:
        items, full = fast
        if full:
            hit("max_members")
        return items
    with tarfile.TarFile(fileobj=io.BytesIO(data), mode="r") as archive:  # what open(mode="r:") builds
        for member in archive:
            if not member.isfile():
                continue
            if len(items) >= max_members:
                hit("max_members")
                break
            if used + member.size > limit:
                raise _LimitHit("max_total_bytes")
            # A plain (non-sparse) member is the ``size`` bytes at ``offset_data``: slice them instead of going
            # through ``extractfile`` (a buffered reader per member). ``used + size <= limit`` here, so the read
            # below would return all ``size`` bytes; a truncated member takes the general path for its error.
            start = member.offset_data
            content = data[start : start + member.size] if member.sparse is None else b""
            if member.sparse is not None or len(content) != member.size:
                extracted = archive.extractfile(member)
                content = extracted.read(limit - used + 1) if extracted is not None else b""
            used += len(content)
            items[member.name] = content
    return items


_TAR_BLOCK = 512
_TAR_SIMPLE_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE})
# mode, uid, gid, mtime, devmajor, devminor: tarfile rejects a header whose number fields do not parse
_TAR_NUMBER_FIELDS = ((100, 108), (108, 116), (116, 124), (136, 148), (329, 337), (337, 345))


def _tar_str(field: bytes, encoding: str, errors: str) -> str:
    """A NUL-terminated header string, decoded as ``tarfile`` does."""
    end = field.find(b"\0")
    return (field if end == -1 else field[:end]).decode(encoding, errors)


def _tar_number(field: bytes) -> int:
    """A header number field (octal text or base-256), parsed as ``tarfile`` does.

    Raises:
        ValueError: the field is not a number (``tarfile`` then rejects the header).
    """
    if field[0] in (0o200, 0o377):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    return int(_tar_str(field, "ascii", "strict").strip() or "0", 8)


def _tar_checksum_ok(buf: bytes) -> bool:
    """``tarfile``'s header checksum test (unsigned or signed byte sum), with ``zlib.adler32`` sums.

    Raises:
        ValueError: the checksum field is not a number.
    """
    chksum = _tar_number(buf[148:156])
    if buf.isascii():
        # adler32's low half is 1 + the byte sum (mod 65521, never reached by <= 356 ASCII bytes); for ASCII
        # bytes the signed and unsigned sums are equal
        return bool(chksum == 254 + (zlib.adler32(buf[:148]) & 0xFFFF) + (zlib.adler32(buf[156:]) & 0xFFFF))
    unsigned = 256 + sum(buf[:148]) + sum(buf[156:])
    high = sum(1 for byte in buf[:148] if byte >= 0x80) + sum(1 for byte in buf[156:] if byte >= 0x80)
    return chksum in (unsigned, unsigned - 256 * high)


def _tar_members_fast(data: bytes, limit: int, max_members: int) -> tuple[dict[str, bytes], bool] | None:
    """Members of a plain tar archive (regular files and directories only) without ``tarfile`` objects.

    Follows ``tarfile.TarFile`` iteration exactly for the archives it accepts and returns None for
    anything else (other member types, a bad or empty first header, a bad header later, truncated data),
    which then takes the general ``tarfile`` path from the start; nothing is reported before that is known.

    Returns:
        ``({name: content}, max_members reached)`` or None.

    Raises:
        _LimitHit: the members exceed ``limit`` bytes (where the general path raises it too).
    """
    items: dict[str, bytes] = {}
    used = 0
    offset = 0
    end = len(data)
    encoding = tarfile.ENCODING
    while True:
        if offset > end:
            return None  # tarfile: "unexpected end of data" when advancing to the next header
        buf = data[offset : offset + _TAR_BLOCK]
        if len(buf) < _TAR_BLOCK or buf.count(0) == _TAR_BLOCK:
            return None if offset == 0 else (items, False)
        try:
            if not _tar_checksum_ok(buf):
                return None
            for start, stop in _TAR_NUMBER_FIELDS:
                _tar_number(buf[start:stop])
            size = _tar_number(buf[124:136])
        except ValueError:
            return None
        kind = buf[156:157]
        if kind not in _TAR_SIMPLE_TYPES or size < 0:
            return None
        name = _tar_str(buf[0:100], encoding, "surrogateescape")
        prefix = _tar_str(buf[345:500], encoding, "surrogateescape")
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE
        is_dir = kind == tarfile.DIRTYPE
        if is_dir:
            name = name.rstrip("/")
        if prefix:
            name = prefix + "/" + name
        data_start = offset + _TAR_BLOCK
        if is_dir:
            offset = data_start
            continue
        offset = data_start + -(-size // _TAR_BLOCK) * _TAR_BLOCK
        if len(items) >= max_members:
            return items, True
        if used + size > limit:
            raise _LimitHit("max_total_bytes")
        content = data[data_start : data_start + size]
        if len(content) != size:
            return None
        used += size
        items[name] = content


def get_items_from_gzip(binary: bytes) -> tuple[str, dict[str, bytes]]:
    """Return the decompressed content of a gzip stream.

    Args:
        binary: the gzip bytes.

    Returns:
        ``("gz", {"gzip_file": content})``.

    Raises:
        DecodeError: corrupt stream or output larger than the default ``max_total_bytes``.
    """
    return "gz", _standalone("gz", binary)


def get_items_from_zip(binary: bytes) -> tuple[str, dict[str, bytes]]:
    """Return the members of a zip archive.

    Args:
        binary: the zip bytes.

    Returns:
        ``("zip", {member name: content})`` (directories skipped).

    Raises:
        DecodeError: corrupt archive or content larger than the default limits.
    """
    return "zip", _standalone("zip", binary)


def get_items_from_tar(binary: bytes) -> tuple[str, dict[str, bytes]]:
    """Return the regular-file members of a tar archive.

    Args:
        binary: the tar bytes.

    Returns:
        ``("tar", {member name: content})``.

    Raises:
        DecodeError: corrupt archive or content larger than the default limits.
    """
    return "tar", _standalone("tar", binary)


def _standalone(ctype: str, binary: bytes) -> dict[str, bytes]:
    settings = _DEFAULT_SETTINGS
    hits: list[str] = []
    try:
        items = _members(ctype, binary, settings.max_total_bytes, settings.max_members, hits.append)
    except _LimitHit as exc:
        raise DecodeError(f"{ctype} content exceeds {exc.limit}", raw=binary[:256]) from exc
    except _CORRUPT as exc:
        raise DecodeError(f"corrupt {ctype} data: {exc}", raw=binary[:256]) from exc
    return items


# --------------------------------------------------------------------------------------------------
# Text detection


def _printable_ratio(text: str) -> float:
    sample = text[:4096]
    if not sample:
        return 0.0
    if sample.isprintable():
        return 1.0
    # the same as deleting _PRINTABLE_EXTRA with str.translate, which is far slower for a dict table
    stripped = sample.replace("\n", "").replace("\r", "").replace("\t", "").replace("\x0b", "").replace("\x0c", "")
    if stripped.isprintable():
        return 1.0
    good = sum(1 for ch in sample if ch.isprintable() or ch in _PRINTABLE_EXTRA)
    return good / len(sample)


def _as_text(data: bytes, utf16: bool) -> tuple[str, str] | None:
    """Return (text, encoding_type) when ``data`` is text, else None."""
    if not data:
        return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) and len(data) % 2 == 0:
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            text = ""
        if text and _printable_ratio(text) >= 0.9:
            return text, "utf-16"
    size = len(data)
    if size >= 4 and size % 2 == 0:
        odd = data[1::2]
        if odd.count(0) >= 0.9 * len(odd) and data[0::2].count(0) <= 0.1 * len(odd):
            try:
                text = data.decode("utf-16-le")
            except UnicodeDecodeError:
                text = ""
            if text and _printable_ratio(text) >= 0.9:
                return text, "utf-16"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text:
        if text.startswith("\ufeff"):
            text = text[1:]
        if _printable_ratio(text) >= 0.9:
            return text, "utf-8"
    if utf16 and size % 2 == 0:
        try:
            text = data.decode("utf-16-le")
        except UnicodeDecodeError:
            return None
        if _printable_ratio(text) >= 0.9:
            return text, "utf-16"
    return None


def _looks_like_base64(compact: str) -> bool:
    """Cheap rejection of hex, paths and identifiers before decoding."""
    if not compact.strip(_HEXDIGITS):  # only hex digits (str.strip is the C-speed form of all(ch in hex))
        return False
    slashes = compact.count("/")
    if slashes < 2:
        return True
    if slashes * 12 > len(compact):
        return False
    segments = compact.split("/")
    return not (compact.startswith("/") and "+" not in compact and all(0 < len(seg) <= 32 for seg in segments[1:]))


def _mixed_classes(compact: str) -> bool:
    return any(c.isdigit() for c in compact) and any(c.isupper() for c in compact) and any(c.islower() for c in compact)


# --------------------------------------------------------------------------------------------------
# The unpacker


class _Unpacker:
    """One unpack run with its own budget (no state survives the call)."""

    def __init__(self, settings: Base64Settings, utf16: bool) -> None:
        self.settings = settings
        self.utf16 = utf16
        self.used = 0
        self.records: list[BinaryRecord] = []
        self.limits_hit: list[str] = []

    def hit(self, limit: str) -> None:
        if limit not in self.limits_hit:
            self.limits_hit.append(limit)

    def layers_full(self) -> bool:
        """True (and the limit recorded) once ``max_layers`` items are recorded: nothing more is decoded."""
        if len(self.records) < self.settings.max_layers:
            return False
        self.hit("max_layers")
        return True

    def remaining(self) -> int:
        return max(self.settings.max_total_bytes - self.used, 0)

    def printable(self, data: bytes) -> str:
        cap = self.settings.max_printable_bytes
        text = data[:cap].hex(" ")
        return text + " ..." if len(data) > cap else text

    def record(
        self,
        index: str,
        original: str,
        file_name: str,
        file_type: str | None,
        data: bytes,
        decoded: str | None,
        encoding: str,
    ) -> None:
        if self.layers_full():
            return
        hashes = get_hashes(data)
        self.records.append(
            BinaryRecord(
                index,
                original,
                file_name,
                file_type,
                data,
                decoded,
                encoding,
                hashes,
                hashes["md5"],
                hashes["sha1"],
                hashes["sha256"],
                self.printable(data),
            )
        )

    # ------------------------------------------------------------------ text
    def decode_text(self, text: str, depth: int, prefix: str) -> str:
        """Return ``text`` with its base64 runs replaced by markup (records appended)."""
        if len(text) < self.settings.min_length:
            return text
        pieces: list[str] = []
        done: dict[str, str] = {}
        last = 0
        count = 0
        for match in _B64_RX.finditer(text):
            cand = match.group()
            if len(cand) < self.settings.min_length:
                continue
            replacement = done.get(cand)
            if replacement is None:
                if count >= self.settings.max_candidates:
                    self.hit("max_candidates")
                    break
                if depth > self.settings.max_depth:
                    self.hit("max_depth")
                    break
                index = f"{prefix}.{count + 1}" if prefix else str(count + 1)
                replacement = self.decode_candidate(cand, depth, index)
                if replacement is None:
                    done[cand] = ""
                    continue
                count += 1
                done[cand] = replacement
            if not replacement:
                continue
            start, end = match.span()
            pieces.append(text[last:start])
            pieces.append(replacement)
            last = end
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def decode_candidate(self, cand: str, depth: int, index: str) -> str | None:
        if self.layers_full():
            return None
        compact = cand.replace("\r", "").replace("\n", "")
        body = compact.rstrip("=")
        if len(body) < self.settings.min_length or not _looks_like_base64(body):
            return None
        if len(body) % 4 == 1:
            return None
        padded = body + "=" * (-len(body) % 4)
        try:
            data = binascii.a2b_base64(padded, strict_mode=True)
        except binascii.Error:
            return None
        if not data:
            return None
        if len(data) > self.remaining():
            self.hit("max_total_bytes")
            return None
        ftype = file_type_of(data)
        text = _as_text(data, self.utf16) if ftype is None else None
        if ftype is None and text is None and not _mixed_classes(body):
            return None
        self.used += len(data)
        # hand the classification over: expand() would compute the same file type and text again
        known = (ftype, text) if ftype is None else None
        return self.expand(data, depth, index, f"[{ftype}]", "unknown", None, cand, from_encoding=True, known=known)

    # ------------------------------------------------------------------ items
    def expand(
        self,
        data: bytes,
        depth: int,
        index: str,
        name: str,
        file_name: str,
        row_type: str | None,
        original: str,
        from_encoding: bool,
        known: tuple[None, tuple[str, str] | None] | None = None,
    ) -> str:
        """Return markup for one decoded item, appending its record(s).

        ``known`` is ``(None, _as_text(data, utf16))`` when the caller found no file type and already tried text.
        """
        ftype = file_type_of(data) if known is None else None
        if ftype is not None and ftype in _CONTAINERS:
            if depth > self.settings.max_depth:
                self.hit("max_depth")
                return self.leaf(data, depth, index, name, file_name, row_type or ftype, original, "max_depth")
            if not from_encoding:
                # a container inside a container: its own binary record, members one level deeper
                self.record(index, original, file_name, row_type, data, None, "binary")
                inner = self.container(data, ftype, depth + 1, index, original, nested=True)
                if inner is None:
                    return self.leaf_markup(data, depth, index, name, row_type)
                head = f"<decoded value='binary'  name='{name}' type='{row_type}' index='{index}' depth='{depth}'>"
                return f"{head}{inner}</decoded>"
            inner = self.container(data, ftype, depth, index, original, nested=False)
            if inner is not None:
                return inner
        text = _as_text(data, self.utf16) if known is None else known[1]
        if text is not None:
            decoded, encoding = text
            self.record(index, original, file_name, row_type, data, decoded, encoding)
            body = self.decode_text(decoded, depth + 1, index)
            return f"<decoded type='string' name='{name}' index='{index}' depth='{depth}'>{body}</decoded>"
        return self.leaf(data, depth, index, name, file_name, row_type or ftype, original, None)

    def leaf(
        self,
        data: bytes,
        depth: int,
        index: str,
        name: str,
        file_name: str,
        file_type: str | None,
        original: str,
        partial: str | None,
    ) -> str:
        self.record(index, original, file_name, file_type, data, None, "binary")
        return self.leaf_markup(data, depth, index, name, file_type, partial)

    def leaf_markup(
        self, data: bytes, depth: int, index: str, name: str, file_type: str | None, partial: str | None = None
    ) -> str:
        mark = f" partial='{partial}'" if partial else ""
        return (
            f"<decoded value='binary'  name='{name}' type='{file_type}' index='{index}' depth='{depth}'{mark}>"
            f"{self.printable(data)}</decoded>"
        )

    def container(self, data: bytes, ctype: str, depth: int, index: str, original: str, nested: bool) -> str | None:
        """Markup for a container's members, or None when it cannot be opened."""
        if self.layers_full():
            return None
        try:
            items = _members(ctype, data, self.remaining(), self.settings.max_members, self.hit)
        except _LimitHit as exc:
            self.hit(exc.limit)
            return None
        except _CORRUPT:
            self.hit(f"corrupt_{ctype}")
            return None
        self.used += sum(len(content) for content in items.values())
        partial = " partial='max_members'" if len(items) >= self.settings.max_members else ""
        if len(items) == 1 and not nested:
            ((member, content),) = items.items()
            return self.expand(content, depth, index, f"[{ctype}] Filename: {member}", member, ctype, original, False)
        parts = (
            []
            if nested
            else [f"<decoded value='multiple binary' type='multiple' index='{index}' depth='{depth}'{partial}>"]
        )
        child_depth = depth if nested else depth + 1
        for pos, (member, content) in enumerate(items.items(), start=1):
            parts.append(
                self.expand(
                    content,
                    child_depth,
                    f"{index}.{pos}",
                    f"[{ctype}] Filename: {member}",
                    member,
                    ctype,
                    original,
                    False,
                )
            )
        if not nested:
            parts.append("</decoded>")
        return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Public API


def unpack_text(
    input_string: str, *, utf16: bool = False, settings: Base64Settings | None = None, depth: int = 1
) -> UnpackResult:
    """Decode every base64 payload in ``input_string`` (the stream's entry point).

    Args:
        input_string: the text to scan.
        utf16: also try UTF-16LE for bytes that are neither UTF-8 nor recognisably UTF-16.
        settings: limits; defaults to :class:`Base64Settings`.
        depth: depth of the top-level candidates (1).

    Returns:
        :class:`UnpackResult` with the marked-up string, the records and the limits hit.
    """
    cfg = settings or _DEFAULT_SETTINGS
    unpacker = _Unpacker(cfg, utf16)
    text = input_string
    if len(text) > cfg.max_input_chars:
        unpacker.hit("max_input_chars")
        head = unpacker.decode_text(text[: cfg.max_input_chars], depth, "")
        return UnpackResult(head + text[cfg.max_input_chars :], unpacker.records, unpacker.limits_hit)
    decoded = unpacker.decode_text(text, depth, "")
    return UnpackResult(decoded, unpacker.records, unpacker.limits_hit)
