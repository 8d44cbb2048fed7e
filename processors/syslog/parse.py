"""Syslog parsing: RFC 3164 and RFC 5424 lines and Log Analytics ``Syslog`` rows into ECS documents.

:func:`parse_syslog_line` builds the envelope (timestamp, host, process, ``log.syslog``) and then calls
:func:`interpret`, which recognises the messages that matter for security (sshd logins, PAM sessions,
sudo, su, account management) and fills the ECS fields. Anything else stays a generic
``event.action: "log"`` document; a syslog line is never dropped.

Time: an RFC 3164 timestamp has no year. The caller passes it (``year=``), or passes ``received=`` (epoch
seconds of reception, or of a replayed stream's clock): the year is then the one of the previous, the same
and the next year that puts the line closest to that time, so a December line read in January is last
year's and a January line read on New Year's Eve (a sender's clock slightly ahead) is next year's. Nothing
here reads the clock. A timestamp outside what an ISO 8601 ``@timestamp`` can hold (years 1-9999) is a
:class:`ParseError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from processors.errors import ParseError
from schemas.documents import ECS_VERSION, SCHEMA_VERSION, iso_timestamp, stable_id

__all__ = [
    "FACILITY_NAMES",
    "SEVERITY_NAMES",
    "interpret",
    "parse_syslog_line",
    "parse_time",
    "syslog_row_to_event",
]

FACILITY_NAMES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITY_NAMES: tuple[str, ...] = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_SEVERITY_ALIASES = {"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg",
                     "informational": "info", "panic": "emerg"}  # fmt: skip

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}  # fmt: skip

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_PRI = re.compile(r"<([0-9]{1,3})>")
_RFC5424_HEAD = re.compile(r"([1-9][0-9]?) (\S+) (\S+) (\S+) (\S+) (\S+)(?: |$)")
_BSD_TS = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}([0-9]{1,2}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(?: ([0-9]{4})(?= ))?(?: |$)"
)
_ISO_TS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)(?: |$)"
)
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,32})\])?: ?")
_LA_TIME_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p")

# The common case in one match: optional PRI, RFC 3164 timestamp, then "TAG[PID]: " (a local line) or
# "HOST " and an optional "TAG[PID]: " - the same alternatives, tried in the same order, as the general
# path below (_PRI, _BSD_TS, _TAG, host split, _TAG). Lines it does not match take the general path.
_TAG_RX = r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,32})\])?: ?"
_FAST_3164 = re.compile(
    r"(?:<([0-9]{1,3})>)?"
    r"((Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}([0-9]{1,2}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(?: ([0-9]{4})(?= ))?)(?: |$)"
    rf"(?:{_TAG_RX}|([^ ]+) (?:{_TAG_RX})?)?"
)
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}")

_DAY_EPOCH: dict[tuple[int, int, int], int] = {}
_CACHE_LIMIT = 4096
_EXACT_EPOCH_LIMIT = 2.0**33  # below it, fromtimestamp() of our float epochs gives back the exact microsecond


def _day_epoch(year: int, month: int, day: int) -> int:
    """Epoch seconds of 00:00 UTC of a date (cached); ValueError for impossible dates."""
    key = (year, month, day)
    epoch = _DAY_EPOCH.get(key)
    if epoch is None:
        epoch = int(datetime(year, month, day, tzinfo=UTC).timestamp())
        if len(_DAY_EPOCH) >= _CACHE_LIMIT:
            _DAY_EPOCH.clear()
        _DAY_EPOCH[key] = epoch
    return epoch


def _event_id(host: str, iso: str, content: object) -> str:
    return stable_id("syslog", host, iso, content)


def _closest_year(month: int, day: int, seconds_of_day: int, received: float) -> int:
    """The year (of the received one and its neighbours) that puts ``month``/``day`` closest to ``received``;
    the received year when the date exists in none of them (February 29th is checked by the caller)."""
    seen = datetime.fromtimestamp(received, tz=UTC).year
    best, best_distance = seen, float("inf")
    for year in (seen - 1, seen, seen + 1):
        try:
            distance = abs(_day_epoch(year, month, day) + seconds_of_day - received)
        except (ValueError, OverflowError):
            continue
        if distance < best_distance:
            best, best_distance = year, distance
    return best


def _iso_or_error(timestamp: float, raw: str) -> str:
    """``@timestamp`` for an epoch, or a ParseError when no ISO 8601 year (1-9999) can hold it."""
    try:
        return iso_timestamp(timestamp)
    except (ValueError, OverflowError, OSError) as exc:
        raise ParseError(f"timestamp out of range: {exc}", raw=raw) from None


def _is_binary(line: str) -> bool:
    if line.isascii() and line.isprintable():
        return False
    if "\x00" in line or "\ufffd\ufffd" in line:
        return True
    if _CONTROL.search(line) is None:
        return False
    return len(_CONTROL.findall(line)) * 10 > len(line)


def _iso_epoch(text: str, raw: str) -> float:
    value = text.replace(" ", "T", 1)
    if "." in value:  # fromisoformat accepts at most 6 fractional digits
        head, _, frac = value.partition(".")
        digits = frac[: len(frac) - len(frac.lstrip("0123456789"))]
        zone = frac[len(digits) :]
        value = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise ParseError(f"invalid timestamp {text!r}", raw=raw) from exc


def _bsd_epoch(match: re.Match[str], year: int | None, received: float | None, raw: str) -> float:
    return _bsd_epoch_of(
        match.group(1), match.group(2), match.group(3), match.group(4), match.group(5), match.group(6),
        match.group(7), match.group(0).strip(), year, received, raw,
    )  # fmt: skip


def _bsd_epoch_of(
    month_name: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    frac: str | None,
    year_text: str | None,
    stamp: str,
    year: int | None,
    received: float | None,
    raw: str,
) -> float:
    month = _MONTHS[month_name]
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if year_text:
        year = int(year_text)
    elif year is None:
        if received is None:
            raise ParseError("RFC 3164 timestamp has no year: the caller must pass year= or received=", raw=raw)
        year = _closest_year(month, int(day), hours * 3600 + minutes * 60 + seconds, received)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError("time out of range")
        midnight = _day_epoch(year, month, int(day))
    except ValueError as exc:
        raise ParseError(f"invalid timestamp {stamp!r}", raw=raw) from exc
    # exactly datetime(...).timestamp(): integer microseconds divided once
    return ((midnight + hours * 3600 + minutes * 60 + seconds) * 1_000_000 + micro) / 1_000_000


def _parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]], str] | None:
    """Parse RFC 5424 SD-ELEMENTs at the start of ``text``; return (data, rest) or None if malformed."""
    data: dict[str, dict[str, str]] = {}
    pos, size = 0, len(text)
    while pos < size and text[pos] == "[":
        end_id = pos + 1
        while end_id < size and text[end_id] not in " ]":
            end_id += 1
        sd_id = text[pos + 1 : end_id]
        if not sd_id or end_id >= size:
            return None
        params: dict[str, str] = {}
        pos = end_id
        while pos < size and text[pos] == " ":
            eq = text.find("=", pos + 1)
            if eq < 0 or eq + 1 >= size or text[eq + 1] != '"':
                return None
            name = text[pos + 1 : eq]
            pos, value = eq + 2, []
            while pos < size and text[pos] != '"':
                if text[pos] == "\\" and pos + 1 < size and text[pos + 1] in '"\\]':
                    pos += 1
                value.append(text[pos])
                pos += 1
            if pos >= size:
                return None
            params[name] = "".join(value)
            pos += 1
        if pos >= size or text[pos] != "]":
            return None
        data[sd_id] = params
        pos += 1
    if not data:
        return None
    return data, text[pos + 1 :] if text[pos : pos + 1] == " " else text[pos:]


def _pid(value: str | None) -> int | None:
    if value and value.isascii() and value.isdigit() and len(value) <= 10:
        return int(value)
    return None


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _document(
    *,
    iso: str,
    host: str,
    message: str,
    appname: str | None,
    procid: str | None,
    syslog_meta: dict[str, Any],
    id_content: object,
) -> dict[str, Any]:
    """The generic syslog event document (interpretation fills in the rest)."""
    doc: dict[str, Any] = {
        "@timestamp": iso,
        "ecs": {"version": ECS_VERSION},
        "message": message,
        "event": {
            "id": _event_id(host, iso, id_content),
            "kind": "event",
            "module": "syslog",
            "dataset": "syslog.log",
            "action": "log",
            # a message no interpreter recognises is still a host's log record (ECS: host/info)
            "category": ["host"],
            "type": ["info"],
            "outcome": "unknown",
        },
        "host": {"name": host},
        "log": {"syslog": syslog_meta},
        "secstream": {"schema_version": SCHEMA_VERSION},
    }
    if appname:
        process: dict[str, Any] = {"name": appname}
        pid = _pid(procid)
        if pid is not None:
            process["pid"] = pid
        doc["process"] = process
    return doc


def _pri_meta(pri: int | None) -> dict[str, Any]:
    if pri is None:
        return {}
    facility, severity = divmod(pri, 8)
    return {
        "priority": pri,
        "facility": {"code": facility, "name": FACILITY_NAMES[facility]},
        "severity": {"code": severity, "name": SEVERITY_NAMES[severity]},
    }


def parse_syslog_line(
    line: str,
    *,
    default_host: str = "unknown",
    year: int | None = None,
    received: float | None = None,
    origin: object = None,
) -> dict[str, Any]:
    """Parse one syslog line (RFC 3164 with or without PRI, RFC 5424, or rsyslog ISO-timestamp format).

    Args:
        line: the raw line (a trailing newline is ignored).
        default_host: host name used when the line carries none (RFC 5424 ``-`` or a local 3164 line).
        year: year for RFC 3164 timestamps, which have none; the caller passes the current UTC year.
        received: epoch seconds when the line was received: the timestamp of lines that have none, and the
            source of the year when ``year`` is not given.
        origin: where the line was read (a file and line number, a topic, partition and offset): part of
            ``event.id``, so identical lines (sshd writes them within one second) get distinct ids while a
            re-read of the same line keeps its id. None: the id depends on the line alone.

    Returns:
        The ECS syslog document, interpreted (see :func:`interpret`).

    Raises:
        ParseError: the line is not syslog at all (empty, binary, no recognisable header and no
            ``received`` time), its timestamp is impossible, or an RFC 3164 year is unknowable.
    """
    text = line.rstrip("\r\n")
    if not text or text.isspace():
        raise ParseError("empty line", raw=line)
    if _is_binary(text):
        raise ParseError("binary data, not a syslog line", raw=line)
    fast = _FAST_3164.match(text)
    if fast is not None:
        return _parse_fast_3164(line, text, fast, default_host, year, received, origin)
    pri: int | None = None
    rest = text
    pri_match = _PRI.match(text)
    if pri_match:
        pri = int(pri_match.group(1))
        if pri > 191:
            raise ParseError(f"invalid PRI <{pri}>", raw=line)
        rest = text[pri_match.end() :]
    meta = _pri_meta(pri)

    head = _RFC5424_HEAD.match(rest) if pri is not None else None
    if head is not None and (head.group(2) == "-" or _ISO_TS.fullmatch(head.group(2) + " ")):
        return _parse_5424(line, head, rest[head.end() :], meta, default_host, received, origin)

    timestamp, rest, has_header = _header_time(rest, pri, year, received, line)
    host = default_host
    appname: str | None = None
    procid: str | None = None
    tag = _TAG.match(rest)
    if (
        tag is None and has_header
    ):  # "HOST TAG[PID]: MSG" or "HOST MSG"; a bare "TAG[PID]: MSG" is a local line without host
        first, sep, after = rest.partition(" ")
        if sep and first:
            host, rest = first, after
            tag = _TAG.match(rest)
    if tag is not None:
        appname, procid = tag.group(1), tag.group(2)
        rest = rest[tag.end() :]
    if appname:
        meta["appname"] = appname
    if procid:
        meta["procid"] = procid
    doc = _document(
        iso=_iso_or_error(timestamp, line), host=host, message=rest.lstrip(), appname=appname, procid=procid,
        syslog_meta=meta, id_content=text if origin is None else (text, origin),
    )  # fmt: skip
    return interpret(doc)


def _header_time(
    rest: str, pri: int | None, year: int | None, received: float | None, line: str
) -> tuple[float, str, bool]:
    """The general path's timestamp: (epoch, the text after it, whether the line has a header)."""
    bsd = _BSD_TS.match(rest)
    if bsd is not None:
        return _bsd_epoch(bsd, year, received, line), rest[bsd.end() :], True
    iso = _ISO_TS.match(rest)
    if iso is not None:
        return _iso_epoch(iso.group(1), line), rest[iso.end() :], True
    if received is not None and pri is not None:
        return received, rest, False  # RFC 3164 4.3.3: no header, all of it is MSG
    raise ParseError("no syslog header (PRI or timestamp) found", raw=line)


