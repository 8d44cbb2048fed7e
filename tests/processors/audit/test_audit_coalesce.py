"""Tests for processors.audit.coalesce: records to events, late, duplicate, overflow, timeouts, snapshots."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from processors.audit.coalesce import (
    AuditEvent,
    Coalescer,
    CoalescerOutput,
    CoalescerSettings,
    CoalescerState,
    LateRecord,
    is_single_record_type,
)
from processors.audit.parse import parse_line
from processors.errors import FutureEventError, OrphanEndOfEventError, ParseError
from schemas.documents import stable_id


def rec(rtype: str, time: str, serial: int, body: str = "x=1", node: str | None = "h1") -> str:
    prefix = f"node={node} " if node else ""
    return f"{prefix}type={rtype} msg=audit({time}:{serial}): {body}"


def push_all(coalescer: Coalescer, state: CoalescerState, lines: list[str]) -> list[CoalescerOutput]:
    out: list[CoalescerOutput] = []
    for line in lines:
        out.extend(coalescer.push(parse_line(line), state))
    return out


def exec_event(time: str, serial: int, node: str | None = "h1") -> list[str]:
    return [
        rec("SYSCALL", time, serial, "arch=c000003e syscall=59 success=yes pid=2 ppid=1", node),
        rec("EXECVE", time, serial, 'argc=1 a0="ls"', node),
        rec("CWD", time, serial, 'cwd="/"', node),
        rec("PROCTITLE", time, serial, "proctitle=6C73", node),
        rec("EOE", time, serial, "", node),
    ]


class TestCoalescer:
    def test_complete_on_eoe(self) -> None:
        """Records of one key form one event when its EOE arrives; EOE is not among the records."""
        c, s = Coalescer(), CoalescerState()
        out = push_all(c, s, exec_event("10.000", 5))
        assert len(out) == 1
        event = out[0]
        assert isinstance(event, AuditEvent)
        assert [r.rtype for r in event.records] == ["SYSCALL", "EXECVE", "CWD", "PROCTITLE"]
        assert (event.node, event.time, event.serial, event.partial, event.reason) == ("h1", "10.000", 5, False, "eoe")
        assert event.event_id == stable_id("auditd", "h1", "10.000", 5)
        assert s.counters["completed"] == 1
        assert not s.in_flight

    def test_same_time_different_serial_are_distinct(self) -> None:
        """Events sharing a timestamp but not a serial are never merged."""
        c, s = Coalescer(), CoalescerState()
        out = push_all(c, s, [rec("CONFIG_CHANGE", "5.619", n) for n in (18, 19, 20)]) + c.flush_all(s)
        assert [e.serial for e in out if isinstance(e, AuditEvent)] == [18, 19, 20]

    def test_same_key_different_nodes_are_distinct(self) -> None:
        """The node is part of the key."""
        c, s = Coalescer(), CoalescerState()
        out = push_all(c, s, exec_event("1.0", 1, "a") + exec_event("1.0", 1, "b"))
        assert {e.event_id for e in out if isinstance(e, AuditEvent)} == {
            stable_id("auditd", "a", "1.0", 1),
            stable_id("auditd", "b", "1.0", 1),
        }

    @pytest.mark.parametrize(
        "rtype",
        [
            "USER_AUTH",
            "USER_ACCT",
            "CRED_ACQ",
            "USER_START",
            "USER_CMD",
            "LOGIN",
            "SERVICE_START",
            "DAEMON_START",
            "CONFIG_CHANGE",
            "ANOM_ABEND",
        ],
    )
    def test_single_record_types_complete_on_the_next_record(self, rtype: str) -> None:
        """A single-record type is a complete event as soon as its node's next record is of another event."""
        c, s = Coalescer(), CoalescerState()
        assert push_all(c, s, [rec(rtype, "1.0", 1)]) == []
        out = push_all(c, s, [rec("SYSCALL", "1.0", 2)])
        assert len(out) == 1
        assert isinstance(out[0], AuditEvent)
        assert (out[0].serial, out[0].reason, out[0].partial) == (1, "single", False)

    def test_single_record_type_in_a_syscall_context_is_one_event(self) -> None:
        """LOGIN written inside a syscall groups with the SYSCALL, PROCTITLE and EOE of its serial (#23)."""
        c, s = Coalescer(), CoalescerState()
        lines = [
            rec("LOGIN", "1.1", 500, "pid=4242 uid=0 old-auid=4294967295 auid=1000 ses=7 res=1"),
            rec("SYSCALL", "1.1", 500, "arch=c000003e syscall=1 success=yes exit=4 pid=4242"),
            rec("PROCTITLE", "1.1", 500, "proctitle=737368643A206A6F686E"),
            rec("EOE", "1.1", 500, ""),
        ]
        (event,) = push_all(c, s, lines)
        assert isinstance(event, AuditEvent)
        assert ([r.rtype for r in event.records], event.reason) == (["LOGIN", "SYSCALL", "PROCTITLE"], "eoe")
        assert not s.in_flight

    def test_held_single_goes_out_on_a_wall_clock_tick_and_other_hosts_do_not_release_it(self) -> None:
        """A held single-record event waits for its own node's next record, or for the next tick."""
        c, s = Coalescer(), CoalescerState()
        assert push_all(c, s, [rec("USER_AUTH", "1.0", 1, node="a"), rec("SYSCALL", "1.0", 1, node="b")]) == []
        assert c.expire(s) == []
        (event,) = c.expire(s, wall_time=1.0)
        assert isinstance(event, AuditEvent) and (event.node, event.reason, event.partial) == ("a", "single", False)

    def test_held_single_survives_a_snapshot(self) -> None:
        """The hold is part of the state: a restored state still releases it on the node's next record."""
        c, s = Coalescer(), CoalescerState()
        push_all(c, s, [rec("USER_AUTH", "1.0", 1)])
        restored = CoalescerState.from_snapshot(orjson.loads(orjson.dumps(s.snapshot())))
        (event,) = push_all(c, restored, [rec("USER_AUTH", "1.0", 2)])
        assert isinstance(event, AuditEvent) and (event.serial, event.reason) == (1, "single")

    @pytest.mark.parametrize("rtype", ["SYSCALL", "AVC", "NETFILTER_CFG", "ANOM_PROMISCUOUS", "PATH"])
    def test_syscall_context_types_wait(self, rtype: str) -> None:
        """Kernel records written in a syscall context wait for the rest of the event."""
        assert not is_single_record_type(rtype)
        c, s = Coalescer(), CoalescerState()
        assert push_all(c, s, [rec(rtype, "1.0", 1)]) == []
        assert len(s.in_flight) == 1

    def test_single_type_joins_in_flight_event(self) -> None:
        """A single-record type that arrives while its key is in flight joins that event."""
        c, s = Coalescer(), CoalescerState()
        out = push_all(c, s, [rec("SYSCALL", "1.0", 1), rec("CONFIG_CHANGE", "1.0", 1), rec("EOE", "1.0", 1, "")])
        assert len(out) == 1
        assert isinstance(out[0], AuditEvent)
        assert [r.rtype for r in out[0].records] == ["SYSCALL", "CONFIG_CHANGE"]

    def test_late_record_emitted_and_linked(self) -> None:
        """A record for an event that completed comes out as a LateRecord linked to the event id, counted."""
        c, s = Coalescer(), CoalescerState()
        lines = exec_event("1.0", 1)
        push_all(c, s, lines)
        out = push_all(c, s, [rec("PATH", "1.0", 1, 'item=0 name="/bin/ls"')])
        assert len(out) == 1
        late = out[0]
        assert isinstance(late, LateRecord)
        assert late.event_id == stable_id("auditd", "h1", "1.0", 1)
        assert late.record.rtype == "PATH"
        assert s.counters["late"] == 1

    def test_duplicate_in_flight_dropped(self) -> None:
        """A record identical to one already buffered is dropped and counted."""
        c, s = Coalescer(), CoalescerState()
        lines = exec_event("1.0", 1)
        out = push_all(c, s, [lines[0], lines[0], *lines[1:]])
        assert len(out) == 1
        assert isinstance(out[0], AuditEvent)
        assert len(out[0].records) == 4
        assert s.counters["duplicate"] == 1

    def test_duplicate_after_completion_dropped(self) -> None:
        """Replaying a completed event yields nothing and counts duplicates (EOE included)."""
        c, s = Coalescer(), CoalescerState()
        lines = exec_event("1.0", 1)
        push_all(c, s, lines)
        assert push_all(c, s, lines) == []
        assert s.counters["duplicate"] == len(lines)
        assert s.counters["late"] == 0

    def test_late_record_replayed_is_duplicate(self) -> None:
        """A late record seen a second time is a duplicate."""
        c, s = Coalescer(), CoalescerState()
        push_all(c, s, exec_event("1.0", 1))
        extra = rec("PATH", "1.0", 1, "item=1")
        assert len(push_all(c, s, [extra])) == 1
        assert push_all(c, s, [extra]) == []
        assert s.counters["duplicate"] == 1

    def test_orphan_eoe_raises(self) -> None:
        """An EOE for an unknown event raises OrphanEndOfEventError carrying the raw line."""
        c, s = Coalescer(), CoalescerState()
        line = rec("EOE", "1.0", 9, "")
        with pytest.raises(OrphanEndOfEventError) as caught:
            c.push(parse_line(line), s)
        assert caught.value.raw == line
        assert s.counters["orphan_eoe"] == 1

    def test_overflow_flushes_oldest_partial(self) -> None:
        """Above max_in_flight the oldest in-flight event is flushed as partial."""
        c, s = Coalescer(CoalescerSettings(max_in_flight=2)), CoalescerState()
        out = push_all(c, s, [rec("SYSCALL", "1.0", n) for n in (1, 2, 3)])
        assert len(out) == 1
        event = out[0]
        assert isinstance(event, AuditEvent)
        assert (event.serial, event.partial, event.reason) == (1, True, "overflow")
        assert len(s.in_flight) == 2
        assert s.counters["overflow"] == 1

    def test_no_eoe_event_time_timeout(self) -> None:
        """Without EOE an event completes once its node's max event time passes it by event_timeout_s."""
        c, s = Coalescer(CoalescerSettings(event_timeout_s=2.0)), CoalescerState()
        push_all(c, s, [rec("SYSCALL", "10.0", 1), rec("PATH", "10.0", 1)])
        push_all(c, s, [rec("SYSCALL", "11.5", 2)])
        assert c.expire(s) == []
        push_all(c, s, [rec("SYSCALL", "12.5", 3)])
        out = c.expire(s)
        assert [(e.serial, e.reason, e.partial) for e in out if isinstance(e, AuditEvent)] == [(1, "timeout", True)]

    def test_timeout_is_per_node(self) -> None:
        """Another node's later events do not time out this node's events."""
        c, s = Coalescer(CoalescerSettings(event_timeout_s=2.0)), CoalescerState()
        push_all(c, s, [rec("SYSCALL", "10.0", 1, node="quiet"), rec("SYSCALL", "99.0", 1, node="busy")])
        assert c.expire(s) == []
        out = c.expire(s, event_time=50.0)
        assert [e.node for e in out if isinstance(e, AuditEvent)] == ["quiet"]

    def test_idle_flush_by_wall_time(self) -> None:
        """A quiet host's last event is flushed once no record arrived for idle_flush_s of wall time."""
        c, s = Coalescer(CoalescerSettings(idle_flush_s=5.0)), CoalescerState()
        c.push(parse_line(rec("SYSCALL", "10.0", 1)), s, wall_time=1000.0)
        assert c.expire(s, wall_time=1004.0) == []
        out = c.expire(s, wall_time=1005.5)
        assert [(e.serial, e.reason) for e in out if isinstance(e, AuditEvent)] == [(1, "idle")]

    def test_idle_clock_restarts_on_new_record(self) -> None:
        """Each new record of an event restarts its idle clock."""
        c, s = Coalescer(CoalescerSettings(idle_flush_s=5.0)), CoalescerState()
        c.push(parse_line(rec("SYSCALL", "10.0", 1)), s, wall_time=1000.0)
        c.push(parse_line(rec("PATH", "10.0", 1)), s, wall_time=1004.0)
        assert c.expire(s, wall_time=1006.0) == []

    def test_flush_all_on_shutdown(self) -> None:
        """flush_all emits every in-flight event as partial, in event-time order."""
        c, s = Coalescer(), CoalescerState()
        push_all(c, s, [rec("SYSCALL", "3.0", 3), rec("SYSCALL", "1.0", 1), rec("SYSCALL", "2.0", 2)])
        out = c.flush_all(s)
        assert [(e.serial, e.reason, e.partial) for e in out if isinstance(e, AuditEvent)] == [
            (1, "shutdown", True),
            (2, "shutdown", True),
            (3, "shutdown", True),
        ]
        assert not s.in_flight

    def test_done_memory_is_bounded(self) -> None:
        """Only the last done_memory completed keys per node are remembered."""
        c, s = Coalescer(CoalescerSettings(done_memory=3)), CoalescerState()
        push_all(c, s, [rec("USER_AUTH", "1.0", n) for n in range(10)])
        c.flush_all(s)
        assert list(s.done["h1"]) == [("1.0", 7), ("1.0", 8), ("1.0", 9)]

    def test_snapshot_round_trip(self) -> None:
        """from_snapshot(snapshot()) through orjson gives a state that behaves the same."""
        c, s = Coalescer(), CoalescerState()
        push_all(c, s, [*exec_event("1.0", 1)[:3], rec("USER_AUTH", "1.5", 7), *exec_event("2.0", 2)])
        c.push(parse_line(rec("SYSCALL", "3.0", 3, node=None)), s, wall_time=50.0)
        data = orjson.loads(orjson.dumps(s.snapshot()))
        restored = CoalescerState.from_snapshot(data)
        assert restored.snapshot() == s.snapshot()
        tail = exec_event("1.0", 1)[3:]
        out_a = push_all(c, s, tail) + c.flush_all(s)
        out_b = push_all(c, restored, tail) + c.flush_all(restored)
        assert out_a == out_b
        assert restored.counters == s.counters

    def test_surrogates_in_node_and_records(self) -> None:
        """Undecodable bytes (kept as lone surrogates) key events and duplicates like any other text."""
        node = "h\udcff"
        lines = [rec("SYSCALL", "1.0", 1, "comm=\udce9", node), rec("EOE", "1.0", 1, "", node)]
        c, s = Coalescer(), CoalescerState()
        (event,) = push_all(c, s, lines)
        assert isinstance(event, AuditEvent) and (event.node, event.reason) == (node, "eoe")
        assert push_all(c, s, lines[:1]) == []
        assert s.counters["duplicate"] == 1
        assert CoalescerState.from_snapshot(s.snapshot()).done == {node: [("1.0", 1)]}

    def test_serial_past_64_bits_is_a_parse_error(self) -> None:
        """A serial a 64-bit integer cannot hold is refused by the header rule (#20)."""
        with pytest.raises(ParseError, match="64 bits"):
            parse_line(rec("SYSCALL", "1.0", 2**64))

    def test_largest_serial(self) -> None:
        """The largest 64-bit serial is kept exactly."""
        serial = 2**64 - 1
        c, s = Coalescer(), CoalescerState()
        (event,) = push_all(c, s, [rec("SYSCALL", "1.0", serial), rec("EOE", "1.0", serial)])
        assert isinstance(event, AuditEvent) and event.serial == serial
        assert push_all(c, s, [rec("PATH", "1.0", serial)])[0] == LateRecord(
            parse_line(rec("PATH", "1.0", serial)), event.event_id
        )

    def test_snapshot_of_the_python_coalescer_restores(self) -> None:
        """A snapshot in the format the Python coalescer wrote (zlib CRC-32s) resumes: its memory still matches."""
        done, pending = rec("USER_AUTH", "1.0", 7), rec("SYSCALL", "2.0", 8)
        data = {
            "in_flight": [
                {"node": "h1", "time": "2.0", "serial": 8, "epoch": 2.0, "last_wall": 10.0, "records": [pending]}
            ],
            "done": [{"node": "h1", "events": [["1.0", 7, [zlib.crc32(done.encode())]]]}],
            "node_max": [["h1", 2.0]],
            "wall_now": 10.0,
            "counters": {"completed": 1, "partial": 0, "late": 0, "duplicate": 0, "overflow": 0, "orphan_eoe": 0},
        }
        c, s = Coalescer(), CoalescerState.from_snapshot(data)
        counters = {**data["counters"], "lost": 0, "future": 0, "lineage_wait_expired": 0}
        assert s.snapshot() == {**data, "counters": counters}
        assert push_all(c, s, [done]) == []
        assert s.counters["duplicate"] == 1
        (event,) = push_all(c, s, [rec("EOE", "2.0", 8)])
        assert isinstance(event, AuditEvent) and [r.raw for r in event.records] == [pending]

    def test_record_dated_far_after_its_receive_time_is_refused(self) -> None:
        """A record from the year 5138 is refused and counted, and does not split the host's later events (#20)."""
        c, s = Coalescer(), CoalescerState()
        with pytest.raises(FutureEventError, match="after the time it was received"):
            c.push(parse_line(rec("SYSCALL", "100000000000.0", 1)), s, wall_time=1_700_000_000.0)
        assert s.counters["future"] == 1
        lines = [rec("SYSCALL", "1699999999.0", 2), rec("PATH", "1699999999.0", 2), rec("EOE", "1699999999.0", 2)]
        out: list[CoalescerOutput] = []
        for line in lines:
            out += c.push(parse_line(line), s, wall_time=1_700_000_000.0)
            out += c.expire(s)
        (event,) = out
        assert isinstance(event, AuditEvent) and len(event.records) == 2 and not event.partial

    def test_serial_gaps_are_counted_lost_once_the_window_passes(self) -> None:
        """Missing serials count as lost once gap_window newer serials arrived; late arrivals fill gaps first."""
        c, s = Coalescer(CoalescerSettings(gap_window=3)), CoalescerState()
        push_all(c, s, [rec("USER_AUTH", "1.0", n) for n in (10, 12, 11, 15)])
        assert s.counters["lost"] == 0
        push_all(c, s, [rec("USER_AUTH", "1.0", 17)])
        assert s.counters["lost"] == 2  # 17 settles up to 14: 13 and 14 never came
        push_all(c, s, [rec("DAEMON_START", "1.0", 9000), rec("USER_AUTH", "1.0", 21)])
        assert s.counters["lost"] == 4  # 21 settles up to 18: 16 and 18; DAEMON_ serials are auditd's own
        push_all(c, s, [rec("USER_AUTH", "1.0", 5_000_000)])
        assert s.counters["lost"] == 4  # a jump of millions is a restart, not millions of lost events

    def test_child_exec_waits_for_its_parents_open_exec_event(self) -> None:
        """An exec whose parent's exec event is still in flight goes out right after the parent's (#23, 9)."""
        c, s = Coalescer(), CoalescerState()
        parent = [
            rec("SYSCALL", "1.000", 1, "arch=c000003e syscall=59 success=yes pid=100 ppid=1"),
            rec("EXECVE", "1.000", 1, 'argc=1 a0="bash"'),
        ]
        child = [
            rec("SYSCALL", "1.100", 2, "arch=c000003e syscall=59 success=yes pid=101 ppid=100"),
            rec("EXECVE", "1.100", 2, 'argc=1 a0="ls"'),
            rec("EOE", "1.100", 2, ""),
        ]
        assert push_all(c, s, parent + child) == []
        out = push_all(c, s, [rec("EOE", "1.000", 1, "")])
        assert [(e.serial, e.reason, e.partial) for e in out if isinstance(e, AuditEvent)] == [
            (1, "eoe", False),
            (2, "eoe", False),
        ]
        assert s.counters["lineage_wait_expired"] == 0 and not s.in_flight

    def test_lineage_wait_is_bounded_and_counted(self) -> None:
        """A child whose parent's event stays open goes out (whole) after lineage_wait_s, counted."""
        c, s = Coalescer(CoalescerSettings(lineage_wait_s=0.5)), CoalescerState()
        lines = [
            rec("SYSCALL", "1.000", 1, "arch=c000003e syscall=59 success=yes pid=100 ppid=1"),
            rec("EXECVE", "1.000", 1, 'argc=1 a0="bash"'),
            rec("SYSCALL", "1.100", 2, "arch=c000003e syscall=59 success=yes pid=101 ppid=100"),
            rec("EXECVE", "1.100", 2, 'argc=1 a0="ls"'),
            rec("EOE", "1.100", 2, ""),
        ]
        assert push_all(c, s, lines) == []
        push_all(c, s, [rec("SYSCALL", "1.700", 3, "pid=5")])
        (child,) = c.expire(s)
        assert isinstance(child, AuditEvent) and (child.serial, child.reason, child.partial) == (2, "eoe", False)
        assert s.counters["lineage_wait_expired"] == 1
        snapshot = CoalescerState.from_snapshot(orjson.loads(orjson.dumps(s.snapshot())))
        assert len(snapshot.in_flight) == 2  # the parent's open event and serial 3

    def test_lineage_wait_off(self) -> None:
        """lineage_wait_s=0: the child goes out on its EOE."""
        c, s = Coalescer(CoalescerSettings(lineage_wait_s=0.0)), CoalescerState()
        out = push_all(
            c,
            s,
            [
                rec("SYSCALL", "1.000", 1, "arch=c000003e syscall=59 success=yes pid=100 ppid=1"),
                rec("EXECVE", "1.000", 1, 'argc=1 a0="bash"'),
                rec("SYSCALL", "1.100", 2, "arch=c000003e syscall=59 success=yes pid=101 ppid=100"),
                rec("EXECVE", "1.100", 2, 'argc=1 a0="ls"'),
                rec("EOE", "1.100", 2, ""),
            ],
        )
        assert [e.serial for e in out if isinstance(e, AuditEvent)] == [2]

    def test_settings_are_kept(self) -> None:
        """The coalescer exposes the settings it was made with."""
        settings = CoalescerSettings(event_timeout_s=7.0)
        assert Coalescer(settings).settings is settings
        assert Coalescer().settings == CoalescerSettings()


