//! The auditd line tokenizer.
//!
//! `RecordTokenizer` does what `processors.audit.parse.parse_line` does for the lines auditd writes,
//! several times faster: the header, then `key=value` fields, with one nested `msg='...'` at the end. It
//! answers only when its answer is exact, and returns `None` otherwise (non-ASCII text, values with
//! spaces, stray quotes, repeated keys, a malformed header): the Python parser, which defines the
//! result, then handles the line. A differential test holds the two to the same answer.

use crate::hash::WordHasher;
use crate::slots::SlotClass;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyFrozenSet, PyList, PyString, PyType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

type KeyCache = HashMap<Vec<u8>, Py<PyString>, BuildHasherDefault<WordHasher>>;

/// Python's `str.isspace()` on ASCII (the only text this module accepts).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

const MAX_CACHED_KEYS: usize = 4096;
const MAX_CACHED_KEY: usize = 64;

thread_local! {
    // Field names come from a small vocabulary: interned once, they are hashed once.
    static KEYS: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

fn key_object<'py>(py: Python<'py>, key: &str) -> Bound<'py, PyString> {
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(object) = cache.get(key.as_bytes()) {
            return object.bind(py).clone();
        }
        if key.len() > MAX_CACHED_KEY || cache.len() >= MAX_CACHED_KEYS {
            // Hostile input can hold any number of long made-up keys: only short ones are remembered.
            return PyString::new(py, key);
        }
        let object = PyString::intern(py, key);
        cache.insert(key.as_bytes().to_vec(), object.clone().unbind());
        object
    })
}

/// A Python `str` holding `text`, which the caller has checked is ASCII.
///
/// `PyString::new` decodes its argument as UTF-8; every value here is known to be ASCII (`split`
/// declines anything else), so the string is allocated as ASCII and filled with one copy.
fn ascii_string<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    debug_assert!(text.is_ascii());
    let size = pyo3::ffi::Py_ssize_t::try_from(text.len())?;
    // SAFETY: PyUnicode_New(size, 127) returns a new, uninitialised compact ASCII string of `size`
    // characters (one byte each) or NULL with an exception set; its data is written exactly once
    // below, before the object is used, and the bytes are ASCII as that kind requires.
    unsafe {
        let object = pyo3::ffi::PyUnicode_New(size, 127);
        if object.is_null() {
            return Err(PyErr::fetch(py));
        }
        let data = pyo3::ffi::PyUnicode_DATA(object).cast::<u8>();
        std::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        Ok(Bound::from_owned_ptr(py, object).cast_into_unchecked())
    }
}

/// Add the plain `k=v` tokens of `text` to `fields` (double quotes removed, quoted keys to `quoted`).
/// Returns false when the text is not plain: a token without `=`, an empty key, a key already in
/// `fields`, a double quote anywhere but around a whole value.
fn split_flat<'py>(
    py: Python<'py>,
    text: &str,
    fields: &Bound<'py, PyDict>,
    quoted: &Bound<'py, PyList>,
) -> PyResult<bool> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        // One pass over the token: the first `=` ends the key; a quote in the key is not plain.
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b'"') && !is_space(bytes[i]) {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'=') {
            return Ok(false); // an empty key, a key with a quote, or a token without `=`
        }
        let eq = i;
        i += 1;
        let is_quoted = bytes.get(i) == Some(&b'"');
        let (from, to) = if is_quoted {
            // the value runs to the next quote, which must end the token
            let from = i + 1;
            let Some(close) = bytes[from..].iter().position(|&b| b == b'"') else {
                return Ok(false);
            };
            i = from + close + 1;
            if bytes[from..from + close].iter().any(|&b| is_space(b))
                || (i < bytes.len() && !is_space(bytes[i]))
            {
                return Ok(false);
            }
            (from, from + close)
        } else {
            let from = i;
            while i < bytes.len() && !is_space(bytes[i]) {
                if bytes[i] == b'"' {
                    return Ok(false);
                }
                i += 1;
            }
            (from, i)
        };
        let key = key_object(py, &text[start..eq]);
        let size = fields.len();
        fields.set_item(&key, ascii_string(py, &text[from..to])?)?;
        if fields.len() == size {
            return Ok(false); // a repeated key
        }
        if is_quoted {
            quoted.append(key)?;
        }
    }
    Ok(true)
}

