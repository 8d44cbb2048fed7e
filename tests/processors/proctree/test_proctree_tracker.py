"""Rolling process tracker: lineage, PID reuse, out-of-order delivery, back-fill, bounds, snapshots, replay."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import jsonschema
import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.proc_tree_builder import build_process_tree
from processors.proc_tree_schema import LX_EVENT_SCH
from processors.proctree import (
    LineageError,
    ProcessTracker,
    ProcessTrackerSettings,
    ProcessTrackerState,
    build_lineage,
)
from schemas import schema_for
from schemas.documents import iso_timestamp, stable_id


def doc(
    t: float,
    pid: int,
    ppid: int | None = 1,
    exe: str = "/bin/sh",
    syscall: str = "execve",
    *,
    host: str = "h1",
    ses: str | None = None,
    child: int | None = None,
    success: str = "yes",
) -> dict[str, Any]:
    """A minimal decoded auditd document as in the ECS contract."""
    data: dict[str, Any] = {"syscall": syscall, "success": success}
    if child is not None:
        data["exit"] = str(child)
    proc: dict[str, Any] = {"pid": pid, "executable": exe, "name": exe.rsplit("/", 1)[-1], "command_line": exe}
    if ppid is not None:
        proc["ppid"] = ppid
    return {
        "@timestamp": iso_timestamp(t),
        "event": {
            "id": stable_id("auditd", host, t, pid, syscall),
            "kind": "event",
            "module": "auditd",
            "action": syscall,
            "outcome": "success" if success == "yes" else "failure",
        },
        "host": {"name": host},
        "process": proc,
        "auditd": {"session": ses, "data": data},
    }


@pytest.fixture
def tracker() -> ProcessTracker:
    return ProcessTracker(ProcessTrackerSettings())


class TestLineage:
    def test_parent_and_ancestors(self, tracker: ProcessTracker) -> None:
        """A chain of execs yields parent, nearest-first ancestors up to the depth, and valid ECS."""
        state = ProcessTrackerState()
        outs = [tracker.process(doc(100 + i, 10 + i, 9 + i, f"/bin/p{i}"), state) for i in range(6)]
        last = outs[-1]["process"]
        assert last["parent"]["pid"] == 14
        assert last["parent"]["entity_id"] == outs[4]["process"]["entity_id"]
        lineage = outs[-1]["secstream"]["process"]
        assert [a["pid"] for a in lineage["ancestors"]] == [14, 13, 12, 11] and lineage["ppid"] == 14
        assert "ppid" not in last and "ancestors" not in last  # not ECS: under secstream.process
        assert outs[0]["process"]["parent"] == {"pid": 9}
        validator = jsonschema.Draft202012Validator(schema_for("events"))
        for out in outs:
            validator.validate(out)

    def test_input_not_modified(self, tracker: ProcessTracker) -> None:
        """process returns a new document and leaves its input alone."""
        src = doc(1, 10)
        before = orjson.dumps(src)
        tracker.process(src, ProcessTrackerState())
        assert orjson.dumps(src) == before

    def test_non_process_document_passes(self, tracker: ProcessTracker) -> None:
        """A document without process.pid comes back unchanged."""
        src = {"@timestamp": iso_timestamp(1), "host": {"name": "h1"}, "event": {"action": "login"}}
        assert tracker.process(src, ProcessTrackerState()) == src

    def test_bad_timestamp_raises(self, tracker: ProcessTracker) -> None:
        """A process document without a usable @timestamp raises LineageError."""
        bad = doc(1, 10)
        bad["@timestamp"] = "yesterday"
        with pytest.raises(LineageError):
            tracker.process(bad, ProcessTrackerState())

    def test_wrong_host_raises(self, tracker: ProcessTracker) -> None:
        """A state is per host: another host's document is refused."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10, host="a"), state)
        with pytest.raises(LineageError):
            tracker.process(doc(2, 11, host="b"), state)

    def test_fork_then_exec(self, tracker: ProcessTracker) -> None:
        """A clone creates the child; the child's exec is parented to the forking process."""
        state = ProcessTrackerState()
        bash = tracker.process(doc(1, 100, 1, "/bin/bash"), state)
        tracker.process(doc(2, 100, 1, "/bin/bash", "clone", child=200), state)
        ls = tracker.process(doc(3, 200, 100, "/bin/ls"), state)
        assert ls["process"]["parent"]["entity_id"] == bash["process"]["entity_id"]
        fork_nodes = [n for n in state.nodes.values() if n.pid == 200 and n.name == "bash"]
        assert len(fork_nodes) == 1 and fork_nodes[0].exited_at == 3

    def test_thread_clone_not_a_process(self, tracker: ProcessTracker) -> None:
        """A clone with CLONE_THREAD creates no node."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 100), state)
        thread = doc(2, 100, syscall="clone", child=101)
        thread["auditd"]["data"]["a0"] = "3d0f00"
        tracker.process(thread, state)
        assert all(n.pid != 101 for n in state.nodes.values())

    def test_failed_exec_creates_nothing(self, tracker: ProcessTracker) -> None:
        """A failed execve does not create a node."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10, success="no"), state)
        assert not state.nodes

    def test_session_and_entry_leaders(self, tracker: ProcessTracker) -> None:
        """sshd starts session 5: bash is the session leader, sshd the entry leader, for every process in it."""
        state = ProcessTrackerState()
        sshd = tracker.process(doc(1, 50, 1, "/usr/sbin/sshd"), state)
        bash = tracker.process(doc(2, 60, 50, "/bin/bash", ses="5"), state)
        ls = tracker.process(doc(3, 70, 60, "/bin/ls", ses="5"), state)
        assert ls["process"]["session_leader"]["entity_id"] == bash["process"]["entity_id"]
        assert ls["process"]["entry_leader"]["entity_id"] == sshd["process"]["entity_id"]
        assert "session_leader" not in sshd["process"]


