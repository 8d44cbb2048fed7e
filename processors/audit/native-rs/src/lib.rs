//! secstream's compiled auditd hot paths, a Python extension module.
//!
//! - `tokenizer`: `RecordTokenizer`, the line parser of `processors.audit.parse` for the lines auditd
//!   writes (the Python parser defines the result and handles every other line).
//! - `coalesce`: `CoalescerCore` and `CoalescerBuffer`, the push, expire and flush of
//!   `processors.audit.coalesce` (which defines the rules and the Python API).
//! - `decode`: `EventDecoder`, the document builder of `processors.audit.decode` (whose `_build` defines
//!   the document and takes every event the decoder declines).
//! - `route`: `pack_audit_records`, the route stage's split, key and framing of raw audit records (as
//!   `streams.serde` defines them, which routes every record this declines).
//! - `syscalls`: the audit architectures and their syscall tables, from the `linux-raw-sys` and
//!   `syscalls` crates (`processors.audit.syscalls` builds its tables from them).
//! - `slots`: instances of the Python module's slotted record and event classes, made from Rust.

mod coalesce;
mod decode;
mod hash;
mod route;
mod slots;
mod syscalls;
mod tokenizer;

use pyo3::prelude::*;

#[pymodule]
fn secstream_audit_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<tokenizer::RecordTokenizer>()?;
    module.add_class::<coalesce::CoalescerCore>()?;
    module.add_class::<coalesce::CoalescerBuffer>()?;
    module.add_class::<decode::EventDecoder>()?;
    module.add_function(wrap_pyfunction!(route::pack_audit_records, module)?)?;
    module.add_function(wrap_pyfunction!(syscalls::audit_arches, module)?)?;
    module.add_function(wrap_pyfunction!(syscalls::syscall_tables, module)?)?;
    Ok(())
}
