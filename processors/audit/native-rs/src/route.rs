//! The route stage's packing of raw audit records.
//!
//! `pack_audit_records` does for raw-text records what `streams.serde` does with `decode_value`,
//! `audit_event_key` and `encode_internal` (and the worker with `_packs`): split each value into lines,
//! find the host and serial of each line's audit header, group the lines by host in order, and write the
//! internal frames byte for byte as `encode_internal` writes them. A record whose value is a JSON object
//! is for `decode_value` to read, so the function then returns `None` and the Python path routes the
//! whole batch. A differential test holds the two to the same bytes.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::HashMap;

/// `bytes.isspace()` of one byte (and the `\s` of a bytes regex).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The end of a header token: whitespace, or the ENRICHED separator `\x1d`.
fn is_field_end(b: u8) -> bool {
    is_space(b) || b == 0x1d
}

/// The run of ASCII digits at the start of `text` when its length is in `1..=max`, and what follows it.
fn digits(text: &[u8], max: usize) -> Option<(&[u8], &[u8])> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=max).contains(&len).then(|| text.split_at(len))
}

/// `processors.audit.header.event_key` at the start of `line`: the `node=` value (if any) and the serial
/// digits. `header.py` defines the rule, which this mirrors:
/// `[ \t]*(?:node=([^\s\x1d]+) )?type=[^\s\x1d]+ msg=audit\(([0-9]{1,12})\.[0-9]{1,9}:([0-9]{1,20})\)` with the seconds
/// before `MAX_EPOCH` and the serial within 64 bits. No run of non-space bytes can end in a space, so the
/// pattern never needs to backtrack.
fn audit_head(line: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let start = line
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let mut rest = &line[start..];
    let mut node = None;
    if let Some(after) = rest.strip_prefix(b"node=") {
        let len = after.iter().take_while(|b| !is_field_end(**b)).count();
        if len > 0 && after.get(len) == Some(&b' ') {
            node = Some(&after[..len]);
            rest = &after[len + 1..];
        }
    }
    let after = rest.strip_prefix(b"type=")?;
    let len = after.iter().take_while(|b| !is_field_end(**b)).count();
    if len == 0 {
        return None;
    }
    let rest = after[len..].strip_prefix(b" msg=audit(")?;
    let (seconds, rest) = digits(rest, 12)?;
    let (_, rest) = digits(rest.strip_prefix(b".")?, 9)?;
    let (serial, rest) = digits(rest.strip_prefix(b":")?, 20)?;
    let in_range = ascii_number(seconds).is_some_and(|value| value < MAX_EPOCH)
        && ascii_number(serial).is_some();
    (rest.starts_with(b")") && in_range).then_some((node, serial))
}

/// `header.MAX_EPOCH`: 10000-01-01T00:00:00Z.
const MAX_EPOCH: u64 = 253_402_300_800;

/// ASCII digits as a u64; None when they do not fit (`header.MAX_SERIAL` is `u64::MAX`).
fn ascii_number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The decimal text of `int(serial)`: no leading zeros. Serials compare by (length, text) from here.
fn normalise(serial: &[u8]) -> &[u8] {
    let zeros = serial.iter().take_while(|b| **b == b'0').count();
    if zeros == serial.len() {
        b"0"
    } else {
        &serial[zeros..]
    }
}

/// `text` as a JSON string, escaped as orjson escapes it.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// The source of one record: its topic (as JSON), partition, offset, envelope host (as JSON or `null`),
/// and whether its value held more than one line (each line's source then carries its index).
struct Source {
    topic: usize,
    partition: i64,
    offset: i64,
    host: usize,
    many: bool,
}

/// One line: its bytes, its record's source, its index in the record, and its serial (`int(serial)`
/// digits; empty when the line has no audit header).
struct Line<'a> {
    data: &'a [u8],
    source: usize,
    index: usize,
    serial: &'a [u8],
}

/// The frames of one host's lines, as `encode_internal` makes them, at most `pack_bytes` of lines each.
fn frames(
    lines: &[Line],
    sources: &[Source],
    texts: &[Vec<u8>],
    host: &str,
    pack_bytes: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, line) in lines.iter().enumerate() {
        size += line.data.len() + 64;
        if size > pack_bytes && i > start {
            out.push(frame(&lines[start..i], sources, texts, host));
            start = i;
            size = line.data.len() + 64;
        }
    }
    out.push(frame(&lines[start..], sources, texts, host));
    out
}

fn frame(lines: &[Line], sources: &[Source], texts: &[Vec<u8>], host: &str) -> Vec<u8> {
    let body: usize = lines.iter().map(|line| line.data.len() + 1).sum();
    let mut out = Vec::with_capacity(body + lines.len() * 64 + 64);
    out.extend_from_slice(b"{\"s\":[");
    for (i, line) in lines.iter().enumerate() {
        let source = &sources[line.source];
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"topic\":");
        out.extend_from_slice(&texts[source.topic]);
        out.extend_from_slice(
            format!(
                ",\"partition\":{},\"offset\":{}",
                source.partition, source.offset
            )
            .as_bytes(),
        );
        if source.many {
            out.extend_from_slice(format!(",\"line\":{}", line.index).as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"h\":[");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&texts[sources[line.source].host]);
    }
    out.push(b']');
    // The distinct serials of these lines (every key of a host's lines names that host), in number order.
    let mut serials: Vec<&[u8]> = lines
        .iter()
        .filter(|line| !line.serial.is_empty())
        .map(|line| line.serial)
        .collect();
    serials.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    serials.dedup();
    if !serials.is_empty() {
        out.extend_from_slice(b",\"k\":[");
        for (i, serial) in serials.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            push_json_str(&mut out, host);
            out.extend_from_slice(b",\"");
            out.extend_from_slice(serial);
            out.extend_from_slice(b"\"]");
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}\n");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line.data);
    }
    out
}