class TestPidReuse:
    def test_parent_is_latest_started_before_child(self, tracker: ProcessTracker) -> None:
        """With pid 10 reused, each child gets the pid-10 process that started at or before it."""
        state = ProcessTrackerState()
        old = tracker.process(doc(1, 10, 1, "/bin/old"), state)
        c1 = tracker.process(doc(2, 20, 10, "/bin/c1"), state)
        tracker.process(doc(3, 10, 1, "/bin/old", "exit_group"), state)
        new = tracker.process(doc(4, 10, 1, "/bin/new"), state)
        c2 = tracker.process(doc(5, 21, 10, "/bin/c2"), state)
        assert c1["process"]["parent"]["entity_id"] == old["process"]["entity_id"]
        assert c2["process"]["parent"]["entity_id"] == new["process"]["entity_id"]
        assert old["process"]["entity_id"] != new["process"]["entity_id"]

    def test_exited_candidate_is_not_parent(self, tracker: ProcessTracker) -> None:
        """A child of a pid whose known process exited earlier gets an unknown parent, not the dead one."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 10, syscall="exit_group"), state)
        child = tracker.process(doc(3, 20, 10), state)
        assert child["process"]["parent"] == {"pid": 10}

    def test_late_reused_parent_relinks(self, tracker: ProcessTracker) -> None:
        """A later-started pid-10 process that arrives late takes over the children that started after it."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10, 1, "/bin/old"), state)
        tracker.process(doc(5, 20, 10, "/bin/child"), state)
        new = tracker.process(doc(3, 10, 1, "/bin/new"), state)
        again = tracker.process(doc(6, 30, 20, "/bin/grandchild"), state)
        assert again["secstream"]["process"]["ancestors"][1]["entity_id"] == new["process"]["entity_id"]
        assert state.backfilled == 1


