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
#: What the ENRICHED fields and PAM write where no name is known: never a user or group name.
_NO_NAME: Final = _UNSET | {"unset"}
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
                    if argc is None and value.isascii() and value.isdecimal() and len(value) < 9:
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
    """Decode a SOCKADDR ``saddr`` hex value (struct sockaddr, family in host byte order, either endianness).

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
    if family > 0xFF and data[0] == 0:
        # Big-endian hosts (ppc64, s390x) write the family in their byte order; families are below 256.
        family = data[1]
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
            item = _decoded_fields(record, warnings)
            if item.get("name") in _UNSET:
                item.pop("name", None)  # name=(null): the kernel had no name for the item
            paths.append(item)
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
# ECS 8.x allowed values only (event.category with the event.type values ECS expects for it); the tables
# are documented in docs/auditd-mapping.md, which a test keeps equal to them.

_Category = tuple[list[str], list[str]]


def _each(category: _Category, names: str) -> dict[str, _Category]:
    """``category`` for each of the space-separated ``names``."""
    return dict.fromkeys(names.split(), category)


_DEFAULT_CATEGORY: Final[_Category] = (["host"], ["info"])
#: System call name → (event.category, event.type), by class.
_SYSCALL_CATEGORY: Final[dict[str, _Category]] = {
    **_each((["process"], ["start"]), "execve execveat vfork fork clone clone3"),
    **_each((["process"], ["end"]), "exit_group exit"),
    **_each((["process"], ["info"]), "kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo"),
    **_each((["process"], ["access"]), "ptrace process_vm_readv process_vm_writev pidfd_getfd"),
    **_each((["network"], ["connection", "start"]), "connect accept accept4"),
    **_each((["network"], ["start"]), "listen"),
    **_each(
        (["network"], ["info"]),
        "bind socket socketpair sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg setsockopt shutdown "
        "socketcall getsockname getpeername getsockopt",
    ),
    **_each(
        (["file"], ["access"]),
        "open openat openat2 read write pread64 pwrite64 readv writev access faccessat faccessat2 stat lstat "
        "fstat newfstatat statx readlink readlinkat getxattr lgetxattr fgetxattr listxattr open_by_handle_at "
        "name_to_handle_at mmap mmap2 sendfile splice copy_file_range",
    ),
    **_each((["file"], ["creation"]), "creat mkdir mkdirat mknod mknodat link linkat symlink symlinkat memfd_create"),
    **_each((["file"], ["deletion"]), "unlink unlinkat rmdir"),
    **_each(
        (["file"], ["change"]),
        "rename renameat renameat2 chmod fchmod fchmodat fchmodat2 chown fchown fchownat lchown chown32 "
        "fchown32 lchown32 truncate ftruncate truncate64 ftruncate64 setxattr lsetxattr fsetxattr removexattr "
        "lremovexattr fremovexattr utime utimes utimensat futimesat fallocate mount umount umount2 fsmount "
        "move_mount mount_setattr pivot_root chroot swapon swapoff",
    ),
    **_each(
        (["iam"], ["change"]),
        "setuid setgid setreuid setregid setresuid setresgid setfsuid setfsgid setuid32 setgid32 setreuid32 "
        "setregid32 setresuid32 setresgid32 setfsuid32 setfsgid32 setgroups setgroups32 capset",
    ),
    **_each(
        (["host"], ["change"]),
        "adjtimex clock_adjtime clock_adjtime64 settimeofday clock_settime clock_settime64 stime sethostname "
        "setdomainname reboot kexec_load kexec_file_load syslog setrlimit prlimit64 unshare setns",
    ),
    **_each((["driver"], ["start"]), "init_module finit_module"),
    **_each((["driver"], ["end"]), "delete_module"),
    **_each((["configuration"], ["change"]), "bpf seccomp personality"),
}
#: Record types with a categorisation of their own; a syscall's auxiliary records (PATH, CWD, EXECVE,
#: PROCTITLE, SOCKADDR, ...) are not here: their event is categorised by its system call.
_TYPE_CATEGORY: Final[dict[str, _Category]] = {
    **_each((["authentication"], ["start"]), "CRYPTO_LOGIN LOGIN USER_LOGIN"),
    **_each((["authentication"], ["end"]), "CRYPTO_LOGOUT USER_LOGOUT"),
    **_each(
        (["authentication"], ["info"]),
        "ANOM_LOGIN_ACCT ANOM_LOGIN_FAILURES ANOM_LOGIN_LOCATION ANOM_LOGIN_ROOT ANOM_LOGIN_SERVICE "
        "ANOM_LOGIN_SESSIONS ANOM_LOGIN_TIME ANOM_ORIGIN_FAILURES CRED_ACQ CRED_DISP CRED_REFR GRP_AUTH "
        "USER_ACCT USER_AUTH USER_ERR",
    ),
    **_each((["session"], ["start"]), "USER_START"),
    **_each((["session"], ["end"]), "USER_END"),
    **_each((["session"], ["info"]), "ANOM_SESSION TTY USER_TTY"),
    **_each((["process"], ["start"]), "ANOM_EXEC DAEMON_START SERVICE_START SYSTEM_BOOT USER_CMD"),
    **_each((["process"], ["end"]), "ANOM_ABEND DAEMON_ABORT DAEMON_END SERVICE_STOP SYSTEM_SHUTDOWN"),
    **_each(
        (["process"], ["info"]),
        "CRYPTO_FAILURE_USER CRYPTO_IKE_SA CRYPTO_IPSEC_SA CRYPTO_KEY_USER CRYPTO_REPLAY_USER CRYPTO_SESSION "
        "CRYPTO_TEST_USER DAEMON_ACCEPT DAEMON_CLOSE DAEMON_ERR DAEMON_RESUME DAEMON_ROTATE EVENT_LISTENER "
        "KERNEL_OTHER TEST TRUSTED_APP",
    ),
    **_each((["process"], ["change"]), "ANOM_MK_EXEC SYSTEM_RUNLEVEL"),
    **_each(
        (["configuration"], ["change"]),
        "APPARMOR_STATUS BPF CONFIG_CHANGE CRYPTO_PARAM_CHANGE_USER DAEMON_CONFIG DAEMON_RECONFIG DM_CTRL "
        "FEATURE_CHANGE FS_RELABEL LABEL_LEVEL_CHANGE LABEL_OVERRIDE MAC_CALIPSO_ADD MAC_CALIPSO_DEL "
        "MAC_CIPSOV4_ADD MAC_CIPSOV4_DEL MAC_CONFIG_CHANGE MAC_IPSEC_ADDSA MAC_IPSEC_ADDSPD MAC_IPSEC_DELSA "
        "MAC_IPSEC_DELSPD MAC_MAP_ADD MAC_MAP_DEL MAC_POLICY_LOAD MAC_STATUS MAC_UNLBL_ALLOW MAC_UNLBL_STCADD "
        "MAC_UNLBL_STCDEL NETFILTER_CFG SECCOMP SOFTWARE_UPDATE USER_MAC_CONFIG_CHANGE USER_MAC_POLICY_LOAD "
        "USER_MAC_STATUS USYS_CONFIG VIRT_CONTROL VIRT_CREATE VIRT_DESTROY VIRT_MACHINE_ID VIRT_MIGRATE_IN "
        "VIRT_MIGRATE_OUT VIRT_RESOURCE",
    ),
    **_each(
        (["intrusion_detection"], ["denied"]),
        "ANOM_ACCESS_FS ANOM_AMTU_FAIL ANOM_CREAT ANOM_CRYPTO_FAIL ANOM_LINK ANOM_MAX_DAC ANOM_MAX_MAC "
        "ANOM_RBAC_FAIL ANOM_RBAC_INTEGRITY_FAIL APPARMOR_DENIED APPARMOR_KILL AVC DAC_CHECK INTEGRITY_DATA "
        "INTEGRITY_EVM_XATTR INTEGRITY_HASH INTEGRITY_METADATA INTEGRITY_PCR MAC_CHECK SELINUX_ERR USER_AVC "
        "USER_SELINUX_ERR VIRT_INTEGRITY_CHECK",
    ),
    **_each(
        (["intrusion_detection"], ["allowed"]),
        "APPARMOR_ALLOWED APPARMOR_AUDIT APPARMOR_ERROR APPARMOR_HINT INTEGRITY_POLICY_RULE INTEGRITY_RULE "
        "INTEGRITY_STATUS",
    ),
    **_each(
        (["intrusion_detection"], ["info"]),
        "ANOM_ROOT_TRANS RESP_ACCT_LOCK RESP_ACCT_LOCK_TIMED RESP_ACCT_REMOTE RESP_ACCT_UNLOCK_TIMED "
        "RESP_ALERT RESP_ANOMALY RESP_EXEC RESP_HALT RESP_KILL_PROC RESP_ORIGIN_BLOCK RESP_ORIGIN_BLOCK_TIMED "
        "RESP_ORIGIN_UNBLOCK_TIMED RESP_SEBOOL RESP_SINGLE RESP_TERM_ACCESS RESP_TERM_LOCK",
    ),
    **_each((["host"], ["change"]), "ANOM_PROMISCUOUS DM_EVENT TIME_ADJNTPVAL TIME_INJOFFSET"),
    **_each((["host"], ["info"]), "DEV_ALLOC DEV_DEALLOC USER_DEVICE USER_LABELED_EXPORT USER_UNLABELED_EXPORT"),
    **_each((["iam"], ["user", "creation"]), "ADD_USER ANOM_ADD_ACCT"),
    **_each((["iam"], ["user", "deletion"]), "ANOM_DEL_ACCT DEL_USER"),
    **_each((["iam"], ["group", "creation"]), "ADD_GROUP"),
    **_each((["iam"], ["group", "deletion"]), "DEL_GROUP"),
    **_each((["iam"], ["group", "change"]), "CHGRP_ID GRP_CHAUTHTOK GRP_MGMT"),
    **_each(
        (["iam"], ["user", "change"]),
        "ACCT_LOCK ACCT_UNLOCK ANOM_MOD_ACCT CHUSER_ID ROLE_ASSIGN ROLE_MODIFY ROLE_REMOVE USER_CHAUTHTOK "
        "USER_MGMT USER_ROLE_CHANGE",
    ),
}
#: Record types about an account other than the writer's: their ``acct=``/``id=`` is ``user.target``.
_ACCOUNT_MANAGEMENT: Final = frozenset(
    rtype for rtype, (category, _) in _TYPE_CATEGORY.items() if category == ["iam"] and rtype != "USER_ROLE_CHANGE"
)
#: PATH nametypes of the file a system call acted on (see :func:`acted_on`).
_ACTED_ON: Final = frozenset({"DELETE", "CREATE", "NORMAL"})
_SOURCE_SYSCALLS: Final = frozenset({"accept", "accept4", "recvfrom", "recvmsg", "bind", "listen"})


#: The range of the integers a document holds (JSON writers and consumers read them as signed 64-bit).
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _int(value: str | None) -> int | None:
    """A field as an int: None when unset, not ASCII decimal (``int()`` would read ``٣``) or past 64 bits."""
    if value is None or value in _UNSET:
        return None
    text = value[1:] if value[:1] == "-" else value
    if not (text.isascii() and text.isdecimal()) or len(text) > 19:
        return None
    number = int(value)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _id(value: str | None) -> str | None:
    if value in _UNSET or value == "-1":
        return None
    return value


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
    # RHEL 5's PAM messages end ``... terminal=cron res=success)'``
    **dict.fromkeys(("yes", "success", "1", "success)"), "success"),
    **dict.fromkeys(("no", "failed", "failure", "0", "failed)"), "failure"),
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


_Picker = Callable[[str], str | None]


def _picker(sc: Mapping[str, str], other: Mapping[str, str]) -> _Picker:
    """A field of the SYSCALL record, else of the other records."""
    if not other:
        return sc.get
    if not sc:
        return other.get

    def pick(key: str) -> str | None:
        value = sc.get(key)
        return other.get(key) if value is None else value

    return pick


def _primary_type(types: list[str]) -> str | None:
    """The first record type that categorises the event on its own (not a syscall's auxiliary record)."""
    for rtype in types:
        if rtype in _TYPE_CATEGORY:
            return rtype
    return None


def _classify(
    types: list[str], sc: Mapping[str, str], sc_name: str | None, other: Mapping[str, str]
) -> tuple[str, list[str], list[str], str]:
    """``event.action``, ``event.category``, ``event.type`` and ``event.outcome`` of an event.

    A record type with a categorisation of its own (LOGIN, NETFILTER_CFG, ...) decides, also when the
    kernel wrote it inside a system call; else the system call does; else the first record type.
    """
    res = other.get("res") or other.get("success") or sc.get("success")
    primary = _primary_type(types)
    if primary is not None:
        category, etype = _TYPE_CATEGORY[primary]
        return primary.lower(), category, etype, _OUTCOMES.get(res, "unknown")
    if sc_name is not None:
        category, etype = _SYSCALL_CATEGORY.get(sc_name) or _DEFAULT_CATEGORY
        return sc_name, category, etype, _OUTCOMES.get(sc.get("success"), "unknown")
    number = sc.get("syscall") if sc else None
    action = f"syscall_{number}" if number else (types[0].lower() if types else "unknown")
    category, etype = _DEFAULT_CATEGORY
    return action, category, etype, _OUTCOMES.get(res, "unknown")


def _process_section(pick: _Picker, scan: _Scan, other: Mapping[str, str]) -> dict[str, Any]:
    """``process.*``: ids, executable, name, arguments, title and working directory."""
    (_, _, _, _, args, argc, has_execve, proctitle, _, cwd, _, _, _, _, _) = scan
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
    return process


def _name(value: str | None) -> str | None:
    """A user or group name, None for auditd's placeholders (``unset``, ``(none)``, ``?``, ``unknown(N)``)."""
    if value is None or value in _NO_NAME or value.startswith("unknown("):
        return None
    return value


def _user_section(
    pick: _Picker, types: list[str], other: Mapping[str, str], enriched: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """``user.*`` (each id with that id's own name) and the names for ``related.user``.

    uid → ``user``, auid → ``user.audit``, euid → ``user.effective``, gid → ``user.group``, names from the
    ENRICHED fields. The account a user-space record is about (PAM's ``acct=``, or ``id=``) goes where
    Auditbeat puts it: ``user.target`` for account management, else ``user.effective`` (in place of euid).
    """
    acct = _name(other.get("acct")) if other else None
    acct_id = _id(other.get("id")) if other else None
    if acct_id is not None and _int(acct_id) is None:
        acct_id = None
    user: dict[str, Any] = {}
    names: list[str] = []
    pairs = [("", "uid", "UID"), ("audit", "auid", "AUID"), ("effective", "euid", "EUID"), ("group", "gid", "GID")]
    for key, id_field, name_field in pairs:
        ident = _id(pick(id_field))
        name = _name(enriched.get(name_field)) if enriched else None
        if key == "effective" and (acct is not None or acct_id is not None) and not _is_target(types):
            ident, name = acct_id, acct
        if name is not None and key != "group":
            names.append(name)
        if ident is None and name is None:
            continue
        if key:
            user[key] = _id_and_name(ident, name)
        else:
            user.update(_id_and_name(ident, name))
    if (acct is not None or acct_id is not None) and _is_target(types):
        user["target"] = _id_and_name(acct_id, acct)
    if acct is not None:
        names.append(acct)
    return user, names


def _is_target(types: list[str]) -> bool:
    return any(rtype in _ACCOUNT_MANAGEMENT for rtype in types)


def _id_and_name(ident: str | None, name: str | None) -> dict[str, Any]:
    """``{"id": ..., "name": ...}`` with the keys that are set (at least one is)."""
    if name is None:
        return {"id": ident}
    if ident is None:
        return {"name": name}
    return {"id": ident, "name": name}


def _data_section(scan: _Scan, sc: Mapping[str, str], other: Mapping[str, str]) -> dict[str, Any]:
    """``auditd.data``: the other records' fields, then the SYSCALL record's, without what process/user carry."""
    (_, _, sc_name, arch, _, argc, has_execve, proctitle, truncated, _, _, _, _, _, _) = scan
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
    return data


def acted_on(paths: list[dict[str, str]]) -> dict[str, str] | None:
    """The PATH item of the file a system call acted on: the first named item whose ``nametype`` (``objtype``
    on older kernels) is DELETE, CREATE or NORMAL, else the first named item that is not a PARENT, else the
    first named item (unlink's item 0 is the directory; the file is the DELETE item).

    Args:
        paths: the decoded PATH items, in order.

    Returns:
        The item, or None when no item has a name.
    """
    named = [item for item in paths if item.get("name") is not None]
    for item in named:
        if (item.get("nametype") or item.get("objtype")) in _ACTED_ON:
            return item
    for item in named:
        if (item.get("nametype") or item.get("objtype")) != "PARENT":
            return item
    return named[0] if named else None


def _endpoints(doc: dict[str, Any], data: dict[str, Any], scan: _Scan, other: Mapping[str, str]) -> list[str]:
    """``source``/``destination``/``file`` from SOCKADDR, ``addr=`` and PATH; returns the related IPs."""
    (_, _, sc_name, _, _, _, _, _, _, _, paths, saddr, _, _, _) = scan
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
        item = acted_on(paths)
        if item is not None:
            doc["file"] = {"path": item["name"]}
    return related_ips


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
    scan = _scan(records)
    (types, sc, sc_name, _, _, _, has_execve, _, _, _, paths, _, other, enriched, warnings) = scan
    action, category, etype, outcome = _classify(types, sc, sc_name, other)
    pick = _picker(sc, other)
    process = _process_section(pick, scan, other)
    user, user_names = _user_section(pick, types, other, enriched)
    data = _data_section(scan, sc, other)
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
    related_ips = _endpoints(doc, data, scan, other)
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
    if user_names:
        doc["related"] = {"user": user_names if len(user_names) == 1 else sorted(set(user_names))}
    if related_ips:
        doc.setdefault("related", {})["ip"] = sorted(set(related_ips))
    doc["message"] = _message(has_execve, other, sc, action, process)
    return doc


_NATIVE: Final = EventDecoder(
    unset=_UNSET,
    no_name=_NO_NAME,
    account_management=_ACCOUNT_MANAGEMENT,
    acted_on=_ACTED_ON,
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
