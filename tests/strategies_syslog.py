"""Hypothesis strategies for hostile syslog input: extreme times, integers, lengths and encodings.

Each strategy produces raw lines (bytes, as a driver reads them) that sit at or beyond the edges a
syslog parser has to handle: RFC 5424 timestamps in years 0 and 9999 with nine fractional digits and
odd offsets, RFC 3164 dates that do not exist (February 30th, hour 99), PRI values past 191, process
ids past 64 bits or written in non-ASCII digits, host names and tags at and beyond their length limits,
and text in Latin-1, UTF-16, with NUL bytes, control characters and lone surrogates.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["hostile_syslog_line", "hostile_syslog_lines", "syslog_3164_line", "syslog_5424_line"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

extreme_integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1]),
).map(str)
non_ascii_digits = st.text(alphabet="٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９", min_size=1, max_size=6)
odd_numbers = st.one_of(extreme_integers, non_ascii_digits, st.sampled_from(["", "-", "1e9", "0x10", "NaN", "  7"]))

_years = st.one_of(st.integers(min_value=0, max_value=9999), st.sampled_from([0, 1, 1969, 1970, 2038, 9999]))
_fraction = st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=1, max_size=12).map(lambda d: "." + d))
_offset = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "+14:00", "-12:00", "+23:59", "+99:99", "+0530", ""]),
    st.tuples(st.sampled_from("+-"), st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}"
    ),
)
iso_timestamps = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}",
    _years,
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    _fraction,
    _offset,
)
bsd_timestamps = st.builds(
    lambda mo, d, h, mi, s, frac, year: f"{mo} {d:>2} {h:02d}:{mi:02d}:{s:02d}{frac}{year}",
    st.sampled_from(_MONTHS),
    st.integers(0, 39),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    _fraction,
    st.one_of(st.just(""), _years.map(lambda y: f" {y:04d}")),
)

_name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=" \n\r")
hostnames = st.one_of(
    st.text(_name_chars, min_size=1, max_size=8),
    st.integers(120, 300).map(lambda n: "h" * n),
    st.sampled_from(["-", "localhost", "::1", "999.1.1.1", "xn--bcher-kva.example"]),
)
tags = st.one_of(
    st.text(_name_chars, min_size=1, max_size=12).filter(lambda t: ":" not in t and "[" not in t),
    st.integers(126, 200).map(lambda n: "t" * n),
    st.sampled_from(["sshd", "sudo", "su", "CRON", "kernel"]),
)
pris = st.one_of(st.integers(0, 191), st.integers(192, 999), st.sampled_from([0, 7, 8, 191, 192, 999]))
messages = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "Failed password for root from 10.0.0.1 port 99999999999999999999 ssh2",
            "Accepted publickey for a from ::ffff:1.2.3.4 port 65536 ssh2",
            "pam_unix(sshd:session): session opened for user root(uid=99999999999999999999) by (uid=0)",
            "new user: name=x, UID=18446744073709551616, GID=-1, home=/, shell=/bin/sh",
            "root : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=" + "A" * 500,
        ]
    ),
)

syslog_5424_line = st.builds(
    lambda pri, ts, host, app, pid, msg: f"<{pri}>1 {ts} {host} {app} {pid} - - {msg}",
    pris,
    st.one_of(iso_timestamps, st.just("-")),
    hostnames,
    tags,
    odd_numbers,
    messages,
)
syslog_3164_line = st.builds(
    lambda pri, ts, host, app, pid, msg: f"{pri}{ts} {host} {app}[{pid}]: {msg}",
    st.one_of(st.just(""), pris.map(lambda p: f"<{p}>")),
    bsd_timestamps,
    hostnames,
    tags,
    odd_numbers,
    messages,
)


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")


hostile_syslog_line = st.one_of(
    st.tuples(st.one_of(syslog_5424_line, syslog_3164_line), st.sampled_from(["utf-8", "latin-1", "utf-16"])).map(
        lambda pair: _encode(*pair)
    ),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b" ",
            b"\t \x0b",
            b"\x00" * 10,
            b"\xff\xfe\xfd",
            b"<38>",
            b"<38>1 ",
            "\ud800".encode("utf-8", "surrogatepass"),
        ]
    ),
).map(lambda raw: raw.replace(b"\n", b" ").replace(b"\r", b" "))
"""One raw line (no newline) as bytes."""

hostile_syslog_lines = st.lists(hostile_syslog_line, min_size=1, max_size=20)
