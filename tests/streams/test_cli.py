"""The secstream command as a user meets it: help, one-line errors, exit codes and piping."""

from __future__ import annotations

import subprocess
import sys
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
