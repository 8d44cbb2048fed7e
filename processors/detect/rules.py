"""Command-line rules: the rule model, the loader (secstream TOML/JSON and msticpy's ``{"Syslog": [...]}``), the engine.

A rule is a regular expression searched (unanchored) in chosen fields of an event document and in the
decoded base64 layers another stage puts under ``secstream.decoded``. Patterns are compiled with RE2
(linear time, no ReDoS on attacker-controlled command lines); a pattern RE2 cannot compile (look-around,
back-references) falls back to Python's ``re`` with a warning.

Rule files:

* secstream TOML (``processors/detect/data/default.toml``)::

      [[rules]]
      id = "SS-LNX-001"
      name = "Download piped to a shell"
      severity = 73                     # ECS event.severity 0-100
      technique = ["T1105", "T1059.004"]
      pattern = '''\\b(?:curl|wget)\\b...'''
      log_types = ["auditd", "syslog"]  # event.module values it applies to
      fields = ["process.command_line"] # optional; default depends on the log type
      description = "..."
      references = ["https://..."]      # optional: rule.reference
      version = "1"

* the same as JSON: ``{"rules": [{...}, ...]}``;
* msticpy's format: ``{"Syslog": ["regex", ...]}`` - each log type gets rules ``<logtype>-001``, ... with
  severity 47 and technique T1059.004.

An alert's ``rule.ruleset`` is ``secstream`` for the rules shipped in ``processors/detect/data``, ``msticpy``
for msticpy-format files, and the file's name without its suffix for a user's own rule file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import re2
import structlog

from processors.document import event_epoch, get_parts
from processors.errors import ConfigError
from schemas.documents import detection

__all__ = [
    "DEFAULT_FIELDS",
    "Rule",
    "RuleEngine",
    "decoded_texts",
    "default_rules_path",
    "load_rules",
    "reference_rules_path",
]

_DATA = Path(__file__).parent / "data"

_log = structlog.get_logger(module=__name__)

DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "auditd": ("process.command_line",),
    "syslog": ("secstream.syslog.command", "message"),
}
_TECHNIQUE = re.compile(r"T[0-9]{4}(?:\.[0-9]{3})?")
_REFERENCE_SEVERITY = 47
_REFERENCE_TECHNIQUE = ("T1059.004",)
_MAX_EVIDENCE_TEXT = 1024


class _Pattern(Protocol):
    def search(self, text: str) -> Any: ...  # pragma: no cover - protocol


def _compile(pattern: str, rule_id: str) -> _Pattern:
    try:
        compiled: _Pattern = re2.compile(pattern)
        return compiled
    except re2.error:
        pass
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"invalid regular expression: {exc}", key=f"rules.{rule_id}.pattern") from exc
    _log.warning("rule_pattern_not_re2", rule_id=rule_id, reason="compiled with Python re (backtracking)")
    return compiled


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule.

    Args:
        id: stable identifier (``rule.id``).
        name: human-readable name (``rule.name``).
        severity: ECS ``event.severity``, 0-100.
        technique: MITRE ATT&CK technique ids.
        pattern: regular expression, searched unanchored.
        log_types: ``event.module`` values the rule applies to.
        fields: dotted document fields to search; empty means :data:`DEFAULT_FIELDS` of the log type.
        description: what the rule looks for.
        version: version of the rule definition (``rule.version``).
        match_decoded: also search the decoded base64 layers (``secstream.decoded[*].text``).
        references: URLs about the rule or what it detects (``rule.reference``).
        ruleset: the rule set it comes from (``rule.ruleset``).
    """

    id: str
    name: str
    severity: int
    technique: tuple[str, ...]
    pattern: str
    log_types: tuple[str, ...] = ("auditd", "syslog")
    fields: tuple[str, ...] = ()
    description: str = ""
    version: str = "1"
    match_decoded: bool = True
    references: tuple[str, ...] = ()
    ruleset: str = "secstream"
    regex: _Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = f"rules.{self.id or '?'}"
        if not self.id:
            raise ConfigError("a rule needs an id", key=key)
        if not isinstance(self.severity, int) or isinstance(self.severity, bool) or not 0 <= self.severity <= 100:
            raise ConfigError("severity must be an integer 0-100", key=f"{key}.severity")
        for technique in self.technique:
            if not _TECHNIQUE.fullmatch(technique):
                raise ConfigError(f"{technique!r} is not an ATT&CK technique id", key=f"{key}.technique")
        if not self.log_types:
            raise ConfigError("log_types must not be empty", key=f"{key}.log_types")
        object.__setattr__(self, "regex", _compile(self.pattern, self.id))

    def fields_for(self, log_type: str) -> tuple[str, ...]:
        """Return the fields searched in a document of ``log_type``.

        Args:
            log_type: the document's ``event.module``.

        Returns:
            The rule's own fields, else the default fields of the log type.
        """
        return self.fields or DEFAULT_FIELDS.get(log_type, ("message",))

    def search(self, text: str) -> bool:
        """Return whether the pattern occurs in ``text``.

        Args:
            text: the text to search.

        Returns:
            True when the pattern matches somewhere in the text.
        """
        return self.regex.search(text) is not None


