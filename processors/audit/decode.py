"""Decode a coalesced audit event into an ECS-aligned document.

What is decoded:

* EXECVE: all arguments ``a0..a(argc-1)``, across several EXECVE records; unquoted values are hex; long
  arguments come as ``aN_len`` plus ``aN[k]`` segments, which are joined. ``argc`` that disagrees with the
  arguments present is flagged (``auditd.warnings``: ``argc_mismatch``).
* Invalid UTF-8 is never dropped: the bytes are decoded with backslashes doubled and undecodable bytes
  written as ``\\xNN`` (reversible), and the field is flagged (``invalid_utf8:<field>``).
* PROCTITLE: hex to an argv list split on NUL; ``truncated`` when it is 128 bytes (the kernel's limit).
* SOCKADDR: ``saddr`` for AF_INET, AF_INET6 and AF_UNIX (family, ip, port, path).
* USER_CMD ``cmd`` and the other untrusted-string fields (``cwd``, ``name``, ``exe``, ``comm``, ``acct``, ...)
  are hex-decoded when unquoted.
* SYSCALL: number to name (x86_64, aarch64), arch name, success and exit.
* ``4294967295`` (and ``-1`` for ids), ``?`` and ``(null)`` mean unset.
* uid/auid names come from the ENRICHED fields (``UID="root"``, ``AUID="alice"``) when present.
"""

from __future__ import annotations

import ipaddress
import os.path
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from processors.audit.coalesce import AuditEvent, LateRecord
from processors.audit.parse import AuditRecord
from processors.audit.syscalls import arch_name, syscall_name
from schemas.documents import SCHEMA_VERSION, iso_timestamp, stable_id

__all__ = [
    "EXEC_SYSCALLS",
    "EXIT_SYSCALLS",
    "FORK_SYSCALLS",
    "PROCTITLE_LIMIT",
    "DecodedEvent",
    "decode_event",
    "decode_late",
    "decode_saddr",
    "decode_value",
    "execve_args",
    "interpret_event",
    "proctitle_argv",
    "unset",
]

EXEC_SYSCALLS: Final = frozenset({"execve", "execveat"})
FORK_SYSCALLS: Final = frozenset({"clone", "clone3", "fork", "vfork"})
EXIT_SYSCALLS: Final = frozenset({"exit", "exit_group"})
#: The kernel truncates PROCTITLE to this many bytes.
PROCTITLE_LIMIT: Final = 128

