//! The coalescer's hot path: `processors.audit.coalesce` defines the rules and the Python API; this
//! holds its state and runs push, expire and flush.
//!
//! `CoalescerCore` is subclassed by `Coalescer` and `CoalescerBuffer` by `CoalescerState`, so that the
//! runtimes call these methods without a Python frame in between. The outputs are the Python module's
//! own classes (`AuditEvent`, made as `RecordTokenizer` makes records, and `LateRecord`), handed in when
//! the coalescer is made, as are the single-record rule and the event id.

use crate::hash::WordHasher;
use crate::slots::SlotClass;
use hashbrown::{Equivalent, HashMap};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple, PyType};
use pyo3::{intern, IntoPyObjectExt};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::BuildHasherDefault;

type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A node name as UTF-8 bytes (lone surrogates encoded as `surrogatepass` does); None without `node=`.
type NodeKey = Option<Box<[u8]>>;

/// `(node, time, serial)` of an in-flight event, the node as its index in `CoalescerBuffer::nodes`;
/// serials have up to 20 digits, more than a u64 holds.
#[derive(Clone, Hash, PartialEq, Eq)]
struct EventKey {
    node: usize,
    time: Box<[u8]>,
    serial: u128,
}

/// The same key borrowed from a record, to look events up without copying; it hashes as `EventKey`.
#[derive(Hash)]
struct EventKeyRef<'a> {
    node: usize,
    time: &'a [u8],
    serial: u128,
}

impl Equivalent<EventKey> for EventKeyRef<'_> {
    fn equivalent(&self, key: &EventKey) -> bool {
        self.serial == key.serial && self.node == key.node && *self.time == *key.time
    }
}

impl EventKeyRef<'_> {
    fn to_owned_key(&self) -> EventKey {
        EventKey {
            node: self.node,
            time: self.time.into(),
            serial: self.serial,
        }
    }
}

/// A node key borrowed from a record; it hashes as `NodeKey`.
#[derive(Hash)]
struct NodeKeyRef<'a>(Option<&'a [u8]>);

impl Equivalent<NodeKey> for NodeKeyRef<'_> {
    fn equivalent(&self, key: &NodeKey) -> bool {
        self.0 == key.as_deref()
    }
}

/// `(time, serial)` of a completed event, in its node's memory.
#[derive(Clone, Hash, PartialEq, Eq)]
struct DoneKey {
    time: Box<[u8]>,
    serial: u128,
}

#[derive(Hash)]
struct DoneKeyRef<'a> {
    time: &'a [u8],
    serial: u128,
}

impl Equivalent<DoneKey> for DoneKeyRef<'_> {
    fn equivalent(&self, key: &DoneKey) -> bool {
        self.serial == key.serial && *self.time == *key.time
    }
}

const COUNTERS: [&str; 9] = [
    "completed",
    "partial",
    "late",
    "duplicate",
    "overflow",
    "orphan_eoe",
    "lost",
    "future",
    "lineage_wait_expired",
];
const COMPLETED: usize = 0;
const PARTIAL: usize = 1;
const LATE: usize = 2;
const DUPLICATE: usize = 3;
const OVERFLOW: usize = 4;
const ORPHAN_EOE: usize = 5;
const LOST: usize = 6;
const FUTURE: usize = 7;
const LINEAGE_WAIT_EXPIRED: usize = 8;
/// A serial this far from the node's settled serial starts the count afresh (a reboot resets the kernel's
/// serial; a forged one must not add billions of lost events).
const SERIAL_RESTART: u128 = 1_000_000;
const EVENT_SLOTS: [&str; 7] = [
    "node", "time", "serial", "epoch", "records", "partial", "reason",
];

/// The UTF-8 bytes of a str, as `text.encode("utf-8", "surrogatepass")` gives them (borrowed unless the
/// text holds lone surrogates).
fn utf8<'a>(text: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    let text = text.cast::<PyString>()?;
    match text.to_str() {
        Ok(plain) => Ok(Cow::Borrowed(plain.as_bytes())),
        Err(_) => {
            let encoded =
                text.call_method1(intern!(text.py(), "encode"), ("utf-8", "surrogatepass"))?;
            Ok(Cow::Owned(encoded.extract::<Vec<u8>>()?))
        }
    }
}

fn node_bytes<'a>(node: &'a Bound<'_, PyAny>) -> PyResult<Option<Cow<'a, [u8]>>> {
    if node.is_none() {
        Ok(None)
    } else {
        Ok(Some(utf8(node)?))
    }
}

/// `(pid, ppid)` of the SYSCALL record of an exec event (one with an EXECVE record); None otherwise.
type ExecIds = Option<(Option<String>, Option<String>)>;

