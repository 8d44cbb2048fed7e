"""msticpy-compatible batch API for Linux audit logs (``msticpy.sectools.auditdextract``).

Same public names, parameters, defaults, ``EventType`` names and column names as msticpy. A DataFrame gives a
frame of the same type (pandas in, pandas out; polars in, polars out); :func:`read_from_file` returns msticpy's
documented pandas frame, or polars after ``processors._frames.set_default_output("polars")``. Where msticpy is
wrong, secstream does what msticpy's documentation says instead:

* Events are keyed by ``(node, TIME:SERIAL)``, not by TIME alone: msticpy merges unrelated events that share a
  timestamp (``auditd_log.txt``: 938 real events, msticpy reports 381).
* Every EXECVE argument is kept (``a0``..``a(argc-1)``, hex, ``aN[k]`` segments, several EXECVE records) and
  ``cmdline`` is the full command line; msticpy keeps only ``a0``-``a2`` and pads ``cmdline`` with spaces.
* ``comm`` is extracted (msticpy's ``com`` typo never does); all fields of a record are extracted (msticpy stops
  at the first missing one); ``USER_START`` is typed like ``USER_END``; the nested ``msg='...'`` of user-space
  records is parsed into fields without stray quotes (``res`` = ``success``, not ``success'``) and ``msg`` holds
  the inner text; text after a second ``": "`` is kept.
* Unset ids (``4294967295``) are null, not ``-1``; integer columns are ``Int64`` with nulls.
* Repeated record types are not overwritten: a later record's clashing field gets the ``_<TYPE>`` suffix.
* ``proctitle`` is hex-decoded with NUL separators kept (as msticpy), invalid UTF-8 is escaped reversibly.
* ``read_from_file`` streams the file line by line (bounded memory, a progress bar when ``verbose``); ``dummy_sep``
  is accepted for compatibility and ignored (no CSV parsing, so no line can be cut).
* ``extract_events_to_df`` on a column of raw lines coalesces them into events (msticpy treats each line as an
  event).
* ``TimeGenerated`` is a UTC-aware datetime; a ``node`` column holds the ``node=`` prefix (``Computer`` too when the
  input has no ``Computer`` column).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import polars as pl
import structlog

from processors import _frames
from processors.audit.coalesce import AuditEvent, Coalescer, CoalescerSettings, CoalescerState, LateRecord
from processors.audit.decode import decode_value, execve_args, interpret_event, unset
from processors.audit.parse import AuditRecord, parse_line
from processors.errors import MsticpyException, ParseError

__all__ = [
    "extract_events_to_df",
    "generate_process_tree",
    "get_event_subset",
    "read_from_file",
    "unpack_auditd",
]

_log = structlog.get_logger(module=__name__)

#: Columns converted to integers (with null for unset) wherever they appear.
_INT_FIELDS: Final = frozenset(
    {
        "pid",
        "ppid",
        "uid",
        "auid",
        "gid",
        "euid",
        "egid",
        "suid",
        "fsuid",
        "sgid",
        "fsgid",
        "ses",
        "old-ses",
        "argc",
        "old-auid",
    }
)
_EXEC_SYSCALL_FIELDS: Final = ("success", "ppid", "pid", "auid", "uid", "gid", "euid", "egid", "ses", "exe", "comm")
_LEADING: Final = ("EventType", "mssg_id", "TimeGenerated", "Computer", "node")
_EXPIRE_EVERY: Final = 1000


# ---------------------------------------------------------------------------------------------- rows


def _to_int(value: str | None) -> int | None:
    value = unset(value)
    if value is None or value == "-1":
        return None
    text = value[1:] if value[:1] == "-" else value
    if not text.isdecimal() or len(text) > 18:
        return None
    return int(value)


def _typed(key: str, value: Any) -> Any:
    if key in _INT_FIELDS and (value is None or isinstance(value, str)):
        return _to_int(value)
    return value


_DECODABLE: Final = frozenset({"cwd", "name", "exe", "comm", "acct", "cmd", "path", "key", "data"})


def _record_fields(record: AuditRecord) -> dict[str, Any]:
    """All fields of one record, untrusted strings hex-decoded, PROCTITLE decoded with NULs kept."""
    out: dict[str, Any] = dict(record.fields)
    if record.rtype == "EXECVE":
        keys: Iterable[str] = [key for key in out if key[:1] == "a" and key != "argc"]
    elif record.rtype == "PROCTITLE":
        keys = ["proctitle"] if "proctitle" in out else []
    else:
        keys = _DECODABLE.intersection(out)
    for key in keys:
        out[key] = decode_value(record, key)[0]
    return out


def _proctitle_text(record: AuditRecord) -> str | None:
    value = record.fields.get("proctitle")
    if value is None:
        return None
    text, _valid = decode_value(record, "proctitle")
    return text


def _exec_row(records: Sequence[AuditRecord]) -> dict[str, Any]:
    decoded = interpret_event(records)
    row: dict[str, Any] = {}
    sc = decoded.syscall
    for key in _EXEC_SYSCALL_FIELDS:
        if key in sc:
            row[key] = _typed(key, sc[key])
    if decoded.cwd is not None:
        row["cwd"] = decoded.cwd
    args, argc, _warnings = execve_args([r for r in records if r.rtype == "EXECVE"])
    row["argc"] = argc if argc is not None else len(args)
    for index, arg in enumerate(args):
        row[f"a{index}"] = arg
    row["cmdline"] = " ".join(args)
    for record in records:
        if record.rtype == "PROCTITLE":
            row["proctitle"] = _proctitle_text(record)
            break
    return row


def _other_row(records: Sequence[AuditRecord]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    execve = [r for r in records if r.rtype == "EXECVE"]
    seen_types: dict[str, int] = {}
    for record in records:
        if record.rtype == "EXECVE":
            continue
        count = seen_types[record.rtype] = seen_types.get(record.rtype, 0) + 1
        suffix = record.rtype if count == 1 else f"{record.rtype}_{count}"
        for key, value in _record_fields(record).items():
            target = key if key not in row else f"{key}_{suffix}"
            row[target] = _typed(key, value)
    if execve:
        args, argc, _warnings = execve_args(execve)
        row.setdefault("argc", argc)
        for index, arg in enumerate(args):
            row.setdefault(f"a{index}", arg)
    return row


def _event_row(records: Sequence[AuditRecord]) -> tuple[str, dict[str, Any]]:
    types = [record.rtype for record in records]
    if "SYSCALL" in types and "EXECVE" in types:
        return "SYSCALL_EXECVE", _exec_row(records)
    return (types[0] if types else "UNKNOWN"), _other_row(records)


def _is_int_column(name: str) -> bool:
    """Integer fields, also with the ``_<TYPE>`` suffix given to clashing names (``pid_CRED_DISP``)."""
    if name in _INT_FIELDS:
        return True
    base, _, rest = name.partition("_")
    return base in _INT_FIELDS and rest[:1].isupper()


def _frame(rows: list[dict[str, Any]], epochs: list[float], passthrough: pl.DataFrame | None = None) -> pl.DataFrame:
    """Build the output frame from row dicts: typed columns, all-null columns dropped, msticpy-like order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    schema = {name: (pl.Int64() if _is_int_column(name) else pl.Utf8()) for name in columns}
    frame = pl.from_dicts(rows, schema=schema)
    micros = pl.Series("TimeGenerated", [round(e * 1000) * 1000 for e in epochs], dtype=pl.Int64())
    frame = frame.with_columns(micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    if passthrough is not None and passthrough.width:
        extra = passthrough.drop([c for c in passthrough.columns if c in frame.columns or c == "TimeGenerated"])
        frame = pl.concat([frame, extra], how="horizontal")
    nulls = frame.null_count().row(0, named=True)
    keep = [c for c in frame.columns if nulls[c] < frame.height or c in _LEADING[:3]]
    leading = [c for c in _LEADING if c in keep]
    rest = sorted(c for c in keep if c not in _LEADING and (passthrough is None or c not in passthrough.columns))
    tail = [c for c in keep if passthrough is not None and c in passthrough.columns and c not in leading]
    return frame.select(leading + rest + tail)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "EventType": pl.Series([], dtype=pl.Utf8()),
            "mssg_id": pl.Series([], dtype=pl.Utf8()),
            "TimeGenerated": pl.Series([], dtype=pl.Datetime("us", "UTC")),
        }
    )


