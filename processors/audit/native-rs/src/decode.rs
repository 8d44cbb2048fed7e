//! The event decoder's hot path: `processors.audit.decode` defines the ECS document (its `_build` is the
//! reference) and hands its tables and helpers in when the decoder is made.
//!
//! `EventDecoder.build` makes the same document from the same records, or returns None and leaves the
//! event to Python: when a hex value is not valid UTF-8 (Python escapes those reversibly), when a text
//! holds lone surrogates, or when a value that is read as a number or lower-cased is not ASCII (Python's
//! `str.isdecimal` and `str.lower` know all of Unicode). SOCKADDR decoding, IP address normalisation and
//! timestamp formatting stay in Python and are called from here.

use hashbrown::{HashMap, HashSet};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::collections::{BTreeSet, HashMap as StdMap, HashSet as StdSet};

/// Why a document is not made here.
enum Fail {
    /// The event is left to the Python reference.
    Decline,
    Py(PyErr),
}

impl From<PyErr> for Fail {
    fn from(err: PyErr) -> Self {
        Fail::Py(err)
    }
}

type R<T> = Result<T, Fail>;

/// The text of a str, or Decline when it holds lone surrogates.
fn text<'a>(value: &'a Bound<'_, PyAny>) -> R<&'a str> {
    let string = value.cast::<PyString>().map_err(PyErr::from)?;
    string.to_str().map_err(|_| Fail::Decline)
}

fn get<'py>(dict: &Bound<'py, PyDict>, key: &Bound<'py, PyString>) -> R<Option<Bound<'py, PyAny>>> {
    Ok(dict.get_item(key)?)
}

/// `value` hex-decoded when it is a whole number of hex byte pairs (`(?:[0-9A-Fa-f]{2})+`): Ok(None)
/// when it is not hex, Decline when the bytes are not UTF-8.
fn hex_text(value: &str) -> R<Option<String>> {
    if !is_hex(value) {
        return Ok(None);
    }
    let decoded = hex_bytes(value.as_bytes());
    String::from_utf8(decoded)
        .map(Some)
        .map_err(|_| Fail::Decline)
}

fn is_hex(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len().is_multiple_of(2) && bytes.iter().all(u8::is_ascii_hexdigit)
}

fn hex_bytes(hex: &[u8]) -> Vec<u8> {
    fn nibble(digit: u8) -> u8 {
        match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        }
    }
    hex.chunks_exact(2)
        .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1]))
        .collect()
}

/// `text.isdecimal()` for ASCII text; Decline for anything else that Python might read as a number.
fn ascii_decimal(value: &str) -> R<bool> {
    if value.is_ascii() {
        Ok(!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
    } else {
        Err(Fail::Decline)
    }
}

/// One record's attributes.
struct Record<'py> {
    rtype: Bound<'py, PyAny>,
    fields: Bound<'py, PyDict>,
    quoted: Bound<'py, PyAny>,
    enriched: Bound<'py, PyDict>,
}

/// What one pass over the records finds (the reference's `_scan`).
struct Scan<'py> {
    types: Vec<Bound<'py, PyAny>>,
    syscall: Option<Bound<'py, PyDict>>,
    sc_name: Option<Bound<'py, PyAny>>,
    arch: Option<Bound<'py, PyAny>>,
    execve: Vec<Record<'py>>,
    proctitle: Vec<String>,
    truncated: bool,
    cwd: Option<Bound<'py, PyAny>>,
    paths: Vec<Bound<'py, PyDict>>,
    sockaddr: Option<Bound<'py, PyAny>>,
    other: Option<Bound<'py, PyDict>>,
    enriched: Option<Bound<'py, PyDict>>,
}

/// A dict that is None when empty, as the reference tests `if other:`.
fn filled<'a, 'py>(dict: &'a Option<Bound<'py, PyDict>>) -> Option<&'a Bound<'py, PyDict>> {
    dict.as_ref().filter(|d| !d.is_empty())
}

#[pyclass(module = "secstream_audit_native", frozen)]
pub struct EventDecoder {
    unset: HashSet<String>,
    hex_fields: HashSet<String>,
    arch_names: HashMap<String, Py<PyString>>,
    tables: HashMap<String, HashMap<u32, Py<PyString>>>,
    syscall_category: Py<PyDict>,
    type_category: Py<PyDict>,
    source_syscalls: HashSet<String>,
    outcomes: Py<PyDict>,
    other_skip: Vec<Py<PyString>>,
    syscall_skip: HashSet<String>,
    schema_version: Py<PyAny>,
    iso_timestamp: Py<PyAny>,
    decode_saddr: Py<PyAny>,
    ip: Py<PyAny>,
    max_arg_gap: usize,
    proctitle_limit: usize,
}

