"""Benchmark: the Kafka worker end to end on a real local broker (throughput, latency, memory).

Corpus: msticpy's ``auditd_log.txt`` replayed over ``--hosts`` hosts (``node=`` prefix), each round with
new serials, hosts interleaved line by line, ``--lines-per-record`` lines per Kafka record. The capacity
backlog keeps the template's event times (shifted a round's span each round); under steady load each
event is stamped with the wall-clock time at which it is produced, as on a live host.

Every phase runs once per ``--keys`` entry: ``keyed`` (each record keyed by its host) and ``unkeyed`` (no
key, so each record lands on a random partition, as log shippers send them by default); "late" counts
late-record fragments among the outputs.

Phases (each with its own app id and topics, ``--partitions`` partitions):

1. capacity, for each worker count in ``--workers``: ``--lines`` lines are produced first, then the
   workers start; rate = lines in the central 96% of the output / time between the 2nd and 98th
   percentile of the output record timestamps (start-up, group join and the idle flush of the last
   in-flight events are left out). "dup": output records of an event already out (at-least-once
   re-reads after a rebalance while the workers join); "missing": input events with no output.
2. steady load, for each worker count in ``--steady-workers`` (default 1): lines produced at ``--rate``
   lines/s (default: 80% of the measured one-worker capacity, at most 20k) for ``--duration`` seconds
   (2 minutes by default; ``--duration 600`` is the issue's 10-minute soak); latency per event = output
   record timestamp minus the produce timestamp of the event's last (and first) input record, matched by
   host and serial, leaving out the events of the load's last ``COOL_DOWN_S`` seconds (when the load
   stops, every host falls silent and those wait for the idle flush); worker RSS is read from
   ``/proc/<pid>/status`` at the end of the load.

Enrichment is on with the local blocklist only (the "warm TI cache" case: no network lookups); GeoIP is
off (no database). Python, the broker and the producer share this machine's cores.

Run: ``/work/venv/bin/python bench/bench_worker.py [--lines 200000] [--workers 1,2] [--duration 120]
[--bootstrap HOST:PORT]`` (without ``--bootstrap`` a local Kafka 4 broker is started and stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from processors.audit import CoalescerSettings
from streams.dev.deployment import DevDeployment, create_topics, wait_healthy
from streams.worker.publish import OutRecord, send_records

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOG = REPO.parent / "shared/testdata/msticpy/tests/testdata/auditd_log.txt"
HEADER = re.compile(r"msg=audit\((\d+)\.(\d+):(\d+)\)")
RAW_KEY = re.compile(rb"^node=(\S+) type=\S+ msg=audit\([0-9.]+:(\d+)\)")
# The coalescer's default idle flush and event-time timeout (the workers run with the defaults), plus a second.
COOL_DOWN_S = CoalescerSettings().idle_flush_s + CoalescerSettings().event_timeout_s + 1.0


# -- corpus -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    parts: list[tuple[str, int, str, int, str]]
    span: int

    @classmethod
    def load(cls, path: Path) -> Template:
        parts = []
        seconds = []
        for line in path.read_text(encoding="utf-8").splitlines():
            match = HEADER.search(line)
            if match:
                sec = int(match.group(1))
                seconds.append(sec)
                parts.append((line[: match.start()], sec, match.group(2), int(match.group(3)), line[match.end() :]))
        return cls(parts, max(seconds) - min(seconds) + 10)

    def lines(
        self, hosts: int, first_round: int = 0, clock: Callable[[], float] | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(host, line) forever: rounds of the template, each line once per host, new times and serials.

        Without ``clock`` event times are the template's, shifted by a round's span (a backlog: event time
        has nothing to do with the wall clock). With ``clock`` an event is stamped with the time at which
        its first line is generated, as auditd stamps records on a live host: under steady load event time
        then follows the wall clock and the coalescer's event-time timeout means what it says.
        """
        names = [f"host{h:03d}" for h in range(hosts)]
        round_no = first_round
        while True:
            shift, serials = round_no * self.span, round_no * 1_000_000
            stamps: dict[tuple[int, str, int], str] = {}
            for before, sec, ms, serial, after in self.parts:
                if clock is None:
                    stamp = f"{sec + shift}.{ms}"
                else:
                    if (sec, ms, serial) not in stamps:  # the event's first line
                        stamps[(sec, ms, serial)] = f"{clock():.3f}"
                    stamp = stamps[(sec, ms, serial)]
                header = f"msg=audit({stamp}:{serial + serials})"
                for name in names:
                    yield name.encode(), f"node={name} {before}{header}{after}".encode()
            round_no += 1


