"""The ``secstream`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from streams.logging import configure_logging

__all__ = ["build_parser", "main"]


def _cmd_dev_kafka(args: argparse.Namespace) -> int:
    from streams.dev.broker import KafkaLauncherError, LocalKafka, default_kafka_home

    home = default_kafka_home()
    broker = LocalKafka(home=home, state_dir=Path(args.state_dir or home / "run"), port=args.port)
    try:
        if args.action == "start":
            sys.stdout.write(broker.start() + "\n")
        elif args.action == "stop":
            sys.stdout.write("stopped\n" if broker.stop() else "not running\n")
        else:
            sys.stdout.write(broker.status() + "\n")
    except KafkaLauncherError as exc:
        sys.stderr.write(f"secstream dev-kafka: {exc}\n")
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from streams.cli.run import run_command

    return run_command(args)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    if value.upper() not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level ({', '.join(_LOG_LEVELS)})")
    return value.upper()


def _year(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 9999):
        raise argparse.ArgumentTypeError(f"{value!r} is not a year (1-9999)")
    return int(value)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: the reason and where to get help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = _Parser(
        prog="secstream",
        description="Streaming worker for Linux security telemetry (auditd and syslog).",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=_log_level,
        help="minimum log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default: INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the pipeline in process on files or stdin (no broker needed)",
        description=(
            "Run the whole stage graph in this process: raw auditd and syslog lines in, enriched events, "
            "detections and dead letters out. With no input arguments, the bundled sample logs are used."
        ),
    )
    run.add_argument("--audit", action="append", metavar="FILE|-", help="raw auditd log (plain or gzip; - = stdin)")
    run.add_argument("--syslog", action="append", metavar="FILE|-", help="syslog lines (plain or gzip; - = stdin)")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="write events.jsonl, detections.jsonl and deadletter.jsonl here (default: all documents to stdout)",
    )
    run.add_argument("--config", metavar="FILE", help="TOML configuration (default: built-in defaults)")
    run.add_argument(
        "--year",
        type=_year,
        metavar="YYYY",
        help="year of RFC 3164 syslog timestamps, which have none (replays); overrides input.syslog_year "
        "(default: the year closest to the audit input's clock, else to when a line is read)",
    )
    run.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    run.set_defaults(handler=_cmd_run)

    kafka = sub.add_parser(
        "dev-kafka",
        help="start, stop or query a local single-node Kafka for development",
        description="Run a real Apache Kafka 4 broker (KRaft) on 127.0.0.1, resolved from Maven Central.",
    )
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--port", type=int, default=9092, help="client port on 127.0.0.1 (default: 9092)")
    kafka.add_argument("--state-dir", help="broker state directory (default: docker/kafka/run)")
    kafka.set_defaults(handler=_cmd_dev_kafka)

    from streams.cli.kafka import register_kafka_commands

    register_kafka_commands(sub)
    from streams.cli.rules import register_rules_command

    register_rules_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``secstream`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    handler = args.handler
    code: int = handler(args)
    return code