@st.composite
def host_streams(draw: st.DrawFn) -> dict[str, list[str]]:
    """Per-host record streams: exec events with EOE and single-record user events."""
    streams: dict[str, list[str]] = {}
    for host in draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True)):
        lines: list[str] = []
        kinds = draw(st.lists(st.sampled_from(["exec", "auth", "cmd"]), min_size=1, max_size=6))
        for serial, kind in enumerate(kinds, 1):
            time = f"100.{serial:03d}"
            if kind == "exec":
                lines.extend(exec_event(time, serial, host))
            else:
                rtype = "USER_AUTH" if kind == "auth" else "USER_CMD"
                lines.append(rec(rtype, time, serial, "pid=1 msg='op=x res=success'", host))
        streams[host] = lines
    return streams


class TestInterleaving:
    @given(host_streams(), st.data())
    def test_any_interleaving_gives_same_events(self, streams: dict[str, list[str]], data: st.DataObject) -> None:
        """Any interleaving of per-host streams (per-host order kept) gives the same set of events."""
        in_order = [line for lines in streams.values() for line in lines]
        slots = [host for host, lines in streams.items() for _ in lines]
        order = data.draw(st.permutations(slots))
        cursors = dict.fromkeys(streams, 0)
        mixed: list[str] = []
        for host in order:
            mixed.append(streams[host][cursors[host]])
            cursors[host] += 1

        def run(lines: list[str]) -> set[tuple[str, tuple[str, ...], bool]]:
            c, s = Coalescer(), CoalescerState()
            out = push_all(c, s, lines) + c.flush_all(s)
            return {(e.event_id, tuple(r.raw for r in e.records), e.partial) for e in out if isinstance(e, AuditEvent)}

        expected = run(in_order)
        assert run(mixed) == expected
        assert len(expected) == sum(1 for line in in_order if "type=EOE" in line or "type=USER_" in line)


