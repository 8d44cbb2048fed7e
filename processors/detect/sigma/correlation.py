"""Sigma correlation rules in the stream: event_count, value_count, temporal and temporal_ordered.

A correlation watches the hits of the rules it references, per host (the state lives in the host's
snapshot, so a restart or a rebalance keeps every open window) and per group-by key (the values of the
group-by fields in the matched rows; field aliases name a different field per rule). Within the
timespan (event time, ``@timestamp``), it fires when:

* ``event_count``: the number of hits meets the condition (``gte``, ``gt``, ``eq``);
* ``value_count``: the number of distinct values of ``condition.field`` meets it;
* ``temporal``: every referenced rule has a hit;
* ``temporal_ordered``: the referenced rules have hits in their order.

On firing, the window's hits become the alert's evidence (all their event ids; the alert id is derived
from the rule and the evidence, so a replay after a restart yields the same id) and the window starts
again empty, so the same hits never fire twice. Conditions that can only be decided when a window closes
(``lt``, ``lte``, ``neq``), the value_sum/avg/percentile/median types, extended (boolean) conditions and
correlations of correlations are reported as unsupported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.rule import SigmaRule

from processors.detect.sigma.matcher import UnsupportedRule

__all__ = ["CompiledCorrelation", "CorrelationState", "compile_correlation", "correlate"]

_SUPPORTED: Final = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}
_OPERATORS: Final = {
    SigmaCorrelationConditionOperator.GTE: lambda n, c: n >= c,
    SigmaCorrelationConditionOperator.GT: lambda n, c: n > c,
    SigmaCorrelationConditionOperator.EQ: lambda n, c: n == c,
}
MAX_HITS_PER_WINDOW: Final = 10000
"""Hits kept per (correlation, group) window; older ones are dropped first (bounded state per host)."""
MAX_WINDOWS: Final = 10000
"""Open windows per host above which the windows whose last hit is older than their timespan are dropped."""


@dataclass(frozen=True, slots=True)
class CompiledCorrelation:
    """One correlation rule ready to run."""

    id: str
    kind: str
    rule_ids: tuple[str, ...]
    timespan_s: float
    group_by: tuple[tuple[str, Mapping[str, str]], ...]
    """``(name, {rule id: field in that rule's rows})`` per group-by field (the field itself by default)."""
    count: float = 1
    compare: Any = None
    value_field: Mapping[str, str] = field(default_factory=dict)
    """value_count: the counted field per rule id."""

    def group_values(self, rule_id: str, row: Mapping[str, Any]) -> list[Any]:
        """The group-by values of a hit of ``rule_id`` (None where the row lacks the field)."""
        return [row.get(mapping.get(rule_id, name).lower()) for name, mapping in self.group_by]

    def group_key(self, rule_id: str, row: Mapping[str, Any]) -> str:
        return json.dumps([self.id, self.group_values(rule_id, row)], separators=(",", ":"))


def _rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.id) if rule.id else rule.title


def compile_correlation(correlation: SigmaCorrelationRule) -> CompiledCorrelation:
    """Compile a correlation whose rule references are resolved.

    Raises:
        UnsupportedRule: the type, condition or references cannot be evaluated in the stream.
    """
    kind = _SUPPORTED.get(correlation.type)
    if kind is None:
        raise UnsupportedRule(f"correlation type {correlation.type} is not supported")
    condition = correlation.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise UnsupportedRule("extended (boolean) correlation conditions are not supported")
    compare = _OPERATORS.get(condition.op)
    if compare is None and kind in ("event_count", "value_count"):
        raise UnsupportedRule(f"condition {condition.op.name.lower()} can only be decided when a window closes")
    rules = [reference.rule for reference in correlation.referenced_rules]
    if not rules or any(not isinstance(rule, SigmaRule) for rule in rules):
        raise UnsupportedRule("a correlation must reference detection rules (chains are not supported)")
    rule_ids = tuple(_rule_id(rule) for rule in rules)
    aliases: dict[str, dict[str, str]] = {}
    for alias in correlation.aliases:
        aliases[alias.alias] = {_rule_id(ref.rule): name for ref, name in alias.mapping.items()}
    group_by = tuple((name, aliases.get(name, {})) for name in correlation.group_by or ())
    value_field: dict[str, str] = {}
    if kind == "value_count":
        fieldref = condition.fieldref
        if not isinstance(fieldref, str):
            raise UnsupportedRule("value_count needs one field in condition.field")
        value_field = {rule_id: aliases.get(fieldref, {}).get(rule_id, fieldref) for rule_id in rule_ids}
    return CompiledCorrelation(
        id=_rule_id(correlation),
        kind=kind,
        rule_ids=rule_ids,
        timespan_s=float(correlation.timespan.seconds),
        group_by=group_by,
        count=condition.count,
        compare=compare,
        value_field=value_field,
    )


@dataclass(slots=True)
class CorrelationState:
    """A host's Sigma state: the open correlation windows (group key → hits ``[epoch, event id, rule id,
    value]``) and the suppression windows (rule and key → ``[epoch of the alert, repeats suppressed]``)."""

    windows: dict[str, list[list[Any]]] = field(default_factory=dict)
    suppressed: dict[str, list[float]] = field(default_factory=dict)

    def suppress(self, key: str, epoch: float, window_s: float) -> tuple[bool, int]:
        """Whether an alert for ``key`` at ``epoch`` repeats one raised less than ``window_s`` before (it is
        then counted and not raised); else the number of repeats suppressed in the window that ended."""
        seen = self.suppressed.get(key)
        if seen is not None and epoch - seen[0] < window_s:
            seen[1] += 1
            return True, 0
        if len(self.suppressed) >= MAX_WINDOWS:
            self.suppressed = {k: v for k, v in self.suppressed.items() if epoch - v[0] < window_s}
        self.suppressed[key] = [epoch, 0]
        return False, int(seen[1]) if seen is not None else 0

    def prune(self, before: float) -> None:
        """Drop the windows whose last hit is older than ``before`` (epoch seconds)."""
        self.windows = {key: hits for key, hits in self.windows.items() if hits and hits[-1][0] >= before}

    def snapshot(self) -> dict[str, Any]:
        return {
            "windows": {key: [list(hit) for hit in hits] for key, hits in self.windows.items()},
            "suppressed": {key: list(seen) for key, seen in self.suppressed.items()},
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any] | None) -> CorrelationState:
        windows = (data or {}).get("windows") or {}
        suppressed = (data or {}).get("suppressed") or {}
        return cls(
            windows={str(key): [list(hit) for hit in hits] for key, hits in windows.items()},
            suppressed={str(key): list(seen) for key, seen in suppressed.items()},
        )


