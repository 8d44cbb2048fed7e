"""``secstream worker``, ``secstream produce`` and ``secstream consume``: the Kafka side of the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import re
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, Final

import orjson

from processors.errors import ConfigError
from streams.config import SecstreamConfig, load_config

__all__ = ["line_host", "register_kafka_commands"]

_NODE: Final = re.compile(rb"[ \t]*node=(\S+) ")
_RFC5424: Final = re.compile(rb"<\d{1,3}>\d{1,2} \S+ (\S+) ")
_RFC3164: Final = re.compile(rb"(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) ")


class CommandError(Exception):
    """A one-line, user-facing failure of a Kafka command."""


def line_host(line: bytes) -> bytes | None:
    """The host a raw line names, for keying records by host (routing only, not parsing).

    ``node=HOST`` of an audit line, the HOSTNAME of an RFC 5424 or RFC 3164 syslog line, else None.
    """
    for pattern in (_NODE, _RFC5424, _RFC3164):
        match = pattern.match(line)
        if match is not None:
            return match.group(1)
    return None


def _config(args: argparse.Namespace) -> SecstreamConfig:
    config = load_config(args.config)
    broker = args.broker or config.kafka.broker
    if "://" not in broker:
        broker = f"kafka://{broker}"
    if not broker.startswith(("kafka://", "aiokafka://")):
        raise ConfigError("must look like kafka://HOST:PORT", key="--broker")
    from dataclasses import replace

    return replace(config, kafka=replace(config.kafka, broker=broker))


def _servers(config: SecstreamConfig) -> str:
    from streams.worker.kafka import bootstrap_servers

    return bootstrap_servers(config.kafka.broker)


def _client_options(config: SecstreamConfig) -> dict[str, Any]:
    from streams.worker.kafka import kafka_client_options

    return kafka_client_options(config)


def _fail(command: str, message: str, code: int = 1) -> int:
    sys.stderr.write(f"secstream {command}: {message}\n")
    return code


# -- worker -----------------------------------------------------------------------------------


def _cmd_worker(args: argparse.Namespace) -> int:
    from dataclasses import replace

    try:
        config = _config(args)
        if args.web_port is not None:
            config = replace(config, worker=replace(config.worker, web_port=args.web_port))
        if args.processes is not None:
            if args.processes < 0:
                raise ConfigError("must not be negative (0: one per CPU)", key="--processes")
            config = replace(config, worker=replace(config.worker, processes=args.processes))
    except ConfigError as exc:
        return _fail("worker", str(exc), 2)
    from streams.worker import run_worker
    from streams.worker.processes import process_count, run_worker_processes

    count = process_count(config)
    if count == 1:
        return run_worker(config, log_level=args.log_level)
    return run_worker_processes(config, count, log_level=args.log_level)


# -- produce ----------------------------------------------------------------------------------


def _open(path: Path) -> IO[bytes]:
    handle = path.open("rb")
    if handle.read(2) == b"\x1f\x8b":
        handle.seek(0)
        return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
    handle.seek(0)
    return handle


def _lines(paths: list[Path], advance: Any) -> Iterator[bytes]:
    for path in paths:
        with _open(path) as handle:
            for line in handle:
                advance(path, len(line))
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield line


async def _ensure_topic(config: SecstreamConfig, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=_servers(config), **_client_options(config))
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent producer created it
            await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(
    config: SecstreamConfig, paths: list[Path], topic: str, key_by_host: bool, partitions: int, advance: Any
) -> int:
    from aiokafka import AIOKafkaProducer

    await _ensure_topic(config, topic, partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=_servers(config),
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
        **_client_options(config),
    )
    await producer.start()
    sent = 0
    try:
        futures: list[asyncio.Future[Any]] = []
        for line in _lines(paths, advance):
            key = line_host(line) if key_by_host else None
            futures.append(await producer.send(topic, line, key=key))
            sent += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        if futures:
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def _cmd_produce(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as exc:
        return _fail("produce", str(exc), 2)
    paths = [Path(p) for p in args.files]
    for path in paths:
        if not path.is_file():
            return _fail("produce", f"{path}: no such file", 2)
    partitions = args.partitions or config.topics.partitions
    show = sys.stderr.isatty() and not args.quiet
    total = sum(p.stat().st_size for p in paths)
    bar_ctx: Any = nullcontext()
    advance: Any = lambda _path, _n: None  # noqa: E731 - replaced when a bar is shown
    if show:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        bar_ctx = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
    started = time.monotonic()
    try:
        with bar_ctx as bar:
            if bar is not None:
                task = bar.add_task(f"→ {args.topic}", total=total)
                advance = lambda _path, n: bar.advance(task, n)  # noqa: E731
            sent = asyncio.run(_produce(config, paths, args.topic, args.key_by_host, partitions, advance))
    except OSError as exc:
        return _fail("produce", f"cannot read input: {exc}")
    except Exception as exc:
        return _fail("produce", f"cannot produce to {config.kafka.broker}: {type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    if not args.quiet:
        rate = sent / seconds if seconds > 0 else 0.0
        sys.stderr.write(
            f"produced {sent} lines from {len(paths)} file(s) to {args.topic} in {seconds:.1f}s ({rate:,.0f} lines/s)\n"
        )
    return 0


# -- consume ----------------------------------------------------------------------------------


def _render(value: bytes | None, pretty: bool, console: Any) -> None:
    if value is None:
        return
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        sys.stdout.write(value.decode("utf-8", "backslashreplace") + "\n")
        return
    if pretty and console is not None:
        console.print_json(orjson.dumps(doc).decode())
    elif pretty:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


async def _consume(config: SecstreamConfig, args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=_servers(config),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        isolation_level="read_committed" if args.read_committed else "read_uncommitted",
        **_client_options(config),
    )
    await consumer.start()
    try:
        topics = await consumer.topics()
        if args.topic not in topics:
            raise CommandError(f"topic {args.topic!r} does not exist")
        consumer.subscribe([args.topic])
        pretty = args.pretty if args.pretty is not None else sys.stdout.isatty()
        console = None
        if pretty and sys.stdout.isatty():
            from rich.console import Console

            console = Console()
        seen = 0
        idle_since = time.monotonic()
        while args.max is None or seen < args.max:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
                    break
                continue
            idle_since = time.monotonic()
            for record in records:
                if args.max is not None and seen >= args.max:
                    break
                _render(record.value, pretty, console)
                seen += 1
        return seen
    finally:
        await consumer.stop()


def _cmd_consume(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as exc:
        return _fail("consume", str(exc), 2)
    try:
        seen = asyncio.run(_consume(config, args))
    except CommandError as exc:
        return _fail("consume", str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _fail("consume", f"cannot consume from {config.kafka.broker}: {type(exc).__name__}: {exc}")
    if args.verbose:
        sys.stderr.write(f"consumed {seen} records from {args.topic}\n")
    return 0


# -- registration -----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="kafka://HOST:PORT (default: [kafka] broker of the config)")
    parser.add_argument("--config", help="configuration file (TOML); SECSTREAM_* variables override it")


def register_kafka_commands(subparsers: Any) -> None:
    """Add ``worker``, ``produce`` and ``consume`` to the ``secstream`` subcommands.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    worker = subparsers.add_parser(
        "worker",
        help="run the distributed stage graph as a Kafka consumer-group member",
        description=(
            "Consume raw auditd and syslog lines from Kafka, and write events, detections and dead letters "
            "back to Kafka. Start more workers with the same app id, or more processes per worker, to scale out "
            "(up to topics.partitions members)."
        ),
    )
    _common(worker)
    worker.add_argument("--web-port", type=int, help="health and metrics port (default: [worker] web_port)")
    worker.add_argument(
        "--processes",
        type=int,
        help="worker processes, one core each; 0 = one per CPU (default: [worker] processes)",
    )
    worker.set_defaults(handler=_cmd_worker)

    produce = subparsers.add_parser(
        "produce",
        help="load log files (plain or gzip) into a Kafka topic, one record per line",
        description="Send every non-blank line of the files to TOPIC, batching sends.",
    )
    produce.add_argument("files", nargs="+", metavar="FILE", help="log file(s), plain or gzip")
    produce.add_argument("--topic", required=True, help="destination topic, e.g. secstream.raw.auditd")
    _common(produce)
    produce.add_argument(
        "--key-by-host", action="store_true", help="key each record by the host it names (node=, syslog HOSTNAME)"
    )
    produce.add_argument("--partitions", type=_positive_int, help="partitions if the topic must be created")
    produce.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    produce.set_defaults(handler=_cmd_produce)

    consume = subparsers.add_parser(
        "consume",
        help="print the JSON documents of a topic",
        description="Print the records of TOPIC: pretty JSON on a terminal, one JSON document per line otherwise.",
    )
    consume.add_argument("topic", metavar="TOPIC", help="topic to read, e.g. secstream.events")
    _common(consume)
    consume.add_argument("--from-beginning", action="store_true", help="start at the earliest offset (default: new)")
    consume.add_argument("--max", type=_positive_int, help="stop after N records")
    consume.add_argument("--timeout", type=_non_negative, help="stop after S seconds without a record")
    consume.add_argument("--read-committed", action="store_true", help="skip records of aborted transactions")
    style = consume.add_mutually_exclusive_group()
    style.add_argument("--pretty", dest="pretty", action="store_true", default=None, help="indented JSON")
    style.add_argument("--compact", dest="pretty", action="store_false", help="one JSON document per line")
    consume.add_argument("-v", "--verbose", action="store_true", help="report the record count on stderr")
    consume.set_defaults(handler=_cmd_consume)