def _rows_from_events(
    events: Iterable[AuditEvent | LateRecord], event_type: str | None
) -> tuple[list[dict[str, Any]], list[float], list[tuple[float, int, str]]]:
    rows: list[dict[str, Any]] = []
    epochs: list[float] = []
    order: list[tuple[float, int, str]] = []
    for item in events:
        if isinstance(item, LateRecord):
            record = item.record
            records: tuple[AuditRecord, ...] = (record,)
            node, time, serial, epoch = record.node, record.time, record.serial, record.epoch
        else:
            records = item.records
            node, time, serial, epoch = item.node, item.time, item.serial, item.epoch
        etype, row = _event_row(records)
        if event_type is not None and etype != event_type:
            continue
        row = {"EventType": etype, "mssg_id": f"{time}:{serial}", "node": node, "Computer": node, **row}
        if isinstance(item, LateRecord):
            row["late_of"] = item.event_id
        rows.append(row)
        epochs.append(epoch)
        order.append((epoch, serial, node or ""))
    return rows, epochs, order


def _sorted(rows: list[dict[str, Any]], epochs: list[float], order: list[tuple[float, int, str]]) -> pl.DataFrame:
    if not rows:
        return _empty()
    idx = sorted(range(len(rows)), key=order.__getitem__)
    return _frame([rows[i] for i in idx], [epochs[i] for i in idx])


