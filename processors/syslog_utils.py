"""msticpy-compatible syslog analysis (``msticpy.analysis.syslog_utils``) over polars or pandas frames.

Same names, parameters and column names as msticpy; frames come back in the input's type (pandas in, pandas out;
polars in, polars out). Deliberate differences:

* :func:`cluster_syslog_logons_df` pairs session opens and closes with the stream
  :class:`processors.detect.sessions.LogonSessionTracker` - by host, PAM service, user and process id - instead
  of by order. msticpy accepts the first session unconditionally and then drops every session that starts
  before the previous one ended, so overlapping sessions are lost or given another session's end. The
  frame has msticpy's ``User, Start, End`` (naive UTC datetimes) plus ``Host`` and ``Service``.
* :func:`risky_sudo_sessions` uses every match of a :class:`processors.cmd_line.RiskyCommands` (not only
  the last one per timestamp) and accepts msticpy's or secstream's ``cmd_speed`` output.
* :func:`create_host_record` sets ``OSVMajorVersion`` (``OSVMajorersion`` stays readable as an alias);
  :func:`convert_to_ip_entities` does no GeoIP lookup (the GeoIP stage does that).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from processors import _frames
from processors.cmd_line import RiskyCommands, to_polars
from processors.detect.sessions import LogonSessionSettings, LogonSessionState, LogonSessionTracker
from processors.document import event_epoch
from processors.entities import GeoLocation, Host, IpAddress
from processors.errors import MsticpyException, ParseError
from processors.syslog.parse import parse_time, syslog_row_to_event

__all__ = ["cluster_syslog_logons_df", "convert_to_ip_entities", "create_host_record", "risky_sudo_sessions"]

_STANDARD_APPS = frozenset(
    {"CRON", "sudo", "snapd", "systemd-resolved", "systemd", "crontab", "systemd-timesyncd", "systemd-logind",
     "rsyslogd", "syslog-ng"}
)  # fmt: skip
_NO_SESSIONS = "There are no logon sessions in the supplied data set"


def _naive_utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)


def cluster_syslog_logons_df(logon_events: Any) -> Any:
    """Cluster logon sessions in syslog by start and end time, pairing PAM opens and closes.

    Args:
        logon_events: DataFrame (polars or pandas) of syslog rows with ``TimeGenerated`` and
            ``SyslogMessage`` (and optionally ``Computer``, ``ProcessName``, ``ProcessID``).

    Returns:
        Frame (of the input's type) ``User, Start, End, Host, Service``, one row per closed session,
        ordered by start.

    Raises:
        MsticpyException: no session could be paired in the data.
    """
    frame = to_polars(logon_events)
    if frame.is_empty() or not {"TimeGenerated", "SyslogMessage"} <= set(frame.columns):
        raise MsticpyException(_NO_SESSIONS)
    docs: list[tuple[float, int, dict[str, Any]]] = []
    for position, row in enumerate(frame.iter_rows(named=True)):
        try:
            doc = syslog_row_to_event(row)
        except ParseError:
            continue
        docs.append((event_epoch(doc), position, doc))
    docs.sort(key=lambda item: (item[0], item[1]))
    tracker = LogonSessionTracker(LogonSessionSettings(ttl_s=math.inf, pending_ttl_s=math.inf))
    state = LogonSessionState()
    rows: list[tuple[str, datetime, datetime, str, str]] = []
    for _, _, doc in docs:
        for summary in tracker.process(doc, state):
            session, event = summary["secstream"]["session"], summary["event"]
            rows.append(
                (
                    session["user"] or "Unknown",
                    _naive_utc(datetime.fromisoformat(event["start"]).timestamp()),
                    _naive_utc(datetime.fromisoformat(event["end"]).timestamp()),
                    summary["host"]["name"],
                    session["service"],
                )
            )
    if not rows:
        raise MsticpyException(_NO_SESSIONS)
    rows.sort(key=lambda r: (r[1], r[2]))
    sessions = pl.DataFrame(
        rows,
        schema={"User": pl.String, "Start": pl.Datetime("us"), "End": pl.Datetime("us"), "Host": pl.String,
                "Service": pl.String},
        orient="row",
    )  # fmt: skip
    return _frames.like(sessions, logon_events)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ParseError:
        return None


def _sessions(sudo_sessions: Any) -> list[tuple[Any, float, float]]:
    frame = to_polars(sudo_sessions)
    index: list[Any]
    if not isinstance(sudo_sessions, pl.DataFrame) and hasattr(sudo_sessions, "index"):
        index = list(sudo_sessions.index)
    else:
        index = list(range(frame.height))
    out: list[tuple[Any, float, float]] = []
    for key, row in zip(index, frame.select("Start", "End").iter_rows(), strict=True):
        start, end = _epoch(row[0]), _epoch(row[1])
        if start is not None and end is not None:
            out.append((key, start, end))
    return out


def _risky_items(risky_actions: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    if isinstance(risky_actions, RiskyCommands) and hasattr(risky_actions, "matches"):
        matches = risky_actions.matches
        return list(zip(matches["TimeGenerated"].to_list(), matches[matches.columns[1]].to_list(), strict=True))
    return list(risky_actions.items())


def _burst_time(rows: Any) -> Any:
    frame = to_polars(rows)
    times = frame["TimeGenerated"]
    return times[1] if len(times) > 1 else times[0]


def risky_sudo_sessions(
    sudo_sessions: Any,
    risky_actions: Mapping[Any, Any] | None = None,
    suspicious_actions: list[dict[int, list[Any]]] | None = None,
) -> dict[Any, str]:
    """Detect whether a sudo session contains a risky command or a suspicious burst of commands.

    A risky command flags the session whose ``[Start, End]`` holds its time; a ``cmd_speed`` burst flags the
    session holding its second event (msticpy's rule: the first command of a burst often closes the
    previous session). Times are compared in UTC (naive values are UTC).

    Args:
        sudo_sessions: frame of sessions with ``User, Start, End`` (``cluster_syslog_logons_df`` output).
        risky_actions: ``risky_cmd_line`` output.
        suspicious_actions: ``cmd_speed`` output.

    Returns:
        ``{session index: command or "Suspicious event pattern"}`` (a burst overrides a command).

    Raises:
        MsticpyException: neither ``risky_actions`` nor ``suspicious_actions`` is given.
    """
    if risky_actions is None and suspicious_actions is None:
        raise MsticpyException("At least one of risky_actions or suspicious_actions must be supplied")
    sessions = _sessions(sudo_sessions)
    risky: dict[Any, str] = {}
    suspicious: dict[Any, str] = {}
    for when, command in _risky_items(risky_actions or {}):
        moment = _epoch(when)
        if moment is None:
            continue
        for key, start, end in sessions:
            if start <= moment <= end:
                risky[key] = command
    for hit in suspicious_actions or []:
        for value in hit.values():
            moment = _epoch(_burst_time(value[0]))
            if moment is None:
                continue
            for key, start, end in sessions:
                if start <= moment <= end:
                    suspicious[key] = "Suspicious event pattern"
    return {**risky, **suspicious}


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def convert_to_ip_entities(
    ip_str: str | None = None,
    data: Any = None,
    ip_col: str | None = None,
    *,
    geo_lookup: bool = False,
) -> list[IpAddress]:
    """Convert a string of addresses (comma or space separated) or a column of a frame to ``IpAddress`` entities.

    Args:
        ip_str: one or more addresses.
        data: DataFrame (polars or pandas) to read addresses from instead.
        ip_col: the column of ``data`` with the addresses.
        geo_lookup: accepted for msticpy compatibility; secstream never looks up here (the GeoIP stage does).

    Returns:
        One entity per address (in order, duplicates removed).

    Raises:
        MsticpyException: neither ``ip_str`` nor ``data`` and ``ip_col`` are given.
    """
    del geo_lookup
    values: list[str] = []
    if ip_str is not None:
        values = [ip_str]
    elif data is not None and ip_col is not None:
        values = [str(v) for v in to_polars(data)[ip_col].drop_nulls().to_list()]
    else:
        raise MsticpyException("Must specify either ip_str or data + ip_col parameters.")
    seen: dict[str, None] = {}
    for value in values:
        for part in re.split(r"[\s,]+", value.strip()):
            if part:
                seen[part] = None
    return [IpAddress(Address=address) for address in seen]


def create_host_record(syslog_df: Any, heartbeat_df: Any, az_net_df: Any = None) -> Host:
    """Generate a ``Host`` entity for the computer of the syslog data.

    Args:
        syslog_df: syslog rows of the host (``Computer``/``HostName``, ``ProcessName``, ``TimeGenerated``).
        heartbeat_df: Heartbeat rows of the host (the first row is used).
        az_net_df: optional Azure network data (one row: ``PrivateIPAddresses``, ``PublicIPAddresses``).

    Returns:
        The host with OS, solutions, applications (non-standard process names), address and location.

    Raises:
        MsticpyException: ``syslog_df`` is empty.
    """
    syslog = to_polars(syslog_df)
    if syslog.is_empty():
        raise MsticpyException("syslog_df is empty")
    first = syslog.row(0, named=True)
    when = _epoch(first.get("TimeGenerated"))
    host = Host(
        HostName=_text(first.get("Computer")) or _text(first.get("HostName")),
        TimeGenerated=datetime.fromtimestamp(when, tz=UTC) if when is not None else None,
    )
    if "ProcessName" in syslog.columns:
        apps = syslog["ProcessName"].unique(maintain_order=True).to_list()
        host.Applications = [str(app) for app in apps if app is not None and app not in _STANDARD_APPS]
    heartbeat = to_polars(heartbeat_df) if heartbeat_df is not None else None
    if heartbeat is not None and not heartbeat.is_empty():
        beat = heartbeat.row(0, named=True)
        host.SourceComputerId = _text(beat.get("SourceComputerId"))
        host.OSType = _text(beat.get("OSType"))
        host.OSName = _text(beat.get("OSName"))
        host.OSVMajorVersion = _text(beat.get("OSMajorVersion"))
        host.OSVMinorVersion = _text(beat.get("OSMinorVersion"))
        host.ComputerEnvironment = _text(beat.get("ComputerEnvironment"))
        solutions = _text(beat.get("Solutions")) or ""
        host.OmsSolutions = [s.strip().strip('"') for s in solutions.split(",") if s.strip()]
        host.VMUUID = _text(beat.get("VMUUID"))
        country = _text(beat.get("RemoteIPCountry")) or _text(beat.get("RemoteIPCountryOrRegion"))
        host.IPAddress = IpAddress(
            Address=_text(beat.get("ComputerIP")) or "",
            Location=GeoLocation(
                CountryName=country,
                Longitude=_float(beat.get("RemoteIPLongitude")),
                Latitude=_float(beat.get("RemoteIPLatitude")),
            ),
        )
    if az_net_df is not None:
        net = to_polars(az_net_df)
        if net.height == 1:
            row = net.row(0, named=True)
            host.private_ips = convert_to_ip_entities(_text(row.get("PrivateIPAddresses")) or "")
            host.public_ips = convert_to_ip_entities(_text(row.get("PublicIPAddresses")) or "")
    return host
