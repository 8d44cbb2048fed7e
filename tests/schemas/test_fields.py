"""The field table, the files generated from it, and the documents the shared builders write."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from schemas import ECS_VERSION, SCHEMA_VERSION, dead_letter, detection, schema_for, truncated_dead_letter
from schemas.attack import threat_fields
from schemas.fields import FIELDS, OUTPUTS, fields_for, namespace_of
from schemas.generate import generated_files, index_template, json_schema, main


def _validator(output: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema_for(output), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


class TestGeneratedFiles:
    def test_committed_files_are_what_the_generator_writes(self) -> None:
        """schemas/*.schema.json and the index templates are exactly python -m schemas.generate's output."""
        for path, content in generated_files().items():
            assert path.read_bytes() == content, f"{path.name} is stale: run python -m schemas.generate"
        assert main(["--check"]) == 0

    def test_every_schema_object_is_closed(self) -> None:
        """Every object in the JSON Schemas lists its properties and allows no others, but for the maps the
        table declares open (auditd.data, auditd.paths, secstream.iocs, and legacy ones)."""
        open_maps = {item.name for item in FIELDS if item.open_values or item.type == "flattened"}

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                if node.get("type") == "object" and "properties" in node:
                    assert node.get("additionalProperties") is False or path in open_maps, path
                for key, value in node.items():
                    if key == "properties":
                        for name, inner in value.items():
                            walk(inner, f"{path}.{name}" if path else name)
                    elif key in ("items", "anyOf"):
                        walk(value, path)
            elif isinstance(node, list):
                for inner in node:
                    walk(inner, path)

        for output in OUTPUTS:
            schema = json_schema(output)
            assert schema["additionalProperties"] is False
            walk(schema, "")

    def test_index_template_maps_every_current_field(self) -> None:
        """Each non-legacy field is in the template with its type; legacy ones are not; keywords cap at 1024."""
        template = index_template()
        assert template["index_patterns"] == ["secstream-*"]
        mappings = template["template"]["mappings"]
        assert mappings["_meta"] == {"ecs_version": ECS_VERSION, "secstream_schema_version": SCHEMA_VERSION}
        for item in FIELDS:
            node: Any = mappings
            for part in item.parts:
                node = (node or {}).get("properties", {}).get(part)
            if item.legacy:
                replaced_in_place = any(
                    not other.legacy and (other.name == item.name or other.name.startswith(f"{item.name}."))
                    for other in FIELDS
                )
                assert replaced_in_place or node is None, item.name
                continue
            assert node is not None, item.name
            if item.type in ("object", "nested"):
                assert node.get("type", "object") == item.type, item.name
            else:
                assert node["type"] == item.type, item.name
                assert node.get("ignore_above") == (1024 if item.type == "keyword" else None), item.name
        paths = {next(iter(d.values()))["path_match"] for d in mappings["dynamic_templates"] if "path_match" in str(d)}
        assert paths == {"auditd.data.*", "auditd.paths.*", "secstream.iocs.*"}

    def test_opensearch_template_uses_opensearch_types(self) -> None:
        """OpenSearch gets keyword, text and flat_object where Elasticsearch gets wildcard, match_only_text
        and flattened."""
        props = index_template("opensearch")["template"]["mappings"]["properties"]
        assert props["process"]["properties"]["command_line"]["type"] == "keyword"
        assert props["message"] == {"type": "text"}
        assert props["log"]["properties"]["syslog"]["properties"]["structured_data"] == {"type": "flat_object"}


class TestTable:
    def test_names_are_unique_and_namespaced(self) -> None:
        """No field twice (a legacy one may share its name with its replacement); every name is ECS-shaped,
        secstream.* or auditd.*."""
        current = [item.name for item in FIELDS if not item.legacy]
        assert len(current) == len(set(current))
        assert {namespace_of(item.name) for item in FIELDS} == {"ecs", "secstream", "auditd"}

    def test_a_field_with_fields_of_its_own_is_an_object(self) -> None:
        """Only object and nested fields have fields under them (Elasticsearch cannot map a leaf as both)."""
        names = {item.name: item for item in FIELDS if not item.legacy}
        for name in names:
            parent = name.rsplit(".", 1)[0]
            if "." in name and parent in names:
                assert names[parent].type in ("object", "nested"), f"{parent} has {name} under it"

    def test_every_legacy_field_says_what_replaces_it(self) -> None:
        """A legacy field names its replacement, which (when it is a field name) is in the table."""
        current = {item.name for item in FIELDS if not item.legacy}
        for item in FIELDS:
            if item.legacy:
                target = item.legacy.split(" ", 1)[0].rstrip(".*,")
                if target.startswith("secstream."):
                    assert any(name.startswith(target) for name in current), item.legacy

    def test_fields_for_rejects_unknown_outputs(self) -> None:
        with pytest.raises(KeyError):
            fields_for("alerts")
        assert all(not item.legacy for item in fields_for("events", legacy=False))


class TestAttack:
    def test_subtechniques_go_under_their_parent(self) -> None:
        """T1059.004 becomes technique T1059 with sub-technique T1059.004, with names, tactics and URLs."""
        threat = threat_fields(["T1105", "T1059.004", "T1059"])
        assert threat["framework"] == "MITRE ATT&CK"
        assert threat["technique"]["id"] == ["T1105", "T1059"]
        assert threat["technique"]["reference"] == [
            "https://attack.mitre.org/techniques/T1105/",
            "https://attack.mitre.org/techniques/T1059/",
        ]
        assert threat["technique"]["subtechnique"]["id"] == ["T1059.004"]
        assert threat["tactic"] == {
            "id": ["TA0011", "TA0002"],
            "name": ["Command and Control", "Execution"],
            "reference": ["https://attack.mitre.org/tactics/TA0011/", "https://attack.mitre.org/tactics/TA0002/"],
        }

    def test_unknown_ids_keep_their_id_and_reference(self) -> None:
        """An id the table does not know is its own name, with no tactic."""
        threat = threat_fields(["T9999.001"])
        assert threat["technique"] == {
            "id": ["T9999"],
            "name": ["T9999"],
            "reference": ["https://attack.mitre.org/techniques/T9999/"],
            "subtechnique": {
                "id": ["T9999.001"],
                "name": ["T9999.001"],
                "reference": ["https://attack.mitre.org/techniques/T9999/001/"],
            },
        }
        assert "tactic" not in threat


class TestBuilders:
    def test_detection_carries_what_elastic_security_reads(self) -> None:
        """An alert has ecs.version, the contract version, category/type/dataset/risk score and rule fields."""
        alert = detection(
            rule_id="R-1",
            rule_name="Rule one",
            rule_version="2",
            severity=73,
            technique_ids=["T1548.003"],
            host="web-01",
            timestamp=1795766401.5,
            evidence_event_ids=["b" * 32, "a" * 32],
            message="seen",
            description="Looks for things.",
            references=["https://example.org/r1"],
            ruleset="mine",
        )
        _validator("detections").validate(alert)
        assert alert["ecs"] == {"version": ECS_VERSION}
        assert alert["secstream"]["schema_version"] == SCHEMA_VERSION
        assert alert["event"] == {
            "id": alert["event"]["id"],
            "kind": "alert",
            "severity": 73,
            "risk_score": 73.0,
            "module": "secstream",
            "dataset": "secstream.alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
        }
        assert alert["rule"] == {
            "id": "R-1",
            "name": "Rule one",
            "version": "2",
            "description": "Looks for things.",
            "ruleset": "mine",
            "reference": ["https://example.org/r1"],
        }
        assert alert["threat"]["technique"]["subtechnique"]["name"] == ["Sudo and Sudo Caching"]
        assert alert["secstream"]["evidence"]["event_ids"] == ["a" * 32, "b" * 32]

    @pytest.mark.parametrize("host", [None, "db-01"])
    def test_dead_letter_has_module_dataset_host_and_message(self, host: str | None) -> None:
        """A dead letter names its input in event.module/dataset, always has host.name and a message."""
        doc = dead_letter(
            original=b"\xff junk", reason="not audit", error_type="ParseError", stream="auditd", host=host
        )
        _validator("deadletter").validate(doc)
        assert doc["event"]["module"] == "auditd" and doc["event"]["dataset"] == "auditd.deadletter"
        assert doc["host"] == {"name": host or "unknown"}
        assert doc["message"] == "auditd input not processed: not audit"
        assert doc["ecs"] == {"version": ECS_VERSION} and doc["secstream"]["schema_version"] == SCHEMA_VERSION

    def test_truncated_dead_letter_validates(self) -> None:
        """The cut-down dead letter of a too-large document (module secstream) validates too."""
        doc = truncated_dead_letter(
            b"x" * 100, 10, reason="too large", error_type="DocumentTooLarge", stream="secstream"
        )
        _validator("deadletter").validate(doc)
        assert doc["event"]["dataset"] == "secstream.deadletter" and doc["secstream"]["original_size"] == 100

    def test_schemas_reject_what_the_contract_does_not_have(self) -> None:
        """Closed objects, allowed values, ISO dates and IPs are enforced."""
        alert = detection(
            rule_id="R",
            rule_name="r",
            rule_version="1",
            severity=21,
            technique_ids=["T1059"],
            host="h",
            timestamp=0.0,
            evidence_event_ids=["a" * 32],
            message="m",
        )
        validator = _validator("detections")
        validator.validate(alert)
        for path, value in (
            (("rule", "colour"), "red"),
            (("event", "kind"), "event"),
            (("@timestamp",), "yesterday"),
            (("source", "ip"), "not-an-ip"),
            (("event", "category"), ["alerting"]),
        ):
            bad: dict[str, Any] = {**alert, "rule": dict(alert["rule"]), "event": dict(alert["event"])}
            target = bad
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
            assert not validator.is_valid(bad), path
