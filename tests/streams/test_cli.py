"""The secstream command as a user meets it: help, one-line errors, exit codes and piping."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import loads
from streams.config import bundled_config_dir


def _secstream(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], input=stdin, capture_output=True, timeout=120, check=False
    )


class TestHelpAndErrors:
    @pytest.mark.parametrize("command", [[], ["run"], ["dev-kafka"], ["worker"], ["produce"], ["consume"]])
    def test_help_exits_zero(self, command: list[str]) -> None:
        """Every subcommand has --help."""
        result = _secstream(*command, "--help")
        assert result.returncode == 0
        assert b"usage: secstream" in result.stdout

    def test_unknown_subcommand_is_one_line(self) -> None:
        """A bad argument exits 2 with a one-line reason."""
        result = _secstream("frobnicate")
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert b"invalid choice" in result.stderr

    def test_missing_input_file_is_one_line(self, tmp_path: Path) -> None:
        """A missing input file exits 2 with a one-line reason naming it."""
        result = _secstream("run", "--audit", str(tmp_path / "nope.log"))
        assert result.returncode == 2
        assert (
            result.stderr.strip().splitlines()[-1]
            == f"secstream run: input file {tmp_path / 'nope.log'} does not exist".encode()
        )

    def test_bad_config_key_is_named(self, tmp_path: Path) -> None:
        """An unknown configuration key stops the run with a message naming the key."""
        config = tmp_path / "bad.toml"
        config.write_text("[coalescer]\nmax_inflight = 3\n")
        result = _secstream("run", "--config", str(config))
        assert result.returncode == 2
        assert b"coalescer.max_inflight: unknown key" in result.stderr

    def test_bad_blocklist_is_one_line_naming_it(self, tmp_path: Path) -> None:
        """A blocklist the enrichment stage cannot read stops the run with one line naming the file."""
        blocklist = tmp_path / "bl.csv"
        blocklist.write_text("address,kind\n203.0.113.5,ipv4\n")
        config = tmp_path / "bl.toml"
        config.write_text(f"[enrichment]\nblocklists = [{str(blocklist)!r}]\n")
        result = _secstream("run", "--config", str(config), "--out", str(tmp_path / "out"))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith(f"secstream run: {blocklist}: blocklist CSV header has no indicator".encode())
        assert b"Traceback" not in result.stderr


class TestRun:
    def test_stdin_to_stdout(self) -> None:
        """Audit lines on stdin come out as JSON documents on stdout, the summary on stderr."""
        lines = (bundled_config_dir() / "samples" / "audit.log").read_bytes()
        result = _secstream("run", "--audit", "-", stdin=lines)
        assert result.returncode == 0, result.stderr
        docs = [loads(line) for line in result.stdout.splitlines()]
        assert {doc["event"]["kind"] for doc in docs} == {"event", "alert"}
        assert b"secstream run:" in result.stderr

    def test_no_arguments_runs_the_samples(self, tmp_path: Path) -> None:
        """With no inputs, the bundled samples are processed and the summary names the output."""
        result = _secstream("run", "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert b"detections:" in result.stdout
        assert (tmp_path / "detections.jsonl").stat().st_size > 0


def _errors(result: subprocess.CompletedProcess[bytes]) -> list[bytes]:
    """stderr without the structured log lines: what a user reads."""
    return [line for line in result.stderr.splitlines() if line.startswith(b"secstream")]


class TestOneLineErrors:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--log-level", "BOGUS", "run"], b"is not a log level"),
            (["run", "--config", "{tmp}"], b"is a directory, not a file"),
            (["run", "--audit", "{tmp}"], b"is a directory, not a file"),
            (["run", "--out", "{file}"], b"is a file, not a directory"),
            (["run", "--year", "10000"], b"is not a year"),
        ],
    )
    def test_user_errors_are_one_line_exit_2(self, tmp_path: Path, args: list[str], expected: bytes) -> None:
        afile = tmp_path / "plain.txt"
        afile.write_text("x")
        result = _secstream(*(arg.format(tmp=tmp_path, file=afile) for arg in args))
        assert result.returncode == 2
        assert b"Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr

    def test_a_bad_rule_file_is_one_line_and_leaves_no_output(self, tmp_path: Path) -> None:
        rules = tmp_path / "rules.toml"
        rules.write_text("[[rule]]\nid = 1\n")
        config = tmp_path / "c.toml"
        config.write_text(f'[detection]\nrule_files = ["{rules}"]\n')
        result = _secstream("run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
        assert result.returncode == 2
        assert b"Traceback" not in result.stderr
        assert _errors(result)[-1].startswith(b"secstream run: detection.rule_files[0]: " + str(rules).encode())
        assert not (tmp_path / "out").exists()

    def test_broken_pipe_is_one_line(self) -> None:
        """``secstream run | head -1``: the closed pipe is one line, exit 2, no traceback."""
        command = f"{sys.executable} -m streams.cli run --no-progress | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}"
        result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120, check=False)
        assert result.stdout.strip() == b"2"
        assert b"Traceback" not in result.stderr
        assert b"secstream run: cannot write to standard output: the reader closed the pipe" in result.stderr

    def test_truncated_gzip_is_processed_up_to_the_damage_and_fails(self, tmp_path: Path) -> None:
        whole = gzip.compress((bundled_config_dir() / "samples" / "syslog.log").read_bytes())
        damaged = tmp_path / "syslog.log.gz"
        damaged.write_bytes(whole[: len(whole) - 20])
        result = _secstream("run", "--syslog", str(damaged), "--out", str(tmp_path / "out"), "--no-progress")
        assert result.returncode == 1
        assert b"input ends badly after line" in _errors(result)[-1]
        assert (tmp_path / "out" / "events.jsonl").stat().st_size > 0

    def test_a_named_pipe_is_input(self, tmp_path: Path) -> None:
        """``mkfifo`` / ``<(tail -f ...)`` style input is read as live input, not refused."""
        fifo = tmp_path / "audit.pipe"
        os.mkfifo(fifo)
        with subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--audit", str(fifo), "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            with fifo.open("wb") as writer:
                writer.write((bundled_config_dir() / "samples" / "audit.log").read_bytes())
            _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert (tmp_path / "out" / "events.jsonl").stat().st_size > 0


class TestLiveInput:
    def test_live_stdin_comes_out_before_the_end_and_sigterm_flushes(self, tmp_path: Path) -> None:
        """Lines on a pipe that stays open are processed within a second or two; SIGTERM flushes the
        events still in flight, prints the summary and exits 0, as the worker does."""
        lines = (bundled_config_dir() / "samples" / "audit.log").read_bytes().splitlines(keepends=True)[:20]
        out = tmp_path / "out"
        with subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--audit", "-", "--out", str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            assert process.stdin is not None
            process.stdin.write(b"".join(lines))
            process.stdin.flush()
            events = out / "events.jsonl"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (events.exists() and events.stat().st_size):
                time.sleep(0.2)
            assert events.stat().st_size > 0, "nothing came out while the pipe stayed open"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert b"lines in" in stdout
        assert b"stopped by SIGTERM" in stderr
        assert events.read_bytes().endswith(b"\n")
