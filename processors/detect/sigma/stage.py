"""The Sigma stage: every loaded rule against every view of an event document, one alert per rule hit."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from processors.detect.sigma.correlation import CompiledCorrelation, CorrelationState, correlate
from processors.detect.sigma.matcher import FULLTEXT
from processors.detect.sigma.prefilter import RuleIndex, record_types
from processors.detect.sigma.rules import CompiledRule, RuleSelection, RuleSet, load_sigma_rules
from processors.detect.sigma.views import Row, document_views
from schemas.documents import detection

__all__ = ["SigmaEngine", "correlation_detection", "project_rules_path", "sigma_detection"]

_MAX_MATCH_TEXT = 1024


def _epoch(doc: Mapping[str, Any]) -> float:
    stamp = doc.get("@timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def sigma_detection(
    rule: CompiledRule, doc: Mapping[str, Any], source: str, row: Row, evidence: list[str] | None = None
) -> dict[str, Any]:
    """The alert document of ``rule`` matching ``row`` (a view of ``doc``); ``evidence``: the event ids
    (default: the event of ``doc``)."""
    event = doc.get("event") or {}
    alert = detection(
        rule_id=rule.id,
        rule_name=rule.title,
        rule_version=rule.version,
        severity=rule.severity,
        technique_ids=[*rule.techniques, *rule.subtechniques],
        host=str((doc.get("host") or {}).get("name", "unknown")),
        timestamp=_epoch(doc),
        evidence_event_ids=evidence if evidence is not None else [str(event.get("id", ""))],
        message=f"{rule.title} (Sigma rule {rule.attribution})",
        source_event=doc,
        extra={"sigma": {"source": source, "level": rule.level, "row_type": row.get("type") or source}},
    )
    alert["rule"].update(
        {
            "uuid": rule.id,
            "description": rule.description,
            "author": [rule.author] if rule.author else [],  # ECS: an array
            "reference": list(rule.references),
            "license": rule.license,
            "ruleset": rule.ruleset,
            "category": source,
        }
    )
    if rule.tactics:  # the rule's own tags name its tactics
        alert["threat"]["tactic"] = {
            "id": [tid for tid, _ in rule.tactics],
            "name": [name for _, name in rule.tactics],
            "reference": [f"https://attack.mitre.org/tactics/{tid}/" for tid, _ in rule.tactics],
        }
    return alert


def project_rules_path() -> Path:
    """The project's own Sigma rules (package data): ``processors/detect/data/sigma``."""
    return Path(__file__).resolve().parents[1] / "data" / "sigma"


