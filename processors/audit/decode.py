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

Documents are made by the compiled ``EventDecoder`` (``processors/audit/native-rs``, Rust) from the tables
and helpers of this module. It declines an event whose hex values are not UTF-8, whose text holds lone
surrogates, or whose numbers or record types are not ASCII; :func:`_build` here defines the document and
makes those.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from secstream_audit_native import EventDecoder

from processors.audit.coalesce import AuditEvent, LateRecord
from processors.audit.parse import AuditRecord
from processors.audit.syscalls import ARCH_NAMES, SYSCALL_TABLES, arch_name, syscall_name
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
_hex_fullmatch = _HEX_RE.fullmatch
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
        quoted = record.quoted
        for key, value in record.fields.items():
            if key[:1] != "a":
                continue
            number = key[1:]
            piece: str | None = None
            if not (number.isdecimal() and number.isascii() and len(number) <= 9):
                if key == "argc":
                    if argc is None and value.isdecimal() and len(value) < 9:
                        argc = int(value)
                    continue
                match = _ARG_RE.fullmatch(key)
                if match is None:
                    continue
                number, piece = match.groups()
            if key in quoted or _hex_fullmatch(value) is None:
                text = value
            else:
                text, valid = _bytes_to_text(bytes.fromhex(value))
                if not valid:
                    warnings.append(f"invalid_utf8:{key}")
            if piece is None:
                whole[int(number)] = text
            else:
                pieces.setdefault(int(number), {})[int(piece)] = text
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
    """Copy a record's fields with its unquoted untrusted strings hex-decoded."""
    fields = record.fields
    out = dict(fields)
    hex_keys = _HEX_FIELDS.intersection(fields)
    if hex_keys:
        quoted = record.quoted
        for key in hex_keys:
            if key in quoted:
                continue
            value = fields[key]
            if _hex_fullmatch(value) is None:
                continue
            text, valid = _bytes_to_text(bytes.fromhex(value))
            out[key] = text
            if not valid:
                warnings.append(f"invalid_utf8:{key}")
    return out


_Scan = tuple[
    list[str],  # types
    dict[str, str],  # syscall fields
    str | None,  # syscall name
    str | None,  # arch
    list[str],  # args
    int | None,  # argc
    bool,  # has_execve
    list[str],  # proctitle
    bool,  # proctitle truncated
    str | None,  # cwd
    list[dict[str, str]],  # paths
    dict[str, Any] | None,  # sockaddr
    dict[str, str],  # other fields
    dict[str, str],  # enriched
    list[str],  # warnings
]


def _scan(records: Iterable[AuditRecord]) -> _Scan:
    """One pass over the records of an event (the content of :class:`DecodedEvent`, as a tuple)."""
    types: list[str] = []
    syscall: dict[str, str] = {}
    sc_name: str | None = None
    arch: str | None = None
    execve: list[AuditRecord] | None = None
    proctitle: list[str] = []
    truncated = False
    cwd: str | None = None
    paths: list[dict[str, str]] = []
    sockaddr: dict[str, Any] | None = None
    other: dict[str, str] = {}
    enriched: dict[str, str] = {}
    warnings: list[str] = []
    for record in records:
        rtype = record.rtype
        types.append(rtype)
        record_enriched = record.enriched
        if record_enriched:
            if enriched:
                for key, value in record_enriched.items():
                    enriched.setdefault(key, value)
            else:
                enriched = dict(record_enriched)
        if rtype == "SYSCALL" and not syscall:
            syscall = _decoded_fields(record, warnings)
            fields = record.fields
            raw_arch = fields.get("arch")
            arch = arch_name(raw_arch)
            sc_name = record_enriched.get("SYSCALL") or syscall_name(raw_arch, fields.get("syscall"))
        elif rtype == "EXECVE":
            if execve is None:
                execve = [record]
            else:
                execve.append(record)
        elif rtype == "PROCTITLE":
            proctitle, truncated, valid = proctitle_argv(record)
            if not valid:
                warnings.append("invalid_utf8:proctitle")
        elif rtype == "CWD":
            cwd, valid = decode_value(record, "cwd")
            if not valid:
                warnings.append("invalid_utf8:cwd")
        elif rtype == "PATH":
            paths.append(_decoded_fields(record, warnings))
        elif rtype == "SOCKADDR":
            sockaddr = decode_saddr(record.fields.get("saddr"))
        elif other:
            for key, value in _decoded_fields(record, warnings).items():
                other.setdefault(key, value)
        else:
            other = _decoded_fields(record, warnings)
    args: list[str] = []
    argc: int | None = None
    if execve is not None:
        args, argc, execve_warnings = execve_args(execve)
        warnings.extend(execve_warnings)
    return (
        types,
        syscall,
        sc_name,
        arch,
        args,
        argc,
        execve is not None,
        proctitle,
        truncated,
        cwd,
        paths,
        sockaddr,
        other,
        enriched,
        warnings,
    )