def default_rules_path() -> Path:
    """Return the directory of the rule files shipped with secstream (package data of this package).

    Returns:
        ``processors/detect/data``, which holds ``default.toml`` and ``cmd_line_rules.json``.
    """
    return _DATA


def reference_rules_path() -> Path:
    """Return the path of msticpy's rule file shipped with secstream (``cmd_line_rules.json``).

    Returns:
        ``<rules dir>/cmd_line_rules.json``.
    """
    return default_rules_path() / "cmd_line_rules.json"


def _as_strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigError("must be a string or a list of strings", key=key)


_RULE_KEYS = frozenset(
    {
        "id",
        "name",
        "severity",
        "technique",
        "pattern",
        "log_types",
        "fields",
        "description",
        "version",
        "match_decoded",
        "references",
    }
)


def _rule_from_mapping(raw: Any, index: int, ruleset: str) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError("each rule must be a table/object", key=f"rules[{index}]")
    rule_id = str(raw.get("id", ""))
    key = f"rules.{rule_id or index}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", key=key)
    for required in ("id", "name", "severity", "pattern"):
        if required not in raw:
            raise ConfigError(f"missing {required!r}", key=key)
    if not isinstance(raw["pattern"], str):
        raise ConfigError("pattern must be a string", key=f"{key}.pattern")
    return Rule(
        id=rule_id,
        name=str(raw["name"]),
        severity=raw["severity"],
        technique=_as_strings(raw.get("technique", []), f"{key}.technique"),
        pattern=raw["pattern"],
        log_types=tuple(t.lower() for t in _as_strings(raw.get("log_types", ["auditd", "syslog"]), f"{key}.log_types")),
        fields=_as_strings(raw.get("fields", []), f"{key}.fields"),
        description=str(raw.get("description", "")),
        version=str(raw.get("version", "1")),
        match_decoded=bool(raw.get("match_decoded", True)),
        references=_as_strings(raw.get("references", []), f"{key}.references"),
        ruleset=ruleset,
    )


def _rules_from_data(data: Any, source: str, ruleset: str) -> list[Rule]:
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        return [_rule_from_mapping(raw, i, ruleset) for i, raw in enumerate(data["rules"])]
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        rules: list[Rule] = []
        for log_type, patterns in data.items():
            for number, pattern in enumerate(patterns, start=1):
                if not isinstance(pattern, str):
                    raise ConfigError("patterns must be strings", key=f"{log_type}[{number - 1}]")
                rules.append(
                    Rule(
                        id=f"{log_type.lower()}-{number:03d}",
                        name=f"{log_type} risky command pattern {number}",
                        severity=_REFERENCE_SEVERITY,
                        technique=_REFERENCE_TECHNIQUE,
                        pattern=pattern,
                        log_types=(log_type.lower(),),
                        description=f"msticpy-format rule {pattern!r} from {source}",
                        ruleset="msticpy",
                    )
                )
        return rules
    raise ConfigError("not a rules file: expected {'rules': [...]} or {'<LogType>': [regex, ...]}", key=source)


def load_rules(path: str | Path) -> list[Rule]:
    """Load rules from a TOML or JSON file, or from every ``*.toml`` file of a directory.

    Args:
        path: a ``.toml`` file (``[[rules]]`` tables), a ``.json`` file (``{"rules": [...]}`` or msticpy's
            ``{"Syslog": [regex, ...]}``), or a directory (its ``*.toml`` files, sorted by name; msticpy's
            JSON file there is for the batch API and is not loaded).

    Returns:
        The rules in file order.

    Raises:
        ConfigError: the file is missing or malformed, a rule is invalid, or two rules share an id.
    """
    source = Path(path)
    files = sorted(source.glob("*.toml")) if source.is_dir() else [source]
    rules: list[Rule] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ConfigError(f"cannot read rules file: {exc}", key=str(file)) from exc
        try:
            data = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot parse rules file: {exc}", key=str(file)) from exc
        shipped = file.resolve().parent == _DATA.resolve()
        rules.extend(_rules_from_data(data, str(file), "secstream" if shipped else file.stem))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError("duplicate rule id", key=f"rules.{rule.id}")
        seen.add(rule.id)
    return rules