class TestEventId:
    @given(st.one_of(st.none(), st.text(max_size=12)), st.text(max_size=16), st.integers(min_value=0, max_value=2**64))
    def test_same_as_stable_id(self, node: str | None, time: str, serial: int) -> None:
        """The one-call digest of event_id_for equals stable_id("auditd", node or "", time, serial)."""
        from processors.audit.coalesce import event_id_for
        from schemas.documents import stable_id

        assert event_id_for(node, time, serial) == stable_id("auditd", node or "", time, serial)


_PUSH = st.tuples(
    st.just("push"),
    st.sampled_from(["SYSCALL", "PATH", "CWD", "EOE", "USER_AUTH", "EXECVE"]),
    st.sampled_from([None, "a"]),
    st.sampled_from(["1.000", "3.500", "9.000"]),
    st.integers(1, 3),
    st.sampled_from(["x=1", "x=2", 'name="/tmp/a b"', "pid=1 ppid=2", "pid=2 ppid=1", "pid=3 ppid=1"]),
    st.one_of(st.none(), st.floats(0, 20)),
)
_EXPIRE = st.tuples(st.just("expire"), st.one_of(st.none(), st.floats(0, 20)), st.one_of(st.none(), st.floats(0, 40)))
# pushes three times as often as expiries and restarts from a snapshot
_OPS = st.lists(st.one_of(_PUSH, _PUSH, _PUSH, _EXPIRE, st.tuples(st.just("restore"))), min_size=20, max_size=80)


