"""``secstream rules list|lint|test``, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .attack_corpus import AuditWriter

FIXTURES = Path(__file__).parent / "rules"


def _secstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_list_shows_the_configured_rules() -> None:
    result = _secstream("rules", "list")
    assert result.returncode == 0
    assert "5ec57ea0-0000-4000-8000-000000000024" in result.stdout
    assert "SSH authorized_keys written" in result.stdout
    assert result.stderr.strip().endswith("34 rules")


def test_lint_reports_each_bad_rule_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("title: bad\nlogsource: {product: linux}\ndetection:\n  sel: {a|nosuch: 1}\n")
    result = _secstream("rules", "lint", str(FIXTURES), str(tmp_path))
    assert result.returncode == 1
    out = result.stdout.splitlines()
    errors = [line for line in out if line.startswith("error: ")]
    assert len(errors) == 1 and str(tmp_path / "bad.yml") in errors[0]
    assert out[-1] == "5 rules OK, 1 errors"
    assert _secstream("rules", "lint", str(FIXTURES)).returncode == 0


def test_test_shows_what_fires_and_on_which_fields(tmp_path: Path) -> None:
    writer = AuditWriter("h1")
    writer.open_write("/root/.ssh/authorized_keys", pid=10, ppid=9, exe="/usr/bin/bash")
    audit = tmp_path / "audit.log"
    audit.write_text("\n".join(writer.lines) + "\n")
    out_dir = tmp_path / "out"
    assert _secstream("run", "--audit", str(audit), "--out", str(out_dir), "--no-progress").returncode == 0
    events = out_dir / "events.jsonl"
    with events.open("a") as stream:
        stream.write("not json\n")
    result = _secstream("rules", "test", "--events", str(events), "--rules", str(FIXTURES))
    assert result.returncode == 0, result.stderr
    assert "Fixture auditd records [5f0c1d2e-0001-4a00-8000-000000000004] by secstream tests" in result.stdout
    assert "    auditd.name = '/root/.ssh/authorized_keys'" in result.stdout
    assert "    auditd.nametype = 'CREATE'" in result.stdout
    assert "1 events, 1 alerts from 1 rules, 1 lines skipped" in result.stdout
    assert "not a JSON event document" in result.stderr
    assert json.loads(events.read_text().splitlines()[0])["event"]["module"] == "auditd"