fn exec_ids(py: Python<'_>, records: &[Py<PyAny>]) -> PyResult<ExecIds> {
    let mut exec = false;
    let mut ids = (None, None);
    for record in records {
        let record = record.bind(py);
        let rtype = record.getattr(intern!(py, "rtype"))?;
        let rtype = rtype.cast::<PyString>()?;
        match rtype.to_str() {
            Ok("EXECVE") => exec = true,
            Ok("SYSCALL") if ids == (None, None) => {
                let fields = record.getattr(intern!(py, "fields"))?;
                let field = |name: &str| -> PyResult<Option<String>> {
                    match fields.call_method1(intern!(py, "get"), (name,))? {
                        value if value.is_none() => Ok(None),
                        value => Ok(Some(value.extract()?)),
                    }
                };
                ids = (field("pid")?, field("ppid")?);
            }
            _ => {}
        }
    }
    Ok(exec.then_some(ids))
}

/// An in-flight event: its records and what a completion needs of them.
struct Pending {
    epoch: f64,
    node: Py<PyAny>,
    time: Py<PyAny>,
    serial: Py<PyAny>,
    records: Vec<Py<PyAny>>,
    raws: Vec<Py<PyAny>>,
    last_wall: Option<f64>,
    seq: u64,
    /// A single-record type that opened the event: complete (as `single`) when the node's next record
    /// belongs to another event, unless records of its own syscall context join it first.
    held: bool,
    /// The EOE of an exec event that waits for its parent's exec event, still in flight, to go out first.
    eoe: Option<Py<PyAny>>,
    /// The parent's event it waits for (None after a restore: it then waits only for its time).
    waits_for: Option<EventKey>,
    /// Counted in `CoalescerBuffer::waiting`: complete (with `eoe`), waiting for its parent's event.
    waiting: bool,
}

/// The completed event keys of one node, oldest first, with the CRC-32 of their records.
#[derive(Default)]
struct Memory {
    order: VecDeque<DoneKey>,
    crcs: WordMap<DoneKey, Vec<u32>>,
}

/// The serials of one node, to count gaps (lost events) as go-libaudit does: a serial is settled when it
/// arrived or when one `gap_window` past it arrived; settling a serial that never arrived counts it lost.
#[derive(Default)]
struct Serials {
    /// Every serial up to this one is settled (None before the node's first serial).
    floor: Option<u128>,
    /// The serials above `floor` that arrived.
    seen: BTreeSet<u128>,
}

impl Serials {
    /// Note an event's serial; return how many serials this settled without their having arrived.
    fn note(&mut self, serial: u128, window: u128) -> i64 {
        let Some(floor) = self.floor else {
            self.floor = Some(serial);
            return 0;
        };
        if serial <= floor {
            if floor - serial > SERIAL_RESTART.max(window) {
                self.floor = Some(serial);
                self.seen.clear();
            }
            return 0;
        }
        if serial - floor > SERIAL_RESTART {
            self.floor = Some(serial);
            self.seen.clear();
            return 0;
        }
        self.seen.insert(serial);
        let mut floor = floor;
        let mut lost: u128 = 0;
        let top = *self.seen.last().expect("just inserted");
        if top - floor > window {
            let settled = top - window;
            let arrived = self.seen.range(..=settled).count() as u128;
            lost = settled - floor - arrived;
            self.seen = self.seen.split_off(&(settled + 1));
            floor = settled;
        }
        while self.seen.first() == Some(&(floor + 1)) {
            self.seen.pop_first();
            floor += 1;
        }
        self.floor = Some(floor);
        i64::try_from(lost).unwrap_or(i64::MAX)
    }
}

/// What the state knows of one node: its max event time and its completed-event memory.
struct Node {
    key: NodeKey,
    name: Py<PyAny>,
    /// None until a record with a positive event time (as a missing entry of `node_max` reads 0.0).
    max: Option<f64>,
    /// None until the node's first event completes.
    memory: Option<Memory>,
    /// The held single-record event of this node (see `Pending::held`).
    held: Option<EventKey>,
    serials: Serials,
}