def interpret_event(records: Iterable[AuditRecord]) -> DecodedEvent:
    """Interpret the records of one event.

    Args:
        records: the records, in order.

    Returns:
        The decoded content.
    """
    (types, syscall, sc_name, arch, args, argc, has_execve, proctitle, truncated, cwd, paths, sockaddr, other,
     enriched, warnings) = _scan(records)  # fmt: skip
    return DecodedEvent(
        types=types,
        syscall=syscall,
        syscall_name=sc_name,
        arch=arch,
        args=args,
        argc=argc,
        has_execve=has_execve,
        proctitle=proctitle,
        proctitle_truncated=truncated,
        cwd=cwd,
        paths=paths,
        sockaddr=sockaddr,
        fields=other,
        enriched=enriched,
        warnings=warnings,
    )


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
_SOURCE_SYSCALLS: Final = frozenset({"accept", "accept4", "recvfrom", "recvmsg", "bind", "listen"})


def _int(value: str | None) -> int | None:
    if value is None or value in _UNSET:
        return None
    text = value[1:] if value[:1] == "-" else value
    if not text.isdecimal() or len(text) > 19:
        return None
    return int(value)


def _set_value(value: str | None) -> str | None:
    """``value``, or None when it is missing or one of auditd's "unset" spellings."""
    return None if value in _UNSET else value


def _id(value: str | None) -> str | None:
    if value in _UNSET or value == "-1":
        return None
    return value


def _id_and_name(ident: str | None, name: str | None) -> dict[str, Any]:
    """``{"id": ..., "name": ...}`` with the keys that are set (at least one is)."""
    if name is None:
        return {"id": ident}
    if ident is None:
        return {"name": name}
    return {"id": ident, "name": name}


_IP_CACHE: dict[str, str | None] = {}


def _ip(value: str | None) -> str | None:
    """The normalised text of an IP address field, None when unset or not an address (memoised)."""
    if value is None or value in _UNSET:
        return None
    known = _IP_CACHE.get(value, _IP_CACHE)
    if known is not _IP_CACHE:
        return known  # type: ignore[return-value]  # the sentinel is excluded above
    try:
        text: str | None = str(ipaddress.ip_address(value))
    except ValueError:
        text = None
    if len(_IP_CACHE) >= 4096:
        _IP_CACHE.clear()
    _IP_CACHE[value] = text
    return text


def _outcome(value: str | None) -> str:
    return _OUTCOMES.get(value, "unknown")


_OUTCOMES: Final[dict[str | None, str]] = {
    **dict.fromkeys(("yes", "success", "1"), "success"),
    **dict.fromkeys(("no", "failed", "failure", "0"), "failure"),
}
#: Fields that ``process``/``user``/``auditd.session`` carry, hence left out of ``auditd.data``.
_OTHER_SKIP: Final = ("pid", "ppid", "exe", "comm", "uid", "auid", "euid", "gid", "cwd", "ses", "msg")
_SYSCALL_SKIP: Final = frozenset({"pid", "ppid", "exe", "comm", "uid", "auid", "euid", "gid", "ses", "syscall", "arch"})