def unkeyed(values: Iterator[tuple[bytes, bytes, int]]) -> Iterator[tuple[bytes | None, bytes, int]]:
    """The same records without a key, as log shippers send them by default: each lands on a random partition."""
    for _host, value, count in values:
        yield None, value, count


def records(lines: Iterator[tuple[bytes, bytes]], per_record: int) -> Iterator[tuple[bytes, bytes, int]]:
    """(host, value, line count): ``per_record`` lines of one host per value (a batching shipper)."""
    if per_record <= 1:
        for host, line in lines:
            yield host, line, 1
        return
    pending: dict[bytes, list[bytes]] = {}
    for host, line in lines:
        buf = pending.setdefault(host, [])
        buf.append(line)
        if len(buf) >= per_record:
            del pending[host]
            yield host, b"\n".join(buf), len(buf)


# -- Kafka helpers --------------------------------------------------------------------------------


async def produce_backlog(
    bootstrap: str, topic: str, values: Iterator[tuple[bytes | None, bytes, int]], n: int
) -> float:
    """Produce ``n`` lines as fast as possible; return lines/s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        done = 0
        while done < n:
            key, value, count = next(values)
            done += count
            futures.append(await producer.send(topic, value, key=key))
            if len(futures) >= 20000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n / (time.perf_counter() - started)


async def produce_steady(
    bootstrap: str, topic: str, values: Iterator[tuple[bytes | None, bytes, int]], rate: float, duration: float
) -> int:
    """Produce at ``rate`` lines/s in 50 ms ticks for ``duration`` seconds; return the count.

    Each tick's records go out as one batch per partition (the worker's own batch helper): sending them
    one by one cost the generator a third of a core at 10k records/s, on the machine the worker runs on.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        while (now := time.monotonic() - started) < duration:
            tick = []
            while sent < int(rate * now):
                key, value, count = next(values)
                tick.append(OutRecord(topic, value, key))
                sent += count
            if tick:
                pending.extend(set(await send_records(producer, tick)))
            if len(pending) > 20000:
                await asyncio.gather(*pending)
                pending = []
            await asyncio.sleep(0.05)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def end_offset_total(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def wait_quiet(
    bootstrap: str, topic: str, partitions: int, quiet_s: float, limit_s: float, alive: list[subprocess.Popen[bytes]]
) -> None:
    """Wait until ``topic`` has output and has not grown for ``quiet_s`` seconds."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in alive):
            raise RuntimeError("a worker exited")
        total = await end_offset_total(bootstrap, topic, partitions)
        if total != last:
            last, since = total, time.monotonic()
        elif total > 0 and time.monotonic() - since >= quiet_s:
            return
        await asyncio.sleep(1.0)
    raise TimeoutError(f"{topic} still growing after {limit_s}s")


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, int]]:
    """Every record of a topic as (key, value, timestamp ms)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes, int]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=50000)
            if not batch:
                break
            for records in batch.values():
                out.extend((r.key, r.value, r.timestamp) for r in records)
    finally:
        await consumer.stop()
    return out


# -- workers ---------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """RSS of a worker: of its largest process when it runs several (``worker.processes``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if children:
        return max(rss_mib(int(child)) for child in children)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def output_keys(records: list[tuple[bytes | None, bytes, int]]) -> list[tuple[tuple[str, int], int, bool]]:
    """((host, serial), output timestamp, whether the event completed without EOE) per audit event."""
    out = []
    for _key, value, ts in records:
        doc = orjson.loads(value)
        auditd = doc.get("auditd", {})
        seq = auditd.get("sequence")
        if seq is not None:
            out.append(((doc["host"]["name"], int(seq)), ts, bool(auditd.get("partial"))))
    return out