/// The coalescer state (see `CoalescerState` in Python).
#[pyclass(subclass, module = "secstream_audit_native")]
#[derive(Default)]
pub struct CoalescerBuffer {
    in_flight: WordMap<EventKey, Pending>,
    /// Arrival order of the in-flight events (overflow drops the oldest; ties sort by arrival).
    order: BTreeMap<u64, EventKey>,
    next_seq: u64,
    /// The nodes, in order of first sight (a state usually serves one host; the batch API's, many).
    nodes: Vec<Node>,
    node_ids: WordMap<NodeKey, usize>,
    /// The node of the last record: records of one host come in runs.
    last_node: usize,
    /// Node indices in the order their max event time was first set, then their first completion.
    max_order: Vec<usize>,
    done_order: Vec<usize>,
    wall_now: Option<f64>,
    counters: [i64; COUNTERS.len()],
    /// A lower bound of the in-flight events' times (None: unknown), so that `expire` can return at once.
    earliest_epoch: Option<f64>,
    latest_epoch: f64,
    /// How many in-flight events wait for their parent's (see `Pending::eoe`).
    waiting: usize,
}

impl CoalescerBuffer {
    fn node_index(&mut self, key: Option<&[u8]>, name: &Bound<'_, PyAny>) -> usize {
        if self
            .nodes
            .get(self.last_node)
            .is_some_and(|node| node.key.as_deref() == key)
        {
            return self.last_node;
        }
        let index = match self.node_ids.get(&NodeKeyRef(key)) {
            Some(&index) => index,
            None => {
                let key: NodeKey = key.map(Into::into);
                self.node_ids.insert(key.clone(), self.nodes.len());
                self.nodes.push(Node {
                    key,
                    name: name.clone().unbind(),
                    max: None,
                    memory: None,
                    held: None,
                    serials: Serials::default(),
                });
                self.nodes.len() - 1
            }
        };
        self.last_node = index;
        index
    }

    fn insert(&mut self, key: EventKey, mut pending: Pending) {
        pending.seq = self.next_seq;
        self.order.insert(self.next_seq, key.clone());
        self.next_seq += 1;
        self.in_flight.insert(key, pending);
    }

    fn remove<Q: std::hash::Hash + Equivalent<EventKey>>(
        &mut self,
        key: &Q,
    ) -> Option<(EventKey, Pending)> {
        let (key, pending) = self.in_flight.remove_entry(key)?;
        self.order.remove(&pending.seq);
        Some((key, pending))
    }
}

/// `mapping.get(key)`, None when missing or None.
fn get_optional<'py>(
    mapping: &Bound<'py, PyAny>,
    key: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let item = mapping.call_method1(intern!(mapping.py(), "get"), (key,))?;
    Ok((!item.is_none()).then_some(item))
}

fn py_int<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<pyo3::types::PyInt>().call1((value,))
}