def _message(
    has_execve: bool, other: Mapping[str, str], syscall: Mapping[str, str], action: str, process: Mapping[str, Any]
) -> str:
    if has_execve:
        command_line = process.get("command_line")
        if command_line:
            return f"execve: {command_line}"
    parts = [action]
    if other:
        op = other.get("op")
        if op:
            parts.append(op)
        acct = other.get("acct")
        if acct:
            parts.append(f"acct={acct}")
        cmd = other.get("cmd")
        if cmd:
            parts.append(f"cmd={cmd}")
    exe = process.get("executable")
    if exe:
        parts.append(f"exe={exe}")
    res = other.get("res") or syscall.get("success")
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
    del time  # the event key's text; the document uses ``epoch``
    (types, sc, sc_name, arch, args, argc, has_execve, proctitle, truncated, cwd, paths, saddr, other, enriched,
     warnings) = _scan(records)  # fmt: skip
    if sc_name is not None:
        action = sc_name
        category, etype = _SYSCALL_CATEGORY.get(sc_name) or (["host"], ["info"])
        outcome = _OUTCOMES.get(sc.get("success"), "unknown")
    else:
        first = types[0] if types else ""
        number = sc.get("syscall") if sc else None
        action = f"syscall_{number}" if number else (first.lower() if types else "unknown")
        category, etype = _TYPE_CATEGORY.get(first) or (["host"], ["info"])
        outcome = _OUTCOMES.get(other.get("res") or other.get("success"), "unknown")

    pick: Callable[[str], str | None]
    if not other:
        pick = sc.get
    elif not sc:
        pick = other.get
    else:

        def pick(key: str) -> str | None:
            value = sc.get(key)
            return other.get(key) if value is None else value

    process: dict[str, Any] = {}
    pid = _int(pick("pid"))
    if pid is not None:
        process["pid"] = pid
    ppid = _int(pick("ppid"))
    if ppid is not None:
        process["ppid"] = ppid
    exe = pick("exe")
    if exe in _UNSET:
        exe = None
    if exe is not None:
        process["executable"] = exe
    name = pick("comm")
    if name in _UNSET or name is None:
        name = exe[exe.rfind("/") + 1 :] if exe else None
    if name is not None:
        process["name"] = name
    if has_execve:
        process["args"] = args
        # A claimed argc above the arguments present is flagged (argc_mismatch), never reported as the count.
        process["args_count"] = min(argc, len(args)) if argc is not None else len(args)
        process["command_line"] = " ".join(args)
    if proctitle:
        process["title"] = " ".join(proctitle)
    if cwd in _UNSET or cwd is None:
        cwd = other.get("cwd") if other else None
        if cwd in _UNSET:
            cwd = None
    if cwd is not None:
        process["working_directory"] = cwd

    # user.*: ids from the records, names from the ENRICHED fields (and acct); sub-documents only when set
    user_name = audit_name = effective_name = group_name = None
    if enriched:
        user_name = _set_value(enriched.get("UID"))
        audit_name = _set_value(enriched.get("AUID"))
        effective_name = _set_value(enriched.get("EUID"))
        group_name = _set_value(enriched.get("GID"))
    acct = other.get("acct") if other else None
    if acct in _UNSET:
        acct = None
    user: dict[str, Any] = {}
    value = _id(pick("uid"))
    if value is not None:
        user["id"] = value
    if user_name or acct is not None:
        user["name"] = user_name or acct
    value = _id(pick("auid"))
    if value is not None or audit_name is not None:
        user["audit"] = _id_and_name(value, audit_name)
    value = _id(pick("euid"))
    if value is not None or effective_name is not None:
        user["effective"] = _id_and_name(value, effective_name)
    value = _id(pick("gid"))
    if value is not None or group_name is not None:
        user["group"] = _id_and_name(value, group_name)

    # auditd.data: the other records' fields, then the SYSCALL record's, without what process/user carry
    if other:
        data: dict[str, Any] = dict(other)
        for key in _OTHER_SKIP:
            data.pop(key, None)
        if sc:
            for key, value in sc.items():
                if key not in _SYSCALL_SKIP:
                    data[key] = value
    elif sc:
        data = dict(sc)
        for key in _SYSCALL_SKIP:
            data.pop(key, None)
    else:
        data = {}
    if sc:
        syscall_value = sc_name or sc.get("syscall")
        if syscall_value is not None:
            data["syscall"] = syscall_value
        if arch is not None:
            data["arch"] = arch
        if "comm" in sc:
            data["comm"] = sc["comm"]
        if "tty" in sc:
            data["tty"] = sc["tty"]
    if has_execve:
        data["argc"] = argc
    if proctitle:
        data["proctitle_argv"] = proctitle
        data["proctitle_truncated"] = truncated

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
    if saddr is not None:
        data["socket"] = saddr
        if saddr.get("family") == "unix":
            doc["file"] = {"path": saddr["path"]}
        elif "ip" in saddr:
            side = "source" if sc_name in _SOURCE_SYSCALLS else "destination"
            doc[side] = {"ip": saddr["ip"], "port": saddr["port"], "address": saddr["ip"]}
            related_ips.append(saddr["ip"])
    if other:
        addr = _ip(other.get("addr"))
        if addr is not None:
            doc["source"] = {"ip": addr, "address": addr}
            related_ips.append(addr)
        hostname = other.get("hostname")
        if hostname is not None and hostname not in _UNSET and "source" in doc and hostname != addr:
            doc["source"]["domain"] = hostname
    if paths and "file" not in doc:
        path = paths[0].get("name")
        if path is not None and path not in _UNSET:
            doc["file"] = {"path": path}

    auditd: dict[str, Any] = {
        "sequence": serial,
        "session": _id(pick("ses")),
        "message_types": types,
        "data": data,
        "partial": partial,
    }
    if paths:
        auditd["paths"] = paths
    if warnings:
        auditd["warnings"] = sorted(set(warnings))
    doc["auditd"] = auditd

    audit_key = sc.get("key") if sc else None
    if not audit_key and other:
        audit_key = other.get("key")
    if audit_key is not None and audit_key not in _UNSET:
        doc["tags"] = [part for part in audit_key.split("\x01") if part]
    related_users = [who for who in (user_name, acct, audit_name, effective_name) if who]
    if related_users:
        doc["related"] = {"user": related_users if len(related_users) == 1 else sorted(set(related_users))}
    if related_ips:
        doc.setdefault("related", {})["ip"] = sorted(set(related_ips))
    doc["message"] = _message(has_execve, other, sc, action, process)
    return doc


