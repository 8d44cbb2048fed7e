"""Views of secstream's documents as the flat rows Sigma rules are written against.

A Sigma rule names a log source (``category: process_creation``, ``service: auditd``, ...) and the field
names of that source (``Image``, ``CommandLine``, ``type``, ``a0``, ...). :func:`document_views` gives,
for one event document, every ``(source, row)`` pair a rule may look at; rows are keyed by lowercase
field names (field names match case-insensitively) and hold text or None. The table of which document
field feeds which Sigma field is docs/sigma.md, and this module is its implementation.

Sources (:func:`rule_source` maps a rule's ``logsource`` to one):

* ``process_creation``: an auditd ``execve``/``execveat`` event.
* ``network_connection``: an auditd ``connect``/``accept`` event with an IP address.
* ``file_event``: an auditd event that creates or writes a file (a PATH record with ``nametype=CREATE``, or
  an open/openat/creat for writing), ``rename``/``link``/``symlink``, ``chmod``/``chown``, truncate.
* ``file_access``: an auditd open/openat of an existing file for reading only (what ``-w /etc/shadow -p r``
  style watches record).
* ``auditd``: one row per audit record of the event (SYSCALL, EXECVE, PATH, CWD, PROCTITLE, SOCKADDR, and
  single-record events such as USER_CMD, ADD_USER, SERVICE_STOP), with the raw record's field names, and
  the record as ``type=... key=value ...`` text where field-less keywords search.
* ``syslog`` and ``syslog:<service>``: a syslog record; services are the interpreted service, the program
  name, and ``auth`` for the auth/authpriv facilities. ``keyword``: rules without category and service
  (field-less keywords), which search the message of syslog records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from processors.detect.sigma.matcher import FULLTEXT
from processors.document import audit_user

__all__ = ["SOURCES", "Row", "document_views", "rule_source"]

Row = dict[str, str | None]

_CATEGORIES: Final = frozenset({"process_creation", "network_connection", "file_event", "file_access"})
SOURCES: Final = ("process_creation", "network_connection", "file_event", "file_access", "auditd", "syslog", "keyword")
"""The sources a rule can name, besides ``syslog:<service>``."""

_EXEC: Final = frozenset({"execve", "execveat"})
_NETWORK: Final = frozenset({"connect", "accept", "accept4"})
_FILE_CHANGE: Final = frozenset(
    {
        "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
        "chown", "fchown", "fchownat", "lchown", "truncate", "ftruncate", "mknod", "mknodat", "creat",
    }
)  # fmt: skip
_OPEN: Final = frozenset({"open", "openat", "openat2"})
_O_WRONLY_RDWR_CREAT_TRUNC: Final = 0o1 | 0o2 | 0o100 | 0o1000
_AUTH_FACILITIES: Final = frozenset({"auth", "authpriv"})
_ARG_NAMES: Final = tuple(f"a{index}" for index in range(64))


def rule_source(logsource: Mapping[str, str | None]) -> str | None:
    """The source a rule's ``logsource`` (product, category, service) reads, or None if secstream has none."""
    product = logsource.get("product")
    if product not in (None, "linux"):
        return None
    category = logsource.get("category")
    service = logsource.get("service")
    if category is not None:
        return category if category in _CATEGORIES and service is None else None
    if service is None:
        return "keyword"
    if service == "auditd":
        return "auditd"
    if service == "syslog":
        return "syslog"
    return f"syslog:{service}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    value: Any = doc
    for part in path:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _str(value: Any) -> str | None:
    if type(value) is str or value is None:
        return value
    return _text(value)


def _user_name(doc: Mapping[str, Any]) -> str | None:
    return _text(_get(doc, "user", "name")) or _text(_get(doc, "user", "id"))


def _reported_ppid(doc: Mapping[str, Any]) -> Any:
    """The parent pid the event reported: ``secstream.process.ppid`` (where the process tracker moves it),
    else the decoder's ``process.ppid``."""
    moved = _get(doc, "secstream", "process", "ppid")
    return moved if moved is not None else _get(doc, "process", "ppid")


def _process_fields(doc: Mapping[str, Any]) -> Row:
    process = doc.get("process") or {}
    parent = process.get("parent") or {}
    ppid = _reported_ppid(doc)
    return {
        "image": _str(process.get("executable")),
        "commandline": _str(process.get("command_line")),
        "parentimage": _str(parent.get("executable")),
        "parentcommandline": _str(parent.get("command_line")),
        "user": _user_name(doc),
        "currentdirectory": _str(process.get("working_directory")),
        "logonid": _str((doc.get("auditd") or {}).get("session")),
        "processid": _str(process.get("pid")),
        "parentprocessid": _str(ppid if ppid is not None else parent.get("pid")),
        "processguid": _str(process.get("entity_id")),
        "parentprocessguid": _str(parent.get("entity_id")),
    }