#[pymethods]
impl CoalescerBuffer {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self::default()
    }

    /// completed, partial, late, duplicate, overflow, orphan_eoe (a new dict).
    #[getter]
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let counters = PyDict::new(py);
        for (name, value) in COUNTERS.iter().zip(self.counters) {
            counters.set_item(name, value)?;
        }
        Ok(counters)
    }

    /// The in-flight events, oldest first: `(node, time, serial)` → records (a new dict).
    #[getter]
    fn in_flight<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for key in self.order.values() {
            let pending = &self.in_flight[key];
            let records = PyList::new(py, pending.records.iter().map(|record| record.bind(py)))?;
            out.set_item(
                (
                    pending.node.bind(py),
                    pending.time.bind(py),
                    pending.serial.bind(py),
                ),
                records,
            )?;
        }
        Ok(out)
    }

    /// Per node, the remembered completed events `(time, serial)`, oldest first (a new dict).
    #[getter]
    fn done<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for &index in &self.done_order {
            let node = &self.nodes[index];
            let keys = PyList::empty(py);
            for key in &node.memory.as_ref().expect("completed").order {
                keys.append((
                    PyString::new(py, &String::from_utf8_lossy(&key.time)),
                    key.serial,
                ))?;
            }
            out.set_item(node.name.bind(py), keys)?;
        }
        Ok(out)
    }

    /// The last wall-clock time handed in.
    #[getter]
    fn wall_now(&self) -> Option<f64> {
        self.wall_now
    }

    /// Return a plain, orjson-ready copy of the state (records are kept as raw lines).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let in_flight = PyList::empty(py);
        for key in self.order.values() {
            let pending = &self.in_flight[key];
            let item = PyDict::new(py);
            item.set_item("node", pending.node.bind(py))?;
            item.set_item("time", pending.time.bind(py))?;
            item.set_item("serial", pending.serial.bind(py))?;
            item.set_item("epoch", pending.epoch)?;
            item.set_item("last_wall", pending.last_wall)?;
            if pending.held {
                item.set_item("held", true)?;
            }
            if let Some(eoe) = &pending.eoe {
                item.set_item("eoe", eoe.bind(py))?;
            }
            item.set_item(
                "records",
                PyList::new(py, pending.raws.iter().map(|raw| raw.bind(py)))?,
            )?;
            in_flight.append(item)?;
        }
        let done = PyList::empty(py);
        for &index in &self.done_order {
            let node = &self.nodes[index];
            let events = PyList::empty(py);
            let memory = node.memory.as_ref().expect("completed");
            for key in &memory.order {
                let mut crcs = memory.crcs[key].clone();
                crcs.sort_unstable();
                let time = PyString::new(py, &String::from_utf8_lossy(&key.time)).into_any();
                let serial = key.serial.into_pyobject(py)?.into_any();
                events.append(PyList::new(
                    py,
                    [time, serial, PyList::new(py, crcs)?.into_any()],
                )?)?;
            }
            let item = PyDict::new(py);
            item.set_item("node", node.name.bind(py))?;
            item.set_item("events", events)?;
            done.append(item)?;
        }
        let node_max = PyList::empty(py);
        for &index in &self.max_order {
            let node = &self.nodes[index];
            let max = PyFloat::new(py, node.max.unwrap_or(0.0)).into_any();
            node_max.append(PyList::new(py, [node.name.bind(py).clone(), max])?)?;
        }
        let out = PyDict::new(py);
        out.set_item("in_flight", in_flight)?;
        out.set_item("done", done)?;
        out.set_item("node_max", node_max)?;
        out.set_item("wall_now", self.wall_now)?;
        out.set_item("counters", self.counters(py)?)?;
        Ok(out)
    }

    /// Load a `snapshot()` into this (new) state; `parse` turns a raw line back into its record.
    fn restore(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        parse: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Some(items) = get_optional(data, "in_flight")? {
            for item in items.try_iter()? {
                let item = item?;
                let node = item.get_item("node")?;
                let time = item.get_item("time")?;
                let serial = py_int(py, &item.get_item("serial")?)?;
                let key = EventKey {
                    node: self.node_index(node_bytes(&node)?.as_deref(), &node),
                    time: utf8(&time)?.into_owned().into_boxed_slice(),
                    serial: serial.extract()?,
                };
                let mut pending = Pending {
                    epoch: item.get_item("epoch")?.extract()?,
                    node: node.clone().unbind(),
                    time: time.clone().unbind(),
                    serial: serial.unbind(),
                    records: Vec::new(),
                    raws: Vec::new(),
                    last_wall: get_optional(&item, "last_wall")?
                        .map(|wall| wall.extract())
                        .transpose()?,
                    seq: 0,
                    held: get_optional(&item, "held")?
                        .is_some_and(|held| held.is_truthy().unwrap_or(false)),
                    eoe: get_optional(&item, "eoe")?.map(Bound::unbind),
                    waits_for: None,
                    waiting: false,
                };
                if pending.eoe.is_some() {
                    pending.waiting = true;
                    self.waiting += 1;
                }
                if pending.held {
                    self.nodes[key.node].held = Some(key.clone());
                }
                for raw in item.get_item("records")?.try_iter()? {
                    let raw = raw?;
                    pending.records.push(parse.call1((&raw,))?.unbind());
                    pending.raws.push(raw.unbind());
                }
                self.insert(key, pending);
            }
        }
        if let Some(items) = get_optional(data, "done")? {
            for item in items.try_iter()? {
                let item = item?;
                let name = item.get_item("node")?;
                let index = self.node_index(node_bytes(&name)?.as_deref(), &name);
                let mut memory = Memory::default();
                for event in item.get_item("events")?.try_iter()? {
                    let event = event?;
                    let time = event.get_item(0)?;
                    let key = DoneKey {
                        time: utf8(&time)?.into_owned().into_boxed_slice(),
                        serial: py_int(py, &event.get_item(1)?)?.extract()?,
                    };
                    if memory
                        .crcs
                        .insert(key.clone(), event.get_item(2)?.extract()?)
                        .is_none()
                    {
                        memory.order.push_back(key);
                    }
                }
                self.nodes[index].memory = Some(memory);
                self.done_order.push(index);
            }
        }
        if let Some(items) = get_optional(data, "node_max")? {
            for item in items.try_iter()? {
                let item = item?;
                let name = item.get_item(0)?;
                let index = self.node_index(node_bytes(&name)?.as_deref(), &name);
                self.nodes[index].max = Some(item.get_item(1)?.extract()?);
                self.max_order.push(index);
            }
        }
        self.latest_epoch = self
            .nodes
            .iter()
            .filter_map(|node| node.max)
            .fold(0.0, f64::max);
        if let Some(wall_now) = get_optional(data, "wall_now")? {
            self.wall_now = Some(wall_now.extract()?);
        }
        if let Some(counters) = get_optional(data, "counters")? {
            for (index, name) in COUNTERS.iter().enumerate() {
                if let Ok(value) = counters.get_item(name) {
                    self.counters[index] = py_int(py, &value)?.extract()?;
                }
            }
        }
        Ok(())
    }
}

