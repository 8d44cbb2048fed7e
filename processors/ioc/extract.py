"""Indicator-of-compromise extraction in linear time (msticpy ``IoCExtract`` compatible).

All built-in patterns run on a linear-time engine, so hostile input cannot cause catastrophic
backtracking: every pattern is a plain candidate scanner, and the checks such an engine cannot
express (look-arounds, octet ranges, IPv6 grammar, TLDs) are done in Python on the candidates only.
The text is encoded to bytes once, and one call of the compiled scanner (``secstream_iocscan``, Rust's
``regex`` crate with RE2 semantics: bytes, Latin-1, ASCII classes) returns the candidate spans of every
pattern the requested types need; the Python scanners below only validate them. The patterns are also
compiled with RE2 (``google-re2``) as the ``comp_regex`` of :attr:`IoCExtract.ioc_types` (msticpy's API),
and custom patterns added with :meth:`IoCExtract.add_ioc_type` run on RE2.

Types and rules (see also "Overlaps" below):

* ``ipv4``: dotted quads with every octet 0-255; not part of a longer dotted number such as a
  version ``1.2.3.4.5``. IPv4-mapped IPv6 (``::ffff:192.0.2.128``) is reported as the IPv4 address.
* ``ipv6``: validated with :mod:`ipaddress`; reported as written (three spellings of one address are
  three observables, like msticpy).
* ``dns``: host names whose TLD is in the Public Suffix List shipped with ``publicsuffixlist`` (no
  network). Not reported when the name is a path component (``/opt/app/setup.py``) or the local
  part of an e-mail address. Two-label names ending in a TLD that is mostly a file extension
  (``setup.py``, ``run.sh``, ``notes.md``, ...; :attr:`IoCExtractSettings.ambiguous_tlds`) are not
  reported as ``dns`` outside URLs and e-mail addresses.
* ``url``: ``http``, ``https``, ``ftp``, ``sftp``, ``ftps``, ``telnet``, ``ldap``, ``ldaps``, ``file``;
  quotes and trailing sentence punctuation are not part of the URL. For every URL containing
  ``%`` escapes the percent-decoded URL is reported too, and URLs nested in a URL (raw or decoded,
  e.g. a redirect parameter) are reported as URLs of their own.
* ``email``: ``local@domain`` with a TLD-checked domain; URL user-info (``https://user@host``) is
  never an e-mail and a bare FQDN never is one.
* ``md5_hash``, ``sha1_hash``, ``sha256_hash``, ``sha512_hash``: runs of exactly 32/40/64/128 hex
  digits bounded by non-hex characters (so ``<md5>hash`` matches, as in msticpy), with at least four
  distinct digits (``000...0`` is not a hash).
* ``windows_path`` and ``linux_path``: only when asked for (``include_paths=True`` or named in
  ``ioc_types``), in string mode as well as DataFrame mode. Linux paths need a root (``/``, ``./``,
  ``../``, ``~/``); absolute ones need at least two components (``/bin/bash``, not the switch ``/c``).

Overlaps: a URL's host is reported as ``dns``/``ipv4``/``ipv6`` only when that type was requested
(msticpy leaks it into ``dns`` always); IPs, hashes and host names in a URL's path or query are
reported as themselves; paths inside a URL are not reported as paths; an e-mail's domain is also a
``dns`` observable. When the *same string* is found as several types, the type with the lowest
priority number wins (ipv4/ipv6/url 0, email and hashes 1, dns 2, windows_path 3, linux_path 4).

Defanged input: with ``defanged=True`` (default) ``hxxp``, ``hXXps``, ``fxp``, ``sfxp``, ``[.]``,
``(.)``, ``{.}``, ``[dot]``, ``[at]``, ``(at)``, ``[@]``, ``[:]``, ``[://]`` and ``[/]`` are recognised
and the indicators are returned refanged (msticpy 3 returns them as written by mistake); pass
``refang=False`` to get them exactly as written in the input.

Size cap: only the first :attr:`IoCExtractSettings.max_input_chars` characters are scanned.
:meth:`IoCExtract.extract_text` reports it with ``truncated=True``; the msticpy-style
:meth:`IoCExtract.extract` logs a warning (``ioc_input_truncated``) and returns what was found.

Differences from msticpy on purpose: no class-level shared pattern table (``add_ioc_type`` changes
one instance only); no sticky ``ignore_tlds``; ``999.999.999.999`` is not an IPv4 address; the
percent-decoded URL variants are found for every URL (msticpy's offset bug misses all but the first
and reports ``2Fbad.org`` as a domain); the DataFrame missing-column check is exact; DataFrame rows
are in a deterministic order; results are returned as ``dict`` (not ``defaultdict``) of ``set``.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, NamedTuple
from urllib.parse import unquote

import re2
import structlog
from secstream_iocscan import Scanner

from processors.errors import MsticpyException
from processors.ioc.tld import has_known_tld

__all__ = [
    "DEFAULT_AMBIGUOUS_TLDS",
    "IoCExtractSettings",
    "IoCPattern",
    "IoCResult",
    "IoCType",
    "IocExtractor",
    "refang",
]

_LOG = structlog.get_logger(module=__name__)


class IoCType(Enum):
    """Enumeration of IoC types (msticpy names; ``sha512_hash`` added)."""

    unknown = "unknown"
    ipv4 = "ipv4"
    ipv6 = "ipv6"
    dns = "dns"
    url = "url"
    md5_hash = "md5_hash"
    sha1_hash = "sha1_hash"
    sha256_hash = "sha256_hash"
    sha512_hash = "sha512_hash"
    file_hash = "file_hash"
    email = "email"
    windows_path = "windows_path"
    linux_path = "linux_path"
    hostname = "hostname"

    @classmethod
    def parse(cls, value: str) -> IoCType:
        """Return the IoCType named ``value`` (case-insensitive), or ``IoCType.unknown``.

        Args:
            value: enumeration name, e.g. ``"IPv4"``.

        Returns:
            The matching member or ``IoCType.unknown``.
        """
        try:
            return cls(value.strip().lower())
        except (ValueError, AttributeError):
            return cls.unknown


class IoCPattern(NamedTuple):
    """One IoC type's pattern, as in msticpy.

    Attributes:
        ioc_type: the type name.
        comp_regex: the compiled candidate regex (RE2, or ``re`` for custom patterns RE2 rejects).
        priority: lower wins when the same string is found as several types (0 is highest).
        group: the regex group used as the observable, or None for the whole match.
    """

    ioc_type: str
    comp_regex: Any
    priority: int
    group: str | None


DEFAULT_AMBIGUOUS_TLDS: frozenset[str] = frozenset({"py", "sh", "md", "zip", "mov", "so", "pm", "rs", "ps", "pl"})


@dataclass(frozen=True, slots=True)
class IoCExtractSettings:
    """Settings of the extractor.

    Attributes:
        max_input_chars: only this many leading characters of one input are scanned (1 MiB default).
        ambiguous_tlds: TLDs that are mostly file extensions; a two-label name with one of them is not
            reported as ``dns`` unless it is a URL host or an e-mail domain.
        min_hash_distinct: a hex run needs this many distinct digits to be reported as a hash.
        max_nested_urls: at most this many nested/decoded URL variants are derived from one URL.
    """

    max_input_chars: int = 1_048_576
    ambiguous_tlds: frozenset[str] = DEFAULT_AMBIGUOUS_TLDS
    min_hash_distinct: int = 4
    max_nested_urls: int = 16


@dataclass(slots=True)
class IoCResult:
    """Result of :meth:`IoCExtract.extract_text`.

    Attributes:
        iocs: ``{ioc_type: {observable, ...}}`` (only types with findings).
        truncated: True when the input was longer than ``max_input_chars`` and only its head was scanned.
        input_chars: length of the input in characters.
        scanned_chars: number of characters scanned.
    """

    iocs: dict[str, set[str]] = field(default_factory=dict)
    truncated: bool = False
    input_chars: int = 0
    scanned_chars: int = 0


# --------------------------------------------------------------------------------------------------
# Candidate patterns (bytes, Latin-1 so every byte is one character and classes are ASCII)


def _opts(case_sensitive: bool = False) -> Any:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.case_sensitive = case_sensitive
    return options


def _compile(pattern: bytes, case_sensitive: bool = False) -> Any:
    return re2.compile(pattern, options=_opts(case_sensitive))


_HOST_LABEL = rb"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLD = rb"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_BODY = rb"(?:" + _HOST_LABEL + rb"\.)+" + _TLD

IPV4_REGEX = rb"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b"
IPV6_REGEX = rb"(?:[0-9a-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f]{0,4})"
DNS_REGEX = rb"\b" + _DNS_BODY + rb"\b"
URL_REGEX = rb"\b(?:https?|s?ftps?|telnet|ldaps?|file)://[^\x00-\x20\x7f\"'<>\\^`{|}]+"
EMAIL_REGEX = rb"[a-z0-9._%+-]+@" + _DNS_BODY + rb"\b"
HASH_REGEX = rb"[0-9a-f]{32,}"
WINPATH_REGEX = (
    rb"(?:[a-z]:|\\\\[a-z0-9_.$-]+|\.\.?|%[a-z0-9_]+%)?"
    rb"(?:\\[^\\/:*?\"'<>|\x00-\x1f]+)*"
    rb"\\[^\\/:*?\"'<>|\x00-\x20,;]+"
)
LXPATH_REGEX = rb"(?:\.\.?|~)?(?:/[a-z0-9._+@%=~,-]+)+/?"

_DEFANG_REGEX = (
    rb"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\}|\[at\]|\(at\)|\{at\}|\[@\]|\(@\)"
    rb"|\[:\]//|\[://\]|\[:\]|\[/\]|\bhxxps?|\bs?fxps?"
)

# RE2 compilations of the patterns: the ``comp_regex`` of ``IoCExtract.ioc_types`` (msticpy's API). The
# extractor itself searches with ``_SCANNER``.
_RX_IPV4 = _compile(IPV4_REGEX)
_RX_IPV6 = _compile(IPV6_REGEX)
_RX_DNS = _compile(DNS_REGEX)
_RX_URL = _compile(URL_REGEX)
_RX_EMAIL = _compile(EMAIL_REGEX)
_RX_HASH = _compile(HASH_REGEX)
_RX_WINPATH = _compile(WINPATH_REGEX)
_RX_LXPATH = _compile(LXPATH_REGEX)

# The compiled scanner: pattern ``i`` is searched only when its gate ``_PREFILTER_PATTERNS[i]`` matches somewhere
# in the text (all gates are tested in one pass). Each gate is a necessary condition (a superset) of its
# pattern, so skipping a pattern whose gate did not match loses nothing.
_PRE_DEFANG = 0
_PRE_IPV4 = 1
_PRE_DNS = 2
_PRE_URL = 3
_PRE_EMAIL = 4
_PRE_HASH = 5
_PRE_IPV6 = 6
_PRE_WINPATH = 7
_PRE_LXPATH = 8
_PAT_DNS_NAME = 9  # a whole string that is a host name (ungated)
_PREFILTER_PATTERNS = (
    _DEFANG_REGEX,
    rb"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]",
    rb"[a-z0-9]\.[a-z]",
    rb"(?:https?|s?ftps?|telnet|ldaps?|file)://",
    rb"[a-z0-9._%+-]@[a-z0-9]",
    rb"[0-9a-f]{32}",
    rb":[0-9a-f]{0,4}:",
    rb"\\",
    rb"/[a-z0-9._+@%=~,-]",
)
_SCAN_PATTERNS = (
    _DEFANG_REGEX,
    IPV4_REGEX,
    DNS_REGEX,
    URL_REGEX,
    EMAIL_REGEX,
    HASH_REGEX,
    IPV6_REGEX,
    WINPATH_REGEX,
    LXPATH_REGEX,
    rb"\A(?:" + _DNS_BODY + rb")\z",
)
_SCANNER: Final = Scanner(_SCAN_PATTERNS, _PREFILTER_PATTERNS)
_DEFANG_BIT = 1 << _PRE_DEFANG
_URL_BIT = 1 << _PRE_URL
_DNS_NAME_BIT = 1 << _PAT_DNS_NAME


def _maybe_defanged(low: str) -> bool:
    """Necessary condition of a ``_DEFANG_REGEX`` match in text lowered with ``str.lower`` (its literals)."""
    if "xp" in low and ("hxxp" in low or "fxp" in low):
        return True
    if "[" in low and (
        "[.]" in low
        or "[dot]" in low
        or "[at]" in low
        or "[@]" in low
        or "[:]" in low
        or "[/]" in low
        or "[://]" in low
    ):
        return True
    if "(" in low and ("(.)" in low or "(dot)" in low or "(at)" in low or "(@)" in low):
        return True
    return "{" in low and ("{.}" in low or "{dot}" in low or "{at}" in low)


def _is_dns_name(data: bytes) -> bool:
    """Return whether the whole of ``data`` is a host name (``_DNS_BODY``)."""
    return bool(_SCANNER.scan(data, _DNS_NAME_BIT))


_DEFANG_MAP: dict[bytes, bytes] = {
    b"[.]": b".",
    b"(.)": b".",
    b"{.}": b".",
    b"[dot]": b".",
    b"(dot)": b".",
    b"{dot}": b".",
    b"[at]": b"@",
    b"(at)": b"@",
    b"{at}": b"@",
    b"[@]": b"@",
    b"(@)": b"@",
    b"[:]//": b"://",
    b"[://]": b"://",
    b"[:]": b":",
    b"[/]": b"/",
}
_PROTO_MAP: dict[bytes, bytes] = {
    b"hxxp": b"http",
    b"hxxps": b"https",
    b"fxp": b"ftp",
    b"fxps": b"ftps",
    b"sfxp": b"sftp",
    b"sfxps": b"sftps",
}

_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_IPV6_NEIGHBOUR = _WORD | frozenset(b":.")
_LXPATH_BEFORE = _WORD | frozenset(b"./~-")
_URL_TRAIL = b".,;:!?*"
_CLOSERS = b")]}"
_HOSTNAME_OK = re.compile(r"[A-Za-z0-9_.-]+\.?")  # linear: a single class run, no nesting
_HASH_TYPES = {32: "md5_hash", 40: "sha1_hash", 64: "sha256_hash", 128: "sha512_hash"}

_PRIORITY = {
    "ipv4": 0,
    "ipv6": 0,
    "url": 0,
    "email": 1,
    "md5_hash": 1,
    "sha1_hash": 1,
    "sha256_hash": 1,
    "sha512_hash": 1,
    "dns": 2,
    "windows_path": 3,
    "linux_path": 4,
}
_BUILTIN_REGEX = {
    "ipv4": _RX_IPV4,
    "ipv6": _RX_IPV6,
    "dns": _RX_DNS,
    "url": _RX_URL,
    "email": _RX_EMAIL,
    "md5_hash": _RX_HASH,
    "sha1_hash": _RX_HASH,
    "sha256_hash": _RX_HASH,
    "sha512_hash": _RX_HASH,
    "windows_path": _RX_WINPATH,
    "linux_path": _RX_LXPATH,
}
_BUILTIN_ORDER = (
    "ipv4",
    "ipv6",
    "dns",
    "url",
    "windows_path",
    "linux_path",
    "md5_hash",
    "sha1_hash",
    "sha256_hash",
    "sha512_hash",
    "email",
)
_PATH_TYPES = frozenset({"windows_path", "linux_path"})
_IPV4_ENTRY = ("ipv4", _PRIORITY["ipv4"])
_HASH_TYPE_SET = frozenset(_HASH_TYPES.values())
_URL_DEPENDENT = frozenset({"url", "dns", "ipv4", "ipv6", "email", "windows_path", "linux_path"})
_IP_TYPES = frozenset({"ipv4", "ipv6"})


# --------------------------------------------------------------------------------------------------
# Refanging with an offset map back to the original bytes


@dataclass(slots=True)
class _Refanged:
    data: bytes
    # segment starts in ``data``, the matching start in the original, and whether the segment was replaced
    work_starts: list[int]
    orig_starts: list[int]
    replaced: list[bool]
    orig_len: int

    def orig_span(self, start: int, end: int) -> tuple[int, int]:
        i = bisect_right(self.work_starts, start) - 1
        o_start = self.orig_starts[i] if self.replaced[i] else self.orig_starts[i] + (start - self.work_starts[i])
        j = bisect_right(self.work_starts, max(end - 1, start)) - 1
        if self.replaced[j]:
            o_end = self.orig_starts[j + 1] if j + 1 < len(self.orig_starts) else self.orig_len
        else:
            o_end = self.orig_starts[j] + (end - self.work_starts[j])
        return o_start, o_end


def _refang_bytes(data: bytes, marks: Iterable[tuple[int, int]] | None = None) -> _Refanged | None:
    """Return the refanged text with an offset map, or None when nothing was defanged.

    ``marks`` are the spans of the defang pattern in ``data`` when the caller has them already.
    """
    if marks is None:
        marks = _SCANNER.scan(data, _DEFANG_BIT).get(_PRE_DEFANG, ())
    pieces: list[bytes] = []
    work_starts: list[int] = [0]
    orig_starts: list[int] = [0]
    replaced: list[bool] = [False]
    last = 0
    wpos = 0
    changed = False
    for start, end in marks:
        token = data[start:end].lower()
        new = _DEFANG_MAP.get(token)
        if new is None:
            following = data[end : end + 4]
            if not following.startswith((b":", b"[:")):
                continue
            new = _PROTO_MAP[token]
        if start > last:
            pieces.append(data[last:start])
            wpos += start - last
            work_starts.append(wpos)
            orig_starts.append(start)
            replaced.append(True)
        elif work_starts[-1] == wpos:
            replaced[-1] = True
            orig_starts[-1] = start
        else:  # pragma: no cover - adjacent replacement with a pending literal of zero length
            work_starts.append(wpos)
            orig_starts.append(start)
            replaced.append(True)
        pieces.append(new)
        wpos += len(new)
        work_starts.append(wpos)
        orig_starts.append(end)
        replaced.append(False)
        last = end
        changed = True
    if not changed:
        return None
    pieces.append(data[last:])
    return _Refanged(b"".join(pieces), work_starts, orig_starts, replaced, len(data))


def refang(text: str) -> str:
    """Return ``text`` with defanging marks (``hxxp``, ``[.]``, ``[at]``, ...) undone.

    Args:
        text: possibly defanged text.

    Returns:
        The refanged text (unchanged when nothing was defanged).
    """
    if not _maybe_defanged(text.lower()):
        return text
    data = text.encode("utf-8", "surrogatepass")
    result = _refang_bytes(data)
    return text if result is None else result.data.decode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------------------------------
# The scan


def _dec(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class _Scan:
    """One scan of one text: validates the candidate spans in ``hits``, collects ``observable -> (type, priority)``.

    ``hits`` is ``_SCANNER.scan(data, ...)``: ``{pattern index: [(start, end), ...]}``; a scanner method
    (``scan_*``) is run only when its pattern has spans.
    """

    __slots__ = (
        "data",
        "found",
        "hits",
        "ignore_tlds",
        "orig",
        "refanged",
        "settings",
        "types",
        "url_spans",
        "url_starts",
    )

    def __init__(
        self,
        data: bytes,
        types: frozenset[str],
        ignore_tlds: bool,
        settings: IoCExtractSettings,
        refanged: _Refanged | None,
        orig: bytes,
        hits: dict[int, list[tuple[int, int]]] | None = None,
    ) -> None:
        self.data = data
        self.hits: dict[int, list[tuple[int, int]]] = {} if hits is None else hits
        self.types = types
        self.ignore_tlds = ignore_tlds
        self.settings = settings
        self.refanged = refanged
        self.orig = orig
        self.found: dict[str, tuple[str, int]] = {}
        # (start, end, authority_start, authority_end) of each URL in ``data``
        self.url_spans: list[tuple[int, int, int, int]] = []
        self.url_starts: list[int] = []

    # ---------------------------------------------------------------- helpers
    def add(self, observable: str, ioc_type: str, priority: int | None = None) -> None:
        prio = _PRIORITY.get(ioc_type, 0) if priority is None else priority
        current = self.found.get(observable)
        if current is not None and current[1] <= prio:
            return
        self.found[observable] = (ioc_type, prio)

    def text(self, start: int, end: int) -> str:
        """The observable at ``data[start:end]``, as written in the original when refang is off."""
        if self.refanged is not None and self.orig is not self.data:
            o_start, o_end = self.refanged.orig_span(start, end)
            return _dec(self.orig[o_start:o_end])
        return _dec(self.data[start:end])

    def in_url(self, pos: int) -> tuple[int, int, int, int] | None:
        i = bisect_right(self.url_starts, pos) - 1
        if i >= 0 and pos < self.url_spans[i][1]:
            return self.url_spans[i]
        return None

    def tld_ok(self, host: str) -> bool:
        return self.ignore_tlds or has_known_tld(host)

    # ---------------------------------------------------------------- types
    def scan_urls(self) -> None:
        data = self.data
        for start, end in self.hits.get(_PRE_URL, ()):
            end = _trim_url_end(data, start, end)
            info = _split_url(data[start:end])
            if info is None:
                continue
            auth_start, auth_end, host, host_start = info
            self.url_spans.append((start, end, start + auth_start, start + auth_end))
            self.url_starts.append(start)
            written = self.text(start + host_start, start + host_start + len(host.encode())) if host else host
            self._report_url(self.text(start, end), host, derived=0, host_written=written)

    def _report_url(self, url: str, host: str, derived: int, host_written: str | None = None) -> None:
        if "url" in self.types:
            self.add(url, "url")
        self._report_host(host, host if host_written is None else host_written)
        if derived >= self.settings.max_nested_urls:
            return
        variants: list[str] = []
        scheme_end = url.find("://") + 3
        if url.find("://", scheme_end) != -1:
            variants.append(url[scheme_end:])
        if "%" in url:
            decoded = url
            for _ in range(3):  # double/triple encoding
                step = unquote(decoded)
                if step == decoded:
                    break
                decoded = step
            if decoded != url:
                if "url" in self.types:
                    self.add(decoded, "url")
                variants.append(decoded[scheme_end:] if decoded.find("://") + 3 == scheme_end else decoded)
        for variant in variants:
            vdata = variant.encode("utf-8", "surrogatepass")
            for start, end in _SCANNER.scan(vdata, _URL_BIT).get(_PRE_URL, ()):
                end = _trim_url_end(vdata, start, end)
                info = _split_url(vdata[start:end])
                if info is None:
                    continue
                derived += 1
                self._report_url(_dec(vdata[start:end]), info[2], derived)
                if derived >= self.settings.max_nested_urls:
                    return

    def _report_host(self, host: str, written: str) -> None:
        if not host:
            return
        if host.startswith("["):
            if "ipv6" in self.types:
                self._report_ipv6(host[1:-1], written[1:-1])
            return
        if host[0].isdigit() and _is_ipv4(host):
            if "ipv4" in self.types:
                self.add(written, "ipv4")
            return
        if "dns" in self.types and "." in host and self.tld_ok(host):
            self.add(written.rstrip("."), "dns")

    def _report_ipv6(self, cand: str, written: str) -> None:
        try:
            addr = ipaddress.IPv6Address(cand)
        except ValueError:
            return
        mapped = addr.ipv4_mapped
        if mapped is not None:
            if "ipv4" in self.types:
                self.add(str(mapped), "ipv4")
            return
        self.add(written, "ipv6")

    def scan_ipv4(self) -> None:
        # the octet check and ``add`` inlined: on short command lines Python call overhead is most of the cost
        data = self.data
        last = len(data) - 1
        plain = self.refanged is None or self.orig is self.data
        found = self.found
        for start, end in self.hits.get(_PRE_IPV4, ()):
            if end < last and data[end] == 0x2E and data[end + 1] in _DIGITS:
                continue
            if start >= 2 and data[start - 1] == 0x2E and data[start - 2] in _DIGITS:
                continue
            cand = data[start:end].decode("ascii")
            # the pattern guarantees four dot-separated runs of 1-3 ASCII digits: check the octet ranges
            one, two, three, four = cand.split(".")
            if (
                (len(one) == 3 and one > "255")
                or (len(two) == 3 and two > "255")
                or (len(three) == 3 and three > "255")
                or (len(four) == 3 and four > "255")
            ):
                continue
            observable = cand if plain else self.text(start, end)
            current = found.get(observable)
            if current is None or current[1] > 0:  # add(observable, "ipv4"): priority 0
                found[observable] = _IPV4_ENTRY

    def scan_ipv6(self) -> None:
        data = self.data
        if b"::" not in data and data.count(b":") < 7:
            return  # an address needs "::" or eight groups: the candidates (times like 10:30:00) are not addresses
        size = len(data)
        for start, end in self.hits.get(_PRE_IPV6, ()):
            if start > 0 and data[start - 1] in _IPV6_NEIGHBOUR:
                continue
            if end < size:
                nxt = data[end]
                if nxt in _WORD or nxt == 0x3A:
                    continue
                if nxt == 0x2E and end + 1 < size and data[end + 1] in _WORD:
                    continue
            cand = data[start:end].decode("ascii")
            if cand.strip(":") == "" or not any(ch not in ":." for ch in cand):
                continue
            try:
                addr = ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            if addr.ipv4_mapped is not None:
                if "ipv4" in self.types:
                    self.add(str(addr.ipv4_mapped), "ipv4")
                continue
            if "ipv6" in self.types:
                self.add(self.text(start, end), "ipv6")

    def scan_dns(self) -> None:
        data = self.data
        ambiguous = self.settings.ambiguous_tlds
        check_tld = not self.ignore_tlds
        plain = self.refanged is None or self.orig is self.data
        size = len(data)
        for start, end in self.hits.get(_PRE_DNS, ()):
            if start > 0 and data[start - 1] == 0x25:  # %2F... : a percent escape, not part of the name
                start += 2
                if start >= end or not _is_dns_name(data[start:end]):
                    continue
            if end < size and data[end] == 0x40:  # local part of an e-mail address
                continue
            # a path component (/opt/setup.py), but not //host or \\\\host (UNC)
            if start > 0 and data[start - 1] in (0x2F, 0x5C) and (start < 2 or data[start - 2] != data[start - 1]):
                continue
            if data[start] in _DIGITS and _is_ipv4(data[start:end].decode("ascii")):
                continue
            if check_tld and not _tld_ok(data[data.rfind(b".", start, end) + 1 : end]):
                continue
            name = data[start:end].decode("ascii")
            is_email_domain = start > 0 and data[start - 1] == 0x40
            if name.count(".") == 1 and name.rsplit(".", 1)[1].lower() in ambiguous and not is_email_domain:
                continue
            self.add(name if plain else self.text(start, end), "dns")

    def scan_email(self) -> None:
        data = self.data
        for start, end in self.hits.get(_PRE_EMAIL, ()):
            at = data.index(b"@", start)
            local = data[start:at]
            if local.startswith(b".") or local.endswith(b"."):
                continue
            span = self.in_url(at)
            if span is not None and span[2] <= at < span[3]:
                continue  # URL user-info
            domain = data[at + 1 : end].decode("ascii")
            if not self.tld_ok(domain):
                continue
            self.add(self.text(start, end), "email")

    def scan_hashes(self) -> None:
        data = self.data
        min_distinct = self.settings.min_hash_distinct
        for start, end in self.hits.get(_PRE_HASH, ()):
            ioc_type = _HASH_TYPES.get(end - start)
            if ioc_type is None or ioc_type not in self.types:
                continue
            cand = data[start:end]
            if len(set(cand.lower())) < min_distinct:
                continue
            self.add(self.text(start, end), ioc_type)

    def scan_windows_paths(self) -> None:
        data = self.data
        url_starts = self.url_starts
        for start, end in self.hits.get(_PRE_WINPATH, ()):
            if data[start] == 0x5C and data[start : start + 2] != b"\\\\":  # no root
                if data.count(b"\\", start, end) < 2:
                    continue
                if start > 0 and data[start - 1] in _WORD:
                    continue
            if url_starts and self.in_url(start) is not None:
                continue
            end = _trim_url_end(data, start, end, b".,;:")
            self.add(self.text(start, end), "windows_path")

    def scan_linux_paths(self) -> None:
        data = self.data
        url_starts = self.url_starts
        for start, end in self.hits.get(_PRE_LXPATH, ()):
            if data[start] == 0x2F:
                if start > 0 and data[start - 1] in _LXPATH_BEFORE:
                    continue
                if data.count(b"/", start, end) - (data[end - 1] == 0x2F) < 2:
                    continue
            elif start > 0 and data[start - 1] in _LXPATH_BEFORE:
                continue
            if url_starts and self.in_url(start) is not None:
                continue
            while end > start + 1 and data[end - 1] in b".,;:":
                end -= 1
            self.add(self.text(start, end), "linux_path")


_TLD_OK: dict[bytes, bool] = {}


def _tld_ok(tld: bytes) -> bool:
    """Return whether the last label of a host name (ASCII bytes) is a known TLD, remembered per label."""
    known = _TLD_OK.get(tld)
    if known is None:
        known = has_known_tld("x." + tld.decode("ascii", "replace"))
        if len(_TLD_OK) < 4096:
            _TLD_OK[tld] = known
    return known


def _is_ipv4(cand: str) -> bool:
    parts = cand.split(".")
    if len(parts) != 4:
        return False
    return all(part.isdigit() and len(part) <= 3 and int(part) <= 255 for part in parts)


def _trim_url_end(data: bytes, start: int, end: int, trail: bytes = _URL_TRAIL) -> int:
    """Drop trailing punctuation (``trail``) and unbalanced closing brackets from a match."""
    if end > start and data[end - 1] not in trail and data[end - 1] not in _CLOSERS:
        return end
    opened = {
        0x29: data.count(b"(", start, end),
        0x5D: data.count(b"[", start, end),
        0x7D: data.count(b"{", start, end),
    }
    closed = {
        0x29: data.count(b")", start, end),
        0x5D: data.count(b"]", start, end),
        0x7D: data.count(b"}", start, end),
    }
    while end > start:
        last = data[end - 1]
        if last in trail:
            end -= 1
            continue
        if last in opened and opened[last] < closed[last]:
            closed[last] -= 1
            end -= 1
            continue
        break
    return end


def _split_url(url: bytes) -> tuple[int, int, str, int] | None:
    """Return (authority start, authority end, host, host start) of a URL candidate, or None if not a URL."""
    sep = url.find(b"://")
    auth_start = sep + 3
    size = len(url)
    ends = [
        pos for pos in (url.find(b"/", auth_start), url.find(b"?", auth_start), url.find(b"#", auth_start)) if pos != -1
    ]
    auth_end = min(ends) if ends else size
    authority = url[auth_start:auth_end]
    scheme = url[:sep].lower()
    at = authority.rfind(b"@")
    hostport = authority[at + 1 :]
    host_start = auth_start + at + 1
    if hostport.startswith(b"["):
        close = hostport.find(b"]")
        if close == -1:
            return None
        host = hostport[: close + 1].decode("ascii", "replace")
        rest = hostport[close + 1 :]
        if rest and not (rest.startswith(b":") and rest[1:].isdigit()):
            return None
        return auth_start, auth_end, host, host_start
    host_b, _, port = hostport.partition(b":")
    if port and not port.isdigit():
        return None
    host = host_b.decode("utf-8", "replace")
    if not host:
        if scheme == b"file" and auth_end < size:
            return auth_start, auth_end, "", host_start
        return None
    if _HOSTNAME_OK.fullmatch(host) is None:
        return None
    return auth_start, auth_end, host, host_start


# --------------------------------------------------------------------------------------------------
# The extractor


def _compile_custom(ioc_regex: str) -> Any:
    """Compile a user pattern with RE2 if it can; verbose-looking or PCRE-only patterns fall back to ``re``."""
    if not any(ch.isspace() for ch in ioc_regex):
        try:
            return re2.compile("(?im)" + ioc_regex)
        except re2.error:
            pass
    return re.compile(ioc_regex, re.I | re.X | re.M)


# Scanners in the order they run: (types that need it, its pattern in ``_SCANNER``, the ``_Scan`` method).
_SCAN_ORDER: Final[tuple[tuple[frozenset[str], int, str], ...]] = (
    (_URL_DEPENDENT, _PRE_URL, "scan_urls"),
    (frozenset({"ipv4"}), _PRE_IPV4, "scan_ipv4"),
    (_IP_TYPES, _PRE_IPV6, "scan_ipv6"),
    (frozenset({"dns"}), _PRE_DNS, "scan_dns"),
    (frozenset({"email"}), _PRE_EMAIL, "scan_email"),
    (_HASH_TYPE_SET, _PRE_HASH, "scan_hashes"),
    (frozenset({"windows_path"}), _PRE_WINPATH, "scan_windows_paths"),
    (frozenset({"linux_path"}), _PRE_LXPATH, "scan_linux_paths"),
)
_Plan = tuple[int, tuple[tuple[int, str], ...]]


class IocExtractor:
    """The IoC extraction engine: finds and validates indicators in text (no DataFrames).

    The msticpy-compatible :class:`processors.iocextract.IoCExtract` adds the string/DataFrame
    ``extract`` API on top of it; the stream stages use this class directly.

    Args:
        defanged: recognise defanged indicators (``hxxp``, ``[.]``, ``[at]``...). Default True.
        refang: return defanged indicators refanged (default) or exactly as written (False).
        settings: limits and heuristics; see :class:`IoCExtractSettings`.
    """

    def __init__(
        self, defanged: bool = True, *, refang: bool = True, settings: IoCExtractSettings | None = None
    ) -> None:
        self.defanged = defanged
        self.refang = refang
        self.settings = settings or IoCExtractSettings()
        self._patterns: dict[str, IoCPattern] = {
            name: IoCPattern(name, _BUILTIN_REGEX[name], _PRIORITY[name], None) for name in _BUILTIN_ORDER
        }
        self._custom: set[str] = set()
        self._type_cache: dict[str, frozenset[str]] = {}
        self._builtin_cache: dict[frozenset[str], frozenset[str]] = {}
        self._plan_cache: dict[frozenset[str], _Plan] = {}
        self._names_cache: dict[tuple[Any, ...], frozenset[str]] = {}
        self._memo: dict[str, object] = {}
        self._memo_state: tuple[Any, ...] = ()

    def analysis_memo(self) -> dict[str, object]:
        """Return this extractor's memo of text analyses (used by :func:`processors.ioc.observables.annotate_event`).

        The memo is emptied whenever the extractor's configuration (``defanged``, ``refang``, ``settings``,
        custom types) changes, so cached results always reflect what this extractor would find.

        Returns:
            A mutable ``{text: analysis summary}`` dict owned by the caller's module.
        """
        state = (self.defanged, self.refang, self.settings)
        if state != self._memo_state:
            self._memo.clear()
            self._memo_state = state
        return self._memo

    # ------------------------------------------------------------------ msticpy API
    @property
    def ioc_types(self) -> dict[str, IoCPattern]:
        """Return the current IoC types and their patterns (a copy).

        Returns:
            dict of IoC type name to :class:`IoCPattern`.
        """
        return dict(self._patterns)

    def add_ioc_type(self, ioc_type: str, ioc_regex: str, priority: int = 0, group: str | None = None) -> None:
        """Add (or replace) an IoC type on this instance only.

        Args:
            ioc_type: a unique name for the IoC type.
            ioc_regex: the regular expression. RE2 is used when it accepts the pattern (it has no
                look-arounds or back-references); other patterns, and patterns containing whitespace
                (msticpy compiled custom patterns in verbose mode), use ``re`` with ``I | X | M``.
            priority: lower wins when the same string matches several types (0 is the highest).
            group: the regex group to use as the observable (default: the whole match).

        Raises:
            MsticpyException: if the name or the pattern is empty or the pattern does not compile.
        """
        if not ioc_type or not ioc_type.strip():
            raise MsticpyException("No value supplied for ioc_type parameter")
        if not ioc_regex or not ioc_regex.strip():
            raise MsticpyException("No value supplied for ioc_regex parameter")
        try:
            compiled = _compile_custom(ioc_regex)
        except re.error as exc:
            raise MsticpyException(f"Invalid regular expression for {ioc_type}: {exc}", raw=ioc_regex) from exc
        self._patterns[ioc_type] = IoCPattern(ioc_type, compiled, priority, group)
        self._custom.add(ioc_type)
        self._type_cache.clear()
        self._builtin_cache.clear()
        self._plan_cache.clear()
        self._memo.clear()

    def validate(self, input_str: str, ioc_type: str, ignore_tlds: bool = False) -> bool:
        """Return True when the whole ``input_str`` is a valid observable of ``ioc_type``.

        Args:
            input_str: the string to test (defanged forms are accepted when ``defanged`` is on).
            ioc_type: a type name; ``file_hash`` picks the hash type by length, ``hostname`` means dns.
            ignore_tlds: skip the TLD check for dns.

        Returns:
            True if valid. Unlike msticpy, octets are range-checked (``999.999.999.999`` is not ipv4).

        Raises:
            KeyError: if ``ioc_type`` is not a known type (as msticpy).
        """
        if ioc_type == IoCType.file_hash.name:
            ioc_type = self.file_hash_type(input_str).name
        elif ioc_type == IoCType.hostname.name:
            ioc_type = IoCType.dns.name
        if ioc_type not in self._patterns:
            raise KeyError(ioc_type)
        candidate = input_str.strip()
        if not candidate:
            return False
        found = self._extract_types(candidate, frozenset({ioc_type}), ignore_tlds).iocs.get(ioc_type, set())
        return candidate in found or (self.defanged and refang(candidate) in found)

    def get_ioc_type(self, observable: str) -> str:
        """Return the type of an observable that is an IoC as a whole, else ``"unknown"``.

        Args:
            observable: the string to classify.

        Returns:
            The IoC type name with the best (lowest) priority whose findings contain the whole string.
        """
        candidate = observable.strip()
        if not candidate:
            return IoCType.unknown.name
        iocs = self._extract_types(candidate, frozenset(self._patterns), False).iocs
        forms = {candidate, refang(candidate)} if self.defanged else {candidate}
        best: tuple[int, int, str] | None = None
        for pos, (name, pattern) in enumerate(self._patterns.items()):
            if forms & iocs.get(name, set()):
                key = (pattern.priority, pos, name)
                if best is None or key < best:
                    best = key
        return best[2] if best else IoCType.unknown.name

    @staticmethod
    def file_hash_type(file_hash: str) -> IoCType:
        """Return the hash IoCType for a hex digest by its length.

        Args:
            file_hash: the hash string.

        Returns:
            md5_hash (32), sha1_hash (40), sha256_hash (64), sha512_hash (128) or unknown.
        """
        name = _HASH_TYPES.get(len(file_hash.strip()))
        return IoCType(name) if name else IoCType.unknown

    # ------------------------------------------------------------------ rich API
    def extract_text(
        self,
        text: str,
        ioc_types: Iterable[str] | None = None,
        include_paths: bool = False,
        ignore_tlds: bool = False,
    ) -> IoCResult:
        """Extract IoCs from one string and report truncation (the stream's entry point).

        Args:
            text: the text to scan.
            ioc_types: types to look for (default: all but the path types, plus custom types).
            include_paths: also look for windows_path and linux_path.
            ignore_tlds: skip TLD validation of dns and e-mail domains.

        Returns:
            :class:`IoCResult` with ``iocs`` and the truncation flag.
        """
        if ioc_types is None:
            types = self._type_cache.get("+paths" if include_paths else "-paths")
            if types is not None:
                return self._extract_types(text, types, ignore_tlds)
        elif ioc_types.__class__ is list or ioc_types.__class__ is tuple:
            # the cache _select_types fills, looked up without the call (a list of names per call is the norm)
            try:
                types = self._names_cache.get(tuple(ioc_types))
            except TypeError:
                types = None
            if types is not None:
                return self._extract_types(text, types, ignore_tlds)
        return self._extract_types(text, self._select_types(ioc_types, include_paths), ignore_tlds)

    # ------------------------------------------------------------------ internals
    def _select_types(self, ioc_types: Iterable[str] | str | None, include_paths: bool) -> frozenset[str]:
        if ioc_types:
            if isinstance(ioc_types, str):
                return frozenset((ioc_types,))
            names = tuple(ioc_types)
            try:
                chosen = self._names_cache.get(names)
            except TypeError:  # unhashable items: just convert them
                return frozenset(str(getattr(name, "name", name)) for name in names)
            if chosen is None:
                chosen = frozenset(str(getattr(name, "name", name)) for name in names)
                if len(self._names_cache) < 256:
                    self._names_cache[names] = chosen
            return chosen
        key = "+paths" if include_paths else "-paths"
        cached = self._type_cache.get(key)
        if cached is None:
            cached = frozenset(name for name in self._patterns if include_paths or name not in _PATH_TYPES)
            self._type_cache[key] = cached
        return cached

    def _builtin(self, types: frozenset[str]) -> frozenset[str]:
        cached = self._builtin_cache.get(types)
        if cached is None:
            cached = frozenset(name for name in types if name in _BUILTIN_REGEX and name not in self._custom)
            if len(self._builtin_cache) < 256:
                self._builtin_cache[types] = cached
        return cached

    def _plan(self, types: frozenset[str]) -> _Plan:
        """Return (pattern mask, (pattern, scanner method) pairs in scan order) for ``types`` (cached per type set)."""
        plan = self._plan_cache.get(types)
        if plan is None:
            builtin = self._builtin(types)
            steps = tuple((pattern, name) for needs, pattern, name in _SCAN_ORDER if not builtin.isdisjoint(needs))
            mask = 0
            for pattern, _name in steps:
                mask |= 1 << pattern
            plan = (mask, steps)
            if len(self._plan_cache) < 256:
                self._plan_cache[types] = plan
        return plan

    def _extract_types(self, text: str, types: frozenset[str], ignore_tlds: bool) -> IoCResult:
        limit = self.settings.max_input_chars
        size = len(text)
        scanned = text[:limit] if size > limit else text
        if not scanned:
            return IoCResult({}, size > limit, size, 0)
        orig = scanned.encode("utf-8", "surrogatepass")
        mask, steps = self._plan(types)
        # one call finds the candidates of every pattern the types need (and the defang marks)
        hits = _SCANNER.scan(orig, mask | _DEFANG_BIT if self.defanged else mask)
        custom = types & self._custom if self._custom else None
        if not hits and not custom:
            return IoCResult({}, size > limit, size, len(scanned))
        refanged = None
        data = orig
        marks = hits.get(_PRE_DEFANG)
        if marks is not None:
            refanged = _refang_bytes(orig, marks)
            if refanged is not None:
                data = refanged.data
                hits = _SCANNER.scan(data, mask)
        scan: _Scan | None = None
        for pattern, method in steps:
            if pattern in hits:
                if scan is None:
                    scan = _Scan(data, types, ignore_tlds, self.settings, refanged, data if self.refang else orig, hits)
                getattr(scan, method)()
        if custom:
            if scan is None:
                scan = _Scan(data, types, ignore_tlds, self.settings, refanged, data if self.refang else orig, hits)
            for name in custom:
                self._scan_custom(scanned if not refanged or not self.refang else _dec(data), name, scan)
        if scan is None:
            return IoCResult({}, size > limit, size, len(scanned))
        iocs: dict[str, set[str]] = {}
        for observable, (ioc_type, _prio) in scan.found.items():
            if ioc_type in types:
                bucket = iocs.get(ioc_type)
                if bucket is None:
                    iocs[ioc_type] = {observable}
                else:
                    bucket.add(observable)
        return IoCResult(iocs, size > limit, size, len(scanned))

    def _scan_custom(self, text: str, name: str, scan: _Scan) -> None:
        pattern = self._patterns[name]
        for match in pattern.comp_regex.finditer(text):
            value = match.group(pattern.group) if pattern.group else match.group()
            if value:
                scan.add(value, name, pattern.priority)