def _open_writes(data: Mapping[str, Any], syscall: str) -> bool:
    flags_register = data.get("a2") if syscall in ("openat", "openat2") else data.get("a1")
    try:
        flags = int(str(flags_register), 16)
    except ValueError:
        return False
    return bool(flags & _O_WRONLY_RDWR_CREAT_TRUNC)


def _target_path(doc: Mapping[str, Any]) -> str | None:
    """The path a file event created or changed: the last CREATE path, else the last NORMAL one."""
    paths = _get(doc, "auditd", "paths") or []
    chosen: str | None = None
    for record in paths:
        if not isinstance(record, Mapping):
            continue
        nametype = record.get("nametype")
        if nametype in ("CREATE", "NORMAL", "DELETE") and isinstance(record.get("name"), str):
            chosen = record["name"]
            if nametype == "CREATE":
                return chosen
    return chosen or _text(_get(doc, "file", "path"))


def _audit_ids(doc: Mapping[str, Any]) -> Row:
    process = doc.get("process") or {}
    user = doc.get("user") or {}
    return {
        "pid": _str(process.get("pid")),
        "ppid": _str(_reported_ppid(doc)),
        "exe": _str(process.get("executable")),
        "comm": _str(process.get("name")),
        "uid": _str(user.get("id")),
        "euid": _str((user.get("effective") or {}).get("id")),
        "auid": _str(audit_user(doc).get("id")),
        "gid": _str((user.get("group") or {}).get("id")),
        "ses": _str((doc.get("auditd") or {}).get("session")),
    }


def _auditd_rows(
    doc: Mapping[str, Any], record_types: frozenset[str] | None = None, with_text: bool = False
) -> list[Row]:
    """One row per audit record; with ``record_types``, only the records whose folded type contains one of
    them (the others no loaded rule can match, so they are not built). ``with_text``: each row also gets
    its record as ``type=... key=value ...`` text for field-less keywords."""
    rows = _audit_record_rows(doc, record_types)
    if with_text:
        for row in rows:
            row[FULLTEXT] = " ".join(f"{key}={value}" for key, value in row.items() if value is not None)
    return rows


def _audit_record_rows(doc: Mapping[str, Any], record_types: frozenset[str] | None) -> list[Row]:
    auditd = doc.get("auditd") or {}
    data: Mapping[str, Any] = auditd.get("data") or {}
    types = [t for t in auditd.get("message_types") or () if isinstance(t, str)]
    main = "SYSCALL" if "SYSCALL" in types else (types[0] if types else "UNKNOWN")
    if record_types is None:
        needed = {main, *types}
    else:
        needed = {t for t in {main, *types} if any(literal in t.lower() for literal in record_types)}
        if not needed:
            return []
    process = doc.get("process") or {}
    rows: list[Row] = []
    if main in needed:
        ids = _audit_ids(doc)
        row: Row = {k.lower(): v if type(v) is str else _text(v) for k, v in data.items()}
        for derived in ("socket", "proctitle_argv", "proctitle_truncated"):
            row.pop(derived, None)
        row.update(ids)
        row["type"] = main
        if main == "SYSCALL":
            row["comm"] = _str(data.get("comm")) or ids["comm"]
            row.pop("argc", None)
        rows.append(row)
    if "EXECVE" in needed:
        args = process.get("args") or []
        execve: Row = {"type": "EXECVE", "argc": _text(data.get("argc", len(args)))}
        for index, arg in enumerate(args):
            execve[_ARG_NAMES[index] if index < len(_ARG_NAMES) else f"a{index}"] = _str(arg)
        rows.append(execve)
    if "CWD" in needed:
        rows.append({"type": "CWD", "cwd": _str(process.get("working_directory"))})
    if "PATH" in needed:
        for record in auditd.get("paths") or ():
            if isinstance(record, Mapping):
                path_row: Row = {k.lower(): v if type(v) is str else _text(v) for k, v in record.items()}
                path_row["type"] = "PATH"
                rows.append(path_row)
    if "SOCKADDR" in needed:
        socket = data.get("socket") or {}
        rows.append(
            {
                "type": "SOCKADDR",
                "saddr_fam": _text(socket.get("family")),
                "laddr": _text(socket.get("ip")),
                "lport": _text(socket.get("port")),
                "path": _text(socket.get("path")),
            }
        )
    if "PROCTITLE" in needed:
        argv = data.get("proctitle_argv") or []
        rows.append({"type": "PROCTITLE", "proctitle": " ".join(str(a) for a in argv)})
    return rows


