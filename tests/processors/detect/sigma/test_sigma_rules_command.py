"""``secstream rules list|lint|test``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli import main

from .attack_corpus import AuditWriter

FIXTURES = Path(__file__).parent / "rules"


def test_list_shows_the_configured_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    out, err = capsys.readouterr()
    assert "5ec57ea0-0000-4000-8000-000000000024" in out and "SSH authorized_keys written" in out
    assert err.strip().endswith("34 rules")


def test_lint_reports_each_bad_rule_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yml").write_text("title: bad\nlogsource: {product: linux}\ndetection:\n  sel: {a|nosuch: 1}\n")
    assert main(["rules", "lint", str(FIXTURES), str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    errors = [line for line in out if line.startswith("error: ")]
    assert len(errors) == 1 and str(tmp_path / "bad.yml") in errors[0]
    assert out[-1] == "5 rules OK, 1 errors"
    assert main(["rules", "lint", str(FIXTURES)]) == 0


def test_test_shows_what_fires_and_on_which_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = AuditWriter("h1")
    writer.open_write("/root/.ssh/authorized_keys", pid=10, ppid=9, exe="/usr/bin/bash")
    audit = tmp_path / "audit.log"
    audit.write_text("\n".join(writer.lines) + "\n")
    out_dir = tmp_path / "out"
    assert main(["run", "--audit", str(audit), "--out", str(out_dir), "--no-progress"]) == 0
    capsys.readouterr()
    events = out_dir / "events.jsonl"
    with events.open("a") as stream:
        stream.write("not json\n")
    assert main(["rules", "test", "--events", str(events), "--rules", str(FIXTURES)]) == 0
    out, err = capsys.readouterr()
    assert "Fixture auditd records [5f0c1d2e-0001-4a00-8000-000000000004] by secstream tests" in out
    assert "    auditd.name = '/root/.ssh/authorized_keys'" in out
    assert "    auditd.nametype = 'CREATE'" in out
    assert "1 events, 1 alerts from 1 rules, 1 lines skipped" in out
    assert "not a JSON event document" in err
    assert json.loads(events.read_text().splitlines()[0])["event"]["module"] == "auditd"