def _coalesce(records: Iterable[AuditRecord]) -> Iterator[AuditEvent | LateRecord]:
    coalescer = Coalescer(CoalescerSettings())
    state = CoalescerState()
    for count, record in enumerate(records, 1):
        yield from coalescer.push(record, state)
        if count % _EXPIRE_EVERY == 0:
            yield from coalescer.expire(state)
    yield from coalescer.flush_all(state)


# ---------------------------------------------------------------------------------------------- API


def read_from_file(filepath: str, event_type: str | None = None, verbose: bool = False, dummy_sep: str = "\t") -> Any:
    """Extract audit events from a raw audit log file.

    The file is read line by line and coalesced by ``(node, TIME:SERIAL)`` with bounded memory (msticpy reads
    it whole with ``pandas.read_csv`` and groups by TIME only). Lines that are not audit records are skipped
    and counted in the log.

    Args:
        filepath: path to the input file.
        event_type: the type of event to extract if only a subset is required (default: all).
        verbose: show a progress bar and a summary.
        dummy_sep: accepted for compatibility with msticpy and ignored.

    Returns:
        One row per event (see the module docstring for the columns): pandas, or polars when that is the
        default output (:mod:`processors._frames`).
    """
    del dummy_sep
    size = os.path.getsize(filepath)
    bad = 0

    def records() -> Iterator[AuditRecord]:
        nonlocal bad
        with open(filepath, encoding="utf-8", errors="backslashreplace") as handle:
            if not verbose:
                for line in handle:
                    try:
                        yield parse_line(line)
                    except ParseError:
                        bad += 1
                return
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(f"reading {os.path.basename(filepath)}", total=size)
                done = 0
                for number, line in enumerate(handle, 1):
                    done += len(line)
                    if number % 10_000 == 0:
                        progress.update(task, completed=min(done, size))
                    try:
                        yield parse_line(line)
                    except ParseError:
                        bad += 1
                progress.update(task, completed=size)

    rows, epochs, order = _rows_from_events(_coalesce(records()), event_type)
    if bad:
        _log.warning("auditd_lines_skipped", file=filepath, count=bad)
    if verbose:
        _log.info("auditd_file_read", file=filepath, events=len(rows), skipped=bad)
    return _frames.to_output(_sorted(rows, epochs, order))


