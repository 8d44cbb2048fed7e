"""System call number tables and audit architecture names.

Neither is typed here: the compiled module builds both from maintained crates (``native-rs/src/syscalls.rs``),
the ``AUDIT_ARCH_*`` constants of ``linux-raw-sys`` and the per-architecture tables of ``syscalls``, both
generated from the Linux sources. Every architecture audit defines has a name; those with a table there
(x86_64, i386, aarch64, arm, ppc, ppc64, ppc64le, s390x, riscv32, riscv64, loongarch64, mips o32, mips64 n64,
sparc, sparc64) have syscall names. s390 (31-bit), mips n32, ia64, alpha, parisc, sh and the rest keep
the number (``syscall_N``).
"""

from __future__ import annotations

from typing import Final

from secstream_audit_native import audit_arches, syscall_tables

__all__ = ["ARCH_NAMES", "SYSCALL_TABLES", "arch_name", "syscall_name"]

#: ``arch=`` values of SYSCALL records (AUDIT_ARCH_* constants, lower-case hex as auditd writes them) to
#: machine names.
ARCH_NAMES: Final[dict[str, str]] = dict(audit_arches())

#: Machine name → system call number → name, for the machines whose numbers are known.
SYSCALL_TABLES: Final[dict[str, dict[int, str]]] = syscall_tables()


def arch_name(arch: str | None) -> str | None:
    """Return the machine name for an ``arch=`` value.

    Args:
        arch: the raw hex value (``c000003e``), any case; an already translated name is returned unchanged.

    Returns:
        The name (``x86_64``), the input when it is unknown, or None when it is missing.
    """
    if not arch:
        return None
    return ARCH_NAMES.get(arch.lower(), arch)


def syscall_name(arch: str | None, number: str | int | None) -> str | None:
    """Return the name of a system call number for an architecture.

    Args:
        arch: the ``arch=`` value (hex or machine name).
        number: the ``syscall=`` value.

    Returns:
        The name (``execve``), or None when the architecture or number is unknown.
    """
    name = arch_name(arch)
    if name is None or number is None:
        return None
    table = SYSCALL_TABLES.get(name)
    if table is None:
        return None
    if isinstance(number, str):
        if not (number.isascii() and number.isdecimal()) or len(number) > 6:
            return None
        number = int(number)
    return table.get(number)