def _same(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False


def correlation_detection(
    rule: CompiledRule,
    correlation: CompiledCorrelation,
    doc: Mapping[str, Any],
    evidence: list[str],
    group: Mapping[str, Any],
) -> dict[str, Any]:
    """The alert of a correlation that fired on ``doc`` (the last of its evidence events)."""
    alert = sigma_detection(rule, doc, "correlation", {}, evidence)
    alert["secstream"]["sigma"]["correlation"] = {
        "type": correlation.kind,
        "rules": list(correlation.rule_ids),
        "group": dict(group),
    }
    return alert


class SigmaEngine:
    """Compiled Sigma rules grouped by the view they read.

    Args:
        rules: the compiled rules (:func:`processors.detect.sigma.rules.load_sigma_rules`).
        suppress_window_s: see :attr:`suppress_window_s`.
    """

    def __init__(self, rules: Iterable[CompiledRule], *, suppress_window_s: float = 0.0) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        by_source: dict[str, list[CompiledRule]] = defaultdict(list)
        for rule in self.rules:
            by_source[rule.source].append(rule)
        self._by_source: dict[str, tuple[CompiledRule, ...]] = {k: tuple(v) for k, v in by_source.items()}
        self._wanted = frozenset(self._by_source)
        auditd_rules = self._by_source.get("auditd", ())
        # auditd rows get their record text only when some auditd rule has field-less keywords
        self._audit_text = any(FULLTEXT in rule.fields for rule in auditd_rules)
        self._record_types = (
            record_types(
                condition.parsed
                for rule in auditd_rules
                if rule.sigma
                for condition in rule.sigma.detection.parsed_condition
            )
            if all(rule.sigma is not None for rule in auditd_rules)
            else None
        )
        self._index: dict[str, RuleIndex] = {
            source: RuleIndex(rule.requirement for rule in rules) for source, rules in self._by_source.items()
        }
        self.loaded = RuleSet(rules=list(self.rules))
        """What loading found (errors, skipped rules), for ``secstream rules lint`` and the logs."""
        self._correlations: dict[str, list[tuple[CompiledRule, CompiledCorrelation]]] = {}
        self.suppress_window_s = suppress_window_s
        """Repeats of a rule's alert on a host with the same values in the rule's fields, within this many
        seconds of the alert, are counted instead of raised (the next alert says how many); 0: off."""
        self._silent: frozenset[str] = frozenset()

    name = "sigma"
    """The stage's name: the key of its state (the open correlation windows) in a host's snapshot."""
    state_type = CorrelationState

    def run(
        self, doc: dict[str, Any], state: CorrelationState, events: list[dict[str, Any]], alerts: list[dict[str, Any]]
    ) -> None:
        """The detection-stage contract (:mod:`processors.detect.stage`): this document's Sigma alerts."""
        del events
        alerts.extend(self.match(doc, state))

    @classmethod
    def load(
        cls,
        paths: Iterable[str | Path],
        selection: RuleSelection | None = None,
        *,
        with_project_rules: bool = False,
        suppress_window_s: float = 0.0,
    ) -> SigmaEngine:
        """Load the rules under ``paths`` (bad rules are logged and left out) into an engine.

        Args:
            paths: rule files and directories.
            selection: which rules run.
            with_project_rules: also load the project's own pack (:func:`project_rules_path`). Its rules
                have ``rule.ruleset`` ``secstream``, wherever they are loaded from.
            suppress_window_s: see :attr:`suppress_window_s`.
        """
        roots = [Path(path) for path in paths]
        if with_project_rules:
            roots.insert(0, project_rules_path())
        names = ["secstream" if _same(root, project_rules_path()) else "" for root in roots]
        loaded = load_sigma_rules(roots, selection, ruleset_names=names)
        engine = cls(loaded.rules, suppress_window_s=suppress_window_s)
        engine.loaded = loaded
        engine.add_correlations(loaded.correlations, loaded.silent)
        return engine

    def add_correlations(
        self, correlations: Iterable[tuple[CompiledRule, CompiledCorrelation]], silent: Iterable[str] = ()
    ) -> None:
        """Run these correlations on the hits of their rules; ``silent`` rules raise no alert of their own."""
        for meta, correlation in correlations:
            for rule_id in dict.fromkeys(correlation.rule_ids):
                self._correlations.setdefault(rule_id, []).append((meta, correlation))
        self._silent = self._silent | frozenset(silent)

    @property
    def correlations(self) -> list[tuple[CompiledRule, CompiledCorrelation]]:
        """The correlation rules, each once."""
        unique = {meta.id: (meta, correlation) for pairs in self._correlations.values() for meta, correlation in pairs}
        return list(unique.values())

    def matches(self, doc: Mapping[str, Any]) -> list[tuple[CompiledRule, str, Row]]:
        """``(rule, source, row)`` for every rule that matches a view of ``doc`` (first matching row per rule)."""
        if not self._by_source:
            return []
        hits: list[tuple[CompiledRule, str, Row]] = []
        fired: set[str] = set()
        by_source = self._by_source
        index = self._index
        for source, row in document_views(doc, self._wanted, self._record_types, self._audit_text):
            rules = by_source.get(source)
            if not rules:
                continue
            for position in index[source].candidates(row):
                rule = rules[position]
                if rule.predicate(row) and rule.id not in fired:
                    fired.add(rule.id)
                    hits.append((rule, source, row))
        return hits

    def match(self, doc: Mapping[str, Any], state: CorrelationState | None = None) -> list[dict[str, Any]]:
        """The alert documents the rules (and, given the host's ``state``, the correlations) raise on ``doc``."""
        hits = self.matches(doc)
        if not hits:
            return []
        silent = self._silent
        epoch = _epoch(doc)
        alerts: list[dict[str, Any]] = []
        for rule, source, row in hits:
            if rule.id in silent:
                continue
            repeats = 0
            if state is not None and self.suppress_window_s > 0:
                key = json.dumps([rule.id, [row.get(name) for name in rule.fields]], separators=(",", ":"))
                suppressed, repeats = state.suppress(key, epoch, self.suppress_window_s)
                if suppressed:
                    continue
            alert = sigma_detection(rule, doc, source, row)
            if repeats:
                alert["secstream"]["sigma"]["suppressed_before"] = repeats
            alerts.append(alert)
        if state is None or not self._correlations:
            return alerts
        event_id = str((doc.get("event") or {}).get("id", ""))
        for rule, _source, row in hits:
            for meta, correlation in self._correlations.get(rule.id, ()):
                evidence = correlate(correlation, rule.id, row, epoch, event_id, state)
                if evidence is not None:
                    group = dict(
                        zip(
                            (name for name, _ in correlation.group_by),
                            correlation.group_values(rule.id, row),
                            strict=True,
                        )
                    )
                    alerts.append(correlation_detection(meta, correlation, doc, evidence, group))
        return alerts