class TestOutOfOrder:
    def test_exit_before_exec(self, tracker: ProcessTracker) -> None:
        """An exit that arrives before its exec is applied when the exec arrives."""
        state = ProcessTrackerState()
        tracker.process(doc(5, 10, syscall="exit_group"), state)
        tracker.process(doc(1, 10), state)
        (node,) = state.nodes.values()
        assert node.exited_at == 5
        assert not state.exits

    def test_same_tree_any_order(self, tracker: ProcessTracker) -> None:
        """Exec and exit events delivered shuffled give the same nodes as in time order."""
        events = [
            doc(1, 10),
            doc(2, 20, 10),
            doc(3, 20, 10, syscall="exit"),
            doc(4, 30, 10),
            doc(6, 10, syscall="exit_group"),
        ]
        ordered = ProcessTrackerState()
        for e in events:
            tracker.process(e, ordered)
        rng = random.Random(7)
        for _ in range(10):
            shuffled = events[:]
            rng.shuffle(shuffled)
            state = ProcessTrackerState()
            for e in shuffled:
                tracker.process(e, state)
            assert {k: (n.parent_entity_id, n.exited_at) for k, n in state.nodes.items()} == {
                k: (n.parent_entity_id, n.exited_at) for k, n in ordered.nodes.items()
            }


class TestBackfill:
    def test_unknown_parent_backfilled(self, tracker: ProcessTracker) -> None:
        """A child seen before its parent is a root, then gets the parent for later events."""
        state = ProcessTrackerState()
        first = tracker.process(doc(2, 20, 10, "/bin/child"), state)
        assert first["process"]["parent"] == {"pid": 10}
        parent = tracker.process(doc(1, 10, 1, "/bin/parent"), state)
        later = tracker.process(doc(3, 30, 20, "/bin/grandchild"), state)
        assert later["secstream"]["process"]["ancestors"][1]["entity_id"] == parent["process"]["entity_id"]
        assert state.backfilled == 1

    def test_no_backfill_after_window(self) -> None:
        """After the back-fill window (and an evict) a late parent no longer adopts the child."""
        tracker = ProcessTracker(ProcessTrackerSettings(backfill_window_s=10))
        state = ProcessTrackerState()
        tracker.process(doc(100, 20, 10), state)
        tracker.evict(state, 200)
        tracker.process(doc(50, 10, 1), state)
        assert state.backfilled == 0


class TestEviction:
    def test_exited_after_grace(self, tracker: ProcessTracker) -> None:
        """Exited processes go after the grace period and are counted."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 10, syscall="exit_group"), state)
        assert tracker.evict(state, 30) == 0
        assert tracker.evict(state, 100) == 1
        assert state.evicted_exited == 1 and not state.nodes and not state.by_pid

    def test_exited_parent_of_live_child_kept(self, tracker: ProcessTracker) -> None:
        """An exited parent stays while a live child still needs it for lineage."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 20, 10), state)
        tracker.process(doc(3, 10, syscall="exit_group"), state)
        tracker.evict(state, 1000)
        assert len(state.nodes) == 2

    def test_idle_ttl(self) -> None:
        """Live processes idle beyond the TTL are evicted and counted."""
        tracker = ProcessTracker(ProcessTrackerSettings(idle_ttl_s=100))
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(150, 11), state)
        assert tracker.evict(state, 120) == 1
        assert state.evicted_idle == 1 and len(state.nodes) == 1

    @given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=200))
    def test_max_per_host_bound(self, limit: int, count: int) -> None:
        """The number of nodes never exceeds max_per_host; overflow evictions are counted."""
        tracker = ProcessTracker(ProcessTrackerSettings(max_per_host=limit))
        state = ProcessTrackerState()
        for i in range(count):
            tracker.process(doc(i, 1000 + i, 1), state)
            assert len(state.nodes) <= limit
        assert len(state.nodes) + state.evicted_overflow == count


