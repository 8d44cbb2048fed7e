"""Hostile syslog input through the parser, the stage graph and ``secstream run``: nothing raises, nothing
vanishes, every line is an event, a dead letter or a counted empty line."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.errors import ParseError
from processors.syslog import parse_syslog_line
from schemas import loads
from streams.config import load_config
from streams.graph import HostStates, Pipeline, RawLine
from streams.runner import InputSpec, OutputSink, run_pipeline
from tests.strategies_syslog import (
    hostile_syslog_line,
    hostile_syslog_lines,
    iso_timestamps,
    odd_numbers,
    syslog_3164_line,
    syslog_5424_line,
)

_ISO = re.compile(r"-?[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_RECEIVED = 1_795_766_400.0  # 2026-11-27


class TestParser:
    @given(st.one_of(syslog_5424_line, syslog_3164_line))
    def test_a_line_is_a_document_or_a_parse_error(self, line: str) -> None:
        """Extreme times, PRIs, pids and names never raise anything but ParseError."""
        try:
            doc = parse_syslog_line(line, received=_RECEIVED)
        except ParseError:
            return
        assert _ISO.fullmatch(doc["@timestamp"]), doc["@timestamp"]
        assert re.fullmatch(r"[0-9a-f]{32}", doc["event"]["id"])
        pid = doc.get("process", {}).get("pid")
        assert pid is None or 0 <= pid < 2**63

    @given(iso_timestamps)
    def test_rfc5424_times_at_the_edges(self, stamp: str) -> None:
        try:
            doc = parse_syslog_line(f"<38>1 {stamp} h1 sshd 1 - - x")
        except ParseError:
            return
        assert _ISO.fullmatch(doc["@timestamp"])

    def test_year_10000_after_rounding_is_a_parse_error(self) -> None:
        """The issue's line: nine nines of fraction round 9999-12-31T23:59:59 into the year 10000."""
        try:
            doc = parse_syslog_line("<38>1 9999-12-31T23:59:59.9999999Z h1 sshd 1 - - x")
        except ParseError as error:
            assert "timestamp" in error.reason
        else:
            assert doc["@timestamp"].startswith("9999-12-31T23:59:59")

    @given(odd_numbers.filter(lambda pid: pid and " " not in pid))
    def test_process_ids_are_ascii_and_bounded(self, pid: str) -> None:
        """A pid in Arabic-Indic digits or past 64 bits is not read as a number."""
        doc = parse_syslog_line(f"<38>1 2026-01-01T00:00:00Z h1 app {pid} - - x")
        value = doc.get("process", {}).get("pid")
        if value is not None:
            assert pid.isascii() and pid.isdigit() and int(pid) == value


class TestYearWithoutYear:
    def test_new_years_eve_reads_a_january_line_as_next_year(self) -> None:
        """A sender slightly ahead: Jan 1 00:00:05 read on Dec 31 23:59:59 is next year's, not 364 days back."""
        received = 1_798_761_599.0  # 2026-12-31T23:59:59Z
        doc = parse_syslog_line("Jan  1 00:00:05 h app: x", received=received)
        assert doc["@timestamp"].startswith("2027-01-01T00:00:05")

    def test_new_years_day_reads_a_december_line_as_last_year(self) -> None:
        received = 1_798_761_605.0  # 2027-01-01T00:00:05Z
        doc = parse_syslog_line("Dec 31 23:59:59 h app: x", received=received)
        assert doc["@timestamp"].startswith("2026-12-31T23:59:59")

    def test_midyear_line_stays_in_the_year(self) -> None:
        doc = parse_syslog_line("Jul 10 15:13:25 h app: x", received=_RECEIVED)
        assert doc["@timestamp"].startswith("2026-07-10")


class TestIds:
    def test_identical_lines_at_different_places_get_different_ids(self) -> None:
        line = "Jul 10 15:13:30 h sshd[1]: Failed password for bob from 1.2.3.4 port 22 ssh2"
        ids = {
            parse_syslog_line(line, year=2026, origin=(("file", "auth.log"), ("line", n)))["event"]["id"]
            for n in range(10)
        }
        assert len(ids) == 10

    def test_a_reread_line_keeps_its_id(self) -> None:
        line = "<38>1 2026-01-01T00:00:00Z h1 sshd 1 - - Failed password for x from 1.2.3.4 port 22 ssh2"
        origin = (("offset", 7), ("partition", 0), ("topic", "raw"))
        first = parse_syslog_line(line, origin=origin)["event"]["id"]
        assert parse_syslog_line(line, origin=origin)["event"]["id"] == first


def _pipeline() -> Pipeline:
    return Pipeline(load_config(environ={}))


class TestGraph:
    @settings(max_examples=60)
    @given(hostile_syslog_lines)
    def test_every_line_is_accounted_for(self, lines: list[bytes]) -> None:
        """syslog_lines never raises; each line is an event, a dead letter or a counted empty line."""
        pipeline = _pipeline()
        raw = [RawLine(data, {"file": "x", "line": n}, None, _RECEIVED) for n, data in enumerate(lines)]
        pending = pipeline.syslog_lines(raw, HostStates())
        empty = pipeline.stats.bad_input["syslog:empty_line"]
        assert len(pending.events) + len(pending.deadletters) + empty == len(lines)
        outputs = asyncio.run(pipeline.complete(pending, HostStates()))
        assert len(outputs.events) >= len(pending.events) - (len(outputs.deadletters) - len(pending.deadletters))

    def test_identical_lines_in_one_second_keep_distinct_ids(self) -> None:
        """sshd writes identical failures within one connection: consumers dropping duplicates by id keep all."""
        line = b"Jul 10 15:13:30 h sshd[1]: Failed password for bob from 1.2.3.4 port 22 ssh2"
        raw = [RawLine(line, {"file": "auth.log", "line": n}, None, _RECEIVED) for n in range(10)]
        pending = _pipeline().syslog_lines(raw, HostStates())
        assert len({doc["event"]["id"] for doc in pending.events}) == 10


class TestSecstreamRun:
    @settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(hostile_syslog_line, min_size=1, max_size=30))
    def test_a_file_of_hostile_lines_runs_to_the_end(self, lines: list[bytes]) -> None:
        """End to end through the runner: every line comes out, as an event or a dead letter, or is counted."""
        with tempfile.TemporaryDirectory() as folder:
            source, out = Path(folder) / "syslog.log", Path(folder) / "out"
            source.write_bytes(b"".join(line + b"\n" for line in lines))

            async def run() -> int:
                pipeline = _pipeline()
                sink = OutputSink(out)
                try:
                    result = await run_pipeline(pipeline, [InputSpec(str(source), "syslog")], sink, batch_lines=7)
                finally:
                    sink.close()
                    await pipeline.close()
                return result.stats.bad_input["syslog:empty_line"]

            empty = asyncio.run(run())
            events = [loads(line) for line in (out / "events.jsonl").read_bytes().splitlines()]
            dead = (out / "deadletter.jsonl").read_bytes().splitlines()
            lines_out = [doc for doc in events if doc["event"].get("action") != "session_summary"]
            assert len(lines_out) + len(dead) + empty == len(lines)