def decoded_texts(doc: Mapping[str, Any]) -> list[str]:
    """Return the text of the decoded base64 layers of a document (``secstream.decoded[*].text``).

    Args:
        doc: an event document.

    Returns:
        The string layers, outermost first.
    """
    sec = doc.get("secstream")
    if sec is None:
        return []
    layers = get_parts(sec, ("decoded",))
    if not isinstance(layers, list):
        return []
    return [layer["text"] for layer in layers if isinstance(layer, Mapping) and isinstance(layer.get("text"), str)]


# A many-match DFA never gives up for being slow (RE2::Set reports "no match" only when its memory budget
# cannot hold a single DFA state), so with this budget one pass answers for texts of any length.
_SET_MAX_MEM = 64 << 20
_DECODED_WHERE = tuple(f"secstream.decoded[{i}]" for i in range(64))


class _Plan:
    """The rules of one log type compiled for one-pass matching.

    Every RE2 pattern of the log type goes into one ``RE2::Set``, so a text is scanned once for all
    rules; the rules RE2 cannot compile (Python ``re`` fallbacks) are searched one by one.
    """

    __slots__ = ("any_decoded", "fallback", "fields", "memo", "paths", "rule_fields", "rules", "set", "set_rules")

    def __init__(self, rules: tuple[Rule, ...], log_type: str) -> None:
        self.rules = rules
        names: list[str] = []
        for rule in rules:
            for name in rule.fields_for(log_type):
                if name not in names:
                    names.append(name)
        self.fields: tuple[str, ...] = tuple(names)
        self.paths: tuple[tuple[str, ...], ...] = tuple(tuple(name.split(".")) for name in names)
        self.rule_fields: tuple[tuple[int, ...], ...] = tuple(
            tuple(names.index(name) for name in rule.fields_for(log_type)) for rule in rules
        )
        self.any_decoded = any(rule.match_decoded for rule in rules)
        options = re2.Options()
        options.max_mem = _SET_MAX_MEM
        options.log_errors = False
        pattern_set = re2.Set.SearchSet(options)
        set_rules: list[int] = []
        fallback: list[int] = []
        for pos, rule in enumerate(rules):
            if isinstance(rule.regex, re2._Regexp):
                try:
                    pattern_set.Add(rule.pattern)
                except re2.error:
                    fallback.append(pos)
                    continue
                set_rules.append(pos)
            else:
                fallback.append(pos)
        self.set_rules: tuple[int, ...] = tuple(set_rules)
        self.fallback: tuple[int, ...] = tuple(fallback)
        self.set: Any = None
        if set_rules:
            pattern_set.Compile()
            self.set = pattern_set._set
        # Texts repeat across events (templated audit messages, cron jobs): short ones are matched once.
        self.memo: dict[str, frozenset[int]] = {}

    def matched_memo(self, text: str) -> frozenset[int]:
        """:meth:`matched`, remembered for texts up to 2048 characters (4096 texts, oldest dropped first)."""
        hit = self.memo.get(text)
        if hit is None:
            hit = frozenset(self.matched(text))
            if len(text) <= _MEMO_MAX_TEXT:
                if len(self.memo) >= _MEMO_MAX_ENTRIES:
                    del self.memo[next(iter(self.memo))]
                self.memo[text] = hit
        return hit

    def matched(self, text: str) -> frozenset[int] | set[int]:
        """Return the positions (in :attr:`rules`) of the rules whose pattern occurs in ``text``."""
        hits: set[int] = set()
        if self.set is not None:
            found = self.set.Match(text.encode("utf-8", "surrogatepass"))
            if found:
                set_rules = self.set_rules
                hits.update(set_rules[i] for i in found)
        for pos in self.fallback:
            if self.rules[pos].search(text):
                hits.add(pos)
        return hits or _NONE

    def match_texts(self, texts: Sequence[tuple[str, str]]) -> list[tuple[Rule, str, str]]:
        """Return ``(rule, where, text)`` per rule matching one of ``texts`` (first match per rule wins)."""
        memo: dict[str, frozenset[int] | set[int]] = {}
        found: list[frozenset[int] | set[int]] = []
        for _where, text in texts:
            hit = memo.get(text)
            if hit is None:
                hit = memo[text] = self.matched(text)
            found.append(hit)
        if not any(found):
            return []
        hits: list[tuple[Rule, str, str]] = []
        for pos, rule in enumerate(self.rules):
            for (where, text), matched in zip(texts, found, strict=True):
                if pos in matched:
                    if not rule.match_decoded and where.startswith("secstream.decoded"):
                        continue
                    hits.append((rule, where, text))
                    break
        return hits