class TestSnapshotAndReplay:
    def _events(self) -> list[dict[str, Any]]:
        return [
            doc(1, 50, 1, "/usr/sbin/sshd"),
            doc(2, 60, 50, "/bin/bash", ses="3"),
            doc(3, 60, 50, "/bin/bash", "clone", ses="3", child=70),
            doc(4, 70, 60, "/bin/ls", ses="3"),
            doc(5, 70, 60, "/bin/ls", "exit_group", ses="3"),
            doc(6, 90, 80, "/bin/orphan"),
            doc(9, 99, 1, "/bin/x", "exit"),
        ]

    def test_snapshot_round_trip(self, tracker: ProcessTracker) -> None:
        """from_snapshot(snapshot()) through orjson continues exactly like the original state."""
        events = self._events()
        state = ProcessTrackerState()
        for e in events[:5]:
            tracker.process(e, state)
        restored = ProcessTrackerState.from_snapshot(orjson.loads(orjson.dumps(state.snapshot())))
        assert restored.snapshot() == state.snapshot()
        for e in events[5:]:
            assert tracker.process(e, restored) == tracker.process(e, state)
        assert restored.snapshot() == state.snapshot()

    def test_replay_is_idempotent(self, tracker: ProcessTracker) -> None:
        """Replaying every event (at-least-once) gives the same documents and no new nodes."""
        state = ProcessTrackerState()
        first = [tracker.process(e, state) for e in self._events()]
        snap = state.snapshot()
        second = [tracker.process(e, state) for e in self._events()]
        assert first == second
        assert state.snapshot() == snap

    def test_bad_snapshot_version(self) -> None:
        """An unknown snapshot version raises LineageError."""
        with pytest.raises(LineageError):
            ProcessTrackerState.from_snapshot({"v": 99})