def _syslog_sources(doc: Mapping[str, Any]) -> list[str]:
    names: set[str] = set()
    for value in (
        _get(doc, "secstream", "syslog", "service"),
        _get(doc, "log", "syslog", "appname"),
        _get(doc, "process", "name"),
    ):
        if isinstance(value, str) and value:
            names.add(value.lower())
    if _get(doc, "log", "syslog", "facility", "name") in _AUTH_FACILITIES:
        names.add("auth")
    return ["syslog", "keyword", *(f"syslog:{name}" for name in sorted(names))]


def _syslog_row(doc: Mapping[str, Any]) -> Row:
    message = _text(doc.get("message"))
    return {
        FULLTEXT: message,
        "message": message,
        "program": _text(_get(doc, "log", "syslog", "appname")) or _text(_get(doc, "process", "name")),
        "pid": _text(_get(doc, "process", "pid")),
        "user": _user_name(doc),
        "hostname": _text(_get(doc, "host", "name")),
        "facility": _text(_get(doc, "log", "syslog", "facility", "name")),
        "severity": _text(_get(doc, "log", "syslog", "severity", "name")),
        "command": _text(_get(doc, "secstream", "syslog", "command")),
        "sourceip": _text(_get(doc, "source", "ip")),
    }


def document_views(
    doc: Mapping[str, Any],
    wanted: frozenset[str] | None = None,
    record_types: frozenset[str] | None = None,
    audit_text: bool = True,
) -> list[tuple[str, Row]]:
    """Every ``(source, row)`` pair of one event document (none for documents no rule can read).

    The syslog row is listed once per source it belongs to (``syslog``, ``keyword``, ``syslog:<service>``).
    ``wanted``: only these sources (None: all); the auditd record rows are not built when unwanted.
    ``record_types``: only the auditd rows whose folded type contains one of these (None: all).
    ``audit_text``: give auditd rows their record text for field-less keywords (only needed when an auditd
    rule has keywords).
    """
    event = doc.get("event") or {}
    module = event.get("module")
    if module == "syslog":
        if event.get("dataset") != "syslog.log":  # session summaries and other derived documents
            return []
        sources = _syslog_sources(doc)
        if wanted is not None:
            sources = [source for source in sources if source in wanted]
            if not sources:
                return []
        row = _syslog_row(doc)
        return [(source, row) for source in sources]
    if module != "auditd" or event.get("kind") != "event":
        return []
    views: list[tuple[str, Row]] = (
        [("auditd", row) for row in _auditd_rows(doc, record_types, audit_text)]
        if wanted is None or "auditd" in wanted
        else []
    )
    data = _get(doc, "auditd", "data") or {}
    syscall = data.get("syscall") if isinstance(data, Mapping) else None
    if syscall in _EXEC and _get(doc, "process", "command_line") is not None:
        views.append(("process_creation", _process_fields(doc)))
    elif syscall in _NETWORK:
        destination = doc.get("destination") or {}
        source = doc.get("source") or {}
        remote = destination if syscall == "connect" else source
        if remote.get("ip") is not None:
            row = _process_fields(doc)
            row.update(
                {
                    "initiated": "true" if syscall == "connect" else "false",
                    "destinationip": _text(remote.get("ip")),
                    "destinationport": _text(remote.get("port")),
                    "destinationhostname": _text(remote.get("domain")),
                }
            )
            views.append(("network_connection", row))
    elif isinstance(syscall, str) and (
        syscall in _FILE_CHANGE
        or (syscall in _OPEN and isinstance(data, Mapping) and _open_writes(data, syscall))
        or any(isinstance(p, Mapping) and p.get("nametype") == "CREATE" for p in _get(doc, "auditd", "paths") or ())
    ):
        target = _target_path(doc)
        if target is not None:
            row = _process_fields(doc)
            row["targetfilename"] = target
            views.append(("file_event", row))
    elif syscall in _OPEN:
        target = _target_path(doc)
        if target is not None:
            row = _process_fields(doc)
            row["targetfilename"] = target
            views.append(("file_access", row))
    return views
