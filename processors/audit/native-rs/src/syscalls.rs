//! Audit architectures and their system call tables, from maintained crates rather than typed by hand:
//! the `AUDIT_ARCH_*` constants of `linux-raw-sys` (generated from the kernel's `linux/audit.h`) and the
//! per-architecture syscall numbers of the `syscalls` crate (generated from the kernel's syscall tables).
//! `processors.audit.syscalls` builds its tables from these at import.

use linux_raw_sys::ptrace as audit;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;

/// Every architecture audit defines: the `arch=` value, the machine name auparse gives it, and the
/// name of its syscall table (None where no maintained table exists).
const ARCHES: &[(u32, &str, Option<&str>)] = &[
    (audit::AUDIT_ARCH_X86_64, "x86_64", Some("x86_64")),
    (audit::AUDIT_ARCH_I386, "i386", Some("x86")),
    (audit::AUDIT_ARCH_AARCH64, "aarch64", Some("aarch64")),
    (audit::AUDIT_ARCH_ARM, "arm", Some("arm")),
    (audit::AUDIT_ARCH_ARMEB, "armeb", Some("arm")),
    (audit::AUDIT_ARCH_PPC, "ppc", Some("powerpc")),
    (audit::AUDIT_ARCH_PPC64, "ppc64", Some("powerpc64")),
    (audit::AUDIT_ARCH_PPC64LE, "ppc64le", Some("powerpc64")),
    (audit::AUDIT_ARCH_S390X, "s390x", Some("s390x")),
    (audit::AUDIT_ARCH_S390, "s390", None),
    (audit::AUDIT_ARCH_RISCV64, "riscv64", Some("riscv64")),
    (audit::AUDIT_ARCH_RISCV32, "riscv32", Some("riscv32")),
    (
        audit::AUDIT_ARCH_LOONGARCH64,
        "loongarch64",
        Some("loongarch64"),
    ),
    (audit::AUDIT_ARCH_LOONGARCH32, "loongarch32", None),
    (audit::AUDIT_ARCH_MIPS, "mips", Some("mips")),
    (audit::AUDIT_ARCH_MIPSEL, "mipsel", Some("mips")),
    (audit::AUDIT_ARCH_MIPS64, "mips64", Some("mips64")),
    (audit::AUDIT_ARCH_MIPSEL64, "mips64el", Some("mips64")),
    (audit::AUDIT_ARCH_MIPS64N32, "mips64n32", None),
    (audit::AUDIT_ARCH_MIPSEL64N32, "mips64eln32", None),
    (audit::AUDIT_ARCH_SPARC, "sparc", Some("sparc")),
    (audit::AUDIT_ARCH_SPARC64, "sparc64", Some("sparc64")),
    (audit::AUDIT_ARCH_IA64, "ia64", None),
    (audit::AUDIT_ARCH_ALPHA, "alpha", None),
    (audit::AUDIT_ARCH_PARISC, "parisc", None),
    (audit::AUDIT_ARCH_PARISC64, "parisc64", None),
    (audit::AUDIT_ARCH_SH, "sh", None),
    (audit::AUDIT_ARCH_SHEL, "shel", None),
    (audit::AUDIT_ARCH_SH64, "sh64", None),
    (audit::AUDIT_ARCH_SHEL64, "shel64", None),
    (audit::AUDIT_ARCH_M68K, "m68k", None),
    (audit::AUDIT_ARCH_MICROBLAZE, "microblaze", None),
    (audit::AUDIT_ARCH_CSKY, "csky", None),
    (audit::AUDIT_ARCH_ARCOMPACT, "arcompact", None),
    (audit::AUDIT_ARCH_ARCOMPACTBE, "arcompactbe", None),
    (audit::AUDIT_ARCH_ARCV2, "arcv2", None),
    (audit::AUDIT_ARCH_ARCV2BE, "arcv2be", None),
    (audit::AUDIT_ARCH_XTENSA, "xtensa", None),
    (audit::AUDIT_ARCH_OPENRISC, "openrisc", None),
    (audit::AUDIT_ARCH_NIOS2, "nios2", None),
    (audit::AUDIT_ARCH_HEXAGON, "hexagon", None),
    (audit::AUDIT_ARCH_TILEGX, "tilegx", None),
    (audit::AUDIT_ARCH_TILEGX32, "tilegx32", None),
    (audit::AUDIT_ARCH_TILEPRO, "tilepro", None),
    (audit::AUDIT_ARCH_UNICORE, "unicore", None),
    (audit::AUDIT_ARCH_C6X, "c6x", None),
    (audit::AUDIT_ARCH_C6XBE, "c6xbe", None),
    (audit::AUDIT_ARCH_CRIS, "cris", None),
    (audit::AUDIT_ARCH_FRV, "frv", None),
    (audit::AUDIT_ARCH_H8300, "h8300", None),
    (audit::AUDIT_ARCH_M32R, "m32r", None),
    (audit::AUDIT_ARCH_NDS32, "nds32", None),
    (audit::AUDIT_ARCH_NDS32BE, "nds32be", None),
];

macro_rules! numbered {
    ($arch:ident) => {
        syscalls::$arch::Sysno::iter()
            .map(|sysno| (sysno.id() as u32, sysno.name()))
            .collect::<Vec<_>>()
    };
}

fn table(name: &str) -> Vec<(u32, &'static str)> {
    match name {
        "x86_64" => numbered!(x86_64),
        "x86" => numbered!(x86),
        "aarch64" => numbered!(aarch64),
        "arm" => numbered!(arm),
        "powerpc" => numbered!(powerpc),
        "powerpc64" => numbered!(powerpc64),
        "s390x" => numbered!(s390x),
        "riscv64" => numbered!(riscv64),
        "riscv32" => numbered!(riscv32),
        "loongarch64" => numbered!(loongarch64),
        "mips" => numbered!(mips),
        "mips64" => numbered!(mips64),
        "sparc" => numbered!(sparc),
        "sparc64" => numbered!(sparc64),
        _ => Vec::new(),
    }
}

/// `[(arch value as auditd writes it (lower-case hex, no leading zeros), machine name), ...]`.
#[pyfunction]
pub fn audit_arches() -> Vec<(String, &'static str)> {
    ARCHES
        .iter()
        .map(|(value, name, _)| (format!("{value:x}"), *name))
        .collect()
}

/// Machine name → {syscall number: name}, for every machine with a maintained syscall table.
#[pyfunction]
pub fn syscall_tables(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for (_, name, source) in ARCHES {
        if let Some(source) = source {
            let numbered: BTreeMap<u32, &str> = table(source).into_iter().collect();
            out.set_item(*name, numbered)?;
        }
    }
    Ok(out)
}