_NATIVE: Final = EventDecoder(
    unset=_UNSET,
    hex_fields=_HEX_FIELDS,
    arch_names=ARCH_NAMES,
    tables=SYSCALL_TABLES,
    syscall_category=_SYSCALL_CATEGORY,
    type_category=_TYPE_CATEGORY,
    source_syscalls=_SOURCE_SYSCALLS,
    outcomes=_OUTCOMES,
    other_skip=list(_OTHER_SKIP),
    syscall_skip=_SYSCALL_SKIP,
    schema_version=SCHEMA_VERSION,
    iso_timestamp=iso_timestamp,
    decode_saddr=decode_saddr,
    ip=_ip,
    max_arg_gap=_MAX_ARG_GAP,
    proctitle_limit=PROCTITLE_LIMIT,
)


def _document(
    *,
    node: str | None,
    time: str,
    serial: int,
    epoch: float,
    event_id: str,
    records: tuple[AuditRecord, ...],
    partial: bool,
    default_host: str,
) -> dict[str, Any]:
    """The compiled decoder's document, or the reference's for an event the decoder declines."""
    doc: dict[str, Any] | None = _NATIVE.build(node, serial, epoch, event_id, records, partial, default_host)
    if doc is not None:
        return doc
    return _build(
        node=node,
        time=time,
        serial=serial,
        epoch=epoch,
        event_id=event_id,
        records=records,
        partial=partial,
        default_host=default_host,
    )


def decode_event(event: AuditEvent, *, default_host: str = "unknown") -> dict[str, Any]:
    """Build the ECS document of a coalesced event.

    Args:
        event: the event.
        default_host: host name used when the records carry no ``node=``.

    Returns:
        The document (see the ECS contract).
    """
    return _document(
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
    doc = _document(
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