_UNSET: Final = frozenset({"4294967295", "?", "(null)", "", "(none)"})
_ID_FIELDS: Final = frozenset(
    {"uid", "auid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "ouid", "ogid", "ses", "old-ses"}
)
#: Fields the kernel and libaudit log as untrusted strings: quoted, or hex when they hold special characters.
_HEX_FIELDS: Final = frozenset(
    {"cwd", "name", "exe", "comm", "acct", "cmd", "proctitle", "path", "dir", "watch", "key", "data", "vm", "root_dir"}
)
_HEX_RE: Final = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_ARG_RE: Final = re.compile(r"a([0-9]{1,9})(?:\[([0-9]{1,9})\])?")
#: Gaps in argument numbering larger than this are not padded (a forged ``a999999999`` must not allocate).
_MAX_ARG_GAP: Final = 1024


def unset(value: str | None) -> str | None:
    """Return None for the audit spellings of "unset" (``4294967295``, ``?``, ``(null)``, ``(none)``, empty).

    Args:
        value: a raw field value.

    Returns:
        The value, or None.
    """
    if value is None or value in _UNSET:
        return None
    return value


def _bytes_to_text(data: bytes) -> tuple[str, bool]:
    """Decode bytes as UTF-8; on failure escape reversibly (``\\\\`` and ``\\xNN``) and return False."""
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace"), False


def decode_value(record: AuditRecord, key: str) -> tuple[str | None, bool]:
    """Return a field value, hex-decoded when it is an unquoted untrusted string.

    Args:
        record: the record.
        key: the field name (``a1``, ``a1[0]``, ``cmd``, ``cwd``, ...).

    Returns:
        ``(text, valid_utf8)``; text is None when the field is absent.
    """
    value = record.fields.get(key)
    if value is None:
        return None, True
    if key not in record.quoted and _HEX_RE.fullmatch(value) is not None:
        return _bytes_to_text(bytes.fromhex(value))
    return value, True


def execve_args(records: Iterable[AuditRecord]) -> tuple[list[str], int | None, list[str]]:
    """Collect all EXECVE arguments of an event.

    Args:
        records: the EXECVE records of one event, in order.

    Returns:
        ``(args, argc, warnings)``; ``argc`` is None when no record carries it.
    """
    whole: dict[int, str] = {}
    pieces: dict[int, dict[int, str]] = {}
    argc: int | None = None
    warnings: list[str] = []
    for record in records:
        for key in record.fields:
            if key == "argc":
                value = record.fields[key]
                if argc is None and value.isdecimal() and len(value) < 9:
                    argc = int(value)
                continue
            match = _ARG_RE.fullmatch(key)
            if match is None:
                continue
            index = int(match.group(1))
            text, valid = decode_value(record, key)
            if text is None:
                continue
            if not valid:
                warnings.append(f"invalid_utf8:{key}")
            if match.group(2) is None:
                whole[index] = text
            else:
                pieces.setdefault(index, {})[int(match.group(2))] = text
    for index, parts in pieces.items():
        whole.setdefault(index, "".join(parts[k] for k in sorted(parts)))
    count = max(whole) + 1 if whole else 0
    if count > len(whole) + _MAX_ARG_GAP:
        args = [whole[i] for i in sorted(whole)]
        warnings.append("argc_mismatch")
        return args, argc, warnings
    args = [whole.get(i, "") for i in range(count)]
    if argc is not None and (argc != count or len(whole) != count):
        warnings.append("argc_mismatch")
    elif argc is None and whole:
        warnings.append("argc_missing")
    return args, argc, warnings


def proctitle_argv(record: AuditRecord) -> tuple[list[str], bool, bool]:
    """Decode a PROCTITLE record.

    Args:
        record: the PROCTITLE record.

    Returns:
        ``(argv, truncated, valid_utf8)``.
    """
    value = record.fields.get("proctitle")
    if value is None:
        return [], False, True
    if "proctitle" in record.quoted or _HEX_RE.fullmatch(value) is None:
        return [value], False, True
    data = bytes.fromhex(value)
    truncated = len(data) >= PROCTITLE_LIMIT
    parts = data.split(b"\x00")
    while parts and parts[-1] == b"":
        parts.pop()
    argv: list[str] = []
    valid = True
    for part in parts:
        text, ok = _bytes_to_text(part)
        valid = valid and ok
        argv.append(text)
    return argv, truncated, valid


def decode_saddr(value: str | None) -> dict[str, Any] | None:
    """Decode a SOCKADDR ``saddr`` hex value (struct sockaddr, family in host byte order).

    Args:
        value: the hex text.

    Returns:
        ``{"family": "inet"|"inet6"|"unix"|..., "ip", "port", "path"}`` (keys present when known), or None.
    """
    if not value or _HEX_RE.fullmatch(value) is None:
        return None
    data = bytes.fromhex(value)
    if len(data) < 2:
        return None
    family = int.from_bytes(data[:2], "little")
    if family == 2 and len(data) >= 8:
        return {
            "family": "inet",
            "port": int.from_bytes(data[2:4], "big"),
            "ip": str(ipaddress.IPv4Address(data[4:8])),
        }
    if family == 10 and len(data) >= 24:
        return {
            "family": "inet6",
            "port": int.from_bytes(data[2:4], "big"),
            "ip": str(ipaddress.IPv6Address(data[8:24])),
        }
    if family == 1:
        raw = data[2:]
        if raw[:1] == b"\x00":
            name = raw[1:].split(b"\x00", 1)[0]
            text = "@" + _bytes_to_text(name)[0]
        else:
            text = _bytes_to_text(raw.split(b"\x00", 1)[0])[0]
        return {"family": "unix", "path": text}
    if family == 16:
        return {"family": "netlink"}
    return {"family": str(family)}


@dataclass(slots=True)
class DecodedEvent:
    """The interpreted content of an event, shared by the ECS document and the batch API.

    Attributes:
        types: record types in order.
        syscall: the SYSCALL record's fields (raw), if any.
        syscall_name: the syscall name.
        arch: the machine name.
        args: EXECVE arguments (empty when there is no EXECVE).
        argc: EXECVE argc.
        has_execve: whether the event has EXECVE records.
        proctitle: PROCTITLE argv.
        proctitle_truncated: PROCTITLE hit the kernel limit.
        cwd: CWD path.
        paths: PATH records (decoded names).
        sockaddr: decoded SOCKADDR.
        fields: merged fields of the other records (first record wins; decoded untrusted strings).
        enriched: merged ENRICHED fields.
        warnings: decoding warnings.
    """

    types: list[str]
    syscall: dict[str, str] = field(default_factory=dict)
    syscall_name: str | None = None
    arch: str | None = None
    args: list[str] = field(default_factory=list)
    argc: int | None = None
    has_execve: bool = False
    proctitle: list[str] = field(default_factory=list)
    proctitle_truncated: bool = False
    cwd: str | None = None
    paths: list[dict[str, str]] = field(default_factory=list)
    sockaddr: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    enriched: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _decoded_fields(record: AuditRecord, warnings: list[str]) -> dict[str, str]:
    out = dict(record.fields)
    for key in _HEX_FIELDS.intersection(out):
        text, valid = decode_value(record, key)
        if text is not None:
            out[key] = text
        if not valid:
            warnings.append(f"invalid_utf8:{key}")
    return out


def interpret_event(records: Iterable[AuditRecord]) -> DecodedEvent:
    """Interpret the records of one event.

    Args:
        records: the records, in order.

    Returns:
        The decoded content.
    """
    records = list(records)
    decoded = DecodedEvent(types=[record.rtype for record in records])
    execve: list[AuditRecord] = []
    for record in records:
        rtype = record.rtype
        if record.enriched:
            for key, value in record.enriched.items():
                decoded.enriched.setdefault(key, value)
        if rtype == "SYSCALL" and not decoded.syscall:
            decoded.syscall = _decoded_fields(record, decoded.warnings)
            arch = record.fields.get("arch")
            decoded.arch = arch_name(arch)
            decoded.syscall_name = record.enriched.get("SYSCALL") or syscall_name(arch, record.fields.get("syscall"))
        elif rtype == "EXECVE":
            execve.append(record)
        elif rtype == "PROCTITLE":
            argv, truncated, valid = proctitle_argv(record)
            decoded.proctitle, decoded.proctitle_truncated = argv, truncated
            if not valid:
                decoded.warnings.append("invalid_utf8:proctitle")
        elif rtype == "CWD":
            decoded.cwd, valid = decode_value(record, "cwd")
            if not valid:
                decoded.warnings.append("invalid_utf8:cwd")
        elif rtype == "PATH":
            decoded.paths.append(_decoded_fields(record, decoded.warnings))
        elif rtype == "SOCKADDR":
            decoded.sockaddr = decode_saddr(record.fields.get("saddr"))
        else:
            for key, value in _decoded_fields(record, decoded.warnings).items():
                decoded.fields.setdefault(key, value)
    if execve:
        decoded.has_execve = True
        decoded.args, decoded.argc, warnings = execve_args(execve)
        decoded.warnings.extend(warnings)
    return decoded


# ECS categorisation ------------------------------------------------------------------------------

_SYSCALL_CATEGORY: Final[dict[str, tuple[list[str], list[str]]]] = {
    **{name: (["process"], ["start"]) for name in EXEC_SYSCALLS},
    **{name: (["process"], ["start"]) for name in FORK_SYSCALLS},
    **{name: (["process"], ["end"]) for name in EXIT_SYSCALLS},
    **{name: (["process"], ["info"]) for name in ("kill", "tkill", "tgkill", "ptrace")},
    **{name: (["network"], ["connection", "start"]) for name in ("connect", "accept", "accept4")},
    **{name: (["network"], ["info"]) for name in ("bind", "listen", "socket", "sendto", "recvfrom", "sendmsg")},
    **{name: (["file"], ["access"]) for name in ("open", "openat", "openat2", "creat", "read", "write")},
    **{name: (["file"], ["deletion"]) for name in ("unlink", "unlinkat", "rmdir")},
    **{
        name: (["file"], ["change"])
        for name in (
            "rename",
            "renameat",
            "renameat2",
            "chmod",
            "fchmod",
            "fchmodat",
            "chown",
            "fchown",
            "fchownat",
            "lchown",
            "truncate",
            "ftruncate",
        )
    },
    **{
        name: (["iam"], ["change"])
        for name in ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid")
    },
    **{name: (["file"], ["change"]) for name in ("mount", "umount2", "umount")},
    **{name: (["driver"], ["start"]) for name in ("init_module", "finit_module")},
    "delete_module": (["driver"], ["end"]),
}
_TYPE_CATEGORY: Final[dict[str, tuple[list[str], list[str]]]] = {
    "USER_AUTH": (["authentication"], ["info"]),
    "USER_ACCT": (["authentication"], ["info"]),
    "USER_LOGIN": (["authentication", "session"], ["start"]),
    "USER_LOGOUT": (["authentication", "session"], ["end"]),
    "USER_START": (["session"], ["start"]),
    "USER_END": (["session"], ["end"]),
    "CRED_ACQ": (["authentication"], ["info"]),
    "CRED_REFR": (["authentication"], ["info"]),
    "CRED_DISP": (["authentication"], ["info"]),
    "USER_CMD": (["process"], ["start"]),
    "LOGIN": (["authentication", "session"], ["start"]),
    "CONFIG_CHANGE": (["configuration"], ["change"]),
    "NETFILTER_CFG": (["configuration"], ["change"]),
    "SERVICE_START": (["process"], ["start"]),
    "SERVICE_STOP": (["process"], ["end"]),
    "DAEMON_START": (["process"], ["start"]),
    "DAEMON_END": (["process"], ["end"]),
    "ADD_USER": (["iam"], ["user", "creation"]),
    "DEL_USER": (["iam"], ["user", "deletion"]),
    "ADD_GROUP": (["iam"], ["group", "creation"]),
    "DEL_GROUP": (["iam"], ["group", "deletion"]),
    "USER_MGMT": (["iam"], ["change"]),
    "USER_CHAUTHTOK": (["iam"], ["change"]),
}
_SUCCESS: Final = frozenset({"yes", "success", "1"})
_FAILURE: Final = frozenset({"no", "failed", "failure", "0"})
_SOURCE_SYSCALLS: Final = frozenset({"accept", "accept4", "recvfrom", "recvmsg", "bind", "listen"})


def _int(value: str | None) -> int | None:
    value = unset(value)
    if value is None:
        return None
    text = value[1:] if value[:1] == "-" else value
    if not text.isdecimal() or len(text) > 19:
        return None
    return int(value)


def _id(value: str | None) -> str | None:
    value = unset(value)
    if value == "-1":
        return None
    return value


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _ip(value: str | None) -> str | None:
    value = unset(value)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _outcome(value: str | None) -> str:
    if value in _SUCCESS:
        return "success"
    if value in _FAILURE:
        return "failure"
    return "unknown"


def _message(decoded: DecodedEvent, action: str, process: Mapping[str, Any]) -> str:
    if decoded.has_execve and process.get("command_line"):
        return f"execve: {process['command_line']}"
    op = decoded.fields.get("op")
    acct = decoded.fields.get("acct")
    parts = [action]
    if op:
        parts.append(op)
    if acct:
        parts.append(f"acct={acct}")
    cmd = decoded.fields.get("cmd")
    if cmd:
        parts.append(f"cmd={cmd}")
    exe = process.get("executable")
    if exe:
        parts.append(f"exe={exe}")
    res = decoded.fields.get("res") or decoded.syscall.get("success")
    if res:
        parts.append(f"res={res}")
    return " ".join(parts)


def _build(
    *,
    node: str | None,
    time: str,
    serial: int,
    epoch: float,
    event_id: str,
    records: Iterable[AuditRecord],
    partial: bool,
    default_host: str,
) -> dict[str, Any]:
    decoded = interpret_event(records)
    sc = decoded.syscall
    other = decoded.fields
    action = decoded.syscall_name or (decoded.types[0].lower() if decoded.types else "unknown")
    if decoded.syscall_name is None and sc.get("syscall"):
        action = f"syscall_{sc['syscall']}"
    if decoded.syscall_name is not None:
        category, etype = _SYSCALL_CATEGORY.get(decoded.syscall_name, (["host"], ["info"]))
        outcome = _outcome(sc.get("success"))
    else:
        first = decoded.types[0] if decoded.types else ""
        category, etype = _TYPE_CATEGORY.get(first, (["host"], ["info"]))
        outcome = _outcome(other.get("res") or other.get("success"))

    def pick(key: str) -> str | None:
        value = sc.get(key)
        if value is None:
            value = other.get(key)
        return value

    process: dict[str, Any] = {}
    _put(process, "pid", _int(pick("pid")))
    _put(process, "ppid", _int(pick("ppid")))
    exe = unset(pick("exe"))
    _put(process, "executable", exe)
    comm = unset(pick("comm"))
    name = comm or (os.path.basename(exe) if exe else None)
    _put(process, "name", name)
    if decoded.has_execve:
        process["args"] = decoded.args
        process["args_count"] = decoded.argc if decoded.argc is not None else len(decoded.args)
        process["command_line"] = " ".join(decoded.args)
    if decoded.proctitle:
        process["title"] = " ".join(decoded.proctitle)
    _put(process, "working_directory", unset(decoded.cwd) or unset(other.get("cwd")))

    enriched = decoded.enriched
    user: dict[str, Any] = {}
    _put(user, "id", _id(pick("uid")))
    user_name = unset(enriched.get("UID"))
    acct = unset(other.get("acct"))
    _put(user, "name", user_name or acct)
    audit: dict[str, Any] = {}
    _put(audit, "id", _id(pick("auid")))
    _put(audit, "name", unset(enriched.get("AUID")))
    if audit:
        user["audit"] = audit
    effective: dict[str, Any] = {}
    _put(effective, "id", _id(pick("euid")))
    _put(effective, "name", unset(enriched.get("EUID")))
    if effective:
        user["effective"] = effective
    group: dict[str, Any] = {}
    _put(group, "id", _id(pick("gid")))
    _put(group, "name", unset(enriched.get("GID")))
    if group:
        user["group"] = group

    data: dict[str, Any] = {}
    for key, value in other.items():
        if key not in ("pid", "ppid", "exe", "comm", "uid", "auid", "euid", "gid", "cwd", "ses", "msg"):
            data[key] = value
    for key, value in sc.items():
        if key not in ("pid", "ppid", "exe", "comm", "uid", "auid", "euid", "gid", "ses", "syscall", "arch"):
            data[key] = value
    if sc:
        _put(data, "syscall", decoded.syscall_name or sc.get("syscall"))
        _put(data, "arch", decoded.arch)
        if "comm" in sc:
            data["comm"] = sc["comm"]
        if "tty" in sc:
            data["tty"] = sc["tty"]
    if decoded.has_execve:
        data["argc"] = decoded.argc
    if decoded.proctitle:
        data["proctitle_argv"] = decoded.proctitle
        data["proctitle_truncated"] = decoded.proctitle_truncated

    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "@timestamp": iso_timestamp(epoch),
        "event": {
            "id": event_id,
            "kind": "event",
            "module": "auditd",
            "dataset": "auditd.log",
            "category": category,
            "type": etype,
            "action": action,
            "outcome": outcome,
            "sequence": serial,
        },
        "host": {"name": node or default_host},
    }
    if process:
        doc["process"] = process
    if user:
        doc["user"] = user

    related_ips: list[str] = []
    saddr = decoded.sockaddr
    if saddr is not None:
        data["socket"] = saddr
        if saddr.get("family") == "unix":
            doc["file"] = {"path": saddr["path"]}
        elif "ip" in saddr:
            side = "source" if decoded.syscall_name in _SOURCE_SYSCALLS else "destination"
            doc[side] = {"ip": saddr["ip"], "port": saddr["port"], "address": saddr["ip"]}
            related_ips.append(saddr["ip"])
    addr = _ip(other.get("addr"))
    if addr is not None:
        doc["source"] = {"ip": addr, "address": addr}
        related_ips.append(addr)
    hostname = unset(other.get("hostname"))
    if hostname is not None and "source" in doc and hostname != addr:
        doc["source"]["domain"] = hostname
    if decoded.paths and "file" not in doc:
        path = unset(decoded.paths[0].get("name"))
        if path is not None:
            doc["file"] = {"path": path}

    auditd: dict[str, Any] = {
        "sequence": serial,
        "session": _id(pick("ses")),
        "message_types": decoded.types,
        "data": data,
        "partial": partial,
    }
    if decoded.paths:
        auditd["paths"] = decoded.paths
    if decoded.warnings:
        auditd["warnings"] = sorted(set(decoded.warnings))
    doc["auditd"] = auditd

    audit_key = unset(sc.get("key") or other.get("key"))
    if audit_key is not None:
        doc["tags"] = [part for part in audit_key.split("\x01") if part]
    related_users = sorted({v for v in (user_name, acct, audit.get("name"), effective.get("name")) if v})
    related: dict[str, list[str]] = {}
    if related_users:
        related["user"] = related_users
    if related_ips:
        related["ip"] = sorted(set(related_ips))
    if related:
        doc["related"] = related
    doc["message"] = _message(decoded, action, process)
    return doc


def decode_event(event: AuditEvent, *, default_host: str = "unknown") -> dict[str, Any]:
    """Build the ECS document of a coalesced event.

    Args:
        event: the event.
        default_host: host name used when the records carry no ``node=``.

    Returns:
        The document (see the ECS contract).
    """
    return _build(
        node=event.node,
        time=event.time,
        serial=event.serial,
        epoch=event.epoch,
        event_id=event.event_id,
        records=event.records,
        partial=event.partial,
        default_host=default_host,
    )


def decode_late(late: LateRecord, *, default_host: str = "unknown") -> dict[str, Any]:
    """Build a small document for a record that arrived after its event was emitted.

    Args:
        late: the late record.
        default_host: host name used when the record carries no ``node=``.

    Returns:
        A document with ``auditd.late_of`` = the event id and ``event.id`` =
        ``stable_id("auditd-late", node, time, serial, raw)``.
    """
    record = late.record
    doc = _build(
        node=record.node,
        time=record.time,
        serial=record.serial,
        epoch=record.epoch,
        event_id=stable_id("auditd-late", record.node or "", record.time, record.serial, record.raw),
        records=(record,),
        partial=True,
        default_host=default_host,
    )
    doc["auditd"]["late_of"] = late.event_id
    return doc