/// The coalescer's rules (see `Coalescer` in Python): settings and the classes it makes.
#[pyclass(subclass, module = "secstream_audit_native")]
pub struct CoalescerCore {
    max_in_flight: usize,
    done_memory: usize,
    event_timeout_s: f64,
    idle_flush_s: f64,
    max_ahead_s: f64,
    gap_window: u128,
    lineage_wait_s: f64,
    event_class: SlotClass,
    late_class: Py<PyAny>,
    event_id: Py<PyAny>,
    orphan_error: Py<PyAny>,
    future_error: Py<PyAny>,
    is_single: Py<PyAny>,
    /// Record type → single-record, as `is_single` answered (bounded: hostile input has any types).
    single: WordMap<Box<[u8]>, bool>,
}

const MAX_CACHED_TYPES: usize = 4096;

impl CoalescerCore {
    fn is_single(&mut self, rtype: &Bound<'_, PyAny>) -> PyResult<bool> {
        let text = utf8(rtype)?;
        if let Some(&single) = self.single.get(&*text) {
            return Ok(single);
        }
        let single = self
            .is_single
            .bind(rtype.py())
            .call1((rtype,))?
            .is_truthy()?;
        if self.single.len() < MAX_CACHED_TYPES {
            self.single
                .insert(text.into_owned().into_boxed_slice(), single);
        }
        Ok(single)
    }

    /// An error of `class` for a record: `class(message, raw=raw, host=node)`.
    fn error(
        &self,
        py: Python<'_>,
        class: &Py<PyAny>,
        message: String,
        raw: &Bound<'_, PyAny>,
        node: &Bound<'_, PyAny>,
    ) -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("raw", raw)?;
        kwargs.set_item("host", node)?;
        let error = class.bind(py).call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(error))
    }

    /// Remember a completed event, count it and make its `AuditEvent`.
    #[allow(clippy::too_many_arguments)]
    fn complete<'py>(
        &self,
        py: Python<'py>,
        state: &mut CoalescerBuffer,
        key: &EventKey,
        pending: Pending,
        partial: bool,
        reason: &'static str,
        eoe_raw: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut crcs: Vec<u32> = Vec::with_capacity(pending.raws.len() + 1);
        for raw in &pending.raws {
            let crc = crc32fast::hash(&utf8(raw.bind(py))?);
            if !crcs.contains(&crc) {
                crcs.push(crc);
            }
        }
        if let Some(raw) = eoe_raw {
            crcs.push(crc32fast::hash(&utf8(raw)?));
        }
        let node = &mut state.nodes[key.node];
        if node.memory.is_none() {
            node.memory = Some(Memory::default());
            state.done_order.push(key.node);
        }
        let memory = node.memory.as_mut().expect("just set");
        let done_key = DoneKey {
            time: key.time.clone(),
            serial: key.serial,
        };
        if memory.crcs.insert(done_key.clone(), crcs).is_none() {
            memory.order.push_back(done_key);
        }
        if memory.order.len() > self.done_memory {
            if let Some(oldest) = memory.order.pop_front() {
                memory.crcs.remove(&oldest);
            }
        }
        state.counters[COMPLETED] += 1;
        if partial {
            state.counters[PARTIAL] += 1;
        }
        let records = PyTuple::new(py, pending.records.iter().map(|record| record.bind(py)))?;
        let values: [Bound<'py, PyAny>; 7] = [
            pending.node.into_bound(py),
            pending.time.into_bound(py),
            pending.serial.into_bound(py),
            PyFloat::new(py, pending.epoch).into_any(),
            records.into_any(),
            partial.into_bound_py_any(py)?,
            PyString::intern(py, reason).into_any(),
        ];
        self.event_class.make(py, &values)
    }

    /// Complete an event into `out`, then the exec events that waited for it (and theirs, in turn).
    #[allow(clippy::too_many_arguments)]
    fn emit<'py>(
        &self,
        py: Python<'py>,
        state: &mut CoalescerBuffer,
        key: EventKey,
        pending: Pending,
        partial: bool,
        reason: &'static str,
        out: &Bound<'py, PyList>,
    ) -> PyResult<()> {
        let mut queue = vec![(key, pending, partial, reason)];
        while let Some((key, mut pending, partial, reason)) = queue.pop() {
            let eoe = pending.eoe.take();
            if pending.waiting {
                state.waiting -= 1;
            }
            let eoe = eoe.as_ref().map(|raw| raw.bind(py));
            out.append(self.complete(py, state, &key, pending, partial, reason, eoe)?)?;
            if state.waiting == 0 {
                continue;
            }
            let mut waiters: Vec<(u64, EventKey)> = state
                .in_flight
                .iter()
                .filter(|(_, waiter)| waiter.waits_for.as_ref() == Some(&key))
                .map(|(waiter_key, waiter)| (waiter.seq, waiter_key.clone()))
                .collect();
            // the queue pops from the end: the earliest waiter goes out first
            waiters.sort_unstable_by_key(|waiter| std::cmp::Reverse(waiter.0));
            for (_, waiter_key) in waiters {
                if let Some((waiter_key, waiter)) = state.remove(&waiter_key) {
                    queue.push((waiter_key, waiter, false, "eoe"));
                }
            }
        }
        Ok(())
    }

    /// The in-flight exec event of the same node whose process is the parent of this exec event's
    /// process (its SYSCALL `pid` is this one's `ppid`), if any: the child then waits for it.
    fn open_parent(
        &self,
        py: Python<'_>,
        state: &CoalescerBuffer,
        key: &EventKey,
        pending: &Pending,
    ) -> PyResult<Option<EventKey>> {
        let Some((_, Some(ppid))) = exec_ids(py, &pending.records)? else {
            return Ok(None);
        };
        for (other_key, other) in &state.in_flight {
            if other_key.node != key.node || other_key == key || other.epoch > pending.epoch {
                continue;
            }
            if let Some((Some(pid), _)) = exec_ids(py, &other.records)? {
                if pid == ppid {
                    return Ok(Some(other_key.clone()));
                }
            }
        }
        Ok(None)
    }

    /// Complete the given in-flight events, ordered by event time and serial (ties: arrival order).
    fn complete_all<'py>(
        &self,
        py: Python<'py>,
        state: &mut CoalescerBuffer,
        due: Vec<(EventKey, &'static str)>,
    ) -> PyResult<Bound<'py, PyList>> {
        let rank = |key: &EventKey| {
            let pending = &state.in_flight[key];
            (pending.epoch, key.serial, pending.seq)
        };
        let mut ranked: Vec<_> = due
            .into_iter()
            .map(|(key, reason)| (rank(&key), key, reason))
            .collect();
        ranked.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let out = PyList::empty(py);
        for (_, key, reason) in ranked {
            if let Some((key, pending)) = state.remove(&key) {
                if state.nodes[key.node].held.as_ref() == Some(&key) {
                    state.nodes[key.node].held = None;
                }
                let (partial, reason) = if pending.held {
                    (false, "single")
                } else if pending.waiting {
                    // its parent's event did not go out within lineage_wait_s
                    state.counters[LINEAGE_WAIT_EXPIRED] += 1;
                    (false, "eoe")
                } else {
                    (true, reason)
                };
                self.emit(py, state, key, pending, partial, reason, &out)?;
            }
        }
        Ok(out)
    }
}

