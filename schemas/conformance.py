"""Check output documents field by field against ECS's own field definitions.

The rules (what Elasticsearch, Kibana and Elastic Security need of a document):

* every field occurrence (a leaf value, each element of a list of objects counted once) is either an ECS
  field, with ECS's type, ECS's allowed (or expected) values and a list where ECS says the field is an
  array, or under a namespace of our own: ``secstream.*``, or Auditbeat's ``auditd.*`` with Auditbeat's
  types (``auditd.sequence`` a long, ``auditd.session`` and every ``auditd.data.*`` and ``auditd.paths.*``
  value a keyword string);
* every ``event.type`` is one ECS expects for one of the document's ``event.category`` values.

ECS's definitions are its ``ecs_flat.yml`` (elastic/ecs ``generated/ecs/ecs_flat.yml``), parsed by the caller
(:func:`EcsDefinitions.from_flat`). To measure a run's output (needs PyYAML)::

    python -m schemas.conformance path/to/ecs_flat.yml out/     # out/{events,detections,deadletter}.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = ["EcsDefinitions", "EcsField", "Finding", "Report", "check_document", "main"]

_STRINGS: Final = frozenset({"keyword", "constant_keyword", "wildcard", "text", "match_only_text"})
_INTEGERS: Final = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_NUMBERS: Final = frozenset({"float", "double", "half_float", "scaled_float"})
_OPAQUE: Final = frozenset({"object", "flattened", "geo_point"})  # one value, whatever its keys
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_OURS: Final = "secstream"
_AUDITBEAT: Final = "auditd"
_AUDITBEAT_OPEN: Final = ("auditd.data.", "auditd.paths.")
_AUDITBEAT_TYPES: Final = {"auditd.sequence": "long", "auditd.session": "keyword"}


@dataclass(frozen=True, slots=True)
class EcsField:
    """What ECS says about one field: its type, whether it is an array, its allowed values."""

    name: str
    type: str
    array: bool = False
    values: frozenset[str] = frozenset()
    expected_types: Mapping[str, frozenset[str]] = field(default_factory=dict)
    opaque: bool = False  # one value whatever its keys: flattened, geo_point, an object ECS lists no fields of


@dataclass(frozen=True, slots=True)
class EcsDefinitions:
    """ECS's fields by dotted name."""

    fields: Mapping[str, EcsField]

    @classmethod
    def from_flat(cls, flat: Mapping[str, Mapping[str, Any]]) -> EcsDefinitions:
        """Read ECS's ``ecs_flat.yml`` (already parsed: ``{flat_name: {type, normalize, allowed_values...}}``)."""
        fields: dict[str, EcsField] = {}
        parents = {name.rsplit(".", 1)[0] for name in flat if "." in name}
        for name, spec in flat.items():
            allowed = spec.get("allowed_values") or []
            values = {str(v["name"]) for v in allowed} | {str(v) for v in spec.get("expected_values") or []}
            expected = {str(v["name"]): frozenset(v.get("expected_event_types") or ()) for v in allowed}
            fields[name] = EcsField(
                name=name,
                type=str(spec.get("type", "keyword")),
                array="array" in (spec.get("normalize") or ()),
                values=frozenset(values),
                expected_types=expected,
                opaque=spec.get("type") in _OPAQUE and name not in parents,
            )
        return cls(fields)


@dataclass(frozen=True, slots=True)
class Finding:
    """One field occurrence that breaks a rule: ``problem`` is ``not_ecs``, ``not_auditbeat``, ``type``,
    ``value``, ``not_array`` or ``pairing``."""

    path: str
    problem: str
    detail: str = ""


@dataclass(slots=True)
class Report:
    """Field occurrences seen and the findings, per output stream."""

    occurrences: Counter[str] = field(default_factory=Counter)
    findings: Counter[tuple[str, Finding]] = field(default_factory=Counter)

    def add(self, output: str, doc: Mapping[str, Any], ecs: EcsDefinitions) -> None:
        """Check one document of ``output`` and count it."""
        seen, found = check_document(doc, ecs)
        self.occurrences[output] += seen
        for finding in found:
            self.findings[(output, finding)] += 1

    def conforming_share(self, output: str) -> float:
        """The share of ``output``'s field occurrences that break no rule (1.0 when there are none)."""
        total = self.occurrences[output]
        bad = sum(n for (name, f), n in self.findings.items() if name == output and f.problem != "pairing")
        return 1.0 if total == 0 else (total - bad) / total