def _exec_corpus(rng: random.Random, n: int, hosts: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    pids: dict[str, list[int]] = {}
    for i in range(n):
        host = f"h{rng.randrange(hosts)}"
        known = pids.setdefault(host, [])
        ppid = rng.choice(known) if known and rng.random() < 0.85 else rng.randrange(2, 40)
        pid = rng.randrange(2, 60)  # small pid space: lots of reuse
        known.append(pid)
        docs.append(doc(1_700_000_000 + i * 0.5, pid, ppid, f"/bin/p{rng.randrange(8)}", host=host))
    return docs


class TestOneTruthTwoEngines:
    @given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=120))
    def test_tracker_matches_batch_builder(self, seed: int, n: int) -> None:
        """On the same exec events the tracker and the batch builder choose the same parent for every process."""
        docs = _exec_corpus(random.Random(seed), n, hosts=2)
        stream = build_lineage(docs)
        frame = pl.DataFrame(
            {
                "Computer": [d["host"]["name"] for d in docs],
                "pid": [d["process"]["pid"] for d in docs],
                "ppid": [d["process"]["ppid"] for d in docs],
                "exe": [d["process"]["executable"] for d in docs],
                "TimeGenerated": [datetime.fromisoformat(d["@timestamp"]) for d in docs],
                "EventType": ["SYSCALL_EXECVE"] * len(docs),
            }
        )
        tree = build_process_tree(frame, schema=LX_EVENT_SCH)
        by_key = {r["proc_key"]: r for r in tree.iter_rows(named=True)}
        batch: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        for row in tree.iter_rows(named=True):
            if row["ppid"] is None:
                continue  # inferred parent
            parent = by_key[row["parent_key"]]
            own = (row["Computer"], row["pid"], row["TimeGenerated"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
            batch[own] = (
                None
                if parent["ppid"] is None
                else (parent["pid"], parent["TimeGenerated"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
            )
        ours: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        for out in stream:
            proc = out["process"]
            own = (out["host"]["name"], str(proc["pid"]), proc["start"].rstrip("Z").replace("+00:00", ""))
            par = proc.get("parent", {})
            ours[own] = (str(par["pid"]), par["start"].rstrip("Z")) if "entity_id" in par else None
        assert ours == batch


def full_scan(state: ProcessTrackerState, settings: ProcessTrackerSettings, now: float) -> int:
    """Eviction as documented, by scanning the whole state: the model that ``evict`` must agree with."""
    nodes = state.nodes
    referenced: set[str] = set()
    for node in nodes.values():
        current = node
        for _ in range(settings.ancestor_depth if node.exited_at is None else 0):
            parent_id = current.parent_entity_id
            if parent_id is None or parent_id not in nodes:
                break
            referenced.add(parent_id)
            current = nodes[parent_id]
    exited_due, idle_due = now - settings.exited_grace_s, now - settings.idle_ttl_s
    window_due = now - settings.backfill_window_s
    evicted = 0
    for eid, node in list(nodes.items()):
        if node.exited_at is not None:
            due = node.exited_at <= exited_due and node.last_seen <= exited_due and eid not in referenced
            state.evicted_exited += due
        else:
            due = max(node.last_seen, node.start) <= idle_due
            state.evicted_idle += due
        if due:
            del nodes[eid]
            evicted += 1
    links = state.links.items()
    kept_links = {ppid: {e: t for e, t in kids.items() if t > window_due and e in nodes} for ppid, kids in links}
    state.links = {ppid: kids for ppid, kids in kept_links.items() if kids}
    kept_exits = {pid: [t for t in times if t > window_due] for pid, times in state.exits.items()}
    state.exits = {pid: times for pid, times in kept_exits.items() if times}
    state.sessions = {ses: rec for ses, rec in state.sessions.items() if rec.last_seen > idle_due}
    return evicted


class TestIncrementalEviction:
    """``evict`` looks only at timers that are due; these pin the cases where a timer must come back."""

    def test_nothing_due_changes_nothing(self, tracker: ProcessTracker) -> None:
        """Before the grace period nothing goes, and the earliest timer is the exit's."""
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 10, syscall="exit_group"), state)
        assert tracker.evict(state, 5) == 0
        assert state.timers[0][0] == 2 + tracker.settings.exited_grace_s
        assert tracker.evict(state, 30) == 0
        assert tracker.evict(state, 100) == 1

    def test_exit_of_pinning_child_releases_parent(self) -> None:
        """An exited parent kept for a live child is evicted once the child exits."""
        tracker = ProcessTracker(ProcessTrackerSettings(exited_grace_s=10))
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 20, 10), state)
        tracker.process(doc(3, 10, syscall="exit_group"), state)
        assert tracker.evict(state, 50) == 0 and len(state.nodes) == 2
        tracker.process(doc(55, 20, syscall="exit_group"), state)
        assert tracker.evict(state, 56) == 1  # the parent: unpinned by the child's exit
        assert [node.pid for node in state.nodes.values()] == [20]

    def test_idle_drop_releases_parent(self) -> None:
        """An exited parent pinned by a child that is then evicted as idle goes at the next evict."""
        tracker = ProcessTracker(ProcessTrackerSettings(exited_grace_s=10, idle_ttl_s=100))
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 20, 10), state)
        tracker.process(doc(3, 10, syscall="exit_group"), state)
        assert tracker.evict(state, 103) == 1  # the idle child; the parent was still pinned in this call
        assert tracker.evict(state, 103.5) == 1  # the parent
        assert not state.nodes

    def test_overflow_drop_releases_grandparent(self) -> None:
        """A pinned process whose chain to a live descendant loses a link to overflow goes at the next evict."""
        tracker = ProcessTracker(ProcessTrackerSettings(exited_grace_s=10, max_per_host=4, ancestor_depth=2))
        state = ProcessTrackerState()
        tracker.process(doc(0.5, 5), state)  # unrelated, exits late: first in line for overflow
        tracker.process(doc(2, 20, 10), state)  # the middle process; its parent's exec comes late
        tracker.process(doc(1, 10), state)  # the grandparent, created after the middle one
        tracker.process(doc(3, 30, 20), state)  # the live grandchild
        for t, pid in ((4, 20), (5, 10), (15, 5)):
            tracker.process(doc(t, pid, syscall="exit_group"), state)
        assert tracker.evict(state, 20) == 0 and len(state.pinned) == 2
        tracker.process(doc(21, 40), state)  # overflow: pid 5 and the middle process go, in creation order
        assert state.evicted_overflow == 2 and {n.pid for n in state.nodes.values()} == {10, 30, 40}
        assert tracker.evict(state, 21.5) == 1  # the grandparent: nothing live names it any more
        assert {n.pid for n in state.nodes.values()} == {30, 40}

    def test_relink_releases_old_parent(self) -> None:
        """A child re-linked to a better parent stops pinning its old one."""
        tracker = ProcessTracker(ProcessTrackerSettings(exited_grace_s=10, backfill_window_s=1000))
        state = ProcessTrackerState()
        tracker.process(doc(1, 10), state)
        tracker.process(doc(2, 10, syscall="exit_group"), state)
        tracker.process(doc(30, 20, 10), state)  # its parent pid 10 has exited: unknown parent
        tracker.process(doc(5, 10), state)  # an earlier exec of pid 10 arrives late
        before = len(state.nodes)
        tracker.evict(state, 40)
        again = ProcessTrackerState.from_snapshot(state.snapshot())
        assert len(state.nodes) <= before
        assert tracker.evict(again, 40) == 0  # all timers rebuilt: nothing more is due

    def test_other_windows_rebuild_the_timers(self) -> None:
        """A tracker with other windows evicts by its own windows, not by the timers another one set."""
        state = ProcessTrackerState()
        ProcessTracker(ProcessTrackerSettings(exited_grace_s=100)).process(doc(1, 10), state)
        ProcessTracker(ProcessTrackerSettings(exited_grace_s=100)).process(doc(2, 10, syscall="exit_group"), state)
        assert ProcessTracker(ProcessTrackerSettings(exited_grace_s=5)).evict(state, 8) == 1

    @given(
        st.lists(st.tuples(st.integers(0, 3), st.integers(2, 9), st.integers(1, 9)), max_size=80),
        st.integers(2, 12),
        st.integers(1, 3),
    )
    def test_same_as_full_scans(self, steps: list[tuple[int, int, int]], limit: int, depth: int) -> None:
        """Every evict drops exactly what a full scan of the same state drops, and leaves the same state."""
        settings = ProcessTrackerSettings(
            exited_grace_s=3, idle_ttl_s=12, backfill_window_s=2, ancestor_depth=depth, max_per_host=limit
        )
        tracker = ProcessTracker(settings)
        state = ProcessTrackerState()
        t = 0.0
        for kind, pid, ppid in steps:
            t += 0.7
            if kind == 0:
                tracker.process(doc(t, pid, ppid, ses=str(ppid % 3)), state)
            elif kind == 1:
                tracker.process(doc(t, pid, syscall="exit_group"), state)
            elif kind == 2:
                tracker.process(doc(t, ppid, syscall="clone", child=pid), state)
            model = ProcessTrackerState.from_snapshot(state.snapshot())
            expected = full_scan(model, settings, t)
            assert tracker.evict(state, t) == expected
            assert orjson.dumps(state.snapshot()) == orjson.dumps(model.snapshot())


class TestEventTimeFastPath:
    @given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
    def test_same_as_fromisoformat(self, epoch: float) -> None:
        """The cached-seconds parse of ``@timestamp`` gives the same float as datetime.fromisoformat."""
        from processors.proctree.tracker import _event_time

        stamp = iso_timestamp(epoch)
        assert _event_time({"@timestamp": stamp}) == round(datetime.fromisoformat(stamp).timestamp(), 6)

    def test_bad_stamp_reports_original_text(self) -> None:
        """A malformed timestamp of the fast-path shape is reported with its original text."""
        from processors.proctree.tracker import LineageError, _event_time

        with pytest.raises(LineageError, match=r"2019-13-01T00:00:00\.123Z"):
            _event_time({"@timestamp": "2019-13-01T00:00:00.123Z"})