# (month name, day text, year) -> (epoch of 00:00 UTC, "YYYY-MM-DDT"); None for an impossible date
_BSD_DAYS: dict[tuple[str, str, int], tuple[int, str] | None] = {}


def _bsd_day(month_name: str, day: str, year: int) -> tuple[int, str] | None:
    key = (month_name, day, year)
    try:
        return _BSD_DAYS[key]
    except KeyError:
        pass
    try:
        midnight: int | None = _day_epoch(year, _MONTHS[month_name], int(day))
    except ValueError:
        midnight = None
    value = None if midnight is None else (midnight, iso_timestamp(midnight)[:-13])
    if len(_BSD_DAYS) >= _CACHE_LIMIT:
        _BSD_DAYS.clear()
    _BSD_DAYS[key] = value
    return value


def _parse_fast_3164(
    line: str,
    text: str,
    m: re.Match[str],
    default_host: str,
    year: int | None,
    received: float | None,
    origin: object,
) -> dict[str, Any]:
    """The general path's result for a line :data:`_FAST_3164` matched, from that single match."""
    (pri_text, stamp, month_name, day, hour, minute, second, frac, year_text,
     app, procid, host, app2, procid2) = m.groups()  # fmt: skip
    meta: dict[str, Any]
    if pri_text is not None:
        pri = int(pri_text)
        if pri > 191:
            raise ParseError(f"invalid PRI <{pri}>", raw=line)
        facility, severity = divmod(pri, 8)
        meta = {
            "priority": pri,
            "facility": {"code": facility, "name": FACILITY_NAMES[facility]},
            "severity": {"code": severity, "name": SEVERITY_NAMES[severity]},
        }
    else:
        meta = {}
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if year_text:
        year = int(year_text)
    elif year is None:
        if received is None:
            raise ParseError("RFC 3164 timestamp has no year: the caller must pass year= or received=", raw=line)
        year = _closest_year(_MONTHS[month_name], int(day), hours * 3600 + minutes * 60 + seconds, received)
    day_info = _bsd_day(month_name, day, year)
    if day_info is None or hours > 23 or minutes > 59 or seconds > 59:
        raise ParseError(f"invalid timestamp {stamp!r}", raw=line)
    midnight, prefix = day_info
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    # exactly datetime(...).timestamp(): integer microseconds divided once
    timestamp = ((midnight + hours * 3600 + minutes * 60 + seconds) * 1_000_000 + micro) / 1_000_000
    if 0 <= timestamp < _EXACT_EPOCH_LIMIT:  # the float gives back these digits (see schemas.documents.iso_timestamp)
        iso = f"{prefix}{hour}:{minute}:{second}.{micro // 1000:03d}Z"
    else:
        iso = _iso_or_error(timestamp, line)
    if host is not None:
        app, procid = app2, procid2
    else:
        host = default_host
    if app:
        meta["appname"] = app
    if procid:
        meta["procid"] = procid
    doc = _document(
        iso=iso,
        host=host,
        message=text[m.end() :].lstrip(),
        appname=app,
        procid=procid,
        syslog_meta=meta,
        id_content=text if origin is None else (text, origin),
    )
    return interpret(doc)