def _fires(correlation: CompiledCorrelation, hits: Sequence[Sequence[Any]]) -> bool:
    if correlation.kind == "event_count":
        return bool(correlation.compare(len(hits), correlation.count))
    if correlation.kind == "value_count":
        distinct = {hit[3] for hit in hits if hit[3] is not None}
        return bool(correlation.compare(len(distinct), correlation.count))
    if correlation.kind == "temporal":
        return set(correlation.rule_ids) <= {hit[2] for hit in hits}
    position = 0
    for hit in sorted(hits, key=lambda h: h[0]):
        if hit[2] == correlation.rule_ids[position]:
            position += 1
            if position == len(correlation.rule_ids):
                return True
    return False


def correlate(
    correlation: CompiledCorrelation,
    rule_id: str,
    row: Mapping[str, Any],
    epoch: float,
    event_id: str,
    state: CorrelationState,
) -> list[str] | None:
    """Add one hit of ``rule_id``; return the evidence event ids when the correlation fires, else None."""
    key = correlation.group_key(rule_id, row)
    if key not in state.windows and len(state.windows) >= MAX_WINDOWS:
        state.prune(epoch - correlation.timespan_s)
    hits = state.windows.setdefault(key, [])
    field_name = correlation.value_field.get(rule_id)
    value = row.get(field_name.lower()) if field_name else None
    hits.append([epoch, event_id, rule_id, value])
    horizon = epoch - correlation.timespan_s
    if hits[0][0] < horizon or len(hits) > MAX_HITS_PER_WINDOW:
        hits[:] = [hit for hit in hits if hit[0] >= horizon][-MAX_HITS_PER_WINDOW:]
    if not _fires(correlation, hits):
        return None
    evidence = [str(hit[1]) for hit in hits]
    del state.windows[key]
    return evidence