/// Text of `bytes` as `bytes.decode("utf-8", "replace")` gives it.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(host, frame value)` pairs.
type Frames<'py> = Vec<(String, Bound<'py, PyBytes>)>;

/// Split, key and pack raw audit records by host: `[(host, frame value), ...]` in order of each host's
/// first line, or `None` when a record is not raw text (a JSON envelope, or a value that is not bytes).
///
/// Each record needs `topic`, `partition`, `offset`, `key` and `value` attributes, as aiokafka's do.
#[pyfunction]
#[pyo3(signature = (records, default_host, pack_bytes))]
pub fn pack_audit_records<'py>(
    py: Python<'py>,
    records: Vec<Bound<'py, PyAny>>,
    default_host: &str,
    pack_bytes: usize,
) -> PyResult<Option<Frames<'py>>> {
    let mut values: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(records.len());
    // JSON texts of topics and envelope hosts, shared by the records that have them (0: `null`).
    let mut texts: Vec<Vec<u8>> = vec![b"null".to_vec()];
    let mut topic_slots: HashMap<String, usize> = HashMap::new();
    let mut key_slots: HashMap<Vec<u8>, (usize, String)> = HashMap::new();
    let mut sources: Vec<Source> = Vec::with_capacity(records.len());
    let mut record_hosts: Vec<Option<String>> = Vec::with_capacity(records.len());
    for record in &records {
        let value = record.getattr("value")?;
        if value.is_none() {
            continue;
        }
        let Ok(value) = value.cast_into::<PyBytes>() else {
            return Ok(None);
        };
        let data = value.as_bytes();
        if data.is_empty() {
            continue;
        }
        if data.iter().find(|b| !is_space(**b)) == Some(&b'{') {
            return Ok(None); // a JSON envelope: decode_value reads it
        }
        let topic: String = record.getattr("topic")?.extract()?;
        let topic = *topic_slots.entry(topic).or_insert_with_key(|topic| {
            let mut text = Vec::new();
            push_json_str(&mut text, topic);
            texts.push(text);
            texts.len() - 1
        });
        let key = record.getattr("key")?;
        let (host, host_text) = match key.cast::<PyBytes>() {
            Ok(key) if !key.as_bytes().is_empty() => {
                let bytes = key.as_bytes();
                let (slot, text) = key_slots.entry(bytes.to_vec()).or_insert_with(|| {
                    let text = lossy(bytes);
                    let mut json = Vec::new();
                    push_json_str(&mut json, &text);
                    texts.push(json);
                    (texts.len() - 1, text)
                });
                (Some(text.clone()), *slot)
            }
            Ok(_) => (None, 0),
            Err(_) if key.is_none() => (None, 0),
            Err(_) => return Ok(None),
        };
        sources.push(Source {
            topic,
            partition: record.getattr("partition")?.extract()?,
            offset: record.getattr("offset")?.extract()?,
            host: host_text,
            many: false,
        });
        record_hosts.push(host);
        values.push(value);
    }
    let mut order: Vec<String> = Vec::new();
    let mut by_host: HashMap<String, Vec<Line>> = HashMap::new();
    for (slot, value) in values.iter().enumerate() {
        let chunks: Vec<&[u8]> = value
            .as_bytes()
            .split(|b| *b == b'\n')
            .filter(|piece| !piece.iter().all(|b| is_space(*b)))
            .map(|piece| {
                let keep = piece.len() - piece.iter().rev().take_while(|b| **b == b'\r').count();
                &piece[..keep]
            })
            .collect();
        sources[slot].many = chunks.len() > 1;
        let envelope_host = record_hosts[slot].as_deref();
        for (index, data) in chunks.into_iter().enumerate() {
            let (host, serial) = match audit_head(data) {
                Some((Some(node), serial)) => (lossy(node), normalise(serial)),
                Some((None, serial)) => (
                    envelope_host.unwrap_or(default_host).to_owned(),
                    normalise(serial),
                ),
                None => (envelope_host.unwrap_or(default_host).to_owned(), &b""[..]),
            };
            let line = Line {
                data,
                source: slot,
                index,
                serial,
            };
            match by_host.get_mut(&host) {
                Some(lines) => lines.push(line),
                None => {
                    order.push(host.clone());
                    by_host.insert(host, vec![line]);
                }
            }
        }
    }
    let mut out = Vec::new();
    for host in order {
        for value in frames(&by_host[&host], &sources, &texts, &host, pack_bytes) {
            out.push((host.clone(), PyBytes::new(py, &value)));
        }
    }
    Ok(Some(out))
}