/// Split a record body: plain `k=v` text, optionally ending in one nested `key='k=v ...'` value.
fn split_body<'py>(
    py: Python<'py>,
    body: &str,
    fields: &Bound<'py, PyDict>,
    quoted: &Bound<'py, PyList>,
) -> PyResult<bool> {
    let bytes = body.as_bytes();
    let mut ticks = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\'')
        .map(|(i, _)| i);
    let Some(open) = ticks.next() else {
        return split_flat(py, body, fields, quoted);
    };
    let (Some(close), None) = (ticks.next(), ticks.next()) else {
        return Ok(false);
    };
    let mut end = bytes.len();
    while end > 0 && is_space(bytes[end - 1]) {
        end -= 1;
    }
    if open < 2 || bytes[open - 1] != b'=' || close + 1 != end {
        return Ok(false);
    }
    let eq = open - 1;
    let mut key_start = eq;
    while key_start > 0 && !is_space(bytes[key_start - 1]) {
        key_start -= 1;
    }
    let key = &bytes[key_start..eq];
    if key.is_empty() || key.contains(&b'"') || key.contains(&b'=') {
        return Ok(false);
    }
    if !split_flat(py, &body[..key_start], fields, quoted)? {
        return Ok(false);
    }
    let key = key_object(py, &body[key_start..eq]);
    let size = fields.len();
    let inner_text = &body[open + 1..close];
    fields.set_item(key, ascii_string(py, inner_text)?)?;
    // The nested fields go into the same mapping: any clash with an outer key is a repeated key.
    Ok(fields.len() > size && split_flat(py, inner_text, fields, quoted)?)
}

/// The header `[ \t]*[node=HOST ]type=TYPE msg=audit(SECONDS.FRACTION:SERIAL):`, as byte offsets.
///
/// `processors/audit/header.py` defines this rule (and the range of its numbers); this mirrors it and
/// declines every header it does not accept, for the Python parser to answer.
struct Header {
    node: Option<(usize, usize)>,
    rtype: (usize, usize),
    time: (usize, usize),
    serial: u64,
    end: usize,
}

fn digits(bytes: &[u8], from: usize, max: usize) -> Option<usize> {
    let count = bytes[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (1..=max).contains(&count).then_some(from + count)
}

/// `header.MAX_EPOCH`: 10000-01-01T00:00:00Z, the first second an ISO 8601 `@timestamp` cannot hold.
const MAX_EPOCH: u64 = 253_402_300_800;

/// Whether the (at most 12) ASCII digits of the seconds are before `MAX_EPOCH`.
fn before_max_epoch(seconds: &[u8]) -> bool {
    std::str::from_utf8(seconds)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .is_some_and(|value| value < MAX_EPOCH)
}

fn token_end(bytes: &[u8], from: usize) -> usize {
    from + bytes[from..].iter().take_while(|&&b| !is_space(b)).count()
}

fn header(bytes: &[u8]) -> Option<Header> {
    let mut i = bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let mut node = None;
    if bytes[i..].starts_with(b"node=") {
        let end = token_end(bytes, i + 5);
        if end == i + 5 || bytes.get(end) != Some(&b' ') {
            return None;
        }
        node = Some((i + 5, end));
        i = end + 1;
    }
    if !bytes[i..].starts_with(b"type=") {
        return None;
    }
    let rtype_end = token_end(bytes, i + 5);
    if rtype_end == i + 5 || !bytes[rtype_end..].starts_with(b" msg=audit(") {
        return None;
    }
    let time_start = rtype_end + 11;
    let seconds_end = digits(bytes, time_start, 12)?;
    if bytes.get(seconds_end) != Some(&b'.') || !before_max_epoch(&bytes[time_start..seconds_end]) {
        return None;
    }
    let time_end = digits(bytes, seconds_end + 1, 9)?;
    if bytes.get(time_end) != Some(&b':') {
        return None;
    }
    let serial_end = digits(bytes, time_end + 1, 20)?;
    if bytes.get(serial_end) != Some(&b')') {
        return None;
    }
    let serial = std::str::from_utf8(&bytes[time_end + 1..serial_end])
        .ok()?
        .parse()
        .ok()?;
    let mut end = serial_end + 1;
    if bytes.get(end) == Some(&b':') {
        end += 1;
    }
    Some(Header {
        node,
        rtype: (i + 5, rtype_end),
        time: (time_start, time_end),
        serial,
        end,
    })
}

/// The parts of one record, in the order of `RecordTokenizer`'s slot names.
struct Split<'py> {
    node: Option<Bound<'py, PyString>>,
    rtype: Bound<'py, PyString>,
    time: Bound<'py, PyString>,
    serial: u64,
    epoch: f64,
    fields: Bound<'py, PyDict>,
    enriched: Bound<'py, PyDict>,
    text: Bound<'py, PyString>,
    quoted: Bound<'py, PyList>,
}