_NONE: frozenset[int] = frozenset()
_MEMO_MAX_ENTRIES = 4096
_MEMO_MAX_TEXT = 2048


class RuleEngine:
    """Run rules over event documents and build one detection per matching rule.

    All RE2 patterns of a log type are compiled into one ``RE2::Set``: each field text and decoded layer
    is scanned once, and only when something matched are the rules evaluated one by one.

    Args:
        rules: the rules to run.
    """

    name: ClassVar[str] = "rules"
    state_type: ClassVar[None] = None

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_type: dict[str, tuple[Rule, ...]] = {}
        for log_type in {t for rule in self.rules for t in rule.log_types}:
            self._by_type[log_type] = tuple(r for r in self.rules if log_type in r.log_types)
        self._plans: dict[str, _Plan] = {
            log_type: _Plan(rules_of_type, log_type) for log_type, rules_of_type in self._by_type.items()
        }

    def run(self, doc: dict[str, Any], state: None, events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        """The stage contract (:mod:`processors.detect.stage`): every matching rule's alert."""
        del state, events
        alerts.extend(self.match(doc))

    def matching_rules(self, texts: Sequence[tuple[str, str]], log_type: str) -> list[tuple[Rule, str, str]]:
        """Return ``(rule, where, text)`` for each rule of ``log_type`` matching one of ``texts``.

        Args:
            texts: ``(where, text)`` pairs, in priority order (first match per rule wins).
            log_type: a log type (``auditd``, ``syslog``).

        Returns:
            One entry per matching rule.
        """
        plan = self._plans.get(log_type.lower())
        if plan is None or not texts:
            return []
        return plan.match_texts(texts)

    def match(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the detections the rules raise on one event document.

        Args:
            doc: an event document (auditd or syslog).

        Returns:
            Detection documents (``schemas.documents.detection``), one per matching rule, with the rule,
            severity, techniques, the event id as evidence, the process lineage, user and IoCs of the
            event, and ``secstream.rule_match`` (``field`` and ``value``) saying what matched.
        """
        event = doc.get("event") or {}
        module = event.get("module", "")
        plan = self._plans.get(module if type(module) is str and module.islower() else str(module).lower())
        if plan is None:
            return []
        hits = self._match_doc(doc, plan)
        if not hits:
            return []
        detections: list[dict[str, Any]] = []
        for rule, where, text in hits:
            detections.append(
                detection(
                    rule_id=rule.id,
                    rule_name=rule.name,
                    rule_version=rule.version,
                    severity=rule.severity,
                    technique_ids=rule.technique,
                    host=str((doc.get("host") or {}).get("name", "unknown")),
                    timestamp=event_epoch(doc),
                    evidence_event_ids=[str(event.get("id", ""))],
                    message=f"{rule.name}: {text[:200]}",
                    source_event=doc,
                    extra={"rule_match": {"field": where, "value": text[:_MAX_EVIDENCE_TEXT]}},
                    description=rule.description,
                    references=rule.references,
                    ruleset=rule.ruleset,
                )
            )
        return detections

    @staticmethod
    def _match_doc(doc: Mapping[str, Any], plan: _Plan) -> list[tuple[Rule, str, str]]:
        values: list[str] = []  # "" for a missing field, whose match set is always empty
        found: list[frozenset[int]] = []
        anything = False
        for path in plan.paths:
            value = get_parts(doc, path)
            if type(value) is not str or not value:
                values.append("")
                found.append(_NONE)
                continue
            hit = plan.matched_memo(value)
            values.append(value)
            found.append(hit)
            anything = anything or bool(hit)
        decoded: list[tuple[int, str, frozenset[int]]] = []
        if plan.any_decoded and "secstream" in doc:
            for layer, text in enumerate(decoded_texts(doc)):
                if not text:
                    continue
                hit = plan.matched_memo(text)
                if hit:
                    decoded.append((layer, text, hit))
                    anything = True
        if not anything:
            return []
        hits: list[tuple[Rule, str, str]] = []
        for pos, rule in enumerate(plan.rules):
            for index in plan.rule_fields[pos]:
                if pos in found[index]:
                    hits.append((rule, plan.fields[index], values[index]))
                    break
            else:
                if rule.match_decoded:
                    for layer, text, matched in decoded:
                        if pos in matched:
                            hits.append((rule, _decoded_where(layer), text))
                            break
        return hits


def _decoded_where(index: int) -> str:
    return _DECODED_WHERE[index] if index < len(_DECODED_WHERE) else f"secstream.decoded[{index}]"
