"""msticpy-compatible command-line analysis (``msticpy.transform.cmd_line``) over polars or pandas frames.

Same names, parameters and defaults as msticpy; frames come back in the input's type (pandas in, pandas out;
polars in, polars out). Deliberate differences:

* :func:`risky_cmd_line` never loses a match to a timestamp collision: it returns a
  :class:`RiskyCommands` dict (``{TimeGenerated: command}``, the last matching row per time, as msticpy)
  whose ``matches`` attribute is a frame (of the input's type) with *every* matching row (time, command,
  rule id, where it matched, row number) and whose ``collisions`` lists the times that held more than one match (also
  logged as a warning). It really searches the decoded base64 text of the command (msticpy decodes and
  ignores it), and searches unanchored with RE2.
* :func:`cmd_speed` sorts its input by ``TimeGenerated`` (msticpy does not, and flags negative deltas of
  unsorted data as bursts); each hit's slice holds all ``events + 1`` rows of the burst (msticpy's slice
  leaves out the row that closes the window); hits come in time order.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from processors import _frames
from processors.detect.rules import RuleEngine, load_rules, reference_rules_path
from processors.errors import MsticpyException
from processors.ioc.unpack import Base64Settings, unpack_text

__all__ = ["RiskyCommands", "base64_layers", "cmd_speed", "risky_cmd_line", "to_polars"]

_log = structlog.get_logger(module=__name__)
_B64_SETTINGS = Base64Settings(min_length=16, max_depth=4)
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{16}")  # cheap test before the unpacker
_MAX_LAYERS = 4
_ROW = "__secstream_row"


def to_polars(frame: Any) -> pl.DataFrame:
    """Return ``frame`` as a polars DataFrame (pandas frames are converted).

    Args:
        frame: a polars or pandas DataFrame.

    Returns:
        The polars frame.

    Raises:
        MsticpyException: ``frame`` is not a DataFrame.
    """
    try:
        return _frames.to_polars(frame)
    except TypeError as exc:
        raise MsticpyException(str(exc)) from exc


def base64_layers(text: str, max_layers: int = _MAX_LAYERS) -> list[str]:
    """Return the decoded text of the base64 payloads (16+ characters) in ``text``, recursively.

    Decoding is :func:`processors.base64unpack.unpack_text`'s (archives and compressed streams are
    expanded too; hex strings and paths are not taken for base64); only text layers are returned.

    Args:
        text: a command line.
        max_layers: how many nested encodings to follow.

    Returns:
        Decoded texts, in document order (an outer layer before the layers decoded from it).
    """
    if len(text) < _B64_SETTINGS.min_length or _B64_RUN.search(text) is None:
        return []
    result = unpack_text(text, settings=_B64_SETTINGS)
    return [
        record.decoded_string
        for record in result.records
        if record.decoded_string and record.reference.count(".") < max_layers
    ]


class RiskyCommands(dict[Hashable, str]):
    """``{TimeGenerated: command}`` as msticpy returns it, plus every match in :attr:`matches`.

    Attributes:
        matches: frame (of the input's type) ``TimeGenerated, <cmd_field>, RuleId, MatchedOn, Row`` with
            one row per (input row, rule) match, including rows whose time collided with another match.
        collisions: times that held more than one matching row (the dict keeps the last one).
    """

    matches: Any
    collisions: list[Hashable]


def risky_cmd_line(
    events: Any,
    log_type: str,
    detection_rules: str | Path | None = None,
    cmd_field: str = "Command",
) -> RiskyCommands:
    """Detect patterns of risky commands in syslog messages.

    Args:
        events: DataFrame (polars or pandas) with ``TimeGenerated`` and ``cmd_field``.
        log_type: the log type of the data; must be a key of the rules file (``"Syslog"``).
        detection_rules: rules file, msticpy's ``{"Syslog": [regex, ...]}`` or secstream's format
            (default: ``processors/detect/data/cmd_line_rules.json``, msticpy's five rules).
        cmd_field: the column holding the command lines.

    Returns:
        A :class:`RiskyCommands` dict ``{TimeGenerated: command}``; keys are the ``TimeGenerated`` values
        (strings stay strings, datetimes stay datetimes). ``.matches`` has every matching row.

    Raises:
        MsticpyException: ``cmd_field`` or ``TimeGenerated`` is missing, or the rules have no ``log_type``.
    """
    frame = to_polars(events)
    if cmd_field not in frame.columns:
        raise MsticpyException(f"The provided dataset does not contain the {cmd_field} field")
    if "TimeGenerated" not in frame.columns:
        raise MsticpyException("The provided dataset does not contain the TimeGenerated field")
    rules = [r for r in load_rules(detection_rules or reference_rules_path()) if log_type.lower() in r.log_types]
    if not rules:
        raise MsticpyException(f"The detection rules contain no rules for log type {log_type!r}")
    engine = RuleEngine(rules)
    column = pl.col(cmd_field).cast(pl.String)
    rows = (
        frame.with_row_index("Row")
        .select("Row", "TimeGenerated", column.alias(cmd_field))
        .filter(pl.col(cmd_field).is_not_null() & (pl.col(cmd_field) != "") & pl.col("TimeGenerated").is_not_null())
    )
    hits: list[tuple[int, Any, str, str, str]] = []
    for row, when, command in rows.iter_rows():
        texts = [(cmd_field, command)] + [(f"decoded[{i}]", t) for i, t in enumerate(base64_layers(command))]
        for rule, where, _ in engine.matching_rules(texts, log_type):
            hits.append((row, when, command, rule.id, where))
    result = RiskyCommands()
    counts: dict[Hashable, set[int]] = {}
    for row, when, command, _, _ in hits:
        result[when] = command
        counts.setdefault(when, set()).add(row)
    result.collisions = [when for when, matched_rows in counts.items() if len(matched_rows) > 1]
    if result.collisions:
        _log.warning("risky_cmd_line_time_collisions", times=len(result.collisions), see="RiskyCommands.matches")
    matches = pl.DataFrame(
        hits,
        schema={
            "Row": pl.UInt32,
            "TimeGenerated": frame.schema["TimeGenerated"],
            cmd_field: pl.String,
            "RuleId": pl.String,
            "MatchedOn": pl.String,
        },
        orient="row",
    ).select("TimeGenerated", cmd_field, "RuleId", "MatchedOn", "Row")
    result.matches = _frames.like(matches, events)
    return result


def _datetime_times(frame: pl.DataFrame) -> pl.DataFrame:
    dtype = frame.schema["TimeGenerated"]
    if isinstance(dtype, pl.Datetime):
        return frame
    if dtype == pl.String:
        try:
            return frame.with_columns(
                pl.col("TimeGenerated").str.to_datetime(time_unit="us", time_zone="UTC", strict=True)
            )
        except pl.exceptions.PolarsError as exc:
            raise MsticpyException("TimeGenerated is not a datetime format") from exc
    raise MsticpyException("TimeGenerated is not a datetime format")


def cmd_speed(cmd_events: Any, cmd_field: str, time: int = 5, events: int = 10) -> list[dict[int, list[Any]]]:
    """Detect patterns of command-line activity whose speed of execution may be suspicious.

    A hit is ``events + 1`` consecutive commands (in time order) spanning less than ``time`` seconds.

    Args:
        cmd_events: DataFrame (polars or pandas) of the command events.
        cmd_field: the column holding the command lines.
        time: the window in seconds.
        events: msticpy's number of events: a burst is ``events + 1`` commands.

    Returns:
        ``[{i: [burst_rows, delta]}, ...]`` in time order: ``i`` is the position of the burst's first row
        in the time-sorted commands, ``burst_rows`` a frame of the input's type with its ``events + 1``
        rows (pandas, as msticpy's: indexed by position among the commands, the input's labels in an
        ``index`` column) and ``delta`` the ``timedelta`` between its first and last command.

    Raises:
        MsticpyException: ``cmd_field`` is missing, or ``TimeGenerated`` is missing or not a time.
    """
    frame = to_polars(cmd_events)
    if cmd_field not in frame.columns:
        raise MsticpyException(f"Dataframe does not contain {cmd_field} column")
    if "TimeGenerated" not in frame.columns:
        raise MsticpyException("Dataframe does not contain TimeGenerated column")
    frame = _datetime_times(frame).with_row_index(_ROW)
    actions = (
        frame.filter(pl.col(cmd_field).is_not_null() & (pl.col(cmd_field).cast(pl.String) != ""))
        .filter(pl.col("TimeGenerated").is_not_null())
        .sort("TimeGenerated", maintain_order=True)
    )
    if events < 1 or actions.height <= events:
        return []
    times = actions["TimeGenerated"]
    deltas = (times.shift(-events) - times).head(actions.height - events)
    window = timedelta(seconds=time)
    # pandas: the input's own rows in time order, laid out as msticpy's (its ``reset_index()``: positions as
    # the index, the input's labels in an ``index`` column); a burst is a slice of it, as cheap as msticpy's
    ordered = cmd_events.iloc[actions[_ROW].to_list()].reset_index() if _frames.is_pandas(cmd_events) else None
    out: list[dict[int, list[Any]]] = []
    for i, delta in enumerate(deltas.to_list()):
        if delta is not None and delta < window:
            rows = actions.slice(i, events + 1).drop(_ROW) if ordered is None else ordered.iloc[i : i + events + 1]
            out.append({i: [rows, delta]})
    return out
