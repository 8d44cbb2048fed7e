"""Loading Sigma rules with pySigma: files and directories, filters, selection, one clear error per bad rule.

A rule file may hold several YAML documents (rules, ``filter`` rules, correlation rules). Every file is
parsed on its own, so a broken file or rule is reported (file, line of its YAML document, reason) and
the others load. Filter rules from all the files apply to the rules they name. A rule secstream cannot
evaluate (an unknown log source, a modifier the matcher has no meaning for) is reported the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import structlog
import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionValueExpression
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from processors.detect.sigma.correlation import CompiledCorrelation, compile_correlation
from processors.detect.sigma.matcher import FULLTEXT, Predicate, UnsupportedRule, compile_condition
from processors.detect.sigma.prefilter import Requirement, requirement
from processors.detect.sigma.views import rule_source

__all__ = [
    "LEVEL_SEVERITY",
    "CompiledRule",
    "RuleError",
    "RuleSelection",
    "RuleSet",
    "compile_correlation_rule",
    "compile_rule",
    "load_sigma_rules",
    "rule_files",
]

_log = structlog.get_logger(module=__name__)

LEVEL_SEVERITY: Final = {"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99}
"""Sigma ``level`` → ECS ``event.severity`` (the scale secstream's other detections use)."""
_LEVEL_ORDER: Final = ("informational", "low", "medium", "high", "critical")

# MITRE ATT&CK enterprise tactics: Sigma tags name them (attack.execution), ECS wants the id too.
_TACTICS: Final = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource_development": ("TA0042", "Resource Development"),
    "initial_access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege_escalation": ("TA0004", "Privilege Escalation"),
    "defense_evasion": ("TA0005", "Defense Evasion"),
    "credential_access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral_movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command_and_control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}
_TECHNIQUE_TAG: Final = re.compile(r"t([0-9]{4})(?:\.([0-9]{3}))?")
_DRL_MARKER: Final = "Detection Rule License"


class RuleError(ValueError):
    """A rule file or rule that cannot be loaded: ``file:line: reason``."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class RuleSelection:
    """Which loaded rules run: every non-empty criterion must hold."""

    ids: tuple[str, ...] = ()
    """Only these rule ids."""
    exclude_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    """At least one of these tags (``attack.t1059``, ``attack.execution``)."""
    statuses: tuple[str, ...] = ()
    """Only these statuses (stable, test, experimental, ...)."""
    min_level: str = ""
    """The lowest level that runs (informational, low, medium, high, critical); empty: all."""

    def admits(self, rule: SigmaRule) -> bool:
        rule_id = str(rule.id) if rule.id else ""
        if self.ids and rule_id not in self.ids:
            return False
        if rule_id and rule_id in self.exclude_ids:
            return False
        if self.tags:
            tags = {f"{tag.namespace}.{tag.name}".lower() for tag in rule.tags}
            if not tags & {tag.lower() for tag in self.tags}:
                return False
        if self.statuses and (rule.status is None or rule.status.name.lower() not in self.statuses):
            return False
        if self.min_level:
            level = rule.level.name.lower() if rule.level is not None else "informational"
            if _LEVEL_ORDER.index(level) < _LEVEL_ORDER.index(self.min_level):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One Sigma rule ready to run, with what an alert says about it."""

    id: str
    title: str
    source: str
    """The view it reads (:func:`processors.detect.sigma.views.rule_source`)."""
    predicate: Predicate = field(repr=False, compare=False)
    description: str = ""
    author: str = ""
    references: tuple[str, ...] = ()
    license: str = ""
    ruleset: str = ""
    version: str = ""
    level: str = "medium"
    severity: int = 47
    status: str = ""
    tags: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    subtechniques: tuple[str, ...] = ()
    tactics: tuple[tuple[str, str], ...] = ()
    path: str = ""
    fields: tuple[str, ...] = ()
    """The (lowercase) fields the rule's conditions read (``_text`` for keywords): the key of repeat
    suppression."""
    requirement: Requirement | None = field(default=None, repr=False, compare=False)
    """What a row must contain for the rule to match (:mod:`processors.detect.sigma.prefilter`)."""
    sigma: SigmaRule | None = field(default=None, repr=False, compare=False)
    """The pySigma rule it was compiled from (for linting and the reference tests)."""

    @property
    def attribution(self) -> str:
        """``"<title>" by <author>`` (DRL 1.1 asks every alert from a SigmaHQ rule to name its author)."""
        return f"{self.title!r} by {self.author}" if self.author else repr(self.title)


@dataclass(slots=True)
class RuleSet:
    """What loading found: the runnable rules, the errors, and the rules that are not for secstream."""

    rules: list[CompiledRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(rule id or title, reason)`` of rules that are valid but not evaluated here."""
    correlations: list[tuple[CompiledRule, CompiledCorrelation]] = field(default_factory=list)
    """Correlation rules: what their alerts say (a :class:`CompiledRule` that matches no row) and how they run."""
    silent: set[str] = field(default_factory=set)
    """Ids of rules that only feed correlations (``generate: false``): they raise no alert of their own."""


def _attack(tags: Iterable[Any]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    techniques: list[str] = []
    subtechniques: list[str] = []
    tactics: list[tuple[str, str]] = []
    for tag in tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower().replace("-", "_")
        found = _TECHNIQUE_TAG.fullmatch(name)
        if found:
            technique = f"T{found.group(1)}"
            if technique not in techniques:
                techniques.append(technique)
            if found.group(2):
                subtechniques.append(f"{technique}.{found.group(2)}")
        elif name in _TACTICS and _TACTICS[name] not in tactics:
            tactics.append(_TACTICS[name])
    return tuple(techniques), tuple(subtechniques), tuple(tactics)


def _licence_of(path: Path, rule: SigmaRule | SigmaCorrelationRule) -> str:
    if rule.license:
        return str(rule.license)
    for parent in path.resolve().parents:
        licence = parent / "LICENSE"
        if licence.is_file():
            try:
                return "DRL-1.1" if _DRL_MARKER in licence.read_text(encoding="utf-8", errors="replace") else ""
            except OSError:
                return ""
    return ""


def _logsource_source(rule: SigmaRule) -> str | None:
    logsource = rule.logsource
    return rule_source({"product": logsource.product, "category": logsource.category, "service": logsource.service})


def _ruleset_of(root: Path) -> str:
    """``sigmahq`` style: the directory holding the rules' licence, else the configured directory's name."""
    directory = root if root.is_dir() else root.parent
    for parent in (directory.resolve(), *directory.resolve().parents):
        if (parent / "LICENSE").is_file():
            return parent.name
    return directory.name


def compile_rule(rule: SigmaRule, *, path: Path, ruleset: str = "", licence: str = "") -> CompiledRule:
    """Compile one pySigma rule (filters already applied).

    Raises:
        UnsupportedRule: the rule's log source or detection cannot be evaluated on secstream's views.
    """
    logsource = {
        "product": rule.logsource.product,
        "category": rule.logsource.category,
        "service": rule.logsource.service,
    }
    source = _logsource_source(rule)
    if source is None:
        raise UnsupportedRule(f"no secstream view for logsource {logsource}")
    try:
        conditions = [condition.parsed for condition in rule.detection.parsed_condition]
    except SigmaError as error:
        raise UnsupportedRule(str(error)) from None
    predicates = [compile_condition(tree) for tree in conditions]
    if len(predicates) == 1:
        predicate = predicates[0]
    else:

        def predicate(row: Any, parts: Sequence[Predicate] = tuple(predicates)) -> bool:
            return any(part(row) for part in parts)

    requirements = [requirement(tree) for tree in conditions]
    required = None if any(req is None for req in requirements) else frozenset().union(*requirements)  # type: ignore[arg-type]
    compiled = _with_metadata(rule, source, predicate, path=path, ruleset=ruleset, licence=licence, required=required)
    return replace(compiled, fields=tuple(sorted({name for tree in conditions for name in _fields_of(tree)})))


def _fields_of(tree: Any) -> set[str]:
    """The lowercase fields a condition reads (:data:`FULLTEXT` for field-less keywords)."""
    if isinstance(tree, ConditionValueExpression):
        return {FULLTEXT}
    field_name = getattr(tree, "field", None)
    found = {field_name.lower()} if isinstance(field_name, str) else set()
    for arg in getattr(tree, "args", None) or ():
        found |= _fields_of(arg)
    return found


def _never(row: Any) -> bool:
    return False


def compile_correlation_rule(
    rule: SigmaCorrelationRule, *, path: Path, ruleset: str = ""
) -> tuple[CompiledRule, CompiledCorrelation]:
    """Compile a correlation rule (its references resolved): its alert metadata and how it runs.

    Raises:
        UnsupportedRule: the correlation cannot be evaluated in the stream.
    """
    return _with_metadata(rule, "correlation", _never, path=path, ruleset=ruleset), compile_correlation(rule)


def _with_metadata(
    rule: SigmaRule | SigmaCorrelationRule,
    source: str,
    predicate: Predicate,
    *,
    path: Path,
    ruleset: str,
    licence: str = "",
    required: Requirement | None = None,
) -> CompiledRule:
    level = rule.level.name.lower() if rule.level is not None else "medium"
    techniques, subtechniques, tactics = _attack(rule.tags)
    version = rule.modified or rule.date
    return CompiledRule(
        id=str(rule.id) if rule.id else rule.title,
        title=rule.title,
        source=source,
        predicate=predicate,
        description=(rule.description or "").strip(),
        author=(rule.author or "").strip(),
        references=tuple(str(reference) for reference in rule.references),
        license=licence or _licence_of(path, rule),
        ruleset=ruleset,
        version=version.isoformat() if version is not None else "1",
        level=level,
        severity=LEVEL_SEVERITY.get(level, 47),
        status=rule.status.name.lower() if rule.status is not None else "",
        tags=tuple(f"{tag.namespace}.{tag.name}" for tag in rule.tags),
        techniques=techniques,
        subtechniques=subtechniques,
        tactics=tactics,
        path=str(path),
        requirement=required,
        sigma=rule if isinstance(rule, SigmaRule) else None,
    )


def _compile_correlations(
    correlations: Sequence[tuple[Path, str, SigmaCorrelationRule, int | None]],
    every_rule: Sequence[Any],
    selection: RuleSelection,
    result: RuleSet,
) -> None:
    """Resolve each correlation's references against every loaded rule, compile it, note silent rules."""
    if not correlations:
        return
    # detection rules only: correlations of correlations are not supported, and a collection holding a
    # correlation would resolve its references on construction (failing for all at the first bad one)
    collection = SigmaCollection([rule for rule in every_rule if isinstance(rule, SigmaRule) and not rule.errors])
    compiled_ids = {rule.id for rule in result.rules}
    for path, ruleset, correlation, line in correlations:
        if not selection.admits(correlation):  # type: ignore[arg-type]
            continue
        try:
            correlation.resolve_rule_references(collection)
            meta, compiled = compile_correlation_rule(correlation, path=path, ruleset=ruleset)
        except (SigmaError, UnsupportedRule) as error:
            result.errors.append(RuleError(path, f"{correlation.title}: {error}", line))
            continue
        missing = [rule_id for rule_id in compiled.rule_ids if rule_id not in compiled_ids]
        if missing:
            reason = f"{correlation.title}: referenced rules not loaded or not selected: {', '.join(missing)}"
            result.errors.append(RuleError(path, reason, line))
            continue
        result.correlations.append((meta, compiled))
        if not correlation.generate:
            result.silent.update(compiled.rule_ids)


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``*.yml``/``*.yaml`` files named by ``paths`` (files as given, directories recursively, sorted)."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()))
        else:
            found.append(path)
    return found


def _document_lines(text: str) -> list[int]:
    """The first line (1-based) of every YAML document in ``text``; empty if it is not YAML."""
    try:
        return [node.start_mark.line + 1 for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node]
    except yaml.YAMLError:
        return []


def _parse_file(path: Path) -> tuple[SigmaCollection | None, list[RuleError], list[int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        return None, [RuleError(path, f"cannot read: {error.strerror or error}")], []
    except UnicodeDecodeError as error:
        return None, [RuleError(path, f"not UTF-8 text (byte {error.start})")], []
    try:
        collection = SigmaCollection.from_yaml(
            text, collect_errors=True, collect_filters=True, resolve_references=False
        )
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        return None, [RuleError(path, f"not valid YAML: {problem}", line)], []
    except SigmaError as error:
        return None, [RuleError(path, str(error), getattr(error.source, "line", None))], []
    return collection, [], _document_lines(text)


def load_sigma_rules(
    paths: Iterable[str | Path], selection: RuleSelection | None = None, *, ruleset_names: Sequence[str] = ()
) -> RuleSet:
    """Load, filter, select and compile the Sigma rules under ``paths``.

    Args:
        paths: rule files and directories (searched recursively for ``*.yml`` and ``*.yaml``).
        selection: which rules run (default: all).
        ruleset_names: ``rule.ruleset`` per entry of ``paths`` (default: the file's directory name).

    Returns:
        The compiled rules, one :class:`RuleError` per file or rule that failed, and the rules skipped.
    """
    selection = selection or RuleSelection()
    result = RuleSet()
    parsed: list[tuple[Path, str, Any, int | None]] = []
    filters: list[Any] = []
    names = list(ruleset_names)
    for index, root in enumerate(paths):
        root_path = Path(root)
        ruleset = names[index] if index < len(names) and names[index] else _ruleset_of(root_path)
        for path in rule_files([root_path]):
            collection, errors, lines = _parse_file(path)
            result.errors.extend(errors)
            if collection is None:
                continue
            filters.extend(collection.filters)
            for position, rule in enumerate(collection.rules):
                line = lines[position] if position < len(lines) and len(lines) == len(collection.rules) else None
                parsed.append((path, ruleset, rule, line))
    correlations: list[tuple[Path, str, SigmaCorrelationRule, int | None]] = []
    for path, ruleset, rule, line in parsed:
        if rule.errors:
            result.errors.append(RuleError(path, f"{rule.title or 'rule'}: {rule.errors[0]}", line))
            continue
        if isinstance(rule, SigmaCorrelationRule):
            correlations.append((path, ruleset, rule, line))
            continue
        for sigma_filter in filters:
            try:
                rule = sigma_filter.apply_on_rule(rule)
            except SigmaError as error:
                result.errors.append(RuleError(path, f"{rule.title}: filter {sigma_filter.title!r}: {error}", line))
        if not selection.admits(rule):
            continue
        try:
            result.rules.append(compile_rule(rule, path=path, ruleset=ruleset))
        except UnsupportedRule as error:
            if _logsource_source(rule) is None:
                result.skipped.append((str(rule.id or rule.title), str(error)))
            else:
                result.errors.append(RuleError(path, f"{rule.title}: {error}", line))
    _compile_correlations(correlations, [rule for _, _, rule, _ in parsed], selection, result)
    seen: dict[str, CompiledRule] = {}
    unique: list[CompiledRule] = []
    for compiled in result.rules:
        if compiled.id in seen:
            first = seen[compiled.id].path
            reason = f"{compiled.title}: duplicate rule id {compiled.id} (also in {first})"
            result.errors.append(RuleError(Path(compiled.path), reason))
            continue
        seen[compiled.id] = compiled
        unique.append(compiled)
    result.rules = unique
    for problem in result.errors:
        _log.error("sigma_rule_error", error=str(problem))
    return result