def input_times(records: list[tuple[bytes | None, bytes, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(host, serial) → (first, last) produce timestamp of its records."""
    times: dict[tuple[str, int], tuple[int, int]] = {}
    for _key, value, ts in records:
        for line in value.split(b"\n"):
            match = RAW_KEY.match(line)
            if match is None:
                continue
            key = (match.group(1).decode(), int(match.group(2)))
            first, last = times.get(key, (ts, ts))
            times[key] = (min(first, ts), max(last, ts))
    return times


# -- phases ----------------------------------------------------------------------------------------


def deployment(args: argparse.Namespace, tmp: Path) -> DevDeployment:
    """A deployment of its own for one phase, with enrichment from the local blocklist."""
    return DevDeployment(
        args.bootstrap,
        tmp,
        prefix="bench",
        partitions=args.partitions,
        log_level="WARNING",
        settings={
            "worker": {"batch_size": args.batch_size, "processes": args.processes}
            | ({} if args.batch_within is None else {"batch_within_s": args.batch_within}),
            "enrichment": {"enabled": True, "blocklists": [str(REPO / "config/ti/sample_blocklist.csv")]},
        },
    )


def input_records(
    args: argparse.Namespace, template: Template, keyed: bool, clock: Callable[[], float] | None = None
) -> Iterator[tuple[bytes | None, bytes, int]]:
    values = records(template.lines(args.hosts, clock=clock), args.lines_per_record)
    return values if keyed else unkeyed(values)


def late_count(records: list[tuple[bytes | None, bytes, int]]) -> int:
    """Late-record fragments among the outputs (records that came after their event was out)."""
    return sum(1 for _key, value, _ts in records if b'"late_of"' in value)


def capacity(args: argparse.Namespace, template: Template, tmp: Path, workers: int, keyed: bool) -> dict[str, Any]:
    dep = deployment(args, tmp)
    asyncio.run(create_topics(args.bootstrap, dep.topics, args.partitions))
    produced = asyncio.run(
        produce_backlog(args.bootstrap, dep.raw_auditd, input_records(args, template, keyed), args.lines)
    )
    procs = [dep.start_worker()[0] for _ in range(workers)]
    started = time.monotonic()
    try:
        asyncio.run(
            wait_quiet(args.bootstrap, dep.events, args.partitions, quiet_s=8.0, limit_s=args.limit, alive=procs)
        )
        wall = time.monotonic() - started - 8.0
        rss = max(rss_mib(p.pid) for p in procs)
    finally:
        dep.stop_all()
    written = asyncio.run(read_all(args.bootstrap, dep.events))
    by_event = output_keys(written)
    outs = sorted(ts for _, ts, _ in by_event)
    distinct = {key for key, _, _ in by_event}
    inputs = input_times(asyncio.run(read_all(args.bootstrap, dep.raw_auditd)))
    lo, hi = percentile([float(t) for t in outs], 0.02), percentile([float(t) for t in outs], 0.98)
    seconds = max((hi - lo) / 1000, 1e-3)
    return {
        "workers": workers,
        "keyed": keyed,
        "lines": args.lines,
        "events": len(outs),
        "late": late_count(written),
        "duplicates": len(by_event) - len(distinct),
        "missing": len(inputs.keys() - distinct),
        "lines_per_s": 0.96 * args.lines / seconds,
        "events_per_s": 0.96 * len(outs) / seconds,
        "wall_s": wall,
        "produce_per_s": produced,
        "rss_mib": rss,
    }


def steady(
    args: argparse.Namespace, template: Template, tmp: Path, rate: float, workers: int, keyed: bool
) -> dict[str, Any]:
    dep = deployment(args, tmp)
    asyncio.run(create_topics(args.bootstrap, dep.topics, args.partitions))
    started = [dep.start_worker() for _ in range(workers)]
    procs = [proc for proc, _ in started]
    try:
        for proc, port in started:
            wait_healthy(port, proc)
        sent = asyncio.run(
            produce_steady(
                args.bootstrap, dep.raw_auditd, input_records(args, template, keyed, time.time), rate, args.duration
            )
        )
        rss = max(rss_mib(proc.pid) for proc in procs)
        asyncio.run(
            wait_quiet(args.bootstrap, dep.events, args.partitions, quiet_s=8.0, limit_s=args.limit, alive=procs)
        )
    finally:
        dep.stop_all()
    inputs = input_times(asyncio.run(read_all(args.bootstrap, dep.raw_auditd)))
    # When the load stops every host falls silent at once, and the events still waiting for their
    # event-time timeout come out by the wall-clock idle flush instead; leave that cool-down out.
    load_end = max(last for _, last in inputs.values())
    cutoff = load_end - 1000 * COOL_DOWN_S
    tail = {key for key, (_, last) in inputs.items() if last > cutoff}
    written = asyncio.run(read_all(args.bootstrap, dep.events))
    every = output_keys(written)
    outputs = [out for out in every if out[0] not in tail]
    from_last = [(ts - inputs[key][1]) / 1000 for key, ts, _ in outputs if key in inputs]
    from_first = [(ts - inputs[key][0]) / 1000 for key, ts, _ in outputs if key in inputs]
    # an event with EOE (or a single-record one) is out as soon as it is processed; one without waits
    # for the coalescer's timeout, so the two latencies say different things
    whole = [(ts - inputs[key][1]) / 1000 for key, ts, partial in outputs if key in inputs and not partial]
    timed_out = [(ts - inputs[key][1]) / 1000 for key, ts, partial in outputs if key in inputs and partial]
    # p99 per minute of the load (by the produce time of the event's last line): drift shows here
    load_start = min(first for first, _ in inputs.values())
    minutes: dict[int, list[float]] = {}
    for key, ts, _ in outputs:
        if key in inputs:
            minutes.setdefault((inputs[key][1] - load_start) // 60_000, []).append((ts - inputs[key][1]) / 1000)
    return {
        "workers": workers,
        "keyed": keyed,
        "late": late_count(written),
        "rate": rate,
        "sent": sent,
        "events": len(every),
        "missing": len(inputs.keys() - {key for key, _, _ in every}),
        "p50_last": percentile(from_last, 0.5),
        "p99_last": percentile(from_last, 0.99),
        "p50_first": percentile(from_first, 0.5),
        "p99_first": percentile(from_first, 0.99),
        "p99_whole": percentile(whole, 0.99),
        "p99_timed_out": percentile(timed_out, 0.99),
        "timed_out_share": len(timed_out) / max(1, len(whole) + len(timed_out)),
        "cool_down_events": len(tail),
        "rss_mib": rss,
        "p99_by_minute": [percentile(minutes[m], 0.99) for m in sorted(minutes)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="", help="an existing broker (default: start a local one)")
    parser.add_argument("--lines", type=int, default=200_000, help="raw lines for the capacity phase")
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--lines-per-record", type=int, default=1, help="lines per raw Kafka record (shipper batching)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-within", type=float, help="worker.batch_within_s (default: the worker's)")
    parser.add_argument("--workers", default="1,2", help="worker counts for the capacity phase")
    parser.add_argument("--processes", type=int, default=1, help="processes per worker (worker.processes)")
    parser.add_argument("--rate", type=float, default=0.0, help="steady-load lines/s (0: 80%% of capacity, max 20k)")
    parser.add_argument("--duration", type=float, default=120.0, help="steady-load seconds (0 skips the phase)")
    parser.add_argument("--steady-workers", default="1", help="worker counts for the steady-load phase")
    parser.add_argument(
        "--keys",
        default="keyed,unkeyed",
        help="raw record keys, each phase run once per entry: keyed (by host) and/or unkeyed (random partition)",
    )
    parser.add_argument("--template", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--limit", type=float, default=600.0, help="longest wait for the output to settle")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (worker logs)")
    args = parser.parse_args()
    if args.duration > 0 and not args.rate and not args.workers.strip(","):
        parser.error("--rate is needed when --workers runs no capacity phase")

    template = Template.load(args.template)
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    broker = None
    if not args.bootstrap:
        from streams.dev.broker import LocalKafka, default_kafka_home

        broker = LocalKafka(home=default_kafka_home(), state_dir=tmp / "kafka", port=0, heap="1g")
        args.bootstrap = broker.start()
    try:
        modes = [mode == "keyed" for mode in args.keys.split(",") if mode]
        rows = [capacity(args, template, tmp, int(w), keyed) for w in args.workers.split(",") if w for keyed in modes]
        if rows:
            print(
                f"\ncapacity ({args.lines} lines, {args.lines_per_record} per record, {args.hosts} hosts, "
                f"{args.partitions} partitions, batch {args.batch_size}, {args.processes} process(es) per worker)"
            )
            print(
                f"{'workers':>7} {'keys':>7} {'lines/s':>9} {'events/s':>9} {'events':>8} {'late':>6} {'dup':>6} "
                f"{'missing':>7} {'wall s':>7} {'produce/s':>10} {'RSS MiB':>8}"
            )
        for r in rows:
            print(
                f"{r['workers']:>7} {'keyed' if r['keyed'] else 'unkeyed':>7} {r['lines_per_s']:>9.0f} "
                f"{r['events_per_s']:>9.0f} {r['events']:>8.0f} {r['late']:>6.0f} "
                f"{r['duplicates']:>6.0f} {r['missing']:>7.0f} {r['wall_s']:>7.1f} {r['produce_per_s']:>10.0f} "
                f"{r['rss_mib']:>8.0f}"
            )
        if args.duration > 0:
            rate = args.rate
            if not rate:
                one = next((r for r in rows if r["workers"] == 1 and r["keyed"]), rows[0])
                rate = min(20_000.0, 0.8 * one["lines_per_s"])
            loads = [
                steady(args, template, tmp, rate, int(w), keyed)
                for w in args.steady_workers.split(",")
                if w
                for keyed in modes
            ]
            print(
                f"\nsteady load, {args.duration:.0f} s, {args.processes} process(es) per worker "
                "(RSS: the largest worker process's, read at the end of the load)"
            )
            print(
                f"{'workers':>7} {'keys':>7} {'lines/s':>8} {'sent':>9} {'events':>8} {'late':>6} {'p50 s':>7} "
                f"{'p99 s':>7} {'p50 1st':>8} {'p99 1st':>8} {'RSS MiB':>8} {'p99 EOE':>8} {'p99 t/o':>8} {'t/o %':>6} "
                f"{'missing':>7}"
            )
            for s in loads:
                print(
                    f"{s['workers']:>7.0f} {'keyed' if s['keyed'] else 'unkeyed':>7} {s['rate']:>8.0f} "
                    f"{s['sent']:>9.0f} {s['events']:>8.0f} {s['late']:>6.0f} "
                    f"{s['p50_last']:>7.2f} {s['p99_last']:>7.2f} {s['p50_first']:>8.2f} {s['p99_first']:>8.2f} "
                    f"{s['rss_mib']:>8.0f} {s['p99_whole']:>8.2f} {s['p99_timed_out']:>8.2f} "
                    f"{100 * s['timed_out_share']:>6.1f} {s['missing']:>7.0f}"
                )
            print("latency: output record time minus produce time of the event's last (1st: first) input line;")
            print("EOE: events complete on arrival (EOE or single-record); t/o: events completed by the coalescer's")
            print("timeout (event time 2 s past them, or 5 s of silence from the host), t/o %: their share;")
            print("missing: input events with no output at all;")
            print(f"events whose last line came in the last {COOL_DOWN_S:.0f} s of the load are left out (the")
            print("load's end silences every host, so they wait for the idle flush):", end=" ")
            print(", ".join(f"{s['cool_down_events']:.0f}" for s in loads))
            for s in loads:
                by_minute = " ".join(f"{p:.2f}" for p in s["p99_by_minute"])
                keys = "keyed" if s["keyed"] else "unkeyed"
                print(f"p99 s by minute of the load, {s['workers']:.0f} worker(s), {keys}: {by_minute}")
        print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")
    finally:
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
