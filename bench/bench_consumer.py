"""Benchmark: the consumer's own per-record cost, the floor under a stage at one line per Kafka record.

``--records`` one-line audit records are consumed from a real local broker three ways, alternating for
``--rounds`` rounds: a Faust agent that does nothing but ack (``noack_take`` batches, as the worker's
processing agents read) with Faust's stock consumer, the same with
:func:`streams.worker.patches.deliver_inline`, and a plain aiokafka consumer loop (``getmany`` plus a
commit per batch, as :mod:`streams.worker.router` reads the raw topics). Reported: records/s between
the first batch and the last record, and the consuming process's CPU seconds (start-up excluded). No
stage graph runs.

Run: /work/venv/bin/python bench/bench_consumer.py [--records 60000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.dev.broker import LocalKafka, default_kafka_home

LINE = (
    b"node=host-01 type=SYSCALL msg=audit(1551487424.869:1234): arch=c000003e syscall=59 success=yes exit=0 "
    b'a0=55d0 a1=55d1 items=2 ppid=1 pid=2 auid=0 uid=0 comm="ls" exe="/bin/ls" key=(null)'
)

CONSUMER = """
import os, sys, time
import faust
from streams.worker.patches import deliver_inline

N, TOPIC = int(os.environ["BENCH_N"]), os.environ["BENCH_TOPIC"]
BOOTSTRAP = os.environ["BENCH_BOOTSTRAP"]


async def plain_aiokafka():
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id="bench-" + TOPIC,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    seen, wall, cpu = 0, 0.0, 0.0
    while seen < N:
        fetched = await consumer.getmany(timeout_ms=200, max_records=1000)
        if fetched and not seen:
            wall, cpu = time.perf_counter(), time.process_time()
        for records in fetched.values():
            seen += len(records)
        if fetched:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in fetched.items()})
    sys.stderr.write(f"RESULT {seen} {time.perf_counter() - wall} {time.process_time() - cpu}\\n")
    await consumer.stop()


if os.environ["BENCH_MODE"] == "aiokafka":
    import asyncio
    asyncio.run(plain_aiokafka())
    sys.exit(0)


class App(faust.App):
    def _new_consumer(self):
        consumer = super()._new_consumer()
        if os.environ["BENCH_MODE"] == "inline":
            deliver_inline(consumer)
        return consumer


app = App("bench-" + TOPIC, broker="kafka://" + os.environ["BENCH_BOOTSTRAP"], consumer_auto_offset_reset="earliest",
          stream_wait_empty=False, web_enabled=False, autodiscover=False, datadir=os.environ["BENCH_DATA"])
topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
state = {"seen": 0, "wall": 0.0, "cpu": 0.0}


@app.agent(topic)
async def consume(stream):
    async for events in stream.noack_take(1000, within=0.2):
        if not state["seen"]:
            state["wall"], state["cpu"] = time.perf_counter(), time.process_time()
        state["seen"] += len(events)
        for event in events:
            event.ack()
        if state["seen"] >= N:
            wall, cpu = time.perf_counter() - state["wall"], time.process_time() - state["cpu"]
            sys.stderr.write(f"RESULT {state['seen']} {wall} {cpu}\\n")
            sys.stderr.flush()
            os._exit(0)


app.main()
"""


async def produce(bootstrap: str, topic: str, records: int, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic, LINE, key=str(i % 32).encode()) for i in range(records)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def consume(bootstrap: str, tmp: Path, records: int, partitions: int, mode: str) -> tuple[float, float]:
    """Consume a fresh topic of ``records`` records; return (records/s, CPU seconds)."""
    topic = "bench-consumer-" + uuid.uuid4().hex[:8]
    asyncio.run(produce(bootstrap, topic, records, partitions))
    env = dict(
        os.environ,
        BENCH_N=str(records),
        BENCH_TOPIC=topic,
        BENCH_BOOTSTRAP=bootstrap,
        BENCH_MODE=mode,
        BENCH_DATA=str(tmp / topic),
    )
    script = tmp / "consumer.py"
    script.write_text(CONSUMER)
    done = subprocess.run(
        [sys.executable, str(script), "worker", "-l", "warn"], env=env, capture_output=True, text=True, timeout=600
    )
    # Faust's worker logs what the agent writes to stderr, so the line may carry a log prefix.
    result = re.findall(r"RESULT (\d+) ([\d.]+) ([\d.]+)", done.stderr)
    if not result:
        raise RuntimeError(f"the consumer did not finish: {done.stderr[-2000:]}")
    seen, wall, cpu = result[-1]
    return int(seen) / float(wall), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-consumer-"))
    broker = LocalKafka(home=default_kafka_home(), state_dir=tmp / "kafka", port=0, heap="1g")
    bootstrap = broker.start()
    rows: dict[str, list[tuple[float, float]]] = {"stock": [], "inline": [], "aiokafka": []}
    try:
        for _ in range(args.rounds):
            for name in rows:
                rows[name].append(consume(bootstrap, tmp, args.records, args.partitions, name))
    finally:
        broker.stop()
    print(f"\n{args.records} one-line records, {args.partitions} partitions, a consumer that only acks or commits")
    print(f"{'consumer':>8} {'records/s':>10} {'CPU s':>7} {'CPU µs/record':>14}  (best of {args.rounds})")
    for name, results in rows.items():
        rate, cpu = max(rate for rate, _ in results), min(cpu for _, cpu in results)
        print(f"{name:>8} {rate:>10.0f} {cpu:>7.2f} {1e6 * cpu / args.records:>14.0f}")
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