def _type_problem(ecs_type: str, value: Any) -> str | None:
    """Why ``value`` cannot be a value of an ECS ``ecs_type`` field (None when it can)."""
    if ecs_type in _STRINGS:
        ok = isinstance(value, str)
    elif ecs_type in _INTEGERS:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif ecs_type in _NUMBERS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif ecs_type == "boolean":
        ok = isinstance(value, bool)
    elif ecs_type == "date":
        ok = isinstance(value, str) and _ISO_DATE.fullmatch(value) is not None
    elif ecs_type == "ip":
        ok = isinstance(value, str) and _is_ip(value)
    elif ecs_type == "geo_point":
        ok = isinstance(value, dict) and all(isinstance(value.get(k), int | float) for k in ("lat", "lon"))
    elif ecs_type in ("object", "flattened"):
        ok = isinstance(value, dict)
    else:
        ok = True
    return None if ok else f"{type(value).__name__} {value!r:.60} is not {ecs_type}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _leaves(value: Any, path: str, ecs: EcsDefinitions) -> Iterable[tuple[str, Any]]:
    """``(dotted path, value)`` per field occurrence; lists of objects are walked through, element by element."""
    if isinstance(value, dict):
        spec = ecs.fields.get(path)
        if path and spec is not None and spec.opaque:
            yield path, value
            return
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else str(key), ecs)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        spec = ecs.fields.get(path)
        if spec is not None and spec.opaque:
            yield path, value
            return
        for item in value:
            yield from _leaves(item, path, ecs)
    else:
        yield path, value


def _check_auditbeat(path: str, value: Any) -> Finding | None:
    if path.startswith(_AUDITBEAT_OPEN):
        items = value if isinstance(value, list) else [value]
        if all(isinstance(item, str) for item in items):
            return None
        return Finding(path, "type", f"{value!r:.60}: Auditbeat maps {path.split('.')[1]}.* as keyword")
    expected = _AUDITBEAT_TYPES.get(path)
    if expected is None:
        return Finding(path, "not_auditbeat")
    if value is None:
        return None
    problem = _type_problem(expected, value)
    return Finding(path, "type", problem) if problem else None


def _check_ecs(path: str, value: Any, ecs: EcsDefinitions) -> list[Finding]:
    spec = ecs.fields.get(path)
    if spec is None:
        return [Finding(path, "not_ecs")]
    if value is None:  # Elasticsearch indexes null as missing
        return []
    found: list[Finding] = []
    if spec.array and not isinstance(value, list):
        found.append(Finding(path, "not_array"))
    items = value if isinstance(value, list) and not spec.opaque else [value]
    for item in items:
        problem = _type_problem(spec.type, item)
        if problem:
            found.append(Finding(path, "type", problem))
        elif spec.values and isinstance(item, str) and item not in spec.values:
            found.append(Finding(path, "value", item))
    return found


def _pairing(doc: Mapping[str, Any], ecs: EcsDefinitions) -> list[Finding]:
    event = doc.get("event")
    spec = ecs.fields.get("event.category")
    if not isinstance(event, dict) or spec is None or "type" not in event:
        return []
    categories = event.get("category") or []
    types = event.get("type") or []
    if not isinstance(categories, list) or not isinstance(types, list):
        return []
    expected: set[str] = set()
    for category in categories:
        expected |= spec.expected_types.get(str(category), frozenset())
    return [
        Finding("event.type", "pairing", f"{kind} with categories {categories}")
        for kind in types
        if kind not in expected
    ]


def check_document(doc: Mapping[str, Any], ecs: EcsDefinitions) -> tuple[int, list[Finding]]:
    """Check one document: the number of field occurrences and the findings (one per broken rule)."""
    seen = 0
    found: list[Finding] = []
    for path, value in _leaves(dict(doc), "", ecs):
        seen += 1
        namespace = path.split(".", 1)[0]
        if namespace == _OURS:
            continue
        if namespace == _AUDITBEAT:
            finding = _check_auditbeat(path, value)
            if finding is not None:
                found.append(finding)
            continue
        found.extend(_check_ecs(path, value, ecs))
    found.extend(_pairing(doc, ecs))
    return seen, found


def main(argv: Sequence[str] | None = None) -> int:
    """Report the share of conforming field occurrences of a run's output files, and the findings."""
    parser = argparse.ArgumentParser(description="Check secstream output files against ECS's ecs_flat.yml.")
    parser.add_argument("ecs_flat", type=Path, help="ECS's generated/ecs/ecs_flat.yml")
    parser.add_argument("out", type=Path, help="the directory with events.jsonl, detections.jsonl, deadletter.jsonl")
    parser.add_argument("--top", type=int, default=20, help="how many findings to list per output")
    args = parser.parse_args(argv)
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        sys.stderr.write("reading ecs_flat.yml needs PyYAML: pip install pyyaml\n")
        return 2
    ecs = EcsDefinitions.from_flat(yaml.safe_load(args.ecs_flat.read_text(encoding="utf-8")))
    report = Report()
    for output in ("events", "detections", "deadletter"):
        path = args.out / f"{output}.jsonl"
        if not path.exists():
            continue
        with path.open("rb") as lines:
            for line in lines:
                report.add(output, orjson.loads(line), ecs)
        share = report.conforming_share(output)
        sys.stdout.write(f"{output}: {report.occurrences[output]} field occurrences, {share:.2%} conform\n")
        found: Counter[tuple[str, str]] = Counter()
        for (name, finding), count in report.findings.items():
            if name == output:
                found[(finding.path, finding.problem)] += count
        for (path_name, problem), count in found.most_common(args.top):
            sys.stdout.write(f"  {count:8d}  {problem:14s} {path_name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
