"""``secstream produce`` and ``secstream consume`` against a real broker."""

from __future__ import annotations

import gzip
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration


def _secstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


class TestProduceConsume:
    def test_gzip_file_round_trip(self, kafka_bootstrap: str, tmp_path: Path) -> None:
        """Every non-blank line of a gzip file is produced, keyed by host, and consumed back in order per key."""
        topic = f"cli-{uuid.uuid4().hex[:8]}"
        lines = [f'{{"n": {i}, "host": "h{i % 3}"}}' for i in range(50)]
        src = tmp_path / "in.log.gz"
        src.write_bytes(gzip.compress(("\n".join(lines) + "\n\n").encode()))
        produced = _secstream("produce", str(src), "--topic", topic, "--broker", f"kafka://{kafka_bootstrap}")
        assert produced.returncode == 0, produced.stderr
        assert "produced 50 lines" in produced.stderr
        consumed = _secstream(
            "consume",
            topic,
            "--broker",
            kafka_bootstrap,
            "--from-beginning",
            "--max",
            "50",
            "--timeout",
            "10",
            "--compact",
        )
        assert consumed.returncode == 0, consumed.stderr
        docs = [orjson.loads(line) for line in consumed.stdout.splitlines()]
        assert sorted(d["n"] for d in docs) == list(range(50))

    def test_consume_missing_topic__one_line_error(self, kafka_bootstrap: str) -> None:
        """Consuming a topic that does not exist fails with one line and a non-zero exit."""
        result = _secstream("consume", "no-such-topic-x", "--broker", kafka_bootstrap, "--timeout", "1")
        assert result.returncode == 1
        assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr

    def test_bad_arguments__exit_2(self, tmp_path: Path) -> None:
        """A missing file or a bad number is a usage error (exit 2), not a traceback."""
        assert _secstream("produce", str(tmp_path / "nope"), "--topic", "t").returncode == 2
        assert _secstream("consume", "t", "--max", "0").returncode == 2
        assert _secstream("worker", "--broker", "http://x").returncode == 2
        assert _secstream("worker", "--processes", "-1").returncode == 2