#[pymethods]
impl EventDecoder {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, unset, hex_fields, arch_names, tables, syscall_category, type_category,
        source_syscalls, outcomes, other_skip, syscall_skip, schema_version, iso_timestamp, decode_saddr,
        ip, max_arg_gap, proctitle_limit))]
    fn new(
        unset: StdSet<String>,
        hex_fields: StdSet<String>,
        arch_names: StdMap<String, Py<PyString>>,
        tables: StdMap<String, StdMap<u32, Py<PyString>>>,
        syscall_category: Py<PyDict>,
        type_category: Py<PyDict>,
        source_syscalls: StdSet<String>,
        outcomes: Py<PyDict>,
        other_skip: Vec<Py<PyString>>,
        syscall_skip: StdSet<String>,
        schema_version: Py<PyAny>,
        iso_timestamp: Py<PyAny>,
        decode_saddr: Py<PyAny>,
        ip: Py<PyAny>,
        max_arg_gap: usize,
        proctitle_limit: usize,
    ) -> Self {
        EventDecoder {
            unset: unset.into_iter().collect(),
            hex_fields: hex_fields.into_iter().collect(),
            arch_names: arch_names.into_iter().collect(),
            tables: tables
                .into_iter()
                .map(|(arch, table)| (arch, table.into_iter().collect()))
                .collect(),
            syscall_category,
            type_category,
            source_syscalls: source_syscalls.into_iter().collect(),
            outcomes,
            other_skip,
            syscall_skip: syscall_skip.into_iter().collect(),
            schema_version,
            iso_timestamp,
            decode_saddr,
            ip,
            max_arg_gap,
            proctitle_limit,
        }
    }

    /// The document of an event (`_build`'s arguments but the time text), or None to leave it to Python.
    #[allow(clippy::too_many_arguments)]
    fn build<'py>(
        &self,
        py: Python<'py>,
        node: Bound<'py, PyAny>,
        serial: Bound<'py, PyAny>,
        epoch: Bound<'py, PyAny>,
        event_id: Bound<'py, PyAny>,
        records: Bound<'py, PyAny>,
        partial: Bound<'py, PyAny>,
        default_host: Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let args = (node, serial, epoch, event_id, partial, default_host);
        match self.document(py, &records, args) {
            Ok(doc) => Ok(Some(doc)),
            Err(Fail::Decline) => Ok(None),
            Err(Fail::Py(err)) => Err(err),
        }
    }
}

type EventArgs<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

impl EventDecoder {
    fn is_unset(&self, value: &str) -> bool {
        self.unset.contains(value)
    }

    fn unset_obj(&self, value: &Bound<'_, PyAny>) -> R<bool> {
        Ok(self.is_unset(text(value)?))
    }

    fn record<'py>(py: Python<'py>, record: &Bound<'py, PyAny>) -> R<Record<'py>> {
        Ok(Record {
            rtype: record.getattr(intern!(py, "rtype"))?,
            fields: record
                .getattr(intern!(py, "fields"))?
                .cast_into::<PyDict>()
                .map_err(PyErr::from)?,
            quoted: record.getattr(intern!(py, "quoted"))?,
            enriched: record
                .getattr(intern!(py, "enriched"))?
                .cast_into::<PyDict>()
                .map_err(PyErr::from)?,
        })
    }

    /// A copy of the record's fields with its unquoted untrusted strings hex-decoded (`_decoded_fields`).
    fn decoded_fields<'py>(&self, py: Python<'py>, record: &Record<'py>) -> R<Bound<'py, PyDict>> {
        let out = record.fields.copy()?;
        for (key, value) in record.fields.iter() {
            if !self.hex_fields.contains(text(&key)?) || record.quoted.contains(&key)? {
                continue;
            }
            if let Some(decoded) = hex_text(text(&value)?)? {
                out.set_item(key, PyString::new(py, &decoded))?;
            }
        }
        Ok(out)
    }