def _split_input(data: Any, input_column: str) -> tuple[list[Any], pl.DataFrame]:
    if isinstance(data, pl.DataFrame):
        if input_column not in data.columns:
            raise MsticpyException(f"input column {input_column!r} not found in data")
        return data[input_column].to_list(), data.drop(input_column)
    if type(data).__module__.startswith("pandas"):
        if input_column not in data.columns:
            raise MsticpyException(f"input column {input_column!r} not found in data")
        values = data[input_column].tolist()
        return values, _frames.to_polars(data.drop(columns=[input_column]))
    raise MsticpyException("data must be a polars or pandas DataFrame")


def _la_records(value: Any, mssg_id: str, node: str | None) -> list[AuditRecord]:
    """Records of one Log Analytics row (``[{TYPE: [tokens]}, ...]``, possibly as a Python literal string)."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    records: list[AuditRecord] = []
    prefix = f"node={node} " if node else ""
    for item in value or []:
        if not isinstance(item, Mapping):
            continue
        for rtype, tokens in item.items():
            if tokens is None:
                continue
            body = " ".join(tokens) if not isinstance(tokens, str) else tokens
            records.append(parse_line(f"{prefix}type={rtype} msg=audit({mssg_id}): {body}"))
    return records


def extract_events_to_df(
    data: Any, input_column: str = "AuditdMessage", event_type: str | None = None, verbose: bool = False
) -> Any:
    """Extract audit messages from a DataFrame into one row per event.

    Accepts a column of raw audit lines (coalesced into events by ``(node, TIME:SERIAL)``) or Log Analytics
    rows, where the column holds a list of ``{TYPE: [tokens]}`` (or its Python-literal text) and ``mssg_id``
    (``TIME:SERIAL``) is a column; the other input columns (``Computer``, ``TenantId``, ...) are kept and
    ``TimeGenerated`` is recomputed from ``mssg_id``.

    Args:
        data: polars or pandas DataFrame.
        input_column: the input column name (default ``AuditdMessage``).
        event_type: the event type, if None, all.
        verbose: log a summary.

    Returns:
        The events, in a frame of the input's type.

    Raises:
        MsticpyException: the input column (or ``mssg_id`` for Log Analytics rows) is missing.
    """
    return _frames.like(_extract_events(data, input_column, event_type, verbose), data)


def _extract_events(data: Any, input_column: str, event_type: str | None, verbose: bool) -> pl.DataFrame:
    values, rest = _split_input(data, input_column)
    if not values:
        return _empty()
    first = next((v for v in values if v is not None), None)
    raw_lines = isinstance(first, str) and not first.lstrip().startswith("[")
    if raw_lines:
        bad = 0

        def records() -> Iterator[AuditRecord]:
            nonlocal bad
            for value in values:
                try:
                    yield parse_line(str(value))
                except ParseError:
                    bad += 1

        rows, epochs, order = _rows_from_events(_coalesce(records()), event_type)
        if verbose:
            _log.info("auditd_rows_extracted", events=len(rows), skipped=bad)
        return _sorted(rows, epochs, order)
    if "mssg_id" not in rest.columns:
        raise MsticpyException("Log Analytics audit rows need an 'mssg_id' column (TIME:SERIAL)")
    ids = rest["mssg_id"].cast(pl.Utf8).to_list()
    computers = rest["Computer"].cast(pl.Utf8).to_list() if "Computer" in rest.columns else [None] * len(ids)
    out_rows: list[dict[str, Any]] = []
    out_epochs: list[float] = []
    keep: list[int] = []
    skipped = 0
    for index, (value, mssg_id, computer) in enumerate(zip(values, ids, computers, strict=True)):
        try:
            recs = _la_records(value, str(mssg_id), None)
        except (ParseError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            skipped += 1
            continue
        if not recs:
            skipped += 1
            continue
        etype, row = _event_row(recs)
        if event_type is not None and etype != event_type:
            continue
        row = {"EventType": etype, "mssg_id": str(mssg_id), "Computer": computer, **row}
        out_rows.append(row)
        out_epochs.append(recs[0].epoch)
        keep.append(index)
    if verbose:
        _log.info("auditd_rows_extracted", events=len(out_rows), skipped=skipped)
    if not out_rows:
        return _empty()
    passthrough = rest[keep].drop([c for c in ("mssg_id", "Computer") if c in rest.columns])
    return _frame(out_rows, out_epochs, passthrough)


def get_event_subset(data: Any, event_type: str) -> Any:
    """Return the events of one type, without the columns that are empty for it.

    Args:
        data: the output of :func:`read_from_file` or :func:`extract_events_to_df` (polars or pandas).
        event_type: the event type to select.

    Returns:
        The rows where ``EventType == event_type``, in a frame of the input's type (pandas keeps the
        input's index labels, as msticpy's row filter does).
    """
    frame = _frames.to_polars(data).with_row_index("__row")
    subset = frame.filter(pl.col("EventType") == event_type)
    rows = subset["__row"].to_list()
    subset = subset.drop("__row")
    subset = subset.select([c for c in subset.columns if subset[c].null_count() < subset.height])
    if not _frames.is_pandas(data):
        return subset
    labels = _frames.index_labels(data)
    return _frames.to_pandas(subset, index=[labels[row] for row in rows])


def unpack_auditd(audit_str: list[dict[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    """Unpack the records of one event (``[{TYPE: [tokens]}, ...]``) into ``{TYPE: {field: value}}``.

    Hex-encoded values are decoded (all EXECVE arguments, PROCTITLE with NUL separators, USER_CMD ``cmd`` and
    the other untrusted strings); quotes are removed; the nested ``msg='...'`` is parsed into fields. Several
    EXECVE records are merged; other repeated types are kept as ``TYPE``, ``TYPE_2``, ... (msticpy keeps only
    the last one).

    Args:
        audit_str: the records of one event.

    Returns:
        The fields per record type.
    """
    out: dict[str, dict[str, Any]] = {}
    for record in _la_records(audit_str, "0.0:0", None):
        fields = _record_fields(record)
        if record.rtype == "EXECVE" and "EXECVE" in out:
            out["EXECVE"].update(fields)
            continue
        name = record.rtype
        count = 1
        while name in out:
            count += 1
            name = f"{record.rtype}_{count}"
        out[name] = fields
    return out


def generate_process_tree(audit_data: Any, branch_depth: int = 4, processes: Any = None) -> Any:
    """Generate process tree data from audit process events.

    Like msticpy, ``branch_depth`` is accepted and not used; the tree is built with
    ``processors.proc_tree_builder.build_process_tree`` from the ``SYSCALL_EXECVE`` rows of ``processes`` (when
    given) or ``audit_data``.

    Args:
        audit_data: audit events (output of :func:`read_from_file` / :func:`extract_events_to_df`).
        branch_depth: unused (msticpy compatibility).
        processes: process events to use instead of ``audit_data``.

    Returns:
        The process tree, in a frame of the input's type (pandas: indexed by ``proc_key``, as msticpy).
    """
    del branch_depth
    from processors.proc_tree_builder import build_process_tree

    source = processes if processes is not None else audit_data
    frame = _frames.to_polars(source)
    if "EventType" in frame.columns:
        frame = frame.filter(pl.col("EventType") == "SYSCALL_EXECVE")
    return _frames.like(build_process_tree(frame), source, index_column="proc_key")
