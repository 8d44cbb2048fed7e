//! secstream's compiled IoC candidate scanner.
//!
//! `processors.iocextract` finds IoC candidates with a handful of regular expressions and validates them in
//! Python. Through the RE2 binding every search costs about a microsecond of call overhead, so a short
//! command line with a few candidates paid several microseconds before any Python check ran. A `Scanner`
//! runs every pattern one text needs in a single call and returns the raw match spans; all validation stays
//! in Python.
//!
//! Semantics are RE2's as `iocextract` used it: patterns and haystacks are bytes, one byte is one
//! character (Latin-1: classes, `.` and `\b` are ASCII/byte based), matching is case-insensitive by
//! default, matches are leftmost-first, and successive matches are found like RE2's
//! `Match(UNANCHORED, data, pos, len)` loop (the next search starts at the end of the previous match, one
//! byte later after an empty match, and look-behind context such as `\b` sees the bytes before `pos`).
//! Rust's `regex` crate runs in time linear in the input, like RE2. A differential test in
//! `tests/processors/ioc/test_ioc_scanner.py` holds the spans equal to RE2's.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// The `mask` argument of `scan` selects patterns by bit, so there are at most 64 of them.
const MAX_PATTERNS: usize = 64;

/// Return a pattern as text. Only ASCII patterns are accepted: with Unicode off, a non-ASCII byte in a
/// pattern would mean a UTF-8 sequence to `regex` but a single Latin-1 character to RE2.
fn ascii_pattern(pattern: &[u8]) -> PyResult<&str> {
    if !pattern.is_ascii() {
        return Err(PyValueError::new_err(
            "patterns must be ASCII (write other bytes as \\xHH escapes)",
        ));
    }
    // ASCII is valid UTF-8
    Ok(std::str::from_utf8(pattern).expect("ASCII is UTF-8"))
}

fn invalid(pattern: &str, err: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("invalid pattern {pattern:?}: {err}"))
}

/// Append the spans of successive matches of `regex` in `data` (the RE2 `Match` loop).
fn spans(regex: &Regex, data: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut pos = 0;
    while pos <= data.len() {
        let Some(found) = regex.find_at(data, pos) else {
            break;
        };
        out.push((found.start(), found.end()));
        pos = if found.is_empty() {
            found.end() + 1
        } else {
            found.end()
        };
    }
}

/// A set of byte patterns compiled once, searched together in one call per text.
///
/// Pattern `i` may have a gate: a pattern that matches somewhere whenever pattern `i` does (a necessary
/// condition, cheaper to test). All gates are tested in one pass first, and a pattern whose gate did not
/// match is not searched.
#[pyclass(frozen, module = "secstream_iocscan")]
struct Scanner {
    regexes: Vec<Regex>,
    gates: Option<RegexSet>,
}

#[pymethods]
impl Scanner {
    #[new]
    #[pyo3(signature = (patterns, gates = None, case_sensitive = false))]
    fn new(
        patterns: Vec<Vec<u8>>,
        gates: Option<Vec<Vec<u8>>>,
        case_sensitive: bool,
    ) -> PyResult<Self> {
        if patterns.len() > MAX_PATTERNS {
            return Err(PyValueError::new_err(format!(
                "at most {MAX_PATTERNS} patterns"
            )));
        }
        let mut regexes = Vec::with_capacity(patterns.len());
        for pattern in &patterns {
            let text = ascii_pattern(pattern)?;
            let regex = RegexBuilder::new(text)
                .unicode(false)
                .case_insensitive(!case_sensitive)
                .build()
                .map_err(|err| invalid(text, err))?;
            regexes.push(regex);
        }
        let gates = match gates {
            None => None,
            Some(gates) => {
                if gates.len() > patterns.len() {
                    return Err(PyValueError::new_err("more gates than patterns"));
                }
                let texts = gates
                    .iter()
                    .map(|gate| ascii_pattern(gate))
                    .collect::<PyResult<Vec<_>>>()?;
                let set = RegexSetBuilder::new(&texts)
                    .unicode(false)
                    .case_insensitive(!case_sensitive)
                    .build()
                    .map_err(|err| invalid(&texts.join("|"), err))?;
                Some(set)
            }
        };
        Ok(Scanner { regexes, gates })
    }

    /// The number of patterns.
    fn __len__(&self) -> usize {
        self.regexes.len()
    }

    /// Return the indices of the gates that match somewhere in `data`, in ascending order.
    fn gates_found(&self, data: &[u8]) -> Vec<usize> {
        match &self.gates {
            Some(set) => set.matches(data).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Return `{pattern index: [(start, end), ...]}` for the patterns selected by `mask` (bit `i` is
    /// pattern `i`) that match in `data`: the spans of their successive matches, in text order. Patterns
    /// that do not match (or, when `gated`, whose gate does not match) are not in the dict.
    #[pyo3(signature = (data, mask, gated = true))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        mask: u64,
        gated: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let result = PyDict::new(py);
        if mask == 0 {
            return Ok(result);
        }
        let open = match (&self.gates, gated) {
            (Some(set), true) => Some(set.matches(data)),
            _ => None,
        };
        let mut found = Vec::new();
        for (index, regex) in self.regexes.iter().enumerate() {
            if mask & (1 << index) == 0 {
                continue;
            }
            if let Some(open) = &open {
                if index < open.len() && !open.matched(index) {
                    continue;
                }
            }
            found.clear();
            spans(regex, data, &mut found);
            if !found.is_empty() {
                result.set_item(index, PyList::new(py, &found)?)?;
            }
        }
        Ok(result)
    }
}

#[pymodule]
fn secstream_iocscan(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Scanner>()?;
    Ok(())
}