    /// `arch_name`: None when missing or empty, the machine name, or the value itself when unknown.
    fn arch_name<'py>(
        &self,
        py: Python<'py>,
        raw: Option<&Bound<'py, PyAny>>,
    ) -> R<Option<Bound<'py, PyAny>>> {
        let Some(raw) = raw else { return Ok(None) };
        let value = text(raw)?;
        if value.is_empty() {
            return Ok(None);
        }
        if !value.is_ascii() {
            return Err(Fail::Decline);
        }
        Ok(Some(
            match self.arch_names.get(&value.to_ascii_lowercase()) {
                Some(name) => name.bind(py).clone().into_any(),
                None => raw.clone(),
            },
        ))
    }

    fn syscall_name<'py>(
        &self,
        py: Python<'py>,
        arch: Option<&Bound<'py, PyAny>>,
        number: Option<&Bound<'py, PyAny>>,
    ) -> R<Option<Bound<'py, PyAny>>> {
        let (Some(name), Some(number)) = (self.arch_name(py, arch)?, number) else {
            return Ok(None);
        };
        let Some(table) = self.tables.get(text(&name)?) else {
            return Ok(None);
        };
        let number = text(number)?;
        if !ascii_decimal(number)? || number.len() > 6 {
            return Ok(None);
        }
        let number: u32 = number.parse().map_err(|_| Fail::Decline)?;
        Ok(table
            .get(&number)
            .map(|name| name.bind(py).clone().into_any()))
    }

    fn scan<'py>(&self, py: Python<'py>, records: &Bound<'py, PyAny>) -> R<Scan<'py>> {
        let mut scan = Scan {
            types: Vec::new(),
            syscall: None,
            sc_name: None,
            arch: None,
            execve: Vec::new(),
            proctitle: Vec::new(),
            truncated: false,
            cwd: None,
            paths: Vec::new(),
            sockaddr: None,
            other: None,
            enriched: None,
        };
        for item in records.try_iter()? {
            let record = Self::record(py, &item?)?;
            scan.types.push(record.rtype.clone());
            if !record.enriched.is_empty() {
                match filled(&scan.enriched) {
                    Some(enriched) => {
                        for (key, value) in record.enriched.iter() {
                            if !enriched.contains(&key)? {
                                enriched.set_item(key, value)?;
                            }
                        }
                    }
                    None => scan.enriched = Some(record.enriched.copy()?),
                }
            }
            let rtype = text(&record.rtype)?;
            if rtype == "SYSCALL" && filled(&scan.syscall).is_none() {
                scan.syscall = Some(self.decoded_fields(py, &record)?);
                let raw_arch = get(&record.fields, intern!(py, "arch"))?;
                scan.arch = self.arch_name(py, raw_arch.as_ref())?;
                let enriched_name = get(&record.enriched, intern!(py, "SYSCALL"))?;
                scan.sc_name = match enriched_name {
                    Some(name) if !text(&name)?.is_empty() => Some(name),
                    _ => {
                        let number = get(&record.fields, intern!(py, "syscall"))?;
                        self.syscall_name(py, raw_arch.as_ref(), number.as_ref())?
                    }
                };
            } else if rtype == "EXECVE" {
                scan.execve.push(record);
            } else if rtype == "PROCTITLE" {
                let (argv, truncated) = self.proctitle_argv(py, &record)?;
                scan.proctitle = argv;
                scan.truncated = truncated;
            } else if rtype == "CWD" {
                scan.cwd = match get(&record.fields, intern!(py, "cwd"))? {
                    None => None,
                    Some(value) => {
                        let decoded = if record.quoted.contains(intern!(py, "cwd"))? {
                            None
                        } else {
                            hex_text(text(&value)?)?
                        };
                        Some(match decoded {
                            Some(decoded) => PyString::new(py, &decoded).into_any(),
                            None => value,
                        })
                    }
                };
            } else if rtype == "PATH" {
                scan.paths.push(self.decoded_fields(py, &record)?);
            } else if rtype == "SOCKADDR" {
                let saddr = get(&record.fields, intern!(py, "saddr"))?;
                let decoded = self.decode_saddr.bind(py).call1((saddr,))?;
                scan.sockaddr = (!decoded.is_none()).then_some(decoded);
            } else {
                let decoded = self.decoded_fields(py, &record)?;
                match filled(&scan.other) {
                    Some(other) => {
                        for (key, value) in decoded.iter() {
                            if !other.contains(&key)? {
                                other.set_item(key, value)?;
                            }
                        }
                    }
                    None => scan.other = Some(decoded),
                }
            }
        }
        Ok(scan)
    }

    /// `proctitle_argv` (the validity flag is implied: invalid UTF-8 declines).
    fn proctitle_argv(&self, py: Python<'_>, record: &Record<'_>) -> R<(Vec<String>, bool)> {
        let Some(value) = get(&record.fields, intern!(py, "proctitle"))? else {
            return Ok((Vec::new(), false));
        };
        let value_text = text(&value)?;
        if record.quoted.contains(intern!(py, "proctitle"))? || !is_hex(value_text) {
            return Ok((vec![value_text.to_owned()], false));
        }
        let data = hex_bytes(value_text.as_bytes());
        let truncated = data.len() >= self.proctitle_limit;
        let mut parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
        while parts.last().is_some_and(|part| part.is_empty()) {
            parts.pop();
        }
        let mut argv = Vec::with_capacity(parts.len());
        for part in parts {
            argv.push(String::from_utf8(part.to_vec()).map_err(|_| Fail::Decline)?);
        }
        Ok((argv, truncated))
    }

    /// `execve_args`: (args, argc, warnings).
    fn execve_args(&self, records: &[Record<'_>]) -> R<(Vec<String>, Option<i64>, Vec<String>)> {
        let mut whole: HashMap<u64, String> = HashMap::new();
        let mut pieces: Vec<(u64, HashMap<u64, String>)> = Vec::new();
        let mut argc: Option<i64> = None;
        let mut warnings = Vec::new();
        for record in records {
            for (key, value) in record.fields.iter() {
                let key_text = text(&key)?;
                if !key_text.starts_with('a') {
                    continue;
                }
                let number = &key_text[1..];
                let (index, piece) = if !number.is_empty()
                    && number.len() <= 9
                    && number.bytes().all(|b| b.is_ascii_digit())
                {
                    (number, None)
                } else if key_text == "argc" {
                    let value = text(&value)?;
                    if argc.is_none() && ascii_decimal(value)? && value.len() < 9 {
                        argc = Some(value.parse().map_err(|_| Fail::Decline)?);
                    }
                    continue;
                } else {
                    match split_arg_piece(number) {
                        Some(parts) => parts,
                        None => continue,
                    }
                };
                let value_text = text(&value)?;
                let decoded = if record.quoted.contains(&key)? {
                    None
                } else {
                    hex_text(value_text)?
                };
                let arg = decoded.unwrap_or_else(|| value_text.to_owned());
                let index: u64 = index.parse().map_err(|_| Fail::Decline)?;
                match piece {
                    None => {
                        whole.insert(index, arg);
                    }
                    Some(piece) => {
                        let piece: u64 = piece.parse().map_err(|_| Fail::Decline)?;
                        match pieces.iter_mut().find(|(i, _)| *i == index) {
                            Some((_, parts)) => {
                                parts.insert(piece, arg);
                            }
                            None => pieces.push((index, HashMap::from([(piece, arg)]))),
                        }
                    }
                }
            }
        }
        for (index, parts) in pieces {
            whole.entry(index).or_insert_with(|| {
                let mut order: Vec<&u64> = parts.keys().collect();
                order.sort();
                order
                    .into_iter()
                    .map(|k| parts[k].as_str())
                    .collect::<String>()
            });
        }
        let count = whole.keys().max().map_or(0, |max| max + 1);
        if count > (whole.len() + self.max_arg_gap) as u64 {
            let mut order: Vec<&u64> = whole.keys().collect();
            order.sort();
            let args = order.into_iter().map(|k| whole[k].clone()).collect();
            warnings.push("argc_mismatch".to_owned());
            return Ok((args, argc, warnings));
        }
        let args: Vec<String> = (0..count)
            .map(|i| whole.get(&i).cloned().unwrap_or_default())
            .collect();
        match argc {
            Some(argc) if argc as u64 != count || whole.len() as u64 != count => {
                warnings.push("argc_mismatch".to_owned())
            }
            None if !whole.is_empty() => warnings.push("argc_missing".to_owned()),
            _ => {}
        }
        Ok((args, argc, warnings))
    }

    /// `_int`: a field as an integer, None when unset or not a (signed) decimal of at most 19 digits.
    fn int<'py>(
        &self,
        py: Python<'py>,
        value: Option<&Bound<'py, PyAny>>,
    ) -> R<Option<Bound<'py, PyAny>>> {
        let Some(value) = value else { return Ok(None) };
        let raw = text(value)?;
        if self.is_unset(raw) {
            return Ok(None);
        }
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        if !ascii_decimal(digits)? || digits.len() > 19 {
            return Ok(None);
        }
        let number: i128 = raw.parse().map_err(|_| Fail::Decline)?;
        let Ok(number) = number.into_pyobject(py);
        Ok(Some(number.into_any()))
    }

    /// `_id`: None when unset or `-1`.
    fn id<'py>(&self, value: Option<Bound<'py, PyAny>>) -> R<Option<Bound<'py, PyAny>>> {
        match value {
            Some(value) => {
                let raw = text(&value)?;
                Ok((!self.is_unset(raw) && raw != "-1").then_some(value))
            }
            None => Ok(None),
        }
    }

    /// `_set_value`: None when missing or unset.
    fn set_value<'py>(&self, value: Option<Bound<'py, PyAny>>) -> R<Option<Bound<'py, PyAny>>> {
        match value {
            Some(value) if !self.unset_obj(&value)? => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    fn document<'py>(
        &self,
        py: Python<'py>,
        records: &Bound<'py, PyAny>,
        (node, serial, epoch, event_id, partial, default_host): EventArgs<'py>,
    ) -> R<Bound<'py, PyDict>> {
        let scan = self.scan(py, records)?;
        let sc = filled(&scan.syscall);
        let other = filled(&scan.other);
        // The reference's other warnings are about invalid UTF-8, which this decoder declines.
        let has_execve = !scan.execve.is_empty();
        let (args, argc, warnings) = if has_execve {
            self.execve_args(&scan.execve)?
        } else {
            (Vec::new(), None, Vec::new())
        };

        let none_dict = PyDict::new(py);
        let sc_or_empty = sc.unwrap_or(&none_dict);
        let other_or_empty = other.unwrap_or(&none_dict);
        let (action, category, outcome_key) = match &scan.sc_name {
            Some(name) => {
                let category = self.syscall_category.bind(py).get_item(name)?;
                (
                    name.clone(),
                    category,
                    get(sc_or_empty, intern!(py, "success"))?,
                )
            }
            None => {
                let first = scan.types.first();
                let number = match sc {
                    Some(sc) => get(sc, intern!(py, "syscall"))?,
                    None => None,
                };
                let number = match number {
                    Some(number) if !text(&number)?.is_empty() => Some(number),
                    _ => None,
                };
                let action = match (&number, first) {
                    (Some(number), _) => {
                        PyString::new(py, &format!("syscall_{}", text(number)?)).into_any()
                    }
                    (None, Some(first)) => {
                        let first = text(first)?;
                        if !first.is_ascii() {
                            return Err(Fail::Decline);
                        }
                        PyString::new(py, &first.to_ascii_lowercase()).into_any()
                    }
                    (None, None) => intern!(py, "unknown").clone().into_any(),
                };
                let first_type = match first {
                    Some(first) => first.clone(),
                    None => intern!(py, "").clone().into_any(),
                };
                let category = self.type_category.bind(py).get_item(first_type)?;
                let res = match get(other_or_empty, intern!(py, "res"))? {
                    Some(res) if !text(&res)?.is_empty() => Some(res),
                    _ => get(other_or_empty, intern!(py, "success"))?,
                };
                (action, category, res)
            }
        };
        let (category, etype) = match category {
            Some(pair) if pair.is_truthy()? => {
                let pair = pair.cast_into::<PyTuple>().map_err(PyErr::from)?;
                (pair.get_item(0)?, pair.get_item(1)?)
            }
            _ => (
                PyList::new(py, ["host"])?.into_any(),
                PyList::new(py, ["info"])?.into_any(),
            ),
        };
        let outcome = match outcome_key {
            Some(key) => self.outcomes.bind(py).get_item(key)?,
            None => None,
        };
        let outcome = outcome.unwrap_or_else(|| intern!(py, "unknown").clone().into_any());

        let pick = |key: &Bound<'py, PyString>| -> R<Option<Bound<'py, PyAny>>> {
            match (sc, other) {
                (Some(sc), Some(other)) => match get(sc, key)? {
                    Some(value) => Ok(Some(value)),
                    None => get(other, key),
                },
                (Some(sc), None) => get(sc, key),
                (None, Some(other)) => get(other, key),
                (None, None) => Ok(None),
            }
        };

        let process = PyDict::new(py);
        if let Some(pid) = self.int(py, pick(intern!(py, "pid"))?.as_ref())? {
            process.set_item(intern!(py, "pid"), pid)?;
        }
        if let Some(ppid) = self.int(py, pick(intern!(py, "ppid"))?.as_ref())? {
            process.set_item(intern!(py, "ppid"), ppid)?;
        }
        let exe = match pick(intern!(py, "exe"))? {
            Some(exe) if !self.unset_obj(&exe)? => Some(exe),
            _ => None,
        };
        if let Some(exe) = &exe {
            process.set_item(intern!(py, "executable"), exe)?;
        }
        let name = match pick(intern!(py, "comm"))? {
            Some(name) if !self.unset_obj(&name)? => Some(name),
            _ => match &exe {
                Some(exe) => {
                    let path = text(exe)?;
                    let base = match path.rfind('/') {
                        Some(slash) => &path[slash + 1..],
                        None => path,
                    };
                    Some(PyString::new(py, base).into_any())
                }
                None => None,
            },
        };
        if let Some(name) = &name {
            process.set_item(intern!(py, "name"), name)?;
        }
        let command_line = args.join(" ");
        if has_execve {
            process.set_item(intern!(py, "args"), PyList::new(py, &args)?)?;
            // A claimed argc above the arguments present is flagged (argc_mismatch), never reported as the count.
            let count = argc.map_or(args.len() as i64, |claimed| claimed.min(args.len() as i64));
            process.set_item(intern!(py, "args_count"), count)?;
            process.set_item(intern!(py, "command_line"), &command_line)?;
        }
        if !scan.proctitle.is_empty() {
            process.set_item(intern!(py, "title"), scan.proctitle.join(" "))?;
        }
        let cwd = match &scan.cwd {
            Some(cwd) if !self.unset_obj(cwd)? => Some(cwd.clone()),
            _ => match other
                .map(|o| get(o, intern!(py, "cwd")))
                .transpose()?
                .flatten()
            {
                Some(cwd) if !self.unset_obj(&cwd)? => Some(cwd),
                _ => None,
            },
        };
        if let Some(cwd) = &cwd {
            process.set_item(intern!(py, "working_directory"), cwd)?;
        }

        let (mut user_name, mut audit_name, mut effective_name, mut group_name) =
            (None, None, None, None);
        if let Some(enriched) = filled(&scan.enriched) {
            user_name = self.set_value(get(enriched, intern!(py, "UID"))?)?;
            audit_name = self.set_value(get(enriched, intern!(py, "AUID"))?)?;
            effective_name = self.set_value(get(enriched, intern!(py, "EUID"))?)?;
            group_name = self.set_value(get(enriched, intern!(py, "GID"))?)?;
        }
        let acct = match other {
            Some(other) => match get(other, intern!(py, "acct"))? {
                Some(acct) if !self.unset_obj(&acct)? => Some(acct),
                _ => None,
            },
            None => None,
        };
        let user = PyDict::new(py);
        if let Some(uid) = self.id(pick(intern!(py, "uid"))?)? {
            user.set_item(intern!(py, "id"), uid)?;
        }
        match (&user_name, &acct) {
            (Some(name), _) => user.set_item(intern!(py, "name"), name)?,
            (None, Some(acct)) => user.set_item(intern!(py, "name"), acct)?,
            (None, None) => {}
        }
        for (field, key, name) in [
            (intern!(py, "auid"), intern!(py, "audit"), &audit_name),
            (
                intern!(py, "euid"),
                intern!(py, "effective"),
                &effective_name,
            ),
            (intern!(py, "gid"), intern!(py, "group"), &group_name),
        ] {
            let ident = self.id(pick(field)?)?;
            if ident.is_some() || name.is_some() {
                let pair = PyDict::new(py);
                match (ident, name) {
                    (ident, None) => pair.set_item(intern!(py, "id"), ident)?,
                    (None, Some(name)) => pair.set_item(intern!(py, "name"), name)?,
                    (Some(ident), Some(name)) => {
                        pair.set_item(intern!(py, "id"), ident)?;
                        pair.set_item(intern!(py, "name"), name)?;
                    }
                }
                user.set_item(key, pair)?;
            }
        }

        let data = match (other, sc) {
            (Some(other), _) => {
                let data = other.copy()?;
                for key in &self.other_skip {
                    let key = key.bind(py);
                    if data.contains(key)? {
                        data.del_item(key)?;
                    }
                }
                if let Some(sc) = sc {
                    for (key, value) in sc.iter() {
                        if !self.syscall_skip.contains(text(&key)?) {
                            data.set_item(key, value)?;
                        }
                    }
                }
                data
            }
            (None, Some(sc)) => {
                let data = sc.copy()?;
                for (key, _) in sc.iter() {
                    if self.syscall_skip.contains(text(&key)?) {
                        data.del_item(key)?;
                    }
                }
                data
            }
            (None, None) => PyDict::new(py),
        };
        if let Some(sc) = sc {
            let syscall_value = match &scan.sc_name {
                Some(name) => Some(name.clone()),
                None => get(sc, intern!(py, "syscall"))?,
            };
            if let Some(value) = syscall_value {
                data.set_item(intern!(py, "syscall"), value)?;
            }
            if let Some(arch) = &scan.arch {
                data.set_item(intern!(py, "arch"), arch)?;
            }
            for key in [intern!(py, "comm"), intern!(py, "tty")] {
                if let Some(value) = get(sc, key)? {
                    data.set_item(key, value)?;
                }
            }
        }
        if has_execve {
            data.set_item(intern!(py, "argc"), argc)?;
        }
        if !scan.proctitle.is_empty() {
            data.set_item(
                intern!(py, "proctitle_argv"),
                PyList::new(py, &scan.proctitle)?,
            )?;
            data.set_item(intern!(py, "proctitle_truncated"), scan.truncated)?;
        }

        let doc = PyDict::new(py);
        doc.set_item(intern!(py, "schema_version"), self.schema_version.bind(py))?;
        doc.set_item(
            intern!(py, "@timestamp"),
            self.iso_timestamp.bind(py).call1((epoch,))?,
        )?;
        let event = PyDict::new(py);
        event.set_item(intern!(py, "id"), event_id)?;
        event.set_item(intern!(py, "kind"), intern!(py, "event"))?;
        event.set_item(intern!(py, "module"), intern!(py, "auditd"))?;
        event.set_item(intern!(py, "dataset"), intern!(py, "auditd.log"))?;
        event.set_item(intern!(py, "category"), category)?;
        event.set_item(intern!(py, "type"), etype)?;
        event.set_item(intern!(py, "action"), &action)?;
        event.set_item(intern!(py, "outcome"), outcome)?;
        event.set_item(intern!(py, "sequence"), &serial)?;
        doc.set_item(intern!(py, "event"), event)?;
        let host = PyDict::new(py);
        let host_name = if node.is_truthy()? {
            node
        } else {
            default_host
        };
        host.set_item(intern!(py, "name"), host_name)?;
        doc.set_item(intern!(py, "host"), host)?;
        if !process.is_empty() {
            doc.set_item(intern!(py, "process"), &process)?;
        }
        if !user.is_empty() {
            doc.set_item(intern!(py, "user"), user)?;
        }

        let mut related_ips: Vec<Bound<'py, PyAny>> = Vec::new();
        if let Some(saddr) = &scan.sockaddr {
            data.set_item(intern!(py, "socket"), saddr)?;
            let family = saddr.call_method1(intern!(py, "get"), (intern!(py, "family"),))?;
            if !family.is_none() && text(&family)? == "unix" {
                let file = PyDict::new(py);
                file.set_item(intern!(py, "path"), saddr.get_item(intern!(py, "path"))?)?;
                doc.set_item(intern!(py, "file"), file)?;
            } else if saddr.contains(intern!(py, "ip"))? {
                let incoming = match &scan.sc_name {
                    Some(name) => self.source_syscalls.contains(text(name)?),
                    None => false,
                };
                let side = if incoming {
                    intern!(py, "source")
                } else {
                    intern!(py, "destination")
                };
                let ip = saddr.get_item(intern!(py, "ip"))?;
                let endpoint = PyDict::new(py);
                endpoint.set_item(intern!(py, "ip"), &ip)?;
                endpoint.set_item(intern!(py, "port"), saddr.get_item(intern!(py, "port"))?)?;
                endpoint.set_item(intern!(py, "address"), &ip)?;
                doc.set_item(side, endpoint)?;
                related_ips.push(ip);
            }
        }
        if let Some(other) = other {
            let addr = match get(other, intern!(py, "addr"))? {
                Some(raw) => Some(self.ip.bind(py).call1((raw,))?).filter(|addr| !addr.is_none()),
                None => None, // _ip(None) is None
            };
            if let Some(addr) = &addr {
                let source = PyDict::new(py);
                source.set_item(intern!(py, "ip"), addr)?;
                source.set_item(intern!(py, "address"), addr)?;
                doc.set_item(intern!(py, "source"), source)?;
                related_ips.push(addr.clone());
            }
            if let Some(hostname) = get(other, intern!(py, "hostname"))? {
                let differs = match &addr {
                    Some(addr) => !hostname.eq(addr)?,
                    None => true,
                };
                if !self.unset_obj(&hostname)? && differs {
                    if let Some(source) = get(&doc, intern!(py, "source"))? {
                        source.set_item(intern!(py, "domain"), hostname)?;
                    }
                }
            }
        }
        if !scan.paths.is_empty() && !doc.contains(intern!(py, "file"))? {
            if let Some(path) = get(&scan.paths[0], intern!(py, "name"))? {
                if !self.unset_obj(&path)? {
                    let file = PyDict::new(py);
                    file.set_item(intern!(py, "path"), path)?;
                    doc.set_item(intern!(py, "file"), file)?;
                }
            }
        }

        let auditd = PyDict::new(py);
        auditd.set_item(intern!(py, "sequence"), &serial)?;
        auditd.set_item(intern!(py, "session"), self.id(pick(intern!(py, "ses"))?)?)?;
        auditd.set_item(intern!(py, "message_types"), PyList::new(py, &scan.types)?)?;
        auditd.set_item(intern!(py, "data"), data)?;
        auditd.set_item(intern!(py, "partial"), partial)?;
        if !scan.paths.is_empty() {
            auditd.set_item(intern!(py, "paths"), PyList::new(py, &scan.paths)?)?;
        }
        if !warnings.is_empty() {
            let sorted: BTreeSet<&String> = warnings.iter().collect();
            auditd.set_item(intern!(py, "warnings"), PyList::new(py, sorted)?)?;
        }
        doc.set_item(intern!(py, "auditd"), auditd)?;

        let mut audit_key = match sc {
            Some(sc) => get(sc, intern!(py, "key"))?,
            None => None,
        };
        let key_empty = match &audit_key {
            Some(key) => text(key)?.is_empty(),
            None => true,
        };
        if key_empty {
            if let Some(other) = other {
                audit_key = get(other, intern!(py, "key"))?;
            }
        }
        if let Some(key) = audit_key {
            let key_text = text(&key)?;
            if !self.is_unset(key_text) {
                let tags: Vec<&str> = key_text
                    .split('\x01')
                    .filter(|part| !part.is_empty())
                    .collect();
                doc.set_item(intern!(py, "tags"), PyList::new(py, tags)?)?;
            }
        }
        let mut related_users: Vec<&str> = Vec::new();
        for who in [&user_name, &acct, &audit_name, &effective_name]
            .into_iter()
            .flatten()
        {
            let who = text(who)?;
            if !who.is_empty() {
                related_users.push(who);
            }
        }
        if !related_users.is_empty() {
            let related = PyDict::new(py);
            if related_users.len() == 1 {
                related.set_item(intern!(py, "user"), PyList::new(py, related_users)?)?;
            } else {
                let sorted: BTreeSet<&str> = related_users.into_iter().collect();
                related.set_item(intern!(py, "user"), PyList::new(py, sorted)?)?;
            }
            doc.set_item(intern!(py, "related"), related)?;
        }
        if !related_ips.is_empty() {
            let mut ips: Vec<String> = Vec::with_capacity(related_ips.len());
            for ip in &related_ips {
                ips.push(text(ip)?.to_owned());
            }
            let sorted: BTreeSet<String> = ips.into_iter().collect();
            let related = match get(&doc, intern!(py, "related"))? {
                Some(related) => related.cast_into::<PyDict>().map_err(PyErr::from)?,
                None => {
                    let related = PyDict::new(py);
                    doc.set_item(intern!(py, "related"), &related)?;
                    related
                }
            };
            related.set_item(intern!(py, "ip"), PyList::new(py, sorted)?)?;
        }
        let message = self.message(
            py,
            has_execve,
            other_or_empty,
            sc_or_empty,
            &action,
            &process,
            &command_line,
        )?;
        doc.set_item(intern!(py, "message"), message)?;
        Ok(doc)
    }

    /// `_message`.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        py: Python<'_>,
        has_execve: bool,
        other: &Bound<'_, PyDict>,
        syscall: &Bound<'_, PyDict>,
        action: &Bound<'_, PyAny>,
        process: &Bound<'_, PyDict>,
        command_line: &str,
    ) -> R<String> {
        if has_execve && !command_line.is_empty() {
            return Ok(format!("execve: {command_line}"));
        }
        let mut message = text(action)?.to_owned();
        let mut add = |prefix: &str, value: &str| {
            if !value.is_empty() {
                message.push(' ');
                message.push_str(prefix);
                message.push_str(value);
            }
        };
        if !other.is_empty() {
            for (key, prefix) in [
                (intern!(py, "op"), ""),
                (intern!(py, "acct"), "acct="),
                (intern!(py, "cmd"), "cmd="),
            ] {
                if let Some(value) = get(other, key)? {
                    add(prefix, text(&value)?);
                }
            }
        }
        if let Some(exe) = get(process, intern!(py, "executable"))? {
            add("exe=", text(&exe)?);
        }
        let res = match get(other, intern!(py, "res"))? {
            Some(res) if !text(&res)?.is_empty() => Some(res),
            _ => get(syscall, intern!(py, "success"))?,
        };
        if let Some(res) = res {
            add("res=", text(&res)?);
        }
        Ok(message)
    }
}

/// `a<N>[<K>]` after the `a`: `N` and `K` of 1 to 9 ASCII digits each (`_ARG_RE`), or None.
fn split_arg_piece(number: &str) -> Option<(&str, Option<&str>)> {
    let open = number.find('[')?;
    let (index, rest) = number.split_at(open);
    let piece = rest.strip_prefix('[')?.strip_suffix(']')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(index) && digits(piece)).then_some((index, Some(piece)))
}