def _parse_5424(
    line: str,
    head: re.Match[str],
    rest: str,
    meta: dict[str, Any],
    default_host: str,
    received: float | None,
    origin: object,
) -> dict[str, Any]:
    version, ts_text, host, app, procid, msgid = head.groups()
    if ts_text == "-":
        if received is None:
            raise ParseError("RFC 5424 line without a timestamp and no received= time", raw=line)
        timestamp = received
    else:
        timestamp = _iso_epoch(ts_text, line)
    meta["version"] = version  # ECS: keyword
    for key, value in (("appname", _nil(app)), ("procid", _nil(procid)), ("msgid", _nil(msgid))):
        if value is not None:
            meta[key] = value
    if rest.startswith("-"):
        message = rest[2:] if rest.startswith("- ") else rest[1:]
    else:
        parsed = _parse_structured_data(rest)
        if parsed is not None:
            meta["structured_data"], message = parsed
        else:
            message = rest
    message = message.removeprefix("\ufeff")
    doc = _document(
        iso=_iso_or_error(timestamp, line), host=_nil(host) or default_host, message=message, appname=_nil(app),
        procid=_nil(procid), syslog_meta=meta,
        id_content=line.rstrip("\r\n") if origin is None else (line.rstrip("\r\n"), origin),
    )  # fmt: skip
    return interpret(doc)