class TestConservation:
    @settings(max_examples=300)
    @given(_OPS, st.integers(1, 4))
    def test_every_record_comes_out_once_or_is_counted(self, ops: list[tuple[Any, ...]], max_in_flight: int) -> None:
        """Whatever the records, expiries and restarts, each accepted record is in one output or counted."""
        c = Coalescer(CoalescerSettings(max_in_flight=max_in_flight, event_timeout_s=2.0, idle_flush_s=5.0))
        s = CoalescerState()
        outputs: list[CoalescerOutput] = []
        accepted = 0
        for op in ops:
            if op[0] == "push":
                _, rtype, node, time, serial, body, wall = op
                line = rec(rtype, time, serial, "" if rtype == "EOE" else body, node)
                try:
                    outputs.extend(c.push(parse_line(line), s, wall_time=wall))
                except OrphanEndOfEventError:
                    continue
                accepted += 1
            elif op[0] == "expire":
                outputs.extend(c.expire(s, event_time=op[1], wall_time=op[2]))
            else:
                s = CoalescerState.from_snapshot(orjson.loads(orjson.dumps(s.snapshot())))
        outputs.extend(c.flush_all(s))
        events = [out for out in outputs if isinstance(out, AuditEvent)]
        late = [out for out in outputs if isinstance(out, LateRecord)]
        in_events = sum(len(event.records) for event in events)
        closed_by_eoe = sum(1 for event in events if event.reason == "eoe")
        assert accepted == in_events + len(late) + closed_by_eoe + s.counters["duplicate"]
        assert len({(e.node, e.time, e.serial) for e in events}) == len(events)
        assert all(record.rtype != "EOE" for event in events for record in event.records)
        assert s.counters["completed"] == len(events)
        assert s.counters["partial"] == sum(1 for event in events if event.partial)
        assert s.counters["late"] == len(late)
        assert not s.in_flight
        for name in ("late", "duplicate", "overflow", "orphan_eoe"):
            event(f"{name}: {'yes' if s.counters[name] else 'no'}")
        for reason in sorted({e.reason for e in events}):
            event(f"reason {reason}")