#[pymethods]
impl CoalescerCore {
    #[new]
    #[pyo3(signature = (settings, event_class, late_class, event_id, orphan_error, future_error, is_single, *_args, **_kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        settings: &Bound<'_, PyAny>,
        event_class: Bound<'_, PyType>,
        late_class: Bound<'_, PyAny>,
        event_id: Bound<'_, PyAny>,
        orphan_error: Bound<'_, PyAny>,
        future_error: Bound<'_, PyAny>,
        is_single: Bound<'_, PyAny>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Ok(CoalescerCore {
            max_in_flight: settings.getattr("max_in_flight")?.extract()?,
            done_memory: settings.getattr("done_memory")?.extract()?,
            event_timeout_s: settings.getattr("event_timeout_s")?.extract()?,
            idle_flush_s: settings.getattr("idle_flush_s")?.extract()?,
            max_ahead_s: settings.getattr("max_ahead_s")?.extract()?,
            gap_window: settings.getattr("gap_window")?.extract()?,
            lineage_wait_s: settings.getattr("lineage_wait_s")?.extract()?,
            event_class: SlotClass::bind(py, &event_class, &EVENT_SLOTS)?,
            late_class: late_class.unbind(),
            event_id: event_id.unbind(),
            orphan_error: orphan_error.unbind(),
            future_error: future_error.unbind(),
            is_single: is_single.unbind(),
            single: WordMap::default(),
        })
    }

    /// Add one record; return the events it completed (EOE, a held single-record event of its node,
    /// overflow) or a late record.
    #[pyo3(signature = (record, state, *, wall_time = None))]
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        record: &Bound<'py, PyAny>,
        state: &Bound<'py, CoalescerBuffer>,
        wall_time: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut guard = state.borrow_mut();
        let state = &mut *guard;
        let node = record.getattr(intern!(py, "node"))?;
        let time = record.getattr(intern!(py, "time"))?;
        let serial = record.getattr(intern!(py, "serial"))?;
        let epoch: f64 = record.getattr(intern!(py, "epoch"))?.extract()?;
        let rtype = record.getattr(intern!(py, "rtype"))?;
        let raw = record.getattr(intern!(py, "raw"))?;
        if let Some(wall) = wall_time.filter(|wall| *wall > 0.0) {
            if epoch > wall + self.max_ahead_s {
                // A record dated ahead of its receive time would move the node's clock and time out every
                // later event: it is refused, counted, and leaves the state as it was.
                state.counters[FUTURE] += 1;
                let message = format!(
                    "audit event time {epoch} is more than {} s after the time it was received ({wall})",
                    self.max_ahead_s
                );
                return Err(self.error(py, &self.future_error, message, &raw, &node)?);
            }
        }
        if wall_time.is_some() {
            state.wall_now = wall_time;
        }
        let index = state.node_index(node_bytes(&node)?.as_deref(), &node);
        let time_text = utf8(&time)?;
        let key = EventKeyRef {
            node: index,
            time: &time_text,
            serial: serial.extract()?,
        };
        if epoch > state.nodes[index].max.unwrap_or(0.0) {
            if state.nodes[index].max.is_none() {
                state.max_order.push(index);
            }
            state.nodes[index].max = Some(epoch);
            if epoch > state.latest_epoch {
                state.latest_epoch = epoch;
            }
        }
        let is_eoe = rtype
            .cast::<PyString>()?
            .to_str()
            .is_ok_and(|text| text == "EOE");
        let done_key = DoneKeyRef {
            time: key.time,
            serial: key.serial,
        };
        if is_eoe
            && !state.in_flight.contains_key(&key)
            && !state.nodes[index]
                .memory
                .as_ref()
                .is_some_and(|memory| memory.crcs.contains_key(&done_key))
        {
            state.counters[ORPHAN_EOE] += 1;
            let message = format!("EOE for event {time}:{serial} that is not in flight");
            return Err(self.error(py, &self.orphan_error, message, &raw, &node)?);
        }
        let out = PyList::empty(py);
        let held_other = state.nodes[index]
            .held
            .as_ref()
            .is_some_and(|held| !key.equivalent(held));
        if held_other {
            let held = state.nodes[index].held.take().expect("held");
            if let Some((held, pending)) = state.remove(&held) {
                self.emit(py, state, held, pending, false, "single", &out)?;
            }
        }
        if is_eoe {
            if let Some((owned, mut pending)) = state.remove(&key) {
                state.nodes[index].held = None;
                if pending.eoe.is_some() {
                    // a second EOE of an event that waits for its parent's
                    state.counters[DUPLICATE] += 1;
                    state.insert(owned, pending);
                    return Ok(out);
                }
                pending.eoe = Some(raw.unbind());
                let parent = if self.lineage_wait_s > 0.0 {
                    self.open_parent(py, state, &owned, &pending)?
                } else {
                    None
                };
                if parent.is_some() {
                    // The parent's exec event is still open: this exec goes out right after it (or when
                    // lineage_wait_s of event time has passed), so that the process tree knows its parent.
                    pending.waits_for = parent;
                    pending.waiting = true;
                    state.waiting += 1;
                    state.insert(owned, pending);
                    return Ok(out);
                }
                self.emit(py, state, owned, pending, false, "eoe", &out)?;
                return Ok(out);
            }
        } else if let Some(pending) = state.in_flight.get_mut(&key) {
            for seen in &pending.raws {
                if seen.bind(py).eq(&raw)? {
                    state.counters[DUPLICATE] += 1;
                    return Ok(out);
                }
            }
            pending.records.push(record.clone().unbind());
            pending.raws.push(raw.unbind());
            pending.last_wall = state.wall_now;
            // Records of its syscall context joined a held single-record event: it now waits for its EOE.
            pending.held = false;
            state.nodes[index].held = None;
            return Ok(out);
        }
        if let Some(memory) = state.nodes[index].memory.as_mut() {
            if let Some(crcs) = memory.crcs.get_mut(&done_key) {
                let crc = crc32fast::hash(&utf8(&raw)?);
                if crcs.contains(&crc) {
                    state.counters[DUPLICATE] += 1;
                    return Ok(out);
                }
                crcs.push(crc);
                state.counters[LATE] += 1;
                let event_id = self.event_id.bind(py).call1((&node, &time, &serial))?;
                out.append(self.late_class.bind(py).call1((record, event_id))?)?;
                return Ok(out);
            }
        }
        // auditd numbers its own DAEMON_* records apart from the kernel's serials.
        let daemon = utf8(&rtype)?.starts_with(b"DAEMON_");
        if !daemon {
            let lost = state.nodes[index].serials.note(key.serial, self.gap_window);
            state.counters[LOST] = state.counters[LOST].saturating_add(lost);
        }
        let owned = key.to_owned_key();
        let held = self.is_single(&rtype)?;
        let pending = Pending {
            epoch,
            node: node.clone().unbind(),
            time: time.clone().unbind(),
            serial: serial.unbind(),
            records: vec![record.clone().unbind()],
            raws: vec![raw.unbind()],
            last_wall: state.wall_now,
            seq: 0,
            held,
            eoe: None,
            waits_for: None,
            waiting: false,
        };
        if held {
            state.nodes[index].held = Some(owned.clone());
        }
        state.insert(owned, pending);
        if let Some(earliest) = state.earliest_epoch {
            if epoch < earliest {
                state.earliest_epoch = Some(epoch);
            }
        }
        if state.in_flight.len() > self.max_in_flight {
            let oldest = state.order.values().next().cloned().expect("in flight");
            let (oldest, pending) = state.remove(&oldest).expect("in flight");
            if state.nodes[oldest.node].held.as_ref() == Some(&oldest) {
                state.nodes[oldest.node].held = None;
            }
            let (partial, reason) = if pending.held {
                (false, "single")
            } else if pending.waiting {
                state.counters[LINEAGE_WAIT_EXPIRED] += 1;
                (false, "eoe")
            } else {
                state.counters[OVERFLOW] += 1;
                (true, "overflow")
            };
            self.emit(py, state, oldest, pending, partial, reason, &out)?;
        }
        Ok(out)
    }

    /// Complete the in-flight events that timed out (event time) or went idle (wall clock), and on a wall
    /// clock tick the held single-record events.
    #[pyo3(signature = (state, *, event_time = None, wall_time = None))]
    fn expire<'py>(
        &self,
        py: Python<'py>,
        state: &Bound<'py, CoalescerBuffer>,
        event_time: Option<f64>,
        wall_time: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut guard = state.borrow_mut();
        let state = &mut *guard;
        let timeout = self.event_timeout_s;
        if wall_time.is_some() {
            state.wall_now = wall_time;
        } else if let Some(earliest) = state.earliest_epoch {
            // Called after every record: return at once unless some in-flight event can be due.
            let latest = event_time.map_or(state.latest_epoch, |time| state.latest_epoch.max(time));
            let window = if state.waiting > 0 {
                timeout.min(self.lineage_wait_s)
            } else {
                timeout
            };
            if latest - earliest <= window {
                return Ok(PyList::empty(py));
            }
        }
        let mut due: Vec<(EventKey, &'static str)> = Vec::new();
        for key in state.order.values() {
            let pending = &state.in_flight[key];
            let mut now = state.nodes[key.node].max.unwrap_or(0.0);
            if let Some(time) = event_time {
                if time > now {
                    now = time;
                }
            }
            if pending.waiting {
                let idle = matches!((wall_time, pending.last_wall), (Some(wall), Some(last)) if wall - last > self.idle_flush_s);
                if now - pending.epoch > self.lineage_wait_s || idle {
                    due.push((key.clone(), "eoe"));
                }
            } else if pending.held && wall_time.is_some() {
                // A held single-record event waits for its node's next record only while records flow.
                due.push((key.clone(), "single"));
            } else if now - pending.epoch > timeout {
                due.push((key.clone(), "timeout"));
            } else if let (Some(wall), Some(last)) = (wall_time, pending.last_wall) {
                if wall - last > self.idle_flush_s {
                    due.push((key.clone(), "idle"));
                }
            }
        }
        let out = self.complete_all(py, state, due)?;
        let earliest = state
            .in_flight
            .values()
            .map(|pending| pending.epoch)
            .fold(f64::INFINITY, f64::min);
        state.earliest_epoch = Some(earliest);
        Ok(out)
    }

    /// Complete every in-flight event (shutdown), ordered by event time and serial.
    fn flush_all<'py>(
        &self,
        py: Python<'py>,
        state: &Bound<'py, CoalescerBuffer>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut guard = state.borrow_mut();
        let state = &mut *guard;
        let due: Vec<(EventKey, &'static str)> = state
            .order
            .values()
            .map(|key| (key.clone(), "shutdown"))
            .collect();
        self.complete_all(py, state, due)
    }
}