def _row_get(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value != value:  # NaN from pandas
            continue
        if isinstance(value, str) and value.strip() in ("", "null", "NaN", "nan"):
            continue
        return value
    return None


def parse_time(value: Any, raw: str = "") -> float:
    """Read a Log Analytics time value as epoch seconds (naive values are UTC).

    Args:
        value: a datetime, epoch seconds, an ISO 8601 string or a ``m/d/Y H:M[:S]`` string.
        raw: the input the value came from, for the error.

    Returns:
        Epoch seconds.

    Raises:
        ParseError: the value is not a time.
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _ISO_TS.fullmatch(text + " "):
            return _iso_epoch(text, raw)
        for fmt in _LA_TIME_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
    raise ParseError(f"TimeGenerated {value!r} is not a timestamp", raw=raw)


def syslog_row_to_event(row: Mapping[str, Any], *, default_host: str = "unknown") -> dict[str, Any]:
    """Convert a Log Analytics ``Syslog`` row into the syslog ECS document.

    Args:
        row: a mapping with ``SyslogMessage``, ``TimeGenerated`` (ISO string, ``m/d/Y H:M`` string,
            datetime or epoch seconds), ``Computer``/``HostName``, ``ProcessName``, ``ProcessID``,
            ``Facility`` and ``SeverityLevel``.
        default_host: host name used when the row has neither ``Computer`` nor ``HostName``.

    Returns:
        The interpreted ECS document; its id depends on the row's host, time, process and message.

    Raises:
        ParseError: the row has no ``TimeGenerated`` that can be read as a time.
    """
    message = _row_get(row, "SyslogMessage")
    message = "" if message is None else str(message)
    raw = message
    when = _row_get(row, "TimeGenerated", "EventTime")
    if when is None:
        raise ParseError("row has no TimeGenerated", raw=raw)
    timestamp = parse_time(when, raw)
    host = str(_row_get(row, "Computer", "HostName") or default_host)
    appname = _row_get(row, "ProcessName")
    pid_value = _row_get(row, "ProcessID")
    procid: str | None = None
    if pid_value is not None:
        procid = str(int(pid_value)) if isinstance(pid_value, float) and pid_value.is_integer() else str(pid_value)
    meta: dict[str, Any] = {}
    facility = _row_get(row, "Facility")
    if isinstance(facility, str) and facility in FACILITY_NAMES:
        meta["facility"] = {"code": FACILITY_NAMES.index(facility), "name": facility}
    severity = _row_get(row, "SeverityLevel")
    if isinstance(severity, str):
        name = _SEVERITY_ALIASES.get(severity.lower(), severity.lower())
        if name in SEVERITY_NAMES:
            meta["severity"] = {"code": SEVERITY_NAMES.index(name), "name": name}
    if "facility" in meta and "severity" in meta:
        meta["priority"] = meta["facility"]["code"] * 8 + meta["severity"]["code"]
    if appname:
        meta["appname"] = str(appname)
    if procid:
        meta["procid"] = procid
    doc = _document(
        iso=iso_timestamp(timestamp), host=host, message=message, appname=str(appname) if appname else None,
        procid=procid, syslog_meta=meta, id_content=(str(appname), procid, message),
    )  # fmt: skip
    return interpret(doc)


# --------------------------------------------------------------------------------------------- interpretation

_Handler = Callable[[dict[str, Any], re.Match[str]], None]

_SSH_ACCEPTED = re.compile(r"Accepted (\S+) for (\S+) from (\S+) port ([0-9]{1,5})(?: (ssh2))?(?:: (\S+) (\S+))?")
_SSH_FAILED = re.compile(r"Failed (\S+) for (invalid user )?(\S*) from (\S+) port ([0-9]{1,5})")
_SSH_INVALID = re.compile(r"[Ii]nvalid user (\S*) from (\S+)(?: port ([0-9]{1,5}))?")
_PAM_SESSION = re.compile(
    r"pam_unix\(([^:)\s]+):session\): session (opened|closed) for user (\S+?)(?:\(uid=([0-9]+)\))?"
    r"(?: by (\S*?)\(uid=([0-9]+)\))?$"
)
_PAM_AUTH_FAIL = re.compile(r"pam_unix\(([^:)\s]+):auth\): authentication failure;(.*)$")
_PAM_CHAUTHTOK = re.compile(r"pam_unix\(([^:)\s]+):chauthtok\): password changed for (\S+)")
_SUDO = re.compile(r"\s*(\S+) : (.*?)\bTTY=(.*)$")
_SUDO_KEYS = re.compile(r"\s*;?\s*\b(TTY|PWD|USER|GROUP|ENV|TSID|COMMAND)=")  # reference for _sudo_fields
_SUDO_KEY = re.compile(r"\b(TTY|PWD|USER|GROUP|ENV|TSID|COMMAND)=")
_SU_UTIL = re.compile(r"(FAILED SU )?\(to (\S+)\) (\S+) on (\S+)")
_SU_SHADOW = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)")
_SU_SHORT = re.compile(r"([+-]) (\S+) (\S+?):(\S+)$")
_NEW_USER = re.compile(r"new user: name=([^,\s]+), UID=([0-9]+), GID=([0-9]+)(?:, home=([^,]*))?(?:, shell=([^,]*))?")
_NEW_GROUP = re.compile(r"(?:new group|group added to /etc/(?:group|gshadow)): name=([^,\s]+)(?:, GID=([0-9]+))?")
_DEL_USER = re.compile(r"delete user '([^']+)'")
_DEL_GROUP = re.compile(r"(?:removed group '([^']+)'|group '([^']+)' removed)")
_USERMOD_GROUP = re.compile(r"(add|delete) '([^']+)' (?:to|from) (?:shadow )?group '([^']+)'")
_USERMOD_OTHER = re.compile(r"(change|lock|unlock) user(?: name)? '([^']+)'")
_PASSWD_CHANGED = re.compile(r"password for '([^']+)' changed by '([^']+)'")
_GPASSWD = re.compile(r"user (\S+) (added|removed) by (\S+) (?:to|from) group (\S+)")


def _set(doc: dict[str, Any], action: str, category: list[str], types: list[str], outcome: str) -> None:
    event = doc["event"]
    event["action"] = action
    event["category"] = category
    event["type"] = types
    event["outcome"] = outcome


def _related(doc: dict[str, Any], kind: str, value: str | None) -> None:
    if value:
        values = doc.setdefault("related", {}).setdefault(kind, [])
        if value not in values:
            values.append(value)


def _user(doc: dict[str, Any], name: str | None, target: str | None = None) -> None:
    user = doc.setdefault("user", {})
    if name:
        user["name"] = name
        _related(doc, "user", name)
    if target:
        user["target"] = {"name": target}
        _related(doc, "user", target)


def _source(doc: dict[str, Any], address: str, port: str | None) -> None:
    source: dict[str, Any] = {"address": address}
    if _CANONICAL_IPV4.fullmatch(address) is not None:  # str(ip_address(x)) == x, without the slow parse
        source["ip"] = address
        _related(doc, "ip", address)
    else:
        try:
            source["ip"] = str(ipaddress.ip_address(address))
            _related(doc, "ip", source["ip"])
        except ValueError:
            source["domain"] = address
    if port:
        source["port"] = int(port)
    doc["source"] = source


def _syslog(doc: dict[str, Any], **fields: Any) -> None:
    """Record what the message says beyond ECS under ``secstream.syslog`` (the document has ``secstream``)."""
    target = doc["secstream"].setdefault("syslog", {})
    target.update({k: v for k, v in fields.items() if v is not None and v != ""})


def _on_ssh_accepted(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "ssh_login", ["authentication", "session"], ["start"], "success")
    _user(doc, m.group(2))
    _source(doc, m.group(3), m.group(4))
    _syslog(doc, method=m.group(1), service="sshd", key_type=m.group(6), key_fingerprint=m.group(7))


def _on_ssh_failed(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "ssh_login", ["authentication"], ["start"], "failure")
    _user(doc, m.group(3))
    _source(doc, m.group(4), m.group(5))
    _syslog(doc, method=m.group(1), service="sshd", invalid_user=True if m.group(2) else None)


def _on_ssh_invalid(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "invalid_user", ["authentication"], ["start"], "failure")
    _user(doc, m.group(1))
    _source(doc, m.group(2), m.group(3))
    _syslog(doc, service="sshd", invalid_user=True)


def _on_pam_session(doc: dict[str, Any], m: re.Match[str]) -> None:
    service, state, session_user, _, by_user, by_uid = m.groups()
    opened = state == "opened"
    _set(doc, "session_opened" if opened else "session_closed", ["session"], ["start" if opened else "end"], "success")
    if by_user:
        _user(doc, by_user, session_user)
    else:
        _user(doc, session_user)
    _syslog(doc, service=service, session_user=session_user, by_uid=by_uid)


def _on_pam_auth_fail(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "authentication_failure", ["authentication"], ["start"], "failure")
    fields = dict(re.findall(r"(\w+)=(\S*)", m.group(2)))
    _user(doc, fields.get("user") or fields.get("ruser") or fields.get("logname"))
    if fields.get("rhost"):
        _source(doc, fields["rhost"], None)
    _syslog(doc, service=m.group(1), tty=fields.get("tty"), ruser=fields.get("ruser"), logname=fields.get("logname"))


def _on_password_changed(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "password_changed", ["iam"], ["user", "change"], "success")
    _user(doc, None, m.group(2))
    _syslog(doc, service=m.group(1))


def _on_sudo(doc: dict[str, Any], m: re.Match[str]) -> None:
    invoker, reason, tail = m.group(1), m.group(2).strip(" ;\t"), "TTY=" + m.group(3)
    fields = _sudo_fields(tail)
    failed = bool(reason)
    category = ["authentication", "process"] if failed else ["process"]
    _set(doc, "sudo_command", category, ["start"], "failure" if failed else "success")
    _user(doc, invoker, fields.get("USER"))
    _syslog(
        doc, service="sudo", tty=fields.get("TTY"), pwd=fields.get("PWD"), command=fields.get("COMMAND"),
        group=fields.get("GROUP"), result=reason or "success",
    )  # fmt: skip


def _sudo_fields(tail: str) -> dict[str, str]:
    """``KEY=value`` fields of a sudo line, split as ``_SUDO_KEYS.split`` would, without its slow scan.

    ``_SUDO_KEYS`` (``\\s*;?\\s*\\bKEY=``) can start at every position; here each ``\\bKEY=`` is found
    first and the ``\\s*;?\\s*`` before it is taken off the previous value, which gives the same pieces.
    """
    fields: dict[str, str] = {}
    key: str | None = None
    value_start = previous_end = 0
    for found in _SUDO_KEY.finditer(tail):
        cut = found.start()
        while cut > previous_end and tail[cut - 1].isspace():
            cut -= 1
        if cut > previous_end and tail[cut - 1] == ";":
            cut -= 1
            while cut > previous_end and tail[cut - 1].isspace():
                cut -= 1
        if key is not None:
            value = tail[value_start:cut]
            fields[key] = value.strip() if key != "COMMAND" else value.rstrip()
        key, value_start = found.group(1), found.end()
        previous_end = value_start
    if key is not None:
        value = tail[value_start:]
        fields[key] = value.strip() if key != "COMMAND" else value.rstrip()
    return fields


def _on_su(doc: dict[str, Any], m: re.Match[str]) -> None:
    failed, target, who, tty = m.groups()
    _set(doc, "su", ["authentication", "process"], ["start"], "failure" if failed else "success")
    _user(doc, who, target)
    _syslog(doc, service="su", tty=tty)


def _on_su_shadow(doc: dict[str, Any], m: re.Match[str]) -> None:
    result, target, who = m.groups()
    _set(doc, "su", ["authentication", "process"], ["start"], "success" if result == "Successful" else "failure")
    _user(doc, who, target)
    _syslog(doc, service="su")


def _on_su_short(doc: dict[str, Any], m: re.Match[str]) -> None:
    sign, tty, who, target = m.groups()
    _set(doc, "su", ["authentication", "process"], ["start"], "success" if sign == "+" else "failure")
    _user(doc, who, target)
    _syslog(doc, service="su", tty=tty)


def _on_new_user(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "user_created", ["iam"], ["user", "creation"], "success")
    _user(doc, None, m.group(1))
    doc["user"]["target"]["id"] = m.group(2)
    doc["group"] = {"id": m.group(3)}
    _syslog(doc, home=m.group(4), shell=m.group(5))


def _on_new_group(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "group_created", ["iam"], ["group", "creation"], "success")
    doc["group"] = {"name": m.group(1), **({"id": m.group(2)} if m.group(2) else {})}


def _on_del_user(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "user_deleted", ["iam"], ["user", "deletion"], "success")
    _user(doc, None, m.group(1))


def _on_del_group(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "group_deleted", ["iam"], ["group", "deletion"], "success")
    doc["group"] = {"name": m.group(1) or m.group(2)}


def _on_usermod_group(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "user_changed", ["iam"], ["user", "change", "group"], "success")
    _user(doc, None, m.group(2))
    doc["group"] = {"name": m.group(3)}
    _syslog(doc, change="group_add" if m.group(1) == "add" else "group_remove")


def _on_usermod_other(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "user_changed", ["iam"], ["user", "change"], "success")
    _user(doc, None, m.group(2))
    _syslog(doc, change=m.group(1))


def _on_passwd(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "password_changed", ["iam"], ["user", "change"], "success")
    _user(doc, m.group(2), m.group(1))


def _on_gpasswd(doc: dict[str, Any], m: re.Match[str]) -> None:
    _set(doc, "user_changed", ["iam"], ["user", "change", "group"], "success")
    _user(doc, m.group(3), m.group(1))
    doc["group"] = {"name": m.group(4)}
    _syslog(doc, change="group_add" if m.group(2) == "added" else "group_remove")


# (substring that must occur, regex matched with .search/.match, handler, anchored?), in priority order
_Interpreter = tuple[str, re.Pattern[str], _Handler, bool]
_INTERPRETERS: tuple[_Interpreter, ...] = (
    ("pam_unix(", _PAM_SESSION, _on_pam_session, False),
    ("pam_unix(", _PAM_AUTH_FAIL, _on_pam_auth_fail, False),
    ("pam_unix(", _PAM_CHAUTHTOK, _on_password_changed, False),
    ("Accepted ", _SSH_ACCEPTED, _on_ssh_accepted, True),
    ("Failed ", _SSH_FAILED, _on_ssh_failed, True),
    ("nvalid user ", _SSH_INVALID, _on_ssh_invalid, True),
    ("TTY=", _SUDO, _on_sudo, True),
    ("(to ", _SU_UTIL, _on_su, True),
    (" su for ", _SU_SHADOW, _on_su_shadow, True),
    ("new user: ", _NEW_USER, _on_new_user, True),
    ("name=", _NEW_GROUP, _on_new_group, True),
    ("delete user '", _DEL_USER, _on_del_user, True),
    ("group '", _DEL_GROUP, _on_del_group, True),
    (" group '", _USERMOD_GROUP, _on_usermod_group, True),
    (" user", _USERMOD_OTHER, _on_usermod_other, True),
    ("password for '", _PASSWD_CHANGED, _on_passwd, True),
    (" by ", _GPASSWD, _on_gpasswd, True),
)
# The first characters an anchored pattern can match at; None: any (sudo's "\s*(\S+) : ").
_FIRST_CHARS: dict[re.Pattern[str], str | None] = {
    _SSH_ACCEPTED: "A", _SSH_FAILED: "F", _SSH_INVALID: "Ii", _SUDO: None, _SU_UTIL: "F(", _SU_SHADOW: "SF",
    _NEW_USER: "n", _NEW_GROUP: "ng", _DEL_USER: "d", _DEL_GROUP: "rg", _USERMOD_GROUP: "ad",
    _USERMOD_OTHER: "clu", _PASSWD_CHANGED: "p", _GPASSWD: "u",
}  # fmt: skip


def _dispatch_table() -> tuple[dict[str, tuple[_Interpreter, ...]], tuple[_Interpreter, ...]]:
    """Per first character of the message, the interpreters that can match it (in priority order).

    Unanchored patterns and sudo's can match whatever the message starts with, so they are in every list;
    the result is the same as trying every interpreter in order, without the ones that cannot match.
    """
    chars = {c for first in _FIRST_CHARS.values() if first for c in first}
    table = {
        c: tuple(i for i in _INTERPRETERS if not i[3] or _FIRST_CHARS[i[1]] is None or c in str(_FIRST_CHARS[i[1]]))
        for c in chars
    }
    default = tuple(i for i in _INTERPRETERS if not i[3] or _FIRST_CHARS[i[1]] is None)
    return table, default


_BY_FIRST_CHAR, _ANY_FIRST_CHAR = _dispatch_table()
_SU_APPS = frozenset({"su"})


def interpret(doc: dict[str, Any]) -> dict[str, Any]:
    """Fill the ECS fields of a syslog document from its message, in place.

    Recognised: sshd ``Accepted``/``Failed`` password|publickey|... logins and ``Invalid user``; PAM
    ``session opened``/``closed`` (any service) and ``authentication failure``; sudo command lines
    (including ``incorrect password attempts`` and ``user NOT in sudoers`` results); su (util-linux and
    shadow formats); useradd/usermod/userdel/groupadd/groupdel/gpasswd/passwd/chpasswd. Other messages
    keep ``event.action: "log"``.

    Args:
        doc: a syslog document from :func:`parse_syslog_line` or :func:`syslog_row_to_event`.

    Returns:
        The same document.
    """
    message = doc.get("message") or ""
    for needle, pattern, handler, anchored in _BY_FIRST_CHAR.get(message[:1], _ANY_FIRST_CHAR):
        if needle not in message:
            continue
        match = pattern.match(message) if anchored else pattern.search(message)
        if match is not None:
            handler(doc, match)
            return doc
    appname = (doc.get("process") or {}).get("name") or ""
    if appname in _SU_APPS:
        short = _SU_SHORT.match(message)
        if short is not None:
            _on_su_short(doc, short)
    return doc