/// Split one raw audit line, or return None when the Python parser must decide (see the module
/// documentation).
fn split<'py>(py: Python<'py>, line: &str) -> PyResult<Option<Split<'py>>> {
    if !line.is_ascii() {
        return Ok(None);
    }
    let text = line.trim_end_matches(['\r', '\n']);
    let (main, extra) = match text.find('\x1d') {
        Some(gs) => (&text[..gs], &text[gs + 1..]),
        None => (text, ""),
    };
    let Some(head) = header(main.as_bytes()) else {
        return Ok(None);
    };
    let time = &main[head.time.0..head.time.1];
    let Ok(epoch) = time.parse::<f64>() else {
        return Ok(None);
    };
    let fields = PyDict::new(py);
    let quoted = PyList::empty(py);
    if !split_body(py, &main[head.end..], &fields, &quoted)? {
        return Ok(None);
    }
    let enriched = PyDict::new(py);
    if !split_body(py, extra, &enriched, &PyList::empty(py))? {
        return Ok(None);
    }
    let node = match head.node {
        Some((from, to)) => Some(ascii_string(py, &main[from..to])?),
        None => None,
    };
    Ok(Some(Split {
        node,
        rtype: key_object(py, &main[head.rtype.0..head.rtype.1]),
        time: ascii_string(py, time)?,
        serial: head.serial,
        epoch,
        fields,
        enriched,
        text: ascii_string(py, text)?,
        quoted,
    }))
}

const SLOTS: [&str; 9] = [
    "node", "rtype", "time", "serial", "epoch", "fields", "enriched", "raw", "quoted",
];

/// Makes record objects of a slotted class (the parser's `AuditRecord`) straight from raw lines.
///
/// The record is made as `SlotClass` makes instances: in Python, `__init__` or slot setters cost a third
/// of the parse. `quoted` is a frozenset of the double-quoted keys, or `no_quoted` when there are none.
#[pyclass(frozen, module = "secstream_audit_native")]
pub(crate) struct RecordTokenizer {
    class: SlotClass,
    no_quoted: Py<PyAny>,
}

#[pymethods]
impl RecordTokenizer {
    #[new]
    fn py_new(
        py: Python<'_>,
        cls: Bound<'_, PyType>,
        no_quoted: Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(RecordTokenizer {
            class: SlotClass::bind(py, &cls, &SLOTS)?,
            no_quoted: no_quoted.unbind(),
        })
    }

    /// Return the record of one raw audit line, or None when the Python parser must decide.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        line: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        // Text with lone surrogates (undecodable bytes kept by `surrogateescape`) has no UTF-8 form; it is
        // not ASCII either, so the Python parser decides.
        let Ok(line) = line.to_str() else {
            return Ok(None);
        };
        let Some(parts) = split(py, line)? else {
            return Ok(None);
        };
        let quoted = if parts.quoted.is_empty() {
            self.no_quoted.bind(py).clone()
        } else {
            PyFrozenSet::new(py, parts.quoted.iter())?.into_any()
        };
        let values: [Bound<'py, PyAny>; 9] = [
            parts
                .node
                .map_or_else(|| py.None().into_bound(py), Bound::into_any),
            parts.rtype.into_any(),
            parts.time.into_any(),
            parts.serial.into_pyobject(py)?.into_any(),
            PyFloat::new(py, parts.epoch).into_any(),
            parts.fields.into_any(),
            parts.enriched.into_any(),
            parts.text.into_any(),
            quoted,
        ];
        Ok(Some(self.class.make(py, &values)?))
    }
}
