"""Benchmark process trees: batch builder vs msticpy, and the stream tracker's throughput and state size.

The tracker runs as the drivers run it: ``evict`` after every event, with ``--step`` seconds of event time
between events (0.01: a busy host at 100 audit events a second).

Run: /work/venv/bin/python bench/bench_proctree.py [--rows 100000] [--events 200000] [--step 0.01] [--rounds 3]
[--no-reference]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
import pandas as pd

from processors.proc_tree_builder import build_process_tree
from processors.process_tree_utils import get_summary_info
from processors.proctree import ProcessTracker, ProcessTrackerSettings, ProcessTrackerState
from schemas.documents import iso_timestamp

_IMAGES = [
    "C:\\Windows\\System32\\cmd.exe",
    "C:\\Windows\\System32\\conhost.exe",
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
    "C:\\Program Files\\App\\app.exe",
]


def windows_corpus(rows: int, seed: int = 1) -> pd.DataFrame:
    """Generate 4688-style events: trees under a few services, with pid reuse."""
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1)
    live: list[tuple[str, str]] = [(f"0x{p:x}", _IMAGES[2]) for p in range(0x200, 0x220)]
    recs: list[dict[str, Any]] = []
    for i in range(rows):
        ppid, pname = rng.choice(live)
        pid = f"0x{rng.randrange(0x100, 0x8000):x}"
        image = rng.choice(_IMAGES)
        live.append((pid, image))
        if len(live) > 3000:  # processes exit at random: realistic depths (about 10-20 levels)
            live.pop(rng.randrange(len(live)))
        recs.append(
            {
                "TenantId": "t",
                "Account": "WORKGROUP\\HOST$",
                "EventID": 4688,
                "TimeGenerated": t0 + timedelta(milliseconds=i * 37),
                "Computer": "HOST",
                "SubjectUserSid": "S-1-5-18",
                "SubjectUserName": "HOST$",
                "SubjectDomainName": "WORKGROUP",
                "SubjectLogonId": "0x3e7",
                "NewProcessId": pid,
                "NewProcessName": image,
                "TokenElevationType": "%%1936",
                "ProcessId": ppid,
                "CommandLine": f"{image} /c step {i}",
                "ParentProcessName": pname,
                "TargetLogonId": "0x0",
            }
        )
    return pd.DataFrame(recs)


def stream_corpus(events: int, step: float, seed: int = 2) -> list[dict[str, Any]]:
    """Generate auditd documents: exec (60%), clone (20%), exit (20%) on one host, with pid reuse."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    live = [1]
    t = 1_700_000_000.0
    for _ in range(events):
        t += step
        roll = rng.random()
        if roll < 0.6 or len(live) < 3:
            pid = rng.randrange(2, 60_000)
            ppid = rng.choice(live[-500:])
            live.append(pid)
            syscall, data, proc_pid, proc_ppid = "execve", {"syscall": "execve"}, pid, ppid
        elif roll < 0.8:
            proc_pid = rng.choice(live[-500:])
            child = rng.randrange(2, 60_000)
            live.append(child)
            syscall, data, proc_ppid = "clone", {"syscall": "clone", "exit": str(child)}, 1
        else:
            proc_pid = live.pop(rng.randrange(len(live) - 1) + 1) if len(live) > 1 else 1
            syscall, data, proc_ppid = "exit_group", {"syscall": "exit_group"}, 1
        docs.append(
            {
                "@timestamp": iso_timestamp(t),
                "host": {"name": "bench"},
                "event": {"action": syscall, "outcome": "success"},
                "process": {
                    "pid": proc_pid,
                    "ppid": proc_ppid,
                    "executable": "/usr/bin/python3",
                    "name": "python3",
                    "command_line": "python3 -m worker --flag",
                },
                "auditd": {"session": "7", "data": data},
                "user": {"audit": {"id": "1000"}},
            }
        )
    return docs


def main() -> None:
    """Run the benchmark and print the numbers and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="4688 events for the batch builder")
    parser.add_argument("--events", type=int, default=200_000, help="auditd documents for the tracker")
    parser.add_argument("--step", type=float, default=0.01, help="seconds of event time between tracker events")
    parser.add_argument("--no-reference", action="store_true", help="skip msticpy")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each builder (best is kept)")
    args = parser.parse_args()

    data = windows_corpus(args.rows)
    build_process_tree(data.head(100))  # warm up (imports, polars thread pool)
    ref_build: Any = None
    ref_summary: Any = None
    if not args.no_reference:
        from msticpy.transform import proc_tree_builder as ref_builder
        from msticpy.transform import process_tree_utils as ref_utils

        ref_build, ref_summary = ref_builder.build_process_tree, ref_utils.get_summary_info

    # Alternate rounds (ours, theirs, ours, theirs, ...) and keep the best of each: the machine may be
    # shared, and alternating spreads load changes over both sides.
    ours_s = ref_s = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        ours = build_process_tree(data)
        ours_s = min(ours_s, time.perf_counter() - start)
        if ref_build is not None:
            start = time.perf_counter()
            theirs = ref_build(data.copy())
            ref_s = min(ref_s, time.perf_counter() - start)
    best = f"best of {args.rounds}"
    print(f"secstream build_process_tree: {args.rows} rows in {ours_s:.2f}s ({best})  {get_summary_info(ours)}")
    if ref_build is not None:
        print(f"msticpy   build_process_tree: {args.rows} rows in {ref_s:.2f}s ({best})  {ref_summary(theirs)}")
        print(f"speed-up: {ref_s / ours_s:.1f}x")

    docs = stream_corpus(args.events, args.step)
    tracker = ProcessTracker(ProcessTrackerSettings())
    state = ProcessTrackerState()
    process, evict = tracker.process, tracker.evict
    evict_cpu = 0.0
    start = time.perf_counter()
    cpu_start = time.process_time()
    for i, doc in enumerate(docs):
        process(doc, state)
        before = time.process_time()
        evict(state, 1_700_000_000.0 + (i + 1) * args.step)
        evict_cpu += time.process_time() - before
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    live = state.live
    size = len(orjson.dumps(state.snapshot()))
    print(
        f"tracker: {args.events} events in {took:.2f}s wall = {args.events / took:,.0f} events/s; "
        f"{cpu:.2f}s CPU = {args.events / cpu:,.0f} events/s, of which evict {evict_cpu:.2f}s "
        f"({args.events * args.step:,.0f} s of event time)"
    )
    print(
        f"tracker state: {len(state.nodes)} nodes, {live} live, snapshot {size:,} bytes = "
        f"{size / max(live, 1):.0f} bytes per live process; evicted exited={state.evicted_exited} "
        f"idle={state.evicted_idle} overflow={state.evicted_overflow} backfilled={state.backfilled}"
    )


if __name__ == "__main__":
    main()
